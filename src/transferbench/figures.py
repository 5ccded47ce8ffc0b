"""Publication figures: vector PDF + 300-dpi PNG, TrueType fonts embedded, sized for a journal column
(single 3.3 in, double 6.9 in), colour-blind-safe palette, and the same colour and marker for a model in every
figure (assigned from the sorted model names)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .atomic import atomic_path  # noqa: E402
from .stats import SMALL_DATASET, bootstrap_r, logit, model_means, morey_intervals, pearson_r  # noqa: E402

SINGLE_COLUMN, DOUBLE_COLUMN = 3.3, 6.9
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "p", "h", "*")
MODE_TITLES = {"linear": "Logistic regression", "finetune": "Fine-tuned", "scratch": "Trained from random init."}

STYLE = {
    "pdf.fonttype": 42, "ps.fonttype": 42,  # TrueType, embedded
    "font.size": 7, "axes.titlesize": 7, "axes.labelsize": 7, "xtick.labelsize": 6, "ytick.labelsize": 6,
    "legend.fontsize": 6, "axes.linewidth": 0.6, "lines.linewidth": 1.0, "savefig.dpi": 300,
}


PERCENT = matplotlib.ticker.FuncFormatter(lambda v, _: f"{100 * v:.3g}%")


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


def _legend_below(fig, ax, ncol=8, offset=-0.1) -> None:
    """One legend row (of `ax`'s entries) centred under the figure."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), ncol), frameon=False,
               bbox_to_anchor=(0.5, offset))


def plot_correlation(table: pd.DataFrame, out_pdf, out_png, upstream_label: str = "ImageNet top-1 (%)") -> None:
    """The paper's Figure 2: per mode, ImageNet top-1 vs mean transfer log odds, with the regression line, its
    bootstrap band, r with its bootstrap interval, and Morey within-dataset error bars."""
    modes = [m for m in MODE_TITLES if m in set(table["mode"])]
    styles = model_styles(table["model"].unique())
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(modes), figsize=(DOUBLE_COLUMN, 2.3), squeeze=False)
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
            for model, row in means.iterrows():
                colour, marker = styles[model]
                ax.errorbar(row["imagenet_top1"], row["mean_log_odds"], yerr=errors.get(model, np.nan), fmt=marker,
                            color=colour, ms=4, elinewidth=0.6, capsize=0, label=model)
            r = pearson_r(x, y)
            lo, hi = bootstrap_r(x, y)
            ax.set_title(f"{MODE_TITLES[mode]}\nr = {r:.2f} [{lo:.2f}, {hi:.2f}]")
            ax.set_xlabel(upstream_label)
            ax.grid(alpha=0.3, lw=0.4)
        axes[0][0].set_ylabel("Mean transfer log odds")
        _legend_below(fig, axes[0][0], offset=-0.08)
        fig.tight_layout()
        save_figure(fig, out_pdf, out_png)


def plot_per_dataset(table: pd.DataFrame, out_pdf, out_png, upstream_label: str = "ImageNet top-1 (%)",
                     not_worse: pd.DataFrame | None = None) -> None:
    """Small multiples: one row per mode, one column per dataset, transfer accuracy against upstream top-1 on logit
    axes. With paired-test results, models not significantly worse than the best are filled, the others open."""
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
                            mfc=colour if filled else "none", mew=0.7, label=row.model)
                ax.set_yscale("logit")
                ax.yaxis.set_major_formatter(PERCENT)
                ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
                ax.grid(alpha=0.3, lw=0.4)
                if i == 0:
                    ax.set_title(dataset)
                if j == 0:
                    ax.set_ylabel(f"{MODE_TITLES[mode]}\naccuracy (logit axis)")
                if i == len(modes) - 1:
                    ax.set_xlabel(upstream_label)
        _legend_below(fig, axes[0][0])
        fig.tight_layout()
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
                    ax.plot(j + offsets[k], 100 * row.value, marker, ms=3, color=colour, alpha=0.9,
                            label=row.model if (j == 0 and k == 0) else None)
        positions = [j + offsets[k] for j in range(len(datasets)) for k in range(len(modes))]
        ax.set_xticks(positions, [m[0].upper() for _ in datasets for m in modes])
        ax.tick_params(axis="x", labelsize=5)
        for j, dataset in enumerate(datasets):  # dataset names under their group of mode ticks
            ax.text(j, -0.12, dataset, transform=ax.get_xaxis_transform(), ha="center", va="top")
        ax.set_ylabel("Transfer accuracy (%)")
        ax.set_title("Per dataset: " + ", ".join(f"{m[0].upper()} = {MODE_TITLES[m].lower()}" for m in modes))
        ax.grid(axis="y", alpha=0.3, lw=0.4)
        _legend_below(fig, ax)
        fig.tight_layout()
        save_figure(fig, out_pdf, out_png)


def plot_finetune_vs_scratch(table: pd.DataFrame, out_pdf, out_png) -> None:
    """The paper's Figure 7: fine-tuned vs trained-from-scratch accuracy, one point per model x dataset, log-odds
    axes, with the diagonal (above it, pretraining helped)."""
    wide = table.pivot_table(index=["model", "dataset"], columns="mode", values="value").reset_index()
    styles = model_styles(table["model"].unique())
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(SINGLE_COLUMN, SINGLE_COLUMN))
        if {"finetune", "scratch"} <= set(wide.columns):
            for row in wide.dropna(subset=["finetune", "scratch"]).sort_values("model").itertuples():
                colour, marker = styles[row.model]
                ax.plot(logit(row.scratch), logit(row.finetune), marker, ms=3.5, color=colour, label=row.model)
            lim = ax.get_xlim()[0], ax.get_xlim()[1]
            low, high = min(lim[0], ax.get_ylim()[0]), max(lim[1], ax.get_ylim()[1])
            ax.plot([low, high], [low, high], color="0.5", lw=0.6, ls="--")
        ax.set_xlabel("Trained from random init. (log odds)")
        ax.set_ylabel("Fine-tuned (log odds)")
        ax.grid(alpha=0.3, lw=0.4)
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles))
        ax.legend(unique.values(), unique.keys(), frameon=False, loc="lower right")
        fig.tight_layout()
        save_figure(fig, out_pdf, out_png)


def plot_dataset_size(correlations: pd.DataFrame, out_pdf, out_png) -> None:
    """r with its 95% bootstrap interval for datasets under vs at least 10,000 training examples, per mode (the
    paper: from scratch 0.29 vs 0.86)."""
    size_rows = correlations[correlations["subset"].str.startswith("n_train")]
    modes = [m for m in MODE_TITLES if m in set(size_rows["mode"])]
    subsets = sorted(size_rows["subset"].unique(), key=lambda s: ("<" not in s, s))
    palette = sns.color_palette("colorblind", n_colors=max(len(subsets), 1))
    width = 0.8 / max(len(subsets), 1)
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(SINGLE_COLUMN, 2.2))
        for k, subset in enumerate(subsets):
            part = size_rows[size_rows["subset"] == subset].set_index("mode").reindex(modes)
            x = np.arange(len(modes)) + (k - (len(subsets) - 1) / 2) * width
            err = np.vstack([part["r"] - part["ci_low"], part["ci_high"] - part["r"]]).clip(min=0)
            threshold = f"{SMALL_DATASET:,}"
            label = f"< {threshold} training examples" if "<" in subset else f">= {threshold} training examples"
            ax.bar(x, part["r"], width, yerr=err, color=palette[k], capsize=1.5, error_kw={"lw": 0.6}, label=label)
        ax.set_xticks(range(len(modes)), [MODE_TITLES[m].replace(" ", "\n", 1) for m in modes])
        ax.axhline(0, color="0.3", lw=0.5)
        ax.set_ylabel("r (ImageNet top-1 vs\ntransfer log odds)")
        if subsets:  # above the axes: inside, it would cover the bars
            ax.legend(frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(subsets))
        else:
            ax.text(0.5, 0.5, "all datasets on one side of 10,000 examples", transform=ax.transAxes, ha="center")
        fig.tight_layout()
        save_figure(fig, out_pdf, out_png)
