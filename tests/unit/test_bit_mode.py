"""The bit mode (transferbench.train.bit): the rule as planned and scaled, BiT's crops, the zero head, one seed's run
end to end on scikit-learn's digits, the median of the runs, and the comparison with the grid search
(transferbench.analysis.protocols)."""

import numpy as np
import pandas as pd
import pytest
import timm
import torch

import transferbench.models.demo  # noqa: F401  (registers tb_democnn with timm)
from transferbench.analysis.protocols import compare, correlations, training_seconds
from transferbench.atomic import read_json, write_json
from transferbench.data.images import Preprocessing, fixed_crop_draws
from transferbench.data.splits import DatasetSpec, make_split
from transferbench.models.spec import ModelSpec, build_model
from transferbench.predictions import load_predictions, save_predictions
from transferbench.train.bit import cache_side, dataset_image_side, disable_dropout, plan_rule, run_bit, zero_head
from transferbench.train.selection import median_run

pytestmark = pytest.mark.unit

BIT = {"version": "code", "seeds": 3, "base_lr": 0.003, "batch_size": 512, "schedule_scale": 1.0, "image_scale": 1.0,
       "checkpoint_every": 500, "num_workers": 0}


def test_the_image_side_comes_from_the_config_or_the_source_and_is_asked_for_where_unknown():
    assert dataset_image_side("d", {"source": "sklearn_digits"}) == 8
    assert dataset_image_side("g", {"source": "generated", "generator": {"kind": "marks", "size": 24}}) == 24
    assert dataset_image_side("c", {"source": "cifar10"}) == 32
    assert dataset_image_side("f", {"source": "flowers102"}) >= 96  # larger images: the rule's 512 / 480 px
    assert dataset_image_side("own", {"source": "csv", "image_side": 300}) == 300
    with pytest.raises(ValueError, match=r"datasets\.own\.image_side"):
        dataset_image_side("own", {"source": "imagefolder", "root": "x"})


def test_the_rule_unscaled_is_bits_and_scaling_shrinks_steps_and_images_consistently():
    rule = plan_rule(1_437, 8, BIT)  # digits' train + val: under 20,000, small images
    assert (rule.steps, rule.warmup, rule.decays, rule.precrop, rule.crop, rule.mixup_alpha) == (
        500, 100, (200, 300, 400), 160, 128, 0.0)
    scaled = plan_rule(1_437, 8, {**BIT, "schedule_scale": 0.06, "image_scale": 0.25})
    assert (scaled.steps, scaled.warmup, scaled.decays, scaled.precrop, scaled.crop) == (30, 6, (12, 18, 24), 40, 32)
    assert plan_rule(50_000, 300, BIT).mixup_alpha == 0.1 and plan_rule(50_000, 300, BIT).crop == 480
    # the cache's size is known before the split: it depends on the image side only
    assert cache_side(8, BIT) == 160 and cache_side(300, BIT) == 512
    assert cache_side(300, {**BIT, "version": "paper"}) == 448
    assert cache_side(300, {**BIT, "version": "paper"}, largest_model=True) == 512


def test_bits_crops_are_full_scale_random_crops_and_a_whole_image_resize():
    images = torch.randint(0, 255, (4, 3, 10, 10), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    boxes, mirror = fixed_crop_draws(5, 3, 4, 10, 10, 8, flip=True)
    assert torch.all(boxes[:, 2] - boxes[:, 0] == 8) and torch.all(boxes[:, 3] - boxes[:, 1] == 8)
    assert torch.equal(boxes, fixed_crop_draws(5, 3, 4, 10, 10, 8, flip=True)[0])  # (seed, step) alone
    prep = Preprocessing(8, (0.0,) * 3, (1 / 255,) * 3, crops="bit")  # normalization off: x / 255 * 255
    crops = prep.training(images, None, False, seed=5, step=3)
    for image, crop, (x1, y1, _, _) in zip(images, crops, boxes.int().tolist()):
        # the stored pixels, not resampled (to float32 rounding of the sampling grid: a resample moves them by tens)
        assert torch.allclose(crop, image[:, y1:y1 + 8, x1:x1 + 8].float(), atol=0.05)
    whole = prep.evaluation(images)
    expected = torch.nn.functional.interpolate(images.float(), size=8, mode="bilinear", antialias=True)
    assert whole.shape == (4, 3, 8, 8) and (whole - expected).abs().mean() < 8  # the whole image, resized
    with pytest.raises(ValueError, match="crops"):
        Preprocessing(8, (0.0,) * 3, (1.0,) * 3, crops="bits")


def test_zero_head_zeroes_only_the_classifier():
    model = timm.create_model("tb_democnn", width=4, depth=1, num_classes=5)
    zero_head(model)
    head = model.get_classifier()
    assert not head.weight.any() and not head.bias.any()
    assert all(p.any() for n, p in model.named_parameters() if not n.startswith("head") and p.dim() > 1)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """Three seeds' runs of the rule (scaled to a few steps) on digits, and their median."""
    tmp = tmp_path_factory.mktemp("bit")
    split_file = tmp / "split.json"
    make_split(DatasetSpec("digits", "sklearn_digits", "top1", test_fraction=0.3, val_fraction=0.2), seed=0).save(
        split_file)
    torch.manual_seed(0)
    torch.save(timm.create_model("tb_democnn", width=4, depth=1).state_dict(), tmp / "weights.pth")
    spec = ModelSpec.from_config("cnn", {"timm": "tb_democnn", "kwargs": {"width": 4, "depth": 1},
                                         "checkpoint": str(tmp / "weights.pth")})
    bit = {**BIT, "base_lr": 0.05, "batch_size": 32, "schedule_scale": 0.02, "image_scale": 0.125}
    runs = [run_bit(spec, DatasetSpec("digits", "sklearn_digits", "top1"), split_file, bit, 8, False, run=k, seed=k,
                    out_json=tmp / f"run{k}.json", predictions_out=tmp / f"run{k}.npz", checkpoint=tmp / f"run{k}.ckpt")
            for k in range(3)]
    median = median_run([tmp / f"run{k}.json" for k in range(3)], [tmp / f"run{k}.npz" for k in range(3)],
                        tmp / "final.json", tmp / "predictions.npz")
    return tmp, runs, median


def test_a_run_trains_by_the_rule_on_train_and_val_and_scores_test(digits_run):
    tmp, runs, _ = digits_run
    run = read_json(tmp / "run0.json")
    assert run["mode"] == "bit" and run["eval_split"] == "test" and run["n_train"] + run["n_eval"] == 1_797
    assert run["rule"]["steps"] == 10 and run["steps"] == 10 and run["rule"]["precrop"] == 20
    assert run["rule"]["crop"] == 16 and run["rule"]["mixup_alpha"] == 0.0 and run["weight_decay"] == 0.0
    labels, scores = load_predictions(tmp / "run0.npz")
    assert scores.shape == (run["n_eval"], 10) and len(labels) == run["n_eval"]
    assert 0.1 < run["value"] <= 1.0  # learns something in 10 steps from a random backbone
    assert not (tmp / "run0.ckpt").exists()  # removed once the run ends
    assert [r["run"] for r in runs] == [0, 1, 2] and len({r["seed"] for r in runs}) == 3


def test_the_median_run_is_reported_with_every_runs_value(digits_run):
    tmp, runs, median = digits_run
    values = sorted(r["value"] for r in runs)
    assert median["value"] == values[1] and median["runs"] == 3
    assert (median["value_min"], median["value_max"]) == (values[0], values[2])
    chosen = median["median_run"]
    assert np.array_equal(load_predictions(tmp / "predictions.npz")[1], load_predictions(tmp / f"run{chosen}.npz")[1])


def test_an_even_number_of_runs_reports_the_lower_middle_run(tmp_path):
    files, predictions = [], []
    for k, value in enumerate([0.9, 0.6, 0.8, 0.7]):
        write_json(tmp_path / f"{k}.json", {"run": k, "value": value, "wall_time_s": 1.0 + k})
        save_predictions(tmp_path / f"{k}.npz", np.zeros(2), np.full((2, 2), value))
        files.append(tmp_path / f"{k}.json")
        predictions.append(tmp_path / f"{k}.npz")
    median = median_run(files, predictions, tmp_path / "m.json", tmp_path / "m.npz")
    assert median["value"] == 0.7 and median["median_run"] == 3 and median["run_wall_time_s"] == [1, 2, 3, 4]
    assert load_predictions(tmp_path / "m.npz")[1][0, 0] == pytest.approx(0.7)


def test_the_comparison_gives_log_odds_differences_time_ratios_and_r_under_each_protocol(tmp_path):
    rows = []
    for i, (top1, grid, bit) in enumerate([(70.0, 0.80, 0.82), (75.0, 0.85, 0.84), (80.0, 0.90, 0.93)]):
        for dataset, shift in (("a", 0.0), ("b", -0.1)):
            rows += [{"model": f"m{i}", "dataset": dataset, "mode": "finetune", "value": grid + shift,
                      "imagenet_top1": top1},
                     {"model": f"m{i}", "dataset": dataset, "mode": "bit", "value": bit + shift, "imagenet_top1": top1,
                      "value_min": bit + shift - 0.01, "value_max": bit + shift + 0.01}]
    table = pd.DataFrame(rows)
    for k in range(3):
        write_json(tmp_path / f"g{k}.json", {"wall_time_s": 10.0})
    write_json(tmp_path / "final.json", {"wall_time_s": 12.0})
    points, seconds = training_seconds([tmp_path / f"g{k}.json" for k in range(3)], tmp_path / "final.json")
    assert (points, seconds) == (3, 42.0)
    costs = pd.DataFrame([{"model": f"m{i}", "dataset": d, "grid_points": 3, "grid_train_s": 42.0, "bit_train_s": 6.0}
                          for i in range(3) for d in "ab"])
    out = compare(table, costs)
    assert len(out) == 6 and (out["time_ratio"] == 7.0).all()
    first = out[(out["model"] == "m0") & (out["dataset"] == "a")].iloc[0]
    assert first["log_odds_difference"] == pytest.approx(np.log(0.82 / 0.18) - np.log(0.80 / 0.20))
    assert first["bit_value_min"] == pytest.approx(0.81)
    r = correlations(table, out, n_boot=200).set_index("protocol")
    assert set(r.index) == {"finetune", "bit"} and (r["n_models"] == 3).all() and (r["n_datasets"] == 2).all()
    assert r.loc["finetune", "r"] > 0.9 and np.isfinite(r.loc["bit", "r"])


def test_the_bit_models_build_with_a_zero_head_through_the_studys_builder(tmp_path):
    torch.save(timm.create_model("tb_democnn", width=4, depth=1).state_dict(), tmp_path / "w.pth")
    spec = ModelSpec.from_config("cnn", {"timm": "tb_democnn", "kwargs": {"width": 4, "depth": 1},
                                         "checkpoint": str(tmp_path / "w.pth")})
    model = build_model(spec, 3, weights=True)
    zero_head(model)
    assert model(torch.zeros(2, 3, 16, 16)).abs().sum() == 0  # a zero head: every logit 0 before training


def test_bit_fine_tunes_without_dropout():
    model = timm.create_model("tb_democnn", width=4, depth=1, dropout=0.3, num_classes=3)
    assert disable_dropout(model) >= 1
    assert all(m.p == 0 for m in model.modules() if isinstance(m, torch.nn.Dropout))
    assert disable_dropout(model) == 0


def test_a_split_batch_trains_as_the_whole_batch():
    """BiT's batch_split: chunks whose gradients add up to the batch's give the same run (a model without BatchNorm,
    whose statistics would be per chunk)."""
    from transferbench.config import PAPER_TRAINING
    from transferbench.models.normalization import convert_norm
    from transferbench.train.loop import train_classifier

    images, labels = torch.randint(0, 255, (24, 3, 16, 16), dtype=torch.uint8), np.arange(24) % 3
    runs = []
    for split in (1, 3):
        torch.manual_seed(0)
        model = timm.create_model("tb_democnn", width=4, depth=1, num_classes=3)
        convert_norm(model, "groupnorm")
        settings = {**PAPER_TRAINING["finetune"], "steps": 4, "batch_size": 12, "num_workers": 0, "batch_split": split,
                    "mixup_alpha": 0.2}
        result = train_classifier(model, images, labels, images, labels, Preprocessing(16, (0.5,) * 3, (0.25,) * 3),
                                  settings, 0.05, 1e-5, "top1", 0, torch.device("cpu"))
        runs.append((result, [p.detach().clone() for p in model.parameters()]))
    (whole, whole_params), (split_run, split_params) = runs
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(whole_params, split_params))
    assert np.allclose(whole.outputs, split_run.outputs, atol=1e-4)
