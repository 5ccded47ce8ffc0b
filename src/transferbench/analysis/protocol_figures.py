"""The figure of BiT-HyperRule against the grid search (transferbench.analysis.protocols): (a) per model x dataset,
the rule's gain in log odds against how many times more training time the grid search took; (b) per model, mean
transfer log odds against upstream top-1 under each protocol, with each protocol's r."""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import pyplot as plt
from matplotlib.lines import Line2D

from transferbench.analysis.figures import DOUBLE_COLUMN, STYLE, _legends_below, model_styles, r_title, save_figure
from transferbench.analysis.protocols import PROTOCOLS
from transferbench.analysis.stats import logit


def plot_bit_vs_grid(comparison: pd.DataFrame, out_pdf, out_png, upstream_label: str = "ImageNet top-1 (%)") -> None:
    styles = model_styles(comparison["model"].unique())
    datasets = sorted(comparison["dataset"].unique())
    colours = dict(zip(datasets, sns.color_palette("colorblind", n_colors=max(len(datasets), 1))))
    protocol_colours = dict(zip(PROTOCOLS, ("0.25", sns.color_palette("colorblind")[3])))
    with plt.rc_context(STYLE):
        fig, (left, right) = plt.subplots(1, 2, figsize=(DOUBLE_COLUMN, 2.6))
        for row in comparison.itertuples():
            left.plot(row.time_ratio, row.log_odds_difference, styles[row.model][1], color=colours[row.dataset],
                      ms=4)
        left.axhline(0, color="0.5", lw=0.6, ls="--")
        left.axvline(1, color="0.5", lw=0.6, ls=":")  # equal cost
        ratios = comparison["time_ratio"].dropna()
        low, high = min(1.0, ratios.min()) / 1.5, max(1.0, ratios.max()) * 1.5
        left.set_xscale("log")
        left.set_xlim(low, high)
        ticks = [t for t in (0.5, 1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 500, 1000) if low <= t <= high]
        left.set_xticks(ticks, [f"{t:g}x" for t in ticks])
        left.minorticks_off()
        left.set_xlabel("Grid search's training time / the rule's")
        left.set_ylabel("BiT-HyperRule - grid search\n(log odds)")
        left.set_title("(a) Accuracy against cost")
        means = comparison.groupby("model").agg(top1=("imagenet_top1", "first"),
                                                finetune=("grid_value", lambda v: logit(v).mean()),
                                                bit=("bit_value", lambda v: logit(v).mean()))
        titles = []
        for protocol in PROTOCOLS:  # means' columns are named by protocol
            x, y = means["top1"].to_numpy(), means[protocol].to_numpy()
            order = np.argsort(x)
            right.plot(x[order], y[order], color=protocol_colours[protocol], lw=0.8)
            for model, xi, yi in zip(means.index, x, y):
                right.plot(xi, yi, styles[model][1], color=protocol_colours[protocol], ms=4)
            titles.append(f"{PROTOCOLS[protocol]}: {r_title(x, y)}")
        right.set_xlabel(upstream_label)
        right.set_ylabel("Mean transfer log odds")
        right.set_title("(b) Correlation under each protocol")
        for ax in (left, right):
            ax.grid(alpha=0.3, lw=0.4)
        fig.tight_layout()
        models = [Line2D([], [], ls="none", marker=styles[m][1], color="0.3", ms=4, label=m) for m in means.index]
        keys = [Line2D([], [], ls="none", marker="s", color=colours[d], ms=4, label=d) for d in datasets]
        keys += [Line2D([], [], color=protocol_colours[p], lw=0.8, label=t) for p, t in zip(PROTOCOLS, titles)]
        _legends_below(fig, (models, 8), (keys, 2))
        save_figure(fig, out_pdf, out_png)
