"""The regularizer ablation (Kornblith et al. 2019, Sec. 4.2, Fig. 3 and 5): models that share an architecture and
differ only in an upstream training setting (C1: BN without scale, label smoothing, dropout, aux head ... C5: none of
them), compared per setting by their mean transfer log odds and, for each step between consecutive settings, by a
paired test over datasets.

Models are grouped by two of their tags (config models.<name>.tags): the architecture (`group_tag`) and the setting
(`setting_tag`), the settings in the config's `order`. A step's test pairs, for one architecture and mode, the two
settings' log odds on each dataset both have: mean difference (later minus earlier setting), its 95% t interval,
the two-sided paired t-test's p (scipy) and Cohen's d_z (mean difference / SD of the differences). With fewer than
two datasets there is no interval or p (stated in `note`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from transferbench.analysis.stats import logit


def setting_means(table: pd.DataFrame, group_tag: str, setting_tag: str, order: list) -> pd.DataFrame:
    """Per mode, architecture and setting: mean transfer log odds over datasets, upstream top-1, the model."""
    rows = _tagged(table, group_tag, setting_tag, order)
    out = rows.groupby(["mode", group_tag, setting_tag], observed=True).agg(
        model=("model", "first"), imagenet_top1=("imagenet_top1", "first"), mean_log_odds=("log_odds", "mean"),
        n_datasets=("dataset", "nunique")).reset_index()
    return out.sort_values(["mode", group_tag, setting_tag]).reset_index(drop=True)


def step_tests(table: pd.DataFrame, group_tag: str, setting_tag: str, order: list, level: float = 0.95
               ) -> pd.DataFrame:
    """One row per mode, architecture and step between consecutive settings of `order` (module docstring)."""
    rows = _tagged(table, group_tag, setting_tag, order)
    out = []
    for (mode, group), part in rows.groupby(["mode", group_tag], observed=True):
        wide = part.pivot_table(index="dataset", columns=setting_tag, values="log_odds", observed=True)
        present = [s for s in map(setting_label, order) if s in wide.columns]
        for before, after in zip(present, present[1:]):
            diff = (wide[after] - wide[before]).dropna().to_numpy()
            row = {"mode": mode, group_tag: group, "from": before, "to": after, "n_datasets": len(diff),
                   "mean_difference": float(diff.mean()) if len(diff) else np.nan, "ci_low": np.nan,
                   "ci_high": np.nan, "t": np.nan, "p": np.nan, "cohens_dz": np.nan, "note": ""}
            if len(diff) < 2:
                row["note"] = f"a paired test needs at least 2 datasets ({len(diff)} here)"
            elif np.ptp(diff) == 0:
                row["note"] = "every dataset differs by the same amount: no spread for a t-test"
            else:
                sd = diff.std(ddof=1)
                half = stats.t.ppf(0.5 + level / 2, len(diff) - 1) * sd / np.sqrt(len(diff))
                test = stats.ttest_1samp(diff, 0.0)  # the paired t-test: differences against zero
                row.update(ci_low=row["mean_difference"] - half, ci_high=row["mean_difference"] + half,
                           t=float(test.statistic), p=float(test.pvalue), cohens_dz=row["mean_difference"] / sd)
            out.append(row)
    return pd.DataFrame(out, columns=["mode", group_tag, "from", "to", "n_datasets", "mean_difference", "ci_low",
                                      "ci_high", "t", "p", "cohens_dz", "note"])


def setting_label(value) -> str:
    """A setting as text, the same whether it came from the config (1, 'C1') or back from a CSV (1.0)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _tagged(table: pd.DataFrame, group_tag: str, setting_tag: str, order: list) -> pd.DataFrame:
    """The rows of models carrying both tags with a setting in `order` (as an ordered category of setting_label
    texts), with log odds."""
    for tag in (group_tag, setting_tag):
        if tag not in table.columns:
            raise ValueError(f"the results table has no column {tag!r}: give the ablation's models the tags "
                             f"{group_tag!r} and {setting_tag!r} (config models.<name>.tags)")
    labels = [setting_label(s) for s in order]
    rows = table.dropna(subset=[group_tag, setting_tag])
    rows = rows.assign(**{setting_tag: rows[setting_tag].map(setting_label)})
    rows = rows[rows[setting_tag].isin(labels)]
    if rows.empty:
        raise ValueError(f"no model has a {setting_tag!r} tag among {labels}")
    setting = pd.Categorical(rows[setting_tag], categories=labels, ordered=True)
    return rows.assign(**{setting_tag: setting, "log_odds": logit(rows["value"])})
