"""Publication figures: vector PDF + 300-dpi PNG, TrueType fonts embedded, sized for a journal column
(single 3.3 in, double 6.9 in), colour-blind-safe palette, and the same colour and marker for a model in every
figure (assigned from the sorted model names). Legends list the models by upstream top-1 (lowest first), each with
its filled marker, and every figure says in itself what its other marks mean (lines, bands, bars, open markers)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from transferbench.analysis.stats import (  # noqa: E402
    SMALL_DATASET,
    bootstrap_r,
    logit,
    model_means,
    morey_intervals,
    pearson_r,
    r_note,
)
from transferbench.atomic import atomic_path  # noqa: E402

SINGLE_COLUMN, DOUBLE_COLUMN = 3.3, 6.9
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "p", "h", "*")
MODE_TITLES = {"linear": "Logistic regression", "knn": "k-nearest neighbours", "finetune": "Fine-tuned",
               "bit": "Fine-tuned by BiT-HyperRule", "scratch": "Trained from random init."}

STYLE = {
    "pdf.fonttype": 42, "ps.fonttype": 42,  # TrueType, embedded
    "font.size": 7, "axes.titlesize": 7, "axes.labelsize": 7, "xtick.labelsize": 6, "ytick.labelsize": 6,
    "legend.fontsize": 6, "axes.linewidth": 0.6, "lines.linewidth": 1.0, "savefig.dpi": 300,
}


GREY = "0.35"


class DistinctPercent(matplotlib.ticker.Formatter):
    """Fractions as percent with the fewest decimals (0-6) that keep every tick's label distinct and never show a
    value strictly between 0 and 1 as 0% or 100% (logit axes: 0.01% ... 99.99%, narrow ranges 10.06%, 10.08%)."""

    decimals = 0

    @staticmethod
    def _label(v, decimals):
        text = f"{100 * v:.{decimals}f}"
        return (text.rstrip("0").rstrip(".") if "." in text else text) + "%"

    def set_locs(self, locs):
        super().set_locs(locs)
        locs = [v for v in locs if np.isfinite(v)]
        for self.decimals in range(7):
            labels = [self._label(v, self.decimals) for v in locs]
            extreme = any(lab in ("0%", "100%") and 0 < v < 1 for lab, v in zip(labels, locs))
            if len(set(labels)) == len(labels) and not extreme:
                break

    def __call__(self, v, pos=None):
        return self._label(v, self.decimals)


def model_styles(models) -> dict:
    """{model: (colour, marker)}, stable for a given set of model names."""
    names = sorted(models)
    palette = sns.color_palette("colorblind", n_colors=max(len(names), 1))
    return {m: (palette[i % len(palette)], MARKERS[i % len(MARKERS)]) for i, m in enumerate(names)}


def save_figure(fig, out_pdf, out_png) -> None:
    for path in (out_pdf, out_png):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=Path(path).suffix[1:], bbox_inches="tight")
    plt.close(fig)


def regression_band(x, y, grid, n_boot: int = 1000, seed: int = 0):
    """Least-squares line on `grid` and its 95% percentile bootstrap band (resampling models)."""
    rng = np.random.default_rng(seed)
    fits = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(x), len(x))
        if np.ptp(x[idx]) > 0:
            fits.append(np.polyval(np.polyfit(x[idx], y[idx], 1), grid))
    fits = np.array(fits)
    return np.polyval(np.polyfit(x, y, 1), grid), np.quantile(fits, 0.025, axis=0), np.quantile(fits, 0.975, axis=0)


def model_order(table: pd.DataFrame) -> list:
    """Model names by upstream top-1, lowest first (ties by name): the legends' order."""
    top1 = table.groupby("model")["imagenet_top1"].first()
    return sorted(top1.index, key=lambda m: (top1[m], m))


def model_handles(table: pd.DataFrame, styles: dict, ms: float = 3.5) -> list:
    """One legend handle per model, in model_order, with the model's filled marker (whatever a panel drew)."""
    return [matplotlib.lines.Line2D([], [], ls="none", marker=styles[m][1], ms=ms, color=styles[m][0],
                                    mfc=styles[m][0], mew=0.7, label=m) for m in model_order(table)]


def _legends_below(fig, *groups) -> list:
    """Legends stacked under the figure (call after tight_layout), each centred, each group of handles in rows of
    `ncol`: groups are (handles, ncol)."""
    renderer = fig.canvas.get_renderer()
    top, legends = 0.0, []
    for handles, ncol in groups:
        if handles:
            legend = fig.legend(handles=handles, loc="upper center", ncol=min(len(handles), ncol), frameon=False,
                                bbox_to_anchor=(0.5, top), borderaxespad=0.2)
            top = legend.get_window_extent(renderer).transformed(fig.transFigure.inverted()).y0
            legends.append(legend)
    return legends


def r_title(x, y) -> str:
    """'r = 0.97, 95% CI [0.90, 1.00]', or why there is no r ('r needs at least 3 models (2 here)')."""
    note = r_note(x, y)
    if note:
        return note
    low, high = bootstrap_r(x, y)
    return f"r = {pearson_r(x, y):.2f}, 95% CI [{low:.2f}, {high:.2f}]"


def plot_correlation(table: pd.DataFrame, out_pdf, out_png, upstream_label: str = "ImageNet top-1 (%)") -> None:
    """The paper's Figure 2: per mode, ImageNet top-1 vs mean transfer log odds, with the regression line, its
    bootstrap band, r with its bootstrap interval (or why there is none), and Morey within-dataset error bars; a key
    under the model legend says what line, band and bars are."""
    modes = [m for m in MODE_TITLES if m in set(table["mode"])]
    styles = model_styles(table["model"].unique())
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(modes), figsize=(DOUBLE_COLUMN, 2.3), squeeze=False)
        fitted = False
        for ax, mode in zip(axes[0], modes):
            part = table[table["mode"] == mode]
            means = model_means(part).set_index("model")
            errors = morey_intervals(part).reindex(means.index)
            x, y = means["imagenet_top1"].to_numpy(), means["mean_log_odds"].to_numpy()
            if len(x) >= 3 and np.ptp(x) > 0:
                grid = np.linspace(x.min(), x.max(), 50)
                line, low, high = regression_band(x, y, grid)
                ax.fill_between(grid, low, high, color="0.85", lw=0)
                ax.plot(grid, line, color="0.3")
                fitted = True
            for model, row in means.iterrows():
                colour, marker = styles[model]
                ax.errorbar(row["imagenet_top1"], row["mean_log_odds"], yerr=errors.get(model, np.nan), fmt=marker,
                            color=colour, ms=4, elinewidth=0.6, capsize=0)
            ax.set_title(f"{MODE_TITLES[mode]}\n{r_title(x, y)}")
            ax.set_xlabel(upstream_label)
            ax.grid(alpha=0.3, lw=0.4)
        axes[0][0].set_ylabel("Mean transfer log odds")
        fig.tight_layout()
        key = [matplotlib.lines.Line2D([], [], color="0.3", label="least-squares fit"),
               matplotlib.patches.Patch(color="0.85", lw=0, label="its 95% bootstrap band")] if fitted else []
        key.append(matplotlib.lines.Line2D([], [], ls="none", marker="|", ms=7, mew=0.6, color=GREY,
                                           label="within-dataset 95% interval (Morey 2008)"))
        _legends_below(fig, (model_handles(table, styles, ms=4), 8), (key, 3))
        save_figure(fig, out_pdf, out_png)


def plot_per_dataset(table: pd.DataFrame, out_pdf, out_png, upstream_label: str = "ImageNet top-1 (%)",
                     not_worse: pd.DataFrame | None = None) -> None:
    """Small multiples: one row per mode, one column per dataset, transfer accuracy against upstream top-1 on logit
    axes (tick labels with as many decimals as keep them distinct). With paired-test results, models not
    significantly worse than the best are filled, the others open, and a key under the legend says so."""
    modes = [m for m in MODE_TITLES if m in set(table["mode"])]
    datasets = sorted(table["dataset"].unique())
    styles = model_styles(table["model"].unique())
    flags = {} if not_worse is None else {(r.mode, r.dataset, r.model): bool(r.not_worse)
                                          for r in not_worse.itertuples()}
    with plt.rc_context(STYLE):
        width = min(DOUBLE_COLUMN, 1.5 * len(datasets) + 0.6)
        fig, axes = plt.subplots(len(modes), len(datasets), figsize=(width, 1.45 * len(modes) + 0.4), squeeze=False)
        for i, mode in enumerate(modes):
            for j, dataset in enumerate(datasets):
                ax = axes[i][j]
                part = table[(table["mode"] == mode) & (table["dataset"] == dataset)]
                for row in part.sort_values("model").itertuples():
                    colour, marker = styles[row.model]
                    filled = flags.get((mode, dataset, row.model), True)
                    ax.plot(row.imagenet_top1, np.clip(row.value, 1e-3, 1 - 1e-3), marker, ms=3.5, color=colour,
                            mfc=colour if filled else "none", mew=0.7)
                ax.set_yscale("logit")
                ax.yaxis.set_major_locator(matplotlib.ticker.LogitLocator(nbins=4))
                ax.yaxis.set_major_formatter(DistinctPercent())
                ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
                ax.grid(alpha=0.3, lw=0.4)
                if i == 0:
                    ax.set_title(dataset)
                if j == 0:
                    ax.set_ylabel(f"{MODE_TITLES[mode]}\naccuracy (logit axis)")
                if i == len(modes) - 1:
                    ax.set_xlabel(upstream_label)
        fig.tight_layout()
        key = [matplotlib.lines.Line2D([], [], ls="none", marker="o", ms=3.5, mew=0.7, color=GREY, mfc=mfc,
                                       label=label)
               for mfc, label in ((GREY, "filled: not significantly worse than the dataset's best (Holm p > 0.05)"),
                                  ("none", "open: significantly worse"))] if flags else []
        _legends_below(fig, (model_handles(table, styles), 6), (key, 2))
        save_figure(fig, out_pdf, out_png)


def plot_modes_per_dataset(table: pd.DataFrame, out_pdf, out_png) -> None:
    """Per dataset, every model's transfer accuracy in each mode (the paper's Figure 6 layout): one column per
    dataset, modes side by side, models as markers in their fixed style."""
    modes = [m for m in MODE_TITLES if m in set(table["mode"])]
    datasets = sorted(table["dataset"].unique())
    styles = model_styles(table["model"].unique())
    offsets = np.linspace(-0.25, 0.25, len(modes)) if len(modes) > 1 else np.zeros(1)
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(DOUBLE_COLUMN, 2.4))
        for k, mode in enumerate(modes):
            for j, dataset in enumerate(datasets):
                part = table[(table["mode"] == mode) & (table["dataset"] == dataset)]
                for row in part.sort_values("model").itertuples():
                    colour, marker = styles[row.model]
                    ax.plot(j + offsets[k], 100 * row.value, marker, ms=3, color=colour, alpha=0.9)
        positions = [j + offsets[k] for j in range(len(datasets)) for k in range(len(modes))]
        ax.set_xticks(positions, [m[0].upper() for _ in datasets for m in modes])
        ax.tick_params(axis="x", labelsize=5)
        for j, dataset in enumerate(datasets):  # dataset names under their group of mode ticks
            ax.text(j, -0.12, dataset, transform=ax.get_xaxis_transform(), ha="center", va="top")
        ax.set_ylabel("Transfer accuracy (%)")
        ax.set_title("Per dataset: " + ", ".join(f"{m[0].upper()} = {MODE_TITLES[m].lower()}" for m in modes))
        ax.grid(axis="y", alpha=0.3, lw=0.4)
        fig.tight_layout()
        _legends_below(fig, (model_handles(table, styles, ms=3), 8))
        save_figure(fig, out_pdf, out_png)


def plot_finetune_vs_scratch(table: pd.DataFrame, out_pdf, out_png) -> None:
    """The paper's Figure 7: fine-tuned vs trained-from-scratch accuracy, one point per model x dataset, log-odds
    axes, with the diagonal (above it, pretraining helped; the legend says so)."""
    wide = table.pivot_table(index=["model", "dataset"], columns="mode", values="value").reset_index()
    styles = model_styles(table["model"].unique())
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(SINGLE_COLUMN, SINGLE_COLUMN))
        if {"finetune", "scratch"} <= set(wide.columns):
            for row in wide.dropna(subset=["finetune", "scratch"]).sort_values("model").itertuples():
                colour, marker = styles[row.model]
                ax.plot(logit(row.scratch), logit(row.finetune), marker, ms=3.5, color=colour)
            lim = ax.get_xlim()[0], ax.get_xlim()[1]
            low, high = min(lim[0], ax.get_ylim()[0]), max(lim[1], ax.get_ylim()[1])
            ax.plot([low, high], [low, high], color="0.5", lw=0.6, ls="--")
        ax.set_xlabel("Trained from random init. (log odds)")
        ax.set_ylabel("Fine-tuned (log odds)")
        ax.grid(alpha=0.3, lw=0.4)
        fig.tight_layout()
        diagonal = matplotlib.lines.Line2D([], [], color="0.5", lw=0.6, ls="--",
                                           label="equal accuracy (above: pretraining helped)")
        _legends_below(fig, (model_handles(table, styles), 3), ([diagonal], 1))
        save_figure(fig, out_pdf, out_png)


def plot_dataset_size(correlations: pd.DataFrame, out_pdf, out_png, upstream_label: str = "ImageNet top-1 (%)") -> None:
    """r with its 95% bootstrap interval for datasets under vs at least 10,000 training examples, per mode (the
    paper: from scratch 0.29 vs 0.86), and each dataset's own r as a dot beside its group's bar. When every dataset
    falls in one group (the demo), that group's bar stands alone and the legend says the other group has no dataset;
    a mode without an r is marked n/a, with the reason (correlations.csv's note) under the axes."""
    size_rows = correlations[correlations["subset"].str.startswith("n_train")]
    dataset_rows = correlations[correlations["subset"].str.startswith("dataset=")]
    modes = [m for m in MODE_TITLES if m in set(correlations["mode"])]
    threshold = f"{SMALL_DATASET:,}"
    groups = [(f"n_train<{SMALL_DATASET}", f"< {threshold} training examples", lambda n: n < SMALL_DATASET),
              (f"n_train>={SMALL_DATASET}", f"\u2265 {threshold} training examples", lambda n: n >= SMALL_DATASET)]
    present = [g for g in groups if g[0] in set(size_rows["subset"])]
    palette = dict(zip([g[0] for g in groups], sns.color_palette("colorblind", n_colors=2)))
    width = 0.8 / max(len(present), 1)
    rng = np.random.default_rng(0)  # dot jitter only
    handles, lows, reasons, drawn = [], [0.0], {}, set()
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(SINGLE_COLUMN, 2.4))
        for k, (subset, label, member) in enumerate(present):
            part = size_rows[size_rows["subset"] == subset].set_index("mode").reindex(modes)
            x = np.arange(len(modes)) + (k - (len(present) - 1) / 2) * width
            err = np.vstack([part["r"] - part["ci_low"], part["ci_high"] - part["r"]]).clip(min=0)
            ax.bar(x, part["r"], width, yerr=err, color=palette[subset], capsize=1.5, error_kw={"lw": 0.6})
            handles.append(matplotlib.patches.Patch(color=palette[subset], label=label))
            lows += list(part["ci_low"].dropna())
            for xi, (mode, row) in zip(x, part.iterrows()):
                if np.isfinite(row["r"]):
                    drawn.add("interval")
                else:
                    ax.text(xi, 0.02, "n/a", ha="center", va="bottom", fontsize=6, color=GREY)
                    reasons[str(row.get("note", "") or "no r").split(";")[0]] = True
                dots = dataset_rows[dataset_rows["mode"] == mode]
                if "n_train" in dots and dots["n_train"].notna().all():
                    dots = dots[member(dots["n_train"])]
                elif len(present) > 1:
                    continue  # which group a dataset is in is unknown (a correlations table without n_train)
                r = dots["r"].dropna().to_numpy()
                if len(r):  # a column of dots right of the error bar
                    ax.plot(xi + (0.3 + rng.uniform(-0.06, 0.06, len(r))) * width, r, "o", ms=2, color="0.15",
                            mfc="white", mew=0.5, zorder=3)
                    drawn.add("dots")
                    lows += list(r)
        for subset, _label, _ in groups:
            if subset not in [g[0] for g in present]:
                handles.append(matplotlib.patches.Patch(facecolor="none", edgecolor=palette[subset], lw=0.6,
                                                        label=f"\u2265 {threshold}: no dataset" if ">=" in subset
                                                        else f"< {threshold}: no dataset"))
        if "dots" in drawn:
            handles.append(matplotlib.lines.Line2D([], [], ls="none", marker="o", ms=2, color="0.15", mfc="white",
                                                   mew=0.5, label="one dataset's r"))
        if "interval" in drawn:
            handles.append(matplotlib.lines.Line2D([], [], ls="none", marker="|", ms=6, mew=0.6, color="0.15",
                                                   label="95% bootstrap interval"))
        ax.set_xticks(range(len(modes)), [MODE_TITLES[m].replace(" ", "\n", 1) for m in modes])
        ax.set_xlim(-0.5, len(modes) - 0.5)
        ax.axhline(0, color="0.3", lw=0.5)
        ax.set_ylim(min(lows) - 0.05, 1.05)
        ax.set_ylabel(f"r ({upstream_label.replace(' (%)', '')} vs\ntransfer log odds)")
        # above the axes: inside, it would cover the bars
        ax.legend(handles=handles, frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2)
        fig.tight_layout()
        if reasons:
            fig.text(0.5, 0.0, "n/a: " + "; ".join(reasons), ha="center", va="top", fontsize=6)
        save_figure(fig, out_pdf, out_png)
