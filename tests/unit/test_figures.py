"""Figures rendered from small synthetic tables and inspected through their matplotlib objects: titles, tick
labels, legend markers and order, axis labels, and the dataset-size panel with two groups (the demo never reaches
it: all its datasets are under 10,000 examples) and with one."""

import matplotlib
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from transferbench.analysis import figures, stats
from transferbench.analysis.figures import SINGLE_COLUMN, plot_dataset_size

pytestmark = pytest.mark.unit


def test_dataset_size_panel_draws_both_groups_at_single_column_width(tmp_path):
    rows = [{"mode": mode, "subset": subset, "r": r, "ci_low": r - 0.1, "ci_high": min(r + 0.1, 1.0)}
            for mode, small, large in (("linear", 0.97, 0.99), ("scratch", 0.29, 0.86))
            for subset, r in (("n_train<10000", small), ("n_train>=10000", large))]
    plot_dataset_size(pd.DataFrame(rows), tmp_path / "f.pdf", tmp_path / "f.png")
    pdf = (tmp_path / "f.pdf").read_bytes()
    assert b"/FontFile2" in pdf  # TrueType embedded
    width_in = Image.open(tmp_path / "f.png").size[0] / 300
    assert SINGLE_COLUMN * 0.9 < width_in < SINGLE_COLUMN * 1.2


TOP1 = {"cnn_w4": 12.0, "cnn_w8": 30.0, "cnn_w12": 45.0, "cnn_w16": 55.0}  # alphabetical order: w12, w16, w4, w8


def demo_like_table(models=TOP1, n_train=(1200, 2000, 1500)):
    """Three modes, three datasets all under 10,000 examples (the demo's case); 'marks' near chance in a range of
    0.04 percentage points (labels of 3 significant digits all read 10.1%)."""
    rng = np.random.default_rng(0)
    rows = []
    for mode in ("linear", "finetune", "scratch"):
        for model, top1 in models.items():
            for (dataset, n), shift in zip(zip(("digits", "newshapes", "marks"), n_train), (0.0, 0.2, None)):
                value = 0.1005 + 0.0004 * (top1 > 40) if shift is None else \
                    1 / (1 + np.exp(-(-1 + top1 / 20 + shift + rng.normal(0, 0.1))))
                rows.append({"model": model, "dataset": dataset, "mode": mode, "metric": "top1", "value": value,
                             "imagenet_top1": top1, "n_train": n, "n_test": 500})
    return pd.DataFrame(rows)


@pytest.fixture
def rendered(monkeypatch):
    """The figures saved during a test, still inspectable after save_figure closed them."""
    kept = []
    save = figures.save_figure

    def keep(fig, out_pdf, out_png):
        kept.append(fig)
        save(fig, out_pdf, out_png)

    monkeypatch.setattr(figures, "save_figure", keep)
    return kept


def legend_rows(legend):
    return [(text.get_text(), handle) for text, handle in zip(legend.get_texts(), legend.legend_handles)]


def visible_tick_labels(ax):
    low, high = ax.get_ylim()
    return [t.get_text() for t, v in zip(ax.get_yticklabels(), ax.get_yticks()) if low <= v <= high]


def test_correlation_titles_say_r_needs_three_models_and_axis_label_follows_parameter(tmp_path, rendered):
    table = demo_like_table({"cnn_w4": 12.0, "cnn_w8": 30.0})
    figures.plot_correlation(table, tmp_path / "f.pdf", tmp_path / "f.png", upstream_label="Upstream top-1 (%)")
    axes = rendered[0].axes
    assert [ax.get_title() for ax in axes] == [f"{t}\nr needs at least 3 models (2 here)" for t in
                                               ("Logistic regression", "Fine-tuned", "Trained from random init.")]
    assert all("nan" not in ax.get_title() for ax in axes)
    assert {ax.get_xlabel() for ax in axes} == {"Upstream top-1 (%)"}
    key = [text for text, _ in legend_rows(rendered[0].legends[1])]
    assert key == ["within-dataset 95% interval (Morey 2008)"]  # no fit drawn: no fit in the key


def test_correlation_title_with_r_and_legend_by_top1_with_filled_markers(tmp_path, rendered):
    figures.plot_correlation(demo_like_table(), tmp_path / "f.pdf", tmp_path / "f.png")
    title = rendered[0].axes[0].get_title()
    assert title.startswith("Logistic regression\nr = ") and ", 95% CI [" in title
    models, key = rendered[0].legends
    assert [text for text, _ in legend_rows(models)] == ["cnn_w4", "cnn_w8", "cnn_w12", "cnn_w16"]
    assert [text for text, _ in legend_rows(key)] == ["least-squares fit", "its 95% bootstrap band",
                                                      "within-dataset 95% interval (Morey 2008)"]


def test_per_dataset_ticks_are_distinct_and_legend_explains_open_markers(tmp_path, rendered):
    table = demo_like_table()
    best = table.groupby(["mode", "dataset"])["value"].transform("max")
    not_worse = table.assign(not_worse=table["value"] > best - 0.05)[["mode", "dataset", "model", "not_worse"]]
    first_panel = not_worse.query("mode == 'linear' and dataset == 'digits'").set_index("model")["not_worse"]
    assert not first_panel["cnn_w4"] and first_panel["cnn_w16"]  # cnn_w4 drawn open in the first panel
    figures.plot_per_dataset(table, tmp_path / "f.pdf", tmp_path / "f.png", upstream_label="Upstream top-1 (%)",
                             not_worse=not_worse)
    fig = rendered[0]
    for ax in fig.axes:
        labels = visible_tick_labels(ax)
        assert len(labels) >= 2 and len(set(labels)) == len(labels), (ax.get_title(), labels)
    marks = next(ax for ax in fig.axes if ax.get_title() == "marks")
    assert visible_tick_labels(marks) == ["10.06%", "10.08%"]
    assert {ax.get_xlabel() for ax in fig.axes[-3:]} == {"Upstream top-1 (%)"}
    models, key = fig.legends
    rows = legend_rows(models)
    assert [text for text, _ in rows] == ["cnn_w4", "cnn_w8", "cnn_w12", "cnn_w16"]  # by top-1, not by name
    for _, handle in rows:  # cnn_w4 is open in the first panel, filled in the legend
        assert handle.get_markerfacecolor() != "none"
        assert matplotlib.colors.same_color(handle.get_markerfacecolor(), handle.get_color())
    (filled_text, filled), (open_text, open_) = legend_rows(key)
    assert filled_text.startswith("filled: not significantly worse") and open_text == "open: significantly worse"
    assert filled.get_markerfacecolor() != "none" and open_.get_markerfacecolor() == "none"


def test_per_dataset_without_paired_tests_has_no_open_filled_key(tmp_path, rendered):
    figures.plot_per_dataset(demo_like_table(), tmp_path / "f.pdf", tmp_path / "f.png")
    assert len(rendered[0].legends) == 1


def test_distinct_percent_labels():
    formatter = figures.DistinctPercent()
    assert formatter.format_ticks([1e-4, 1e-3, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999]) == \
        ["0.01%", "0.1%", "1%", "10%", "50%", "90%", "99%", "99.9%", "99.99%"]
    assert formatter.format_ticks([0.10045, 0.1005, 0.10055]) == ["10.045%", "10.05%", "10.055%"]
    assert formatter.format_ticks([0.5, 0.9]) == ["50%", "90%"]


def test_modes_and_finetune_figures_list_models_by_top1_and_explain_the_diagonal(tmp_path, rendered):
    table = demo_like_table()
    figures.plot_modes_per_dataset(table, tmp_path / "m.pdf", tmp_path / "m.png")
    figures.plot_finetune_vs_scratch(table, tmp_path / "f.pdf", tmp_path / "f.png")
    for fig in rendered:
        rows = legend_rows(fig.legends[0])
        assert [text for text, _ in rows] == ["cnn_w4", "cnn_w8", "cnn_w12", "cnn_w16"]
        assert all(handle.get_markerfacecolor() != "none" for _, handle in rows)
    assert [text for text, _ in legend_rows(rendered[1].legends[1])] == ["equal accuracy (above: pretraining helped)"]


def test_dataset_size_with_one_group_draws_its_bars_and_dataset_dots(tmp_path, rendered):
    corr = stats.correlations(demo_like_table(), n_boot=200)
    figures.plot_dataset_size(corr, tmp_path / "f.pdf", tmp_path / "f.png", upstream_label="Upstream top-1 (%)")
    ax = rendered[0].axes[0]
    heights = [bar.get_height() for bar in ax.patches]
    assert len(heights) == 3 and all(0.5 < h <= 1 for h in heights)  # one bar per mode: r of every dataset
    texts = [text for text, _ in legend_rows(ax.get_legend())]
    assert texts == ["< 10,000 training examples", "\u2265 10,000: no dataset", "one dataset's r",
                     "95% bootstrap interval"]
    dots = [line for line in ax.lines if line.get_marker() == "o"]
    assert sum(len(line.get_ydata()) for line in dots) == 9  # 3 datasets x 3 modes
    assert ax.get_ylabel() == "r (Upstream top-1 vs\ntransfer log odds)"
    width_in = Image.open(tmp_path / "f.png").size[0] / 300
    assert SINGLE_COLUMN * 0.9 < width_in < SINGLE_COLUMN * 1.1


def test_dataset_size_with_two_models_says_why_there_is_no_r(tmp_path, rendered):
    corr = stats.correlations(demo_like_table({"cnn_w4": 12.0, "cnn_w8": 30.0}), n_boot=50)
    figures.plot_dataset_size(corr, tmp_path / "f.pdf", tmp_path / "f.png")
    fig = rendered[0]
    assert [t.get_text() for t in fig.axes[0].texts] == ["n/a"] * 3
    assert [t.get_text() for t in fig.texts] == ["n/a: r needs at least 3 models (2 here)"]
    assert fig.axes[0].get_ylabel() == "r (ImageNet top-1 vs\ntransfer log odds)"
