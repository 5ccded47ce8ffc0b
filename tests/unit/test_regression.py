import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from transferbench.analysis import regression
from transferbench.analysis.stats import logit

pytestmark = pytest.mark.unit


def simulated_study(n_models=30, datasets=("a", "b", "c", "d"), slope=0.8, noise=0.15, n_test=2000, seed=0):
    """Transfer log odds = dataset intercept + slope * ImageNet log odds + noise; top-1 counts drawn binomially."""
    rng = np.random.default_rng(seed)
    top1 = rng.uniform(65, 85, n_models)
    rows = []
    for d, intercept in zip(datasets, rng.normal(0, 1, len(datasets))):
        for m in range(n_models):
            p = 1 / (1 + np.exp(-(intercept + slope * logit(top1[m] / 100) + rng.normal(0, noise))))
            correct = rng.binomial(n_test, p)
            rows.append({"model": f"m{m}", "dataset": d, "mode": "linear", "metric": "top1", "value": correct / n_test,
                         "imagenet_top1": top1[m], "n_train": 1000, "n_test": n_test})
    return pd.DataFrame(rows)


def test_ols_with_fixed_effects_equals_least_squares_by_hand():
    table = simulated_study(n_models=8, seed=1)
    dummies = pd.get_dummies(table["dataset"], drop_first=True).to_numpy(float)
    x = np.column_stack([np.ones(len(table)), dummies, logit(table["imagenet_top1"] / 100)])
    coef = np.linalg.lstsq(x, logit(table["value"]), rcond=None)[0]
    assert regression.fit_ols(table).params[regression.TERM] == pytest.approx(coef[-1], rel=1e-8)


def test_binomial_glm_equals_statsmodels_on_success_failure_counts():
    table = simulated_study(n_models=8, seed=2)
    correct = np.round(table["value"] * table["n_test"])
    x = sm.add_constant(np.column_stack([pd.get_dummies(table["dataset"], drop_first=True).to_numpy(float),
                                         logit(table["imagenet_top1"] / 100)]))
    direct = sm.GLM(np.column_stack([correct, table["n_test"] - correct]), x, family=sm.families.Binomial()).fit()
    ours = regression.fit_glm(table)
    assert ours.params[regression.TERM] == pytest.approx(direct.params[-1], rel=1e-6)
    # quasi-binomial: the binomial standard error times sqrt(Pearson chi-square / residual degrees of freedom)
    dispersion = direct.pearson_chi2 / direct.df_resid
    assert ours.scale == pytest.approx(dispersion, rel=1e-6)
    assert ours.bse[regression.TERM] == pytest.approx(direct.bse[-1] * np.sqrt(dispersion), rel=1e-6)


def test_planted_slope_is_recovered_within_the_interval():
    rows = regression.regressions(simulated_study(slope=0.8, seed=3))[0].set_index("model")
    for kind in ("ols", "glm_binomial"):
        assert rows.loc[kind, "ci_low"] <= 0.8 <= rows.loc[kind, "ci_high"], kind
        assert rows.loc[kind, "p"] < 1e-6
    no_effect = regression.regressions(simulated_study(slope=0.0, noise=0.3, seed=4))[0].set_index("model")
    assert no_effect.loc["ols", "ci_low"] <= 0.0 <= no_effect.loc["ols", "ci_high"]
