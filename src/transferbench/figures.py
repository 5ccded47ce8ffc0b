"""Publication figures: vector PDF + 300-dpi PNG, TrueType fonts embedded, sized for a journal column
(single 3.3 in, double 6.9 in), colour-blind-safe palette, and the same colour and marker for a model in every
figure (assigned from the sorted model names)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .atomic import atomic_path  # noqa: E402
from .stats import bootstrap_r, model_means, morey_intervals, pearson_r  # noqa: E402

SINGLE_COLUMN, DOUBLE_COLUMN = 3.3, 6.9
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "p", "h", "*")
MODE_TITLES = {"linear": "Logistic regression", "finetune": "Fine-tuned", "scratch": "Trained from random init."}

STYLE = {
    "pdf.fonttype": 42, "ps.fonttype": 42,  # TrueType, embedded
    "font.size": 7, "axes.titlesize": 7, "axes.labelsize": 7, "xtick.labelsize": 6, "ytick.labelsize": 6,
    "legend.fontsize": 6, "axes.linewidth": 0.6, "lines.linewidth": 1.0, "savefig.dpi": 300,
}


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
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 8), frameon=False,
                   bbox_to_anchor=(0.5, -0.08))
        fig.tight_layout()
        save_figure(fig, out_pdf, out_png)
