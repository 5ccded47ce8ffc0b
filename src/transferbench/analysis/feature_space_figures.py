"""Figures of the feature space (transferbench.analysis.feature_space): class separation against upstream top-1 and
against linear-probe transfer, and t-SNE maps of a few classes (the paper's Fig. 4)."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from transferbench.analysis.ablation import setting_label
from transferbench.analysis.figures import (
    DOUBLE_COLUMN,
    STYLE,
    _legends_below,
    model_handles,
    model_styles,
    r_title,
    save_figure,
)
from transferbench.analysis.stats import model_means


def plot_class_separation(space: pd.DataFrame, table: pd.DataFrame, out_pdf, out_png,
                          upstream_label: str = "ImageNet top-1 (%)", mode: str = "linear",
                          ablation: dict | None = None) -> None:
    """Left: each model's class separation (R^2 of Kornblith et al. 2021, mean over its single-label datasets)
    against its upstream top-1. Middle: the same against its mean transfer log odds in `mode` (the linear probe by
    default). r with its bootstrap interval in each title, or why there is none. With `ablation` (the config's
    section: group_tag, setting_tag, order), a third panel: class separation against the upstream setting, a line
    per architecture."""
    separation = space.dropna(subset=["class_separation"]).groupby("model")["class_separation"].mean()
    top1 = table.groupby("model")["imagenet_top1"].first().reindex(separation.index)
    transfer = model_means(table[table["mode"] == mode]).set_index("model")["mean_log_odds"].reindex(separation.index)
    styles = model_styles(table["model"].unique())
    n_datasets = space.dropna(subset=["class_separation"])["dataset"].nunique()
    label = f"Class separation R² (mean of {n_datasets} datasets)"
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 3 if ablation else 2, figsize=(DOUBLE_COLUMN, 2.5))
        for ax, x, y, xlabel, ylabel in ((axes[0], top1, separation, upstream_label, label),
                                         (axes[1], separation, transfer, label, f"Mean transfer log odds ({mode})")):
            for model in separation.index:
                colour, marker = styles[model]
                ax.plot(x[model], y[model], marker, color=colour, ms=4)
            finite = np.isfinite(x.to_numpy()) & np.isfinite(y.to_numpy())
            ax.set_title(r_title(x.to_numpy()[finite], y.to_numpy()[finite]))
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3, lw=0.4)
        if ablation:
            _separation_by_setting(axes[2], separation, table, ablation, label)
        fig.tight_layout()
        _legends_below(fig, (model_handles(table[table["model"].isin(separation.index)], styles, ms=4), 8))
        save_figure(fig, out_pdf, out_png)


def _separation_by_setting(ax, separation: pd.Series, table: pd.DataFrame, ablation: dict, label: str) -> None:
    """Class separation against the upstream setting (in the ablation's order), a grey line per architecture."""
    group, setting = ablation["group_tag"], ablation["setting_tag"]
    order = [setting_label(s) for s in ablation["order"]]
    tags = table.dropna(subset=[group, setting]).groupby("model")[[group, setting]].first()
    tags[setting] = tags[setting].map(setting_label)
    tags = tags[tags[setting].isin(order)].join(separation.rename("separation"), how="inner")
    for architecture, part in tags.groupby(group):
        part = part.assign(x=part[setting].map(order.index)).sort_values("x")
        ax.plot(part["x"], part["separation"], "-", color="0.6", lw=0.8)
        ax.annotate(str(architecture), (part["x"].iloc[-1], part["separation"].iloc[-1]), fontsize=5,
                    xytext=(3, 0), textcoords="offset points", va="center")
    ax.set_xticks(range(len(order)), order)
    ax.set_xlabel(f"Upstream setting ({setting})")
    ax.set_ylabel(label)
    ax.set_title("Against the upstream setting")
    ax.grid(alpha=0.3, lw=0.4)


def plot_tsne(embeddings: dict, out_pdf, out_png, class_names=None, titles: dict | None = None) -> None:
    """One panel per model: its t-SNE map (feature_space.Embedding) of the same examples, coloured by class.
    class_names: {class id: name} for the legend; titles: {model: panel title}."""
    models = list(embeddings)
    classes = np.unique(np.concatenate([e.labels for e in embeddings.values()]))
    palette = dict(zip(classes, sns.color_palette("tab10" if len(classes) <= 10 else "husl", len(classes))))
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(models), figsize=(DOUBLE_COLUMN, DOUBLE_COLUMN / max(len(models), 2)),
                                 squeeze=False)
        for ax, model in zip(axes[0], models):
            e = embeddings[model]
            ax.scatter(e.coords[:, 0], e.coords[:, 1], s=4, c=[palette[c] for c in e.labels], lw=0)
            ax.set_title((titles or {}).get(model, model))
            ax.set_xticks([])
            ax.set_yticks([])
        fig.tight_layout()
        handles = [matplotlib.lines.Line2D([], [], ls="none", marker="o", ms=4, color=palette[c],
                                           label=str((class_names or {}).get(c, c))) for c in classes]
        _legends_below(fig, (handles, 5))
        save_figure(fig, out_pdf, out_png)
