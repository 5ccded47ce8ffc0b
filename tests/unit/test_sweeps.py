"""The sweeps: what a config's sweeps section expands to, the training-set subsets (balanced, seeded, nested, short
classes recorded), and the sweeps' statistics and figures from synthetic tables."""

import copy

import numpy as np
import pandas as pd
import pytest

from transferbench.analysis import sweeps as sweep_stats
from transferbench.analysis.results import read_table, result_row, write_table
from transferbench.analysis.statistics import write_sweep_statistics
from transferbench.analysis.sweep_figures import plot_convergence, plot_dataset_size
from transferbench.atomic import write_json
from transferbench.checks import validate_config
from transferbench.config import ConfigError
from transferbench.data.splits import Split
from transferbench.data.subsets import Subset, draw_subset
from transferbench.sweeps import (
    examples_per_class,
    parse_budget_name,
    parse_schedule_name,
    parse_subset_name,
    schedule_name,
    subset_name,
    sweep_runs,
    sweep_settings,
)

pytestmark = pytest.mark.unit

CONFIG = {
    "modes": ["linear", "finetune"],
    "models": {"a": {"timm": "resnet18", "imagenet_top1": 70.0}, "b": {"timm": "resnet34", "imagenet_top1": 73.0}},
    "datasets": {"d1": {"source": "sklearn_digits", "metric": "top1"},
                 "d2": {"source": "sklearn_digits", "metric": "top1"}},
    "finetune": {"grid": {"lr": [0.1, 0.01], "weight_decay": [0.0]}, "steps": 100},
    "sweeps": {
        "dataset_size": {"models": ["a"], "draws": 2, "examples_per_class": {"d1": [1, 4, "all"]},
                         "finetune": {"grid": {"lr": [0.05]}}},
        "budgets": {"datasets": ["d2"], "steps": {"finetune": [10, 40]}},
    },
}


def split_of(labels, dataset="toy", classes=None):
    classes = classes or [str(c) for c in range(max(labels) + 1)]
    ids = {"train": list(range(len(labels))), "val": [100], "test": [101]}
    return Split(dataset, classes, ids, {"train": list(labels), "val": [0], "test": [0]})


def test_names_round_trip_and_sizes_expand():
    assert subset_name(4, 1) == "n4-d1" and parse_subset_name("n4-d1") == (4, 1)
    assert subset_name(None, 0) == "nall-d0" and parse_subset_name("nall-d0") == (None, 0)
    assert parse_budget_name("steps152") == 152
    with pytest.raises(ValueError, match="n<examples per class>-d<draw>"):
        parse_subset_name("4-d1")
    assert examples_per_class({"doubling_to": 8}) == [1, 2, 4, 8]
    assert examples_per_class({"doubling_to": 12}) == [1, 2, 4, 8, 12]
    assert examples_per_class([16, "all", 1]) == [16, None, 1]


def test_sweep_runs_and_settings():
    config = copy.deepcopy(CONFIG)
    runs = sweep_runs(config)
    size_runs = [r for r in runs if r.study == "dataset_size"]
    # 1 model x 2 modes (the study's) x (2 sizes x 2 draws + 'all' once)
    assert len(size_runs) == 2 * 5 and {r.model for r in size_runs} == {"a"}
    assert sorted({r.variant for r in size_runs}) == ["n1-d0", "n1-d1", "n4-d0", "n4-d1", "nall-d0"]
    budget_runs = [r for r in runs if r.study == "budgets"]
    assert [(r.model, r.dataset, r.variant) for r in budget_runs] == [("a", "d2", "steps10"), ("a", "d2", "steps40"),
                                                                       ("b", "d2", "steps10"), ("b", "d2", "steps40")]
    settings = sweep_settings(config, "budgets", "finetune", "d2", "steps40")
    assert settings["steps"] == 40 and settings["schedule_multiplier"] == 1
    assert settings["grid"]["lr"] == [0.1, 0.01]  # the mode's grid: the budget sweep overrides nothing
    settings = sweep_settings(config, "dataset_size", "finetune", "d1", "n4-d0")
    assert settings["grid"] == {"lr": [0.05], "weight_decay": [0.0]} and settings["steps"] == 100
    config["sweeps"]["budgets"]["enabled"] = False
    assert all(r.study == "dataset_size" for r in sweep_runs(config))


def test_config_check_names_unknown_sweep_models_datasets_and_multilabel():
    config = copy.deepcopy(CONFIG)
    config["sweeps"]["dataset_size"]["models"] = ["c"]
    config["sweeps"]["budgets"]["datasets"] = ["d3"]
    config["datasets"]["voc"] = {"source": "sklearn_digits", "metric": "map_11point"}
    config["sweeps"]["dataset_size"]["examples_per_class"]["voc"] = [1]
    with pytest.raises(ConfigError) as error:
        validate_config(config, cross_references=False)
    message = str(error.value)
    assert "'sweeps.dataset_size.models': 'c' is not a model of the study; valid: a, b" in message
    assert "'sweeps.budgets.datasets': 'd3' is not a dataset" in message
    assert "'sweeps.dataset_size.examples_per_class.voc': a multi-label dataset" in message
    config = copy.deepcopy(CONFIG)
    config["sweeps"]["dataset_size"]["examples_per_class"]["d1"] = [0]
    with pytest.raises(ConfigError, match="sweeps.dataset_size.examples_per_class.d1"):
        validate_config(config, cross_references=False)


def test_subsets_are_balanced_nested_seeded_and_record_short_classes():
    labels = [0] * 10 + [1] * 10 + [2] * 3
    split = split_of(labels)
    small, large = draw_subset(split, 2, 0, seed=0), draw_subset(split, 5, 0, seed=0)
    train = np.array(labels)
    assert np.bincount(train[list(small.positions)]).tolist() == [2, 2, 2]
    assert np.bincount(train[list(large.positions)]).tolist() == [5, 5, 3]
    assert large.short_classes == {"2": 3} and small.short_classes == {}
    assert set(small.positions) <= set(large.positions)  # nested within a draw
    assert draw_subset(split, 2, 0, seed=0) == small  # seeded
    assert draw_subset(split, 2, 1, seed=0).positions != small.positions  # another draw
    everything = draw_subset(split, None, 0, seed=0)
    assert everything.positions == tuple(range(len(labels))) and everything.largest_class(split) == 10
    with pytest.raises(ValueError, match="multi-label"):
        draw_subset(Split("voc", ["a", "b"], {"train": [0], "val": [], "test": []},
                          {"train": [[1, 0]], "val": [], "test": []}), 1, 0, seed=0)


def test_subset_file_round_trips_and_refuses_another_split(tmp_path):
    split = split_of([0, 0, 1, 1, 1])
    subset = draw_subset(split, 1, 0, seed=3)
    subset.save(tmp_path / "s.json")
    assert Subset.load(tmp_path / "s.json", split) == subset
    other = split_of([0, 1, 1, 1, 1])
    with pytest.raises(ValueError, match="drawn from another split"):
        Subset.load(tmp_path / "s.json", other)
    ids, labels = subset.select(split.ids["train"], np.array(split.labels["train"]))
    assert sorted(labels.tolist()) == [0, 1] and len(ids) == 2


def sweep_table(tmp_path):
    """A results table with main rows, a dataset-size sweep (3 models, 2 sizes, 3 draws) and budgets."""
    rows, rng = [], np.random.default_rng(0)
    top1 = {"m1": 60.0, "m2": 70.0, "m3": 80.0}

    def row(model, mode, value, study="main", steps=None, **sweep):
        result = tmp_path / f"r{len(rows)}.json"
        write_json(result, {"metric": "top1", "value": value, "n_test": 50, **({"steps": steps} if steps else {})})
        rows.append(result_row(model, "d1", mode, result, top1[model], 100, None, study=study, **sweep))

    for m in top1:
        row(m, "linear", 0.5 + top1[m] / 400)
        for k in (1, 8):
            for draw in range(3):
                row(m, "linear", 0.2 + top1[m] / 400 + 0.05 * np.log2(k) + 0.01 * rng.standard_normal(),
                    "dataset_size", examples_per_class=k, draw=draw)
    for steps, ft, sc in ((10, 0.6, 0.2), (100, 0.85, 0.5), (1000, 0.9, 0.88)):
        row("m1", "finetune", ft, "budgets", steps)
        row("m1", "scratch", sc, "budgets", steps)
    write_table(rows, tmp_path / "results.csv")
    return tmp_path / "results.csv"


def test_table_keeps_sweep_rows_apart_from_the_main_study(tmp_path):
    path = sweep_table(tmp_path)
    main = read_table(path)
    assert len(main) == 3 and set(main["study"]) == {"main"}
    everything = read_table(path, study=None)
    assert set(everything["study"]) == {"main", "dataset_size", "budgets"} and len(everything) == 3 + 18 + 6
    assert list(everything["study"].iloc[:3]) == ["main"] * 3  # the main study's rows first
    budget = everything[everything["study"] == "budgets"]
    assert budget["steps"].notna().all() and budget["examples_per_class"].isna().all()


def test_sweep_statistics(tmp_path):
    path = sweep_table(tmp_path)
    out = write_sweep_statistics(path, {name: tmp_path / f"{name}.csv" for name in
                                        ("dataset_size", "size_correlations", "few_shot", "convergence")}, n_boot=200)
    summary = out["dataset_size"]
    table = read_table(path, study=None)
    cell = table[(table.study == "dataset_size") & (table.model == "m2") & (table.examples_per_class == 8)]["value"]
    row = summary[(summary.model == "m2") & (summary.examples_per_class == 8)].iloc[0]
    assert row["draws"] == 3 and row["mean"] == pytest.approx(cell.mean())
    assert row["se"] == pytest.approx(cell.std(ddof=1) / np.sqrt(3))
    assert (row["median"], row["min"], row["max"]) == pytest.approx((cell.median(), cell.min(), cell.max()))
    r = out["size_correlations"]
    assert list(r["examples_per_class"]) == [1, 8] and (r["r"] > 0.9).all() and (r["n_models"] == 3).all()
    few = pd.read_csv(tmp_path / "few_shot.csv")
    assert list(few.columns) == ["model", "dataset", "mode", "1/class", "8/class"]
    median_and_range = f"{100 * row['median']:.1f} [{100 * row['min']:.1f}, {100 * row['max']:.1f}]"
    assert few.set_index("model").loc["m2", "8/class"] == median_and_range
    conv = out["convergence"].set_index("mode")
    # finetune: best logit(0.9) = 2.197, 90% = 1.977 -> 0.878; 0.85 (100 steps) is below, so 1000 steps
    # scratch: best logit(0.88) = 1.992, 90% = 1.793 -> 0.857; reached at 1000 steps; speedup 1
    assert conv.loc["finetune", "steps_to_90"] == 1000 and conv.loc["scratch", "steps_to_90"] == 1000
    assert conv.loc["scratch/finetune", "speedup"] == pytest.approx(1.0)


def test_convergence_steps_and_speedup():
    rows = [{"study": "budgets", "model": "m", "dataset": "d", "mode": mode, "steps": s, "value": v}
            for mode, points in (("finetune", ((10, 0.8), (100, 0.9), (1000, 0.9))),
                                 ("scratch", ((10, 0.3), (100, 0.6), (1000, 0.9))))
            for s, v in points]
    conv = sweep_stats.convergence(pd.DataFrame(rows)).set_index("mode")
    assert conv.loc["finetune", "steps_to_90"] == 100  # logit(0.9)=2.197: 90% = 1.977 (88%) first at 100 steps
    assert conv.loc["scratch", "steps_to_90"] == 1000
    assert conv.loc["scratch/finetune", "speedup"] == 10
    low = pd.DataFrame([{**rows[0], "value": 0.3}, {**rows[1], "value": 0.4}])
    assert "undefined" in sweep_stats.convergence(low)["note"].iloc[0]


@pytest.fixture
def rendered(monkeypatch):
    """The figures saved during a test, still inspectable after they were closed."""
    from transferbench.analysis import sweep_figures

    kept, save = [], sweep_figures.save_figure

    def keep(fig, out_pdf, out_png):
        kept.append(fig)
        save(fig, out_pdf, out_png)

    monkeypatch.setattr(sweep_figures, "save_figure", keep)
    return kept


def test_sweep_figures_axes_bars_and_legends(tmp_path, rendered):
    path = sweep_table(tmp_path)
    table = read_table(path, study=None)
    summary = sweep_stats.dataset_size_summary(table)
    plot_dataset_size(summary, tmp_path / "f9.pdf", tmp_path / "f9.png")
    conv = sweep_stats.convergence(table)
    plot_convergence(table, conv, tmp_path / "f8.pdf", tmp_path / "f8.png")
    for name in ("f9.pdf", "f9.png", "f8.pdf", "f8.png"):
        assert (tmp_path / name).stat().st_size > 1000
    assert b"/FontFile2" in (tmp_path / "f9.pdf").read_bytes()  # TrueType embedded
    fig9, fig8 = rendered
    ax = fig9.axes[0]
    assert ax.get_xscale() == "log" and ax.xaxis.get_transform().base == 2
    assert ax.get_xlabel() == "Examples per class" and ax.get_title() == "d1"
    bars = [c for c in ax.containers if hasattr(c, "has_yerr") and c.has_yerr]
    assert len(bars) == 3  # one line per model (one mode here), each with its standard-error bars
    top = [child for child in ax.get_children() if type(child).__name__ == "SecondaryAxis"][0]
    assert top.get_xlabel() == "Training examples" and [t.get_text() for t in top.get_xticklabels()] == ["100", "100"]
    labels = [t.get_text() for legend in fig9.legends for t in legend.get_texts()]
    assert labels[0] == "Logistic regression" and {"m1", "m2", "m3"} <= set(labels)
    ax = fig8.axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "Training steps"
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    expected = 100 / (1 + np.exp(-conv.set_index("mode").loc["finetune", "threshold_log_odds"]))
    assert any(line.get_ydata()[0] == pytest.approx(expected) for line in dashed)  # the 90% threshold, in percent
    with pytest.raises(ValueError, match="no dataset_size rows"):
        plot_dataset_size(summary.iloc[:0], tmp_path / "x.pdf", tmp_path / "x.png")


def test_schedule_runs_settings_and_gaps():
    config = copy.deepcopy(CONFIG)
    config["sweeps"] = {"schedules": {"models": ["a"], "datasets": ["d1"], "multiples": {"finetune": [1, 2],
                                      "scratch": [1, 4]}, "norms": ["batchnorm", "groupnorm"]}}
    runs = sweep_runs(config)
    assert [(r.mode, r.variant) for r in runs] == [("finetune", "x1-batchnorm"), ("finetune", "x2-batchnorm"),
                                                  ("scratch", "x1-batchnorm"), ("scratch", "x4-batchnorm"),
                                                  ("scratch", "x1-groupnorm"), ("scratch", "x4-groupnorm")]
    assert schedule_name(0.5, "groupnorm_ws") == "x0.5-groupnorm_ws"
    assert parse_schedule_name("x4-groupnorm") == (4, "groupnorm")
    settings = sweep_settings(config, "schedules", "scratch", "d1", "x4-groupnorm")
    assert settings["schedule_multiplier"] == 4 and settings["norm"] == "groupnorm"
    rows = [{"model": "a", "dataset": "d1", "mode": mode, "value": value, "study": "schedules", "schedule": m,
             "norm": norm, "n_train": 500} for mode, m, norm, value in (
        ("finetune", 1, "batchnorm", 0.8), ("finetune", 2, "batchnorm", 0.9), ("scratch", 1, "groupnorm", 0.5),
        ("scratch", 4, "groupnorm", 0.7))]
    rows += [{"model": m, "dataset": "d1", "mode": "finetune", "value": 0.6, "study": "main", "n_train": 500}
             for m in ("a", "b")]
    rows.append({"model": "b", "dataset": "d1", "mode": "scratch", "value": 0.7, "study": "schedules", "schedule": 4,
                 "norm": "groupnorm", "n_train": 500})
    gaps = sweep_stats.schedule_gaps(pd.DataFrame(rows)).set_index(["model", "schedule"])
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    assert gaps.loc[("a", 1), "gap"] == pytest.approx(logit(0.5) - logit(0.8))
    assert gaps.loc[("a", 1), "reference"] == "finetune at 1x"
    # a fine-tuned at 1x and 2x by the study, not at 4x: no gap (not mixed with the main study's 1x)
    assert np.isnan(gaps.loc[("a", 4), "gap"]) and "no finetune at 4x" in gaps.loc[("a", 4), "reference"]
    # b not fine-tuned by the study at all: the main study's fine-tuning is its one reference
    assert gaps.loc[("b", 4), "gap"] == pytest.approx(logit(0.7) - logit(0.6))
    assert gaps.loc[("b", 4), "reference"] == "finetune of the main study (1x)"
    assert (gaps["size_group"] == "n_train<10000").all()
    summary = sweep_stats.schedule_summary(gaps.reset_index())
    assert len(summary) == 2 and summary["se"].isna().all() and (summary["n"] == 1).all()
