"""The detection study's figures (transferbench.analysis.detection): detection AP against ImageNet top-1 per backbone
state (does the paper's correlation hold for detection, and does freezing change it?), and AP against the detector's
capacity per backbone state."""

from __future__ import annotations

import math

import pandas as pd
import seaborn as sns
from matplotlib import pyplot as plt
from matplotlib.lines import Line2D

from transferbench.analysis.figures import DOUBLE_COLUMN, STYLE, _legends_below, model_styles, save_figure

STATE_TITLES = {"frozen": "frozen backbone", "finetune": "fine-tuned backbone", "scratch": "from scratch (GN)"}
STATE_LINES = {"frozen": "-", "finetune": "--", "scratch": ":"}


def state_colours() -> dict:
    return dict(zip(STATE_TITLES, sns.color_palette("colorblind", n_colors=3)))


def _panels(n: int, height: float):
    cols = min(n, 3)
    fig, axes = plt.subplots(math.ceil(n / cols), cols, figsize=(DOUBLE_COLUMN, height), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat)


def plot_detection_top1(summary: pd.DataFrame, correlations: pd.DataFrame, out_pdf, out_png,
                        upstream_label: str = "ImageNet top-1 (%)") -> None:
    """Per dataset x detector: the primary AP (%) against top-1, one colour per backbone state with its least-squares
    line, r in the legend."""
    primary = summary[summary["primary"]]
    panels = list(primary.groupby(["dataset", "detector"], sort=True))
    colours, styles = state_colours(), model_styles(primary["model"].unique())
    with plt.rc_context(STYLE):
        fig, axes = _panels(len(panels), 2.4 * math.ceil(len(panels) / 3))
        for ax, ((dataset, detector), part) in zip(axes, panels):
            for state, points in part.groupby("state", sort=False):
                r = correlations[(correlations["dataset"] == dataset) & (correlations["detector"] == detector)
                                 & (correlations["state"] == state)]["r"]
                for row in points.itertuples():
                    ax.plot(row.imagenet_top1, 100 * row.value, styles[row.model][1], color=colours[state], ms=4)
                if len(points) >= 2 and points["imagenet_top1"].nunique() > 1:
                    sns.regplot(x=points["imagenet_top1"], y=100 * points["value"], ax=ax, scatter=False, ci=None,
                                color=colours[state], line_kws={"lw": 1, "ls": STATE_LINES[state]})
                ax.plot([], [], color=colours[state], ls=STATE_LINES[state],
                        label=f"{state}: r = {r.iloc[0]:.2f}" if len(r) and pd.notna(r.iloc[0]) else state)
            ax.set_xlabel(upstream_label)
            ax.set_ylabel(f"{part['metric'].iloc[0].replace('_', ' ')} (%)")
            ax.set_title(f"{dataset}, {detector}")
            ax.legend(fontsize=5, frameon=False)
            ax.grid(alpha=0.3, lw=0.4)
        fig.tight_layout()
        _legends_below(fig, ([Line2D([], [], color="0.3", marker=styles[m][1], ls="none", ms=4, label=m)
                              for m in sorted(styles)], 4))
        save_figure(fig, out_pdf, out_png)


def plot_detection_capacity(summary: pd.DataFrame, out_pdf, out_png) -> None:
    """Per dataset: the primary AP (%) against the detector's own trainable parameters (FPN, RPN and box head; log
    axis), one line per backbone x state (colour: state; marker: backbone)."""
    primary = summary[summary["primary"]]
    datasets = sorted(primary["dataset"].unique())
    colours, styles = state_colours(), model_styles(primary["model"].unique())
    with plt.rc_context(STYLE):
        fig, axes = _panels(len(datasets), 2.4 * math.ceil(len(datasets) / 3))
        for ax, dataset in zip(axes, datasets):
            part = primary[primary["dataset"] == dataset]
            for (model, state), line in part.groupby(["model", "state"], sort=True):
                line = line.sort_values("detector_params")
                ax.plot(line["detector_params"], 100 * line["value"], ls=STATE_LINES[state], color=colours[state],
                        marker=styles[model][1], ms=3.5, lw=1)
            ax.set_xscale("log")
            ax.set_xlabel("Detector parameters (FPN, RPN, box head)")
            ax.set_ylabel(f"{part['metric'].iloc[0].replace('_', ' ')} (%)")
            ax.set_title(dataset)
            ax.grid(alpha=0.3, lw=0.4)
        fig.tight_layout()
        states = [Line2D([], [], color=colours[s], ls=STATE_LINES[s], label=STATE_TITLES[s])
                  for s in STATE_TITLES if s in set(primary["state"])]
        models = [Line2D([], [], color="0.3", marker=styles[m][1], ls="none", ms=4, label=m) for m in sorted(styles)]
        _legends_below(fig, (states, 3), (models, 4))
        save_figure(fig, out_pdf, out_png)
