"""Regressions of transfer on ImageNet accuracy with dataset fixed effects (statsmodels), one per mode.

- OLS: logit(transfer) ~ logit(ImageNet top-1 / 100) + C(dataset). The slope says how many log odds of transfer
  accuracy one log odd of ImageNet accuracy buys, within a dataset.
- Binomial GLM (logit link): the transfer accuracy as a proportion of n_test trials (`var_weights=n_test`), same
  predictors. For top-1 the proportion is an exact count of correct test examples; for mean per-class accuracy and
  mAP it is treated as if it were one (an approximation: those metrics are not binomial counts).
Both report the ImageNet coefficient with its 95% interval and p-value; the full summaries go to a text file.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import statsmodels.api as sm
import statsmodels.formula.api as smf

from transferbench.analysis.stats import EPS, logit

TERM = "imagenet_log_odds"


def _design(table: pd.DataFrame) -> pd.DataFrame:
    return table.assign(log_odds=logit(table["value"]), imagenet_log_odds=logit(table["imagenet_top1"] / 100),
                        proportion=np.clip(table["value"], EPS, 1 - EPS))


def fit_ols(table: pd.DataFrame):
    """OLS with dataset fixed effects on one mode's rows (a statsmodels results object)."""
    data = _design(table)
    formula = "log_odds ~ imagenet_log_odds" + (" + C(dataset)" if data["dataset"].nunique() > 1 else "")
    return smf.ols(formula, data=data).fit()


def fit_glm(table: pd.DataFrame):
    """Binomial GLM (logit link) with dataset fixed effects on one mode's rows, weighted by test-set size."""
    data = _design(table)
    formula = "proportion ~ imagenet_log_odds" + (" + C(dataset)" if data["dataset"].nunique() > 1 else "")
    return smf.glm(formula, data=data, family=sm.families.Binomial(), var_weights=data["n_test"]).fit(scale="X2")


def regressions(table: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Per mode and model kind: the ImageNet coefficient, its standard error, 95% interval and p-value; and the
    statsmodels summaries as text."""
    rows, texts = [], []
    for mode, part in table.groupby("mode", sort=True):
        if part["model"].nunique() < 3:
            continue  # two points fit any line: nothing to estimate
        for kind, fit in (("ols", fit_ols), ("glm_binomial", fit_glm)):
            result = fit(part)
            low, high = result.conf_int().loc[TERM]
            rows.append({"mode": mode, "model": kind, "coef": result.params[TERM], "se": result.bse[TERM],
                         "ci_low": low, "ci_high": high, "p": result.pvalues[TERM], "scale": result.scale,
                         "n_obs": int(result.nobs),
                         "n_models": part["model"].nunique(), "n_datasets": part["dataset"].nunique()})
            texts.append(f"== {mode}: {kind} ==\n{result.summary()}\n")
    columns = ["mode", "model", "coef", "se", "ci_low", "ci_high", "p", "scale", "n_obs", "n_models", "n_datasets"]
    return pd.DataFrame(rows, columns=columns), "\n".join(texts)
