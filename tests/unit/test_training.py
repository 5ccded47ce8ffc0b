import os
import signal

import numpy as np
import pytest
import timm
import torch

import transferbench.models.demo  # noqa: F401  (registers tb_democnn with timm)
from transferbench.config import PAPER_TRAINING
from transferbench.data.images import Preprocessing
from transferbench.train.loop import Preempted, batch_indices, bn_momentum, train_classifier

pytestmark = pytest.mark.unit

SETTINGS = {"steps": 12, "batch_size": 8, "momentum": 0.9, "nesterov": True, "crop_scale": [0.5, 1.0], "flip": True,
            "weight_decay_divided_by_lr": True, "bn_momentum_rule": True, "eval_every": 5, "checkpoint_every": 100}


def toy_data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 4
    images = np.clip(rng.normal(60 * labels[:, None, None, None], 30, size=(n, 3, 20, 20)), 0, 255)
    return torch.as_tensor(images.astype(np.uint8)), labels


def run(checkpoint=None, lr=0.05, hook=None, settings=SETTINGS):
    torch.manual_seed(0)
    model = timm.create_model("tb_democnn", width=4, depth=1, num_classes=4)
    images, labels = toy_data()
    pre = Preprocessing(16, (0.5,) * 3, (0.25,) * 3)
    if hook is not None:
        original = pre.training
        pre.training = lambda batch, *a, **k: (hook(), original(batch, *a, **k))[1]
    return train_classifier(model, images, labels, images[:16], labels[:16], pre, settings, lr, 1e-5, "top1",
                            seed=3, device=torch.device("cpu"), checkpoint=checkpoint)


def test_bn_momentum_follows_paper_rule_in_pytorch_convention():
    assert bn_momentum(1000) == pytest.approx(0.01)  # TF decay 0.99
    assert bn_momentum(50) == pytest.approx(0.1)  # TF decay floor 0.9


def test_batches_cover_each_epoch_once():
    seen = torch.cat([batch_indices(s, 8, 20, seed=1) for s in range(5)])  # 40 = two epochs of 20
    assert sorted(seen[:20].tolist()) == list(range(20)) and sorted(seen[20:].tolist()) == list(range(20))


def test_sigterm_checkpoints_and_resume_ends_where_uninterrupted_run_ends(tmp_path):
    reference = run()
    ckpt = tmp_path / "job.ckpt"
    calls = {"n": 0}

    def sigterm_at_step_7():
        calls["n"] += 1
        if calls["n"] == 7:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(Preempted, match="rerun the job to resume"):
        run(ckpt, hook=sigterm_at_step_7)
    assert ckpt.exists()
    assert torch.load(ckpt, weights_only=False)["state"]["step"] == 7
    resumed = run(ckpt)
    assert resumed.metric == reference.metric and resumed.steps == reference.steps == 12
    np.testing.assert_array_equal(resumed.outputs, reference.outputs)
    assert [c["metric"] for c in resumed.curve] == [c["metric"] for c in reference.curve]
    assert not ckpt.exists()  # a finished job cleans up its checkpoint


def test_batches_read_ahead_in_workers_give_the_same_run():
    reference, ahead = run(), run(settings={**SETTINGS, "num_workers": 2})
    np.testing.assert_array_equal(ahead.outputs, reference.outputs)
    assert [c["loss"] for c in ahead.curve] == [c["loss"] for c in reference.curve]


def test_nan_loss_marks_run_diverged_at_chance_level():
    result = run(lr=1e30)
    assert result.diverged and result.steps < SETTINGS["steps"]
    assert result.metric == pytest.approx(0.25)  # four balanced classes
    assert result.outputs is None


def test_training_learns_the_toy_task():
    assert run(lr=0.05, settings={**SETTINGS, "steps": 100}).metric >= 0.9


def test_multilabel_training_uses_sigmoid_loss_and_map():
    torch.manual_seed(0)
    model = timm.create_model("tb_democnn", width=4, depth=1, num_classes=4)
    images, labels = toy_data()
    targets = np.stack([labels == k for k in range(4)], axis=1).astype(np.int64)
    targets[:, 3] |= targets[:, 0]  # a second label on some images
    pre = Preprocessing(16, (0.5,) * 3, (0.25,) * 3)
    result = train_classifier(model, images, targets, images[:16], targets[:16], pre, {**SETTINGS, "steps": 60},
                              0.2, 1e-5, "map_11point", seed=3, device=torch.device("cpu"))
    assert not result.diverged and result.outputs.shape == (16, 4)
    assert result.metric > 0.6


def test_batched_random_resized_crop_follows_torchvision_box_distribution():
    from torchvision.transforms import RandomResizedCrop

    from transferbench.data.images import random_resized_crop_boxes

    n, height, width, scale = 4000, 40, 60, (0.08, 1.0)
    boxes = random_resized_crop_boxes(n, height, width, scale, np.random.default_rng(0))
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= width).all() and (boxes[:, 3] <= height).all()
    torch.manual_seed(0)
    reference = torch.tensor([RandomResizedCrop.get_params(torch.zeros(3, height, width), list(scale), [3 / 4, 4 / 3])
                              for _ in range(n)], dtype=torch.float32)  # (top, left, h, w)
    ours_area, ref_area = (w * h / (height * width)), reference[:, 2] * reference[:, 3] / (height * width)
    assert abs(ours_area.mean() - ref_area.mean()) < 0.015 and abs(ours_area.std() - ref_area.std()) < 0.015
    assert abs(torch.log(w / h).mean() - torch.log(reference[:, 3] / reference[:, 2]).mean()) < 0.02
    again = random_resized_crop_boxes(n, height, width, scale, np.random.default_rng(0))
    assert torch.equal(boxes, again)  # seeded: a resumed job draws the same crops


def test_training_crop_of_the_full_image_is_a_resize():
    pre = Preprocessing(8, (0.0,) * 3, (1 / 255,) * 3)  # normalization that leaves pixel values unchanged
    image = torch.arange(16 * 16, dtype=torch.uint8).view(1, 1, 16, 16).expand(1, 3, 16, 16).contiguous()
    out = pre.training(image, (1.0, 1.0), flip=False, seed=0)  # scale 1 with a square image: the whole image
    expected = torch.nn.functional.avg_pool2d(image.float(), 2)  # 2x downscale with area averaging
    torch.testing.assert_close(out, expected)


def test_crop_and_resize_samples_like_roi_align_with_adaptive_area_averaging():
    from torchvision.ops import roi_align

    from transferbench.data.images import crop_and_resize

    rng = np.random.default_rng(1)
    images = torch.as_tensor(rng.integers(0, 256, (6, 3, 40, 40)), dtype=torch.float32)
    # boxes smaller than the output (upsampling), about its size, and 2-3x larger in both sides (area averaging)
    boxes = torch.tensor([[3, 5, 13, 17], [0, 0, 16, 16], [10, 2, 26, 18], [0, 0, 40, 40], [4, 6, 37, 38],
                          [1.5, 2.5, 35.5, 34.5]], dtype=torch.float32)
    ours = crop_and_resize(images, boxes, 16)
    rois = torch.cat([torch.arange(6).unsqueeze(1).float(), boxes], dim=1)
    reference = roi_align(images, rois, output_size=16, sampling_ratio=-1, aligned=True)
    torch.testing.assert_close(ours, reference, atol=1e-3, rtol=1e-5)


def test_mirrored_crops_are_the_flipped_crops():
    from transferbench.data.images import crop_and_resize

    rng = np.random.default_rng(2)
    images = torch.as_tensor(rng.integers(0, 256, (4, 3, 40, 40)), dtype=torch.float32)
    boxes = torch.tensor([[3, 5, 13, 17], [0, 0, 40, 40], [4, 6, 37, 38], [1.5, 2.5, 35.5, 34.5]])
    mirror = torch.tensor([True, False, True, True])
    plain, mirrored = crop_and_resize(images, boxes, 16), crop_and_resize(images, boxes, 16, mirror)
    torch.testing.assert_close(mirrored, torch.where(mirror.view(-1, 1, 1, 1), plain.flip(-1), plain), atol=1e-3,
                               rtol=1e-5)  # float32 sums in another order


def test_crop_draws_of_a_step_depend_on_seed_and_step_only():
    from transferbench.data.images import _chunk_draws, crop_draws

    sequence = [crop_draws(3, step, 8, 40, 40, (0.08, 1.0), True) for step in range(60, 70)]
    _chunk_draws.cache_clear()  # a resumed job starts with nothing cached
    boxes, mirror = crop_draws(3, 66, 8, 40, 40, (0.08, 1.0), True)
    assert torch.equal(boxes, sequence[6][0]) and np.array_equal(mirror, sequence[6][1])
    assert not torch.equal(sequence[3][0], sequence[4][0])  # steps 63 and 64 straddle two chunks: still differ
    assert not torch.equal(crop_draws(4, 66, 8, 40, 40, (0.08, 1.0), True)[0], boxes)


@pytest.mark.parametrize("norm", ["groupnorm", "groupnorm_ws"])
def test_scratch_converts_any_cnn_to_groupnorm_and_trains_it_without_the_bn_momentum_rule(tmp_path, norm):
    """Rethinking's scratch variant on an architecture that takes no `norm` argument (timm's resnet18): converted,
    a BatchNorm nowhere, and a few SGD steps move its GroupNorm weights (the BN momentum rule has nothing to touch)."""
    from timm.layers import StdConv2d

    from transferbench.models.spec import ModelSpec
    from transferbench.train.run import build_for_mode

    settings = {**PAPER_TRAINING["scratch"], "norm": norm, "steps": 3, "batch_size": 4, "num_workers": 0}
    model = build_for_mode(ModelSpec.from_config("r18", {"timm": "resnet18", "resolution": 32}), "scratch", 3,
                           settings, seed=0)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert any(isinstance(m, torch.nn.GroupNorm) for m in model.modules())
    assert any(isinstance(m, StdConv2d) for m in model.modules()) == (norm == "groupnorm_ws")
    before = {n: p.detach().clone() for n, p in model.named_parameters() if "bn" in n}
    images, labels = torch.randint(0, 255, (8, 3, 32, 32), dtype=torch.uint8), np.arange(8) % 3
    result = train_classifier(model, images, labels, images, labels, Preprocessing(32, (0.5,) * 3, (0.25,) * 3),
                              settings, 0.05, 1e-5, "top1", 0, torch.device("cpu"))
    assert not result.diverged and result.steps == 3
    assert any(not torch.equal(p, before[n]) for n, p in model.named_parameters() if n in before)


BIT_LIKE = {**SETTINGS, "schedule": "steps", "warmup_steps": 3, "decay_steps": [6, 9], "mixup_alpha": 0.1,
            "nesterov": False}


def test_learning_rate_schedules_cosine_by_default_and_bit_steps_with_warmup():
    from transferbench.train.hyperrule import hyperrule, learning_rate
    from transferbench.train.loop import lr_factor

    assert [lr_factor(SETTINGS, 12, s) for s in (0, 6, 12)] == pytest.approx([1.0, 0.5, 0.0])  # the paper's cosine
    assert [lr_factor(BIT_LIKE, 12, s) for s in (0, 1, 3, 5, 6, 9, 11)] == pytest.approx(
        [0, 1 / 3, 1, 1, 0.1, 0.01, 0.01])
    rule = hyperrule(1_000, (32, 32))  # the settings BiT-HyperRule gives reproduce its learning rate at every step
    settings = {"schedule": "steps", "warmup_steps": rule.warmup, "decay_steps": list(rule.decays)}
    assert all(rule.base_lr * lr_factor(settings, rule.steps, s) == pytest.approx(learning_rate(rule, s))
               for s in range(rule.steps))


def test_mixup_draws_depend_on_seed_and_step_and_blend_images():
    from transferbench.train.loop import mixup

    a, b = mixup(0.1, 3, 5, 8), mixup(0.1, 3, 5, 8)
    assert a.weight == b.weight and torch.equal(a.partner, b.partner) and mixup(0.0, 3, 5, 8) is None
    assert mixup(0.1, 3, 6, 8).weight != a.weight
    batch = torch.arange(8, dtype=torch.float32).view(8, 1, 1, 1)
    mixed = a.images(batch)
    assert torch.allclose(mixed, a.weight * batch + (1 - a.weight) * batch[a.partner])


def test_training_with_mixup_and_the_steps_schedule_is_deterministic_and_resumes(tmp_path):
    reference = run(settings=BIT_LIKE)
    assert not reference.diverged and reference.steps == 12
    np.testing.assert_array_equal(run(settings=BIT_LIKE).outputs, reference.outputs)
    ckpt, calls = tmp_path / "job.ckpt", {"n": 0}

    def sigterm_at_step_7():
        calls["n"] += 1
        if calls["n"] == 7:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(Preempted):
        run(ckpt, hook=sigterm_at_step_7, settings=BIT_LIKE)
    np.testing.assert_array_equal(run(ckpt, settings=BIT_LIKE).outputs, reference.outputs)
