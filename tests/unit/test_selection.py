import pytest

from transferbench.train.selection import select_grid_point

pytestmark = pytest.mark.unit


def _r(value, lr, wd, diverged=False):
    return {"value": value, "lr": lr, "weight_decay": wd, "diverged": diverged}


def test_selection_picks_best_validation_metric():
    assert select_grid_point({"a": _r(0.5, 0.1, 0), "b": _r(0.7, 0.01, 0)}) == "b"


def test_selection_ties_prefer_stronger_weight_decay_then_smaller_lr():
    results = {"weak": _r(0.7, 0.01, 1e-6), "strong": _r(0.7, 0.1, 1e-4), "strong_small_lr": _r(0.7, 0.01, 1e-4)}
    assert select_grid_point(results) == "strong_small_lr"


def test_selection_skips_diverged_points():
    assert select_grid_point({"nan": _r(0.9, 1.0, 0, diverged=True), "ok": _r(0.3, 0.1, 0)}) == "ok"


def test_selection_fails_clearly_when_everything_diverged():
    with pytest.raises(ValueError, match="every grid point diverged"):
        select_grid_point({"a": _r(0.1, 1.0, 0, True)})
