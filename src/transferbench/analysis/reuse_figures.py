"""The reuse study's figure (transferbench.analysis.reuse): per dataset size group, mean transfer log odds against
trainable parameters (log axis), one colour per model; solid lines join the frozen backbone's heads (linear probe,
then the MLP heads), dashed lines the fine-tuning runs (the last k stages, then the whole network)."""

from __future__ import annotations

import math

import pandas as pd
from matplotlib import pyplot as plt
from matplotlib.lines import Line2D

from transferbench.analysis.figures import DOUBLE_COLUMN, STYLE, _legends_below, model_styles, save_figure
from transferbench.analysis.reuse import SERIES

LINES = dict(zip(SERIES, ("-", "--")))
FILLED = dict(zip(SERIES, (True, False)))


def plot_reuse(summary: pd.DataFrame, out_pdf, out_png) -> None:
    if summary.empty:
        raise ValueError("no reuse points: the reuse study needs the linear and finetune modes and sweeps.reuse on")
    groups = list(dict.fromkeys(summary["size_group"]))
    models = sorted(summary["model"].unique())
    styles = model_styles(models)
    with plt.rc_context(STYLE):
        cols = min(len(groups), 3)
        fig, axes = plt.subplots(math.ceil(len(groups) / cols), cols, figsize=(DOUBLE_COLUMN, 2.4), squeeze=False)
        for ax in axes.flat[len(groups):]:
            ax.set_visible(False)
        for ax, group in zip(axes.flat, groups):
            part = summary[summary["size_group"] == group]
            for (model, series), line in part.groupby(["model", "series"], sort=True):
                line = line.sort_values("trainable_params")
                colour, marker = styles[model]
                ax.plot(line["trainable_params"], line["log_odds"], ls=LINES[series], color=colour, marker=marker,
                        ms=3.5, lw=1.0, mfc=colour if FILLED[series] else "white")
                for row in line.itertuples():
                    ax.annotate(row.point, (row.trainable_params, row.log_odds), fontsize=4.5, color="0.3",
                                xytext=(2, 2), textcoords="offset points")
            ax.set_xscale("log")
            ax.set_xlabel("Trainable parameters")
            ax.set_ylabel("Transfer log odds (mean over datasets)")
            count = part["datasets"].max()
            ax.set_title(f"n_train {group} ({count} dataset{'s' if count != 1 else ''})")
            ax.grid(alpha=0.3, lw=0.4)
        fig.tight_layout()
        series = [Line2D([], [], color="0.3", ls=LINES[s], marker="o", ms=3.5, mfc="0.3" if FILLED[s] else "white",
                         label=s) for s in SERIES]
        model_handles = [Line2D([], [], color=styles[m][0], marker=styles[m][1], ls="none", ms=3.5, label=m)
                         for m in models]
        _legends_below(fig, (series, 2), (model_handles, 4))
        save_figure(fig, out_pdf, out_png)
