"""Figures of the sweeps, in the style of transferbench.analysis.figures: Kornblith et al.'s Fig. 9 (transfer vs
examples per class), Fig. 8 (transfer vs training steps, fine-tuned vs from random init.) and the schedule study's
scratch - fine-tune gap against schedule length (Rethinking ImageNet Pre-training's question)."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from transferbench.analysis.figures import (
    DOUBLE_COLUMN,
    MODE_TITLES,
    STYLE,
    _legends_below,
    model_styles,
    save_figure,
)
from transferbench.analysis.sweeps import SIZE_SPLIT

MODES = ("linear", "finetune", "scratch")


def mode_colours() -> dict:
    """One colour per mode, the same in both sweep figures."""
    return dict(zip(MODES, sns.color_palette("colorblind", n_colors=3)))


def _panels(n: int):
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(DOUBLE_COLUMN, 1.75 * rows + 0.3), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat


def _label_panel(ax, dataset: str, xlabel: str, metric: str, base: int) -> None:
    """A dataset's panel: log x axis, its title, the axis labels (the metric in percent) and a light grid."""
    ax.set_xscale("log", base=base)
    ax.set_title(dataset)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{metric.replace('_', ' ')} (%)")
    ax.grid(alpha=0.3, lw=0.4)


def _handles(modes, models, styles, colours, extra=()) -> list:
    handles = [Line2D([], [], color=colours[m], lw=1.0, label=MODE_TITLES[m]) for m in modes]
    if len(models) > 1:
        handles += [Line2D([], [], ls="none", marker=styles[m][1], ms=3.5, color="0.3", label=m) for m in models]
    return handles + list(extra)


def plot_dataset_size(summary: pd.DataFrame, out_pdf, out_png) -> None:
    """Fig. 9: per dataset, the metric against examples per class (log2 axis), one line per mode (and marker per
    model), error bars one standard error over draws; the top axis gives the total training examples."""
    if summary.empty:
        raise ValueError("no dataset_size rows in the results table: nothing to plot (is sweeps.dataset_size on?)")
    datasets = sorted(summary["dataset"].unique())
    models = sorted(summary["model"].unique())
    styles, colours = model_styles(models), mode_colours()
    with plt.rc_context(STYLE):
        fig, axes = _panels(len(datasets))
        for ax, dataset in zip(axes, datasets):
            part = summary[summary["dataset"] == dataset]
            for (mode, model), line in part.groupby(["mode", "model"], sort=True):
                line = line.sort_values("examples_per_class")
                ax.errorbar(line["examples_per_class"], 100 * line["mean"], yerr=100 * line["se"].fillna(0),
                            color=colours[mode], marker=styles[model][1], ms=3, lw=1.0, capsize=1.5, elinewidth=0.6)
            _label_panel(ax, dataset, "Examples per class", part["metric"].iloc[0], base=2)
            ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))  # 1, 2, 4 ...
            totals = part.groupby("examples_per_class")["n_train"].mean()
            top = ax.secondary_xaxis("top")
            top.set_xticks(totals.index.to_numpy(dtype=float), [f"{t:,.0f}" for t in totals])
            top.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())  # (the log scale's would be labelled)
            top.tick_params(labelsize=5, rotation=45)
            top.set_xlabel("Training examples", fontsize=6)
        fig.tight_layout()
        bars = Line2D([], [], color="0.3", marker="|", ls="none", label="bars: 1 SE over draws")
        _legends_below(fig, (_handles([m for m in MODES if m in set(summary["mode"])], models, styles, colours,
                                      [bars]), 4))
        save_figure(fig, out_pdf, out_png)


def plot_convergence(table: pd.DataFrame, convergence: pd.DataFrame, out_pdf, out_png) -> None:
    """Fig. 8: per dataset, the metric against training steps (log axis) of each budget's independently tuned run,
    fine-tuned vs from random init.; dashed: the 90%-of-best-log-odds threshold of each mode, dotted: the steps
    that first reach it."""
    rows = table[table["study"] == "budgets"] if "study" in table else table.iloc[:0]
    if rows.empty:
        raise ValueError("no budgets rows in the results table: nothing to plot (is sweeps.budgets on?)")
    datasets = sorted(rows["dataset"].unique())
    models = sorted(rows["model"].unique())
    styles, colours = model_styles(models), mode_colours()
    per_mode = convergence[convergence["mode"].isin(MODES)]
    marked = False
    with plt.rc_context(STYLE):
        fig, axes = _panels(len(datasets))
        for ax, dataset in zip(axes, datasets):
            part = rows[rows["dataset"] == dataset]
            for (mode, model), line in part.groupby(["mode", "model"], sort=True):
                line = line.sort_values("steps")
                ax.plot(line["steps"], 100 * line["value"], color=colours[mode], marker=styles[model][1], ms=3)
                mark = per_mode[(per_mode["dataset"] == dataset) & (per_mode["model"] == model)
                                & (per_mode["mode"] == mode)]
                if len(mark) and np.isfinite(mark["threshold_log_odds"].iloc[0]):
                    level = 100 / (1 + np.exp(-mark["threshold_log_odds"].iloc[0]))
                    ax.axhline(level, color=colours[mode], lw=0.6, ls="--")
                    marked = True
                    if np.isfinite(mark["steps_to_90"].iloc[0]):
                        ax.axvline(mark["steps_to_90"].iloc[0], color=colours[mode], lw=0.6, ls=":")
            _label_panel(ax, dataset, "Training steps", part["metric"].iloc[0], base=10)
            budgets = sorted(part["steps"].unique())
            if len(budgets) <= 8:  # each budget labelled, in plain numbers
                ax.set_xticks(budgets, [f"{int(b):,}" for b in budgets])
            else:
                ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
            ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        fig.tight_layout()
        keys = [Line2D([], [], color="0.3", lw=0.6, ls="--", label="90% of the best log odds"),
                Line2D([], [], color="0.3", lw=0.6, ls=":", label="first budget reaching it")] if marked else []
        _legends_below(fig, (_handles([m for m in MODES if m in set(rows["mode"])], models, styles, colours, keys),
                             3))
        save_figure(fig, out_pdf, out_png)


NORM_TITLES = {"batchnorm": "BatchNorm", "groupnorm": "GroupNorm", "groupnorm_ws": "GroupNorm + WS"}


def plot_schedules(summary: pd.DataFrame, out_pdf, out_png) -> None:
    """One panel per training-set size group: the mean scratch - fine-tune gap in log odds (standard-error bars)
    against the schedule multiple on a log2 axis, a line per normalization; zero marked (scratch = fine-tuned)."""
    groups = sorted(summary["size_group"].unique())
    norms = [n for n in NORM_TITLES if n in set(summary["norm"])]
    colours = dict(zip(NORM_TITLES, sns.color_palette("colorblind", n_colors=3)))
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, max(len(groups), 1), figsize=(DOUBLE_COLUMN, 2.4), squeeze=False)
        for ax, group in zip(axes[0], groups):
            for norm in norms:
                line = summary[(summary["size_group"] == group) & (summary["norm"] == norm)].sort_values("schedule")
                ax.errorbar(line["schedule"], line["mean_gap"], yerr=line["se"], color=colours[norm], marker="o",
                            ms=3, lw=1, elinewidth=0.6, capsize=0)
            ax.axhline(0, color="0.5", lw=0.6, ls="--")
            ax.set_xscale("log", base=2)
            multiples = sorted(summary["schedule"].unique())
            ax.set_xticks(multiples, [f"{m:g}x" for m in multiples])
            ax.minorticks_off()
            ax.set_title(f"{'at least' if '>=' in group else 'fewer than'} {SIZE_SPLIT:,} training examples")
            ax.set_xlabel("Schedule (multiple of the base steps)")
            ax.grid(alpha=0.3, lw=0.4)
        axes[0][0].set_ylabel("Scratch - fine-tuned (log odds)")
        fig.tight_layout()
        handles = [Line2D([], [], color=colours[n], marker="o", ms=3, lw=1, label=f"scratch with {NORM_TITLES[n]}")
                   for n in norms]
        handles.append(Line2D([], [], color="0.5", lw=0.6, ls="--", label="scratch = fine-tuned"))
        _legends_below(fig, (handles, 4))
        save_figure(fig, out_pdf, out_png)
