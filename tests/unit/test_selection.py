import pytest

from transferbench.atomic import read_json
from transferbench.train.selection import select_grid_point, write_selection

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


def test_a_grid_of_one_point_is_chosen_unvalidated_without_grid_results(tmp_path):
    out = tmp_path / "selection.json"
    selection = write_selection([], out, {"lr0.1_wd1e-05": {"lr": 0.1, "weight_decay": 1e-5}})
    assert selection == read_json(out)
    assert selection["chosen"] == "lr0.1_wd1e-05" and selection["lr"] == 0.1 and selection["weight_decay"] == 1e-5
    assert selection["validated"] is False and selection["val_metric"] is None


def test_no_grid_results_for_a_larger_grid_is_an_error(tmp_path):
    grid = {"a": {"lr": 0.1, "weight_decay": 0.0}, "b": {"lr": 0.01, "weight_decay": 0.0}}
    with pytest.raises(ValueError, match="grid has 2 points"):
        write_selection([], tmp_path / "selection.json", grid)
    assert not (tmp_path / "selection.json").exists()
