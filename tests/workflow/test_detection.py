"""The detection demo (config/demo_detection.yaml) end to end at a tiny size: one run of the detection study's
outputs in a fresh copy of the checkout through --configfile as the README runs a demo, feeding every assert (the
detection rows, the test detections, the scratch state's grid and selection, the split, the statistics and
figures); then a dry run after adding a capacity (only its runs and the aggregates), and a COCO-format dataset of the
researcher's own: missing files stop the run before any job, present ones plan their runs. The demo's plan as
written is tests/workflow/test_readme_commands.py's. (Snakemake resolves --configfile against the directory it
starts in, not -d: hence absolute paths.)"""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from transferbench.analysis.stats import logit
from transferbench.detection.annotations import BoxDataset, ImageBoxes, write_coco

from .conftest import ROOT, copy_checkout, planned_jobs, run_with_configfile

pytestmark = pytest.mark.workflow
DEMO = ROOT / "config" / "demo_detection.yaml"
MODELS = list(yaml.safe_load(DEMO.read_text())["models"])[:2]  # the demo's two smallest backbones
STATES = ["frozen", "scratch"]
CAPACITY = "fpn16-conv0-fc64"  # the demo's small detector
METRICS = ["coco_ap", "coco_ap50", "coco_ap75"]
SCRATCH_GRID = ["lr0.01_wd0.0001", "lr0.02_wd0.0001"]
SIDE = 48
# the detection study's outputs, and the results table it adds rows to: the main study's statistics, table and
# figures, which config/demo_detection.yaml also makes, are left to the tests of the main study (saves a minute)
TARGETS = ["results/stats/detection_summary.csv", "results/stats/detection_correlations.csv",
           *(f"results/figures/{name}.{ext}" for name in ("fig_detection_top1", "fig_detection_capacity")
             for ext in ("pdf", "png"))]


def tiny_detection_config() -> dict:
    """config/demo_detection.yaml at test size: two of its models pretrained on a smaller upstream task, 48 px shapes
    (40 train / 12 test images), the small detector frozen and from scratch for 10 steps; the scratch state on a
    grid of two learning rates (grid jobs and a selection on val), the frozen one on the demo's single point."""
    config = yaml.safe_load(DEMO.read_text())
    config["models"] = {name: config["models"][name] for name in MODELS}
    config["upstream"]["dataset"].update(classes=8, train_per_class=12, test_per_class=6, size=16)
    config["upstream"]["train"].update(steps=8, batch_size=16)
    for entry in config["models"].values():
        entry["resolution"] = 16
    config["linear"] = {"num": 5, "wd_min": 1.0e-2, "wd_max": 1.0e2}
    detection = config["detection"]
    detection["datasets"]["shapes"]["generator"].update(train_images=40, test_images=12, image_size=SIDE)
    detection["states"] = STATES
    detection["capacities"] = detection["capacities"][:1]
    detection["train"].update(steps=10, batch_size=4, warmup_steps=2, checkpoint_every=4, rois_per_image=16,
                              rpn_proposals={"train": 50, "test": 50}, detections_per_image=20)
    detection["scratch"] = {"grid": {"lr": [0.01, 0.02], "weight_decay": [1.0e-4]}}
    return config


@pytest.fixture(scope="module")
def detection_run(tmp_path_factory):
    workdir = copy_checkout(tmp_path_factory.mktemp("detection"))
    proc = run_with_configfile(workdir, tiny_detection_config(), "demo_detection.yaml", "--cores", "2", *TARGETS)
    return workdir, proc


def read(path):
    return json.loads(path.read_text())


def run_dir(workdir, state, model, capacity=CAPACITY):
    return workdir / "results/detection" / state / model / "shapes" / capacity


def detection_table(workdir) -> pd.DataFrame:
    table = pd.read_csv(workdir / "results/tables/results.csv")
    return table[table["study"] == "detection"]


def test_startup_summarizes_the_detection_runs(detection_run):
    _, proc = detection_run
    assert f"detection: 4 runs (2 backbones x shapes x states frozen, scratch x capacities {CAPACITY}); Faster " \
           "R-CNN + FPN" in proc.stderr


def test_each_detection_run_has_one_row_per_metric_beside_the_main_rows(detection_run):
    workdir, _ = detection_run
    table = pd.read_csv(workdir / "results/tables/results.csv")
    assert table["study"].value_counts().to_dict() == {"detection": 2 * 2 * 3, "main": 2}
    rows = detection_table(workdir)
    assert sorted(rows.groupby(["model", "mode", "detector"]).size().items()) == \
        [((m, s, CAPACITY), 3) for m in MODELS for s in STATES]
    assert all(sorted(metrics) == METRICS for _, metrics in rows.groupby(["model", "mode"])["metric"])
    assert (rows["dataset"] == "shapes").all() and rows["value"].between(0, 1).all()
    split = read(workdir / "results/detection/splits/shapes.json")
    assert (rows["n_train"] == split["sizes"]["train"] + split["sizes"]["val"]).all()
    assert (rows["n_test"] == split["sizes"]["test"]).all() and (rows["steps"] == 10).all()
    main = table[table["study"] == "main"].set_index("model")["imagenet_top1"]  # the upstream top-1
    for row in rows.itertuples():
        final = read(run_dir(workdir, row.mode, row.model) / "final.json")
        assert row.value == pytest.approx(final["metrics"][row.metric], abs=1e-6)
        assert row.trainable_params == final["trainable_params"] and row.imagenet_top1 == main[row.model]
        assert row.predictions == f"results/detection/{row.mode}/{row.model}/shapes/{CAPACITY}/detections.json"
    params = rows.drop_duplicates(["model", "mode"]).set_index(["model", "mode"])["trainable_params"]
    for model in MODELS:  # the frozen backbone adds nothing; scratch trains it all
        assert params[(model, "scratch")] > params[(model, "frozen")]


def test_final_fits_write_their_test_detections_in_cocos_results_format(detection_run):
    workdir, _ = detection_run
    test_ids = set(read(workdir / "results/detection/splits/shapes.json")["ids"]["test"])
    for state in STATES:
        for model in MODELS:
            folder = run_dir(workdir, state, model)
            final, detections = read(folder / "final.json"), read(folder / "detections.json")
            assert final["phase"] == "final" and final["eval_split"] == "test" and not final["diverged"]
            assert final["capacity"] == {"fpn_channels": 16, "head_convs": 0, "head_fc": 64}
            assert set(final["metrics"]) == set(METRICS)
            assert detections and {str(d["image_id"]) for d in detections} <= test_ids
            for d in detections:
                assert set(d) == {"image_id", "category_id", "bbox", "score"} and d["category_id"] in (1, 2, 3)
                x, y, w, h = d["bbox"]
                assert min(x, y, w, h) >= 0 and x + w <= SIDE + 0.01 and y + h <= SIDE + 0.01
            assert not (folder / "final.ckpt").exists()  # cleaned up by the finished job


def test_the_scratch_grid_runs_both_points_on_val_and_the_selection_chooses_the_best(detection_run):
    workdir, _ = detection_run
    split = read(workdir / "results/detection/splits/shapes.json")
    for model in MODELS:
        folder = run_dir(workdir, "scratch", model)
        points = {p.stem: read(p) for p in (folder / "grid").glob("*.json")}
        assert sorted(points) == SCRATCH_GRID
        for name, point in points.items():
            assert point["phase"] == "grid" and point["point"] == name and point["eval_split"] == "val"
            assert point["n_train"] == split["sizes"]["train"] and point["n_eval"] == split["sizes"]["val"]
        selection = read(folder / "selection.json")
        best = max(points, key=lambda n: (points[n]["value"], -points[n]["lr"]))
        assert selection["validated"] and selection["chosen"] == best
        assert selection["val_metric"] == points[best]["value"]
        assert selection["grid"] == {n: {"value": p["value"], "diverged": p["diverged"]} for n, p in points.items()}
        assert read(folder / "final.json")["lr"] == selection["lr"] == points[best]["lr"]
        frozen = run_dir(workdir, "frozen", model)  # one grid point: named, unvalidated, no grid job
        assert read(frozen / "selection.json")["validated"] is False and not (frozen / "grid").exists()
        assert read(frozen / "final.json")["lr"] == 0.02


def test_the_split_holds_out_val_from_train_and_lists_its_exclusions(detection_run):
    workdir, _ = detection_run
    split = read(workdir / "results/detection/splits/shapes.json")
    assert split["classes"] == ["square", "disc", "triangle"]
    assert split["sizes"] == {"train": 32, "val": 8, "test": 12}
    assert not set(split["ids"]["train"]) & set(split["ids"]["val"])
    assert split["exclusions"] == {part: {"boxes clipped to the image": 0, "boxes without area excluded": 0,
                                          "images without boxes": 0} for part in ("train", "test")}
    assert len(list((workdir / "results/detection/data/shapes/images/train").glob("*.png"))) == 40


def test_detection_statistics_and_figures(detection_run):
    workdir, _ = detection_run
    summary = pd.read_csv(workdir / "results/stats/detection_summary.csv")
    assert len(summary) == 2 * 2 * 3 and summary["primary"].sum() == 4
    assert set(summary[summary["primary"]]["metric"]) == {"coco_ap"} and set(summary["state"]) == set(STATES)
    np.testing.assert_allclose(summary["log_odds"], logit(summary["value"]), rtol=1e-5)
    correlations = pd.read_csv(workdir / "results/stats/detection_correlations.csv")
    assert sorted(correlations["state"]) == STATES  # no 'frozen - finetune' row without fine-tuned runs
    assert (correlations["models"] == 2).all() and correlations["r"].isna().all()
    assert (correlations["note"] == "r needs at least 3 models (2 here)").all()
    for name in ("fig_detection_top1", "fig_detection_capacity"):
        for ext in ("pdf", "png"):
            assert (workdir / f"results/figures/{name}.{ext}").stat().st_size > 1000


def test_adding_a_capacity_plans_only_its_runs_and_the_aggregates(detection_run, tmp_path):
    workdir, _ = detection_run
    config = tiny_detection_config()
    config["detection"]["capacities"].append({"fpn_channels": 24, "head_convs": 1, "head_fc": 64})
    proc = run_with_configfile(workdir, config, "demo_detection.yaml", "-n", "--cores", "2", *TARGETS)
    planned = planned_jobs(proc.stdout)
    runs = sorted((rule, wc["state"], wc["model"], wc.get("point")) for rule, wc in planned if wc)
    assert runs == sorted(
        [("train_detector_final", s, m, None) for s in STATES for m in MODELS]
        + [("select_detector_grid_point", s, m, None) for s in STATES for m in MODELS]
        + [("train_detector_grid_point", "scratch", m, p) for m in MODELS for p in SCRATCH_GRID]), runs
    assert {wc["capacity"] for _, wc in planned if wc} == {"fpn24-conv1-fc64"}
    aggregates = {rule for rule, wc in planned if not wc}
    assert aggregates == {"collect_results", "compute_detection_statistics", "fig_detection_top1",
                          "fig_detection_capacity"}, aggregates


def write_own_coco(folder):
    """A researcher's COCO-format dataset: instances_{train,test}.json and their image folders."""
    rng = np.random.default_rng(0)
    for part, n in (("train", 6), ("test", 3)):
        images = []
        for k in range(n):
            (folder / part).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(folder / part / f"{k}.jpg")
            images.append(ImageBoxes(str(100 + k), f"{k}.jpg", 50, 40, np.array([[5, 5, 30, 25]], dtype=np.float32),
                                     np.array([1 + k % 2], dtype=np.int64), np.zeros(1, dtype=bool)))
        write_coco(BoxDataset(["car", "person"], images), folder / f"instances_{part}.json")


def own_coco_config() -> dict:
    config = tiny_detection_config()
    config["detection"]["datasets"] = {"mine": {
        "source": "coco", "min_size": 64, "max_size": 96,
        "train": {"instances": "data/mine/instances_train.json", "images": "data/mine/train"},
        "test": {"instances": "data/mine/instances_test.json", "images": "data/mine/test"}}}
    return config


def test_a_coco_dataset_whose_files_are_missing_stops_the_run_before_any_job(tmp_path):
    write_own_coco(tmp_path / "data/mine")
    (tmp_path / "data/mine/instances_test.json").unlink()
    shutil.rmtree(tmp_path / "data/mine/train")
    proc = run_with_configfile(tmp_path, own_coco_config(), "mine.yaml", "-n", "--cores", "2", check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "config key 'detection.datasets.mine.test.instances': data/mine/instances_test.json is not a file" in out
    assert "config key 'detection.datasets.mine.train.images': data/mine/train is not a folder" in out
    assert "train.instances" not in out and not (tmp_path / "results").exists()


def test_a_coco_dataset_the_researcher_brings_plans_its_runs(tmp_path):
    write_own_coco(tmp_path / "data/mine")
    proc = run_with_configfile(tmp_path, own_coco_config(), "mine.yaml", "-n", "--cores", "2")
    planned = planned_jobs(proc.stdout)
    finals = sorted((wc["state"], wc["model"], wc["detset"]) for rule, wc in planned if rule == "train_detector_final")
    assert finals == [(s, m, "mine") for s in STATES for m in MODELS]
    assert [wc for rule, wc in planned if rule == "make_detection_split"] == [{"detset": "mine"}]
    assert "generate_detection_dataset" not in {rule for rule, _ in planned}  # the researcher's files are read as is
    assert sum(rule == "train_detector_grid_point" for rule, _ in planned) == 2 * 2
