"""The regularizer ablation's figure (Kornblith et al. 2019, Fig. 3 for the linear probe, Fig. 5 for fine-tuning):
per mode, each architecture's mean transfer log odds at each upstream setting, with its upstream top-1 under each
point; stars mark the steps whose paired test over datasets has p < 0.05."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from transferbench.analysis.ablation import setting_label
from transferbench.analysis.figures import DOUBLE_COLUMN, MODE_TITLES, STYLE, _legends_below, save_figure


def plot_regularizers(means: pd.DataFrame, steps: pd.DataFrame, group_tag: str, setting_tag: str, order: list,
                      out_pdf, out_png, upstream_label: str = "ImageNet top-1") -> None:
    """means: ablation.setting_means; steps: ablation.step_tests (same tags and order)."""
    modes = [m for m in MODE_TITLES if m in set(means["mode"])]
    groups = sorted(means[group_tag].unique(), key=str)
    palette = dict(zip(groups, sns.color_palette("colorblind", len(groups))))
    settings = [setting_label(s) for s in order]
    means = means.assign(**{setting_tag: means[setting_tag].map(setting_label)})
    steps = steps.assign(**{c: steps[c].map(setting_label) for c in ("from", "to")})
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(modes), figsize=(DOUBLE_COLUMN, 2.6), squeeze=False)
        for ax, mode in zip(axes[0], modes):
            for group in groups:
                part = means[(means["mode"] == mode) & (means[group_tag] == group)]
                x = [settings.index(s) for s in part[setting_tag]]
                ax.plot(x, part["mean_log_odds"], "o-", color=palette[group], ms=3.5, lw=1)
                for xi, (_, row) in zip(x, part.iterrows()):
                    ax.annotate(f"{row['imagenet_top1']:.1f}", (xi, row["mean_log_odds"]), textcoords="offset points",
                                xytext=(0, -9), ha="center", fontsize=5.5, color=palette[group])
                significant = steps[(steps["mode"] == mode) & (steps[group_tag] == group) & (steps["p"] < 0.05)]
                for _, step in significant.iterrows():
                    xm = (settings.index(step["from"]) + settings.index(step["to"])) / 2
                    ym = part.set_index(setting_tag)["mean_log_odds"].reindex([step["from"], step["to"]]).mean()
                    ax.annotate("*", (xm, ym), textcoords="offset points", xytext=(0, 2), ha="center",
                                color=palette[group])
            ax.set_xticks(range(len(settings)), settings)
            ax.set_xlim(-0.4, len(settings) - 0.6)
            ax.set_title(MODE_TITLES[mode])
            ax.set_xlabel(f"Upstream setting ({setting_tag})")
            ax.grid(alpha=0.3, lw=0.4)
        axes[0][0].set_ylabel("Mean transfer log odds")
        fig.tight_layout()
        handles = [matplotlib.lines.Line2D([], [], marker="o", ms=3.5, lw=1, color=palette[g], label=str(g))
                   for g in groups]
        top1 = upstream_label.replace("imagenet", "ImageNet")
        key = [matplotlib.lines.Line2D([], [], ls="none", marker="$1.0$", ms=6, color="0.3",
                                       label=f"number under a point: its {top1} (%)"),
               matplotlib.lines.Line2D([], [], ls="none", marker="$*$", ms=5, color="0.3",
                                       label="step with paired p < 0.05 over datasets")]
        _legends_below(fig, (handles, 6), (key, 2))
        save_figure(fig, out_pdf, out_png)
