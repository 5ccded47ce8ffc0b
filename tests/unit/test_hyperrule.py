"""BiT-HyperRule (transferbench.train.hyperrule), both versions, at the rule's thresholds."""

import pytest

from transferbench.train.hyperrule import hyperrule, learning_rate

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("n", "steps", "warmup", "decays", "mixup"), [
    (19_999, 500, 100, (200, 300, 400), 0.0),
    (20_000, 10_000, 500, (3000, 6000, 9000), 0.1),
    (499_999, 10_000, 500, (3000, 6000, 9000), 0.1),
    (500_000, 20_000, 500, (6000, 12_000, 18_000), 0.1),
])
def test_code_version_schedules_by_dataset_size(n, steps, warmup, decays, mixup):
    rule = hyperrule(n, (224, 224))
    assert (rule.steps, rule.warmup, rule.decays, rule.mixup_alpha) == (steps, warmup, decays, mixup)
    assert (rule.base_lr, rule.batch_size, rule.momentum, rule.weight_decay) == (0.003, 512, 0.9, 0.0)


def test_paper_version_decays_at_30_60_90_percent_without_warmup():
    rule = hyperrule(50_000, (224, 224), version="paper")
    assert (rule.steps, rule.warmup, rule.decays) == (10_000, 0, (3000, 6000, 9000))
    assert hyperrule(5_000, (224, 224), version="paper").decays == (150, 300, 450)


def test_resolution_by_image_area_and_version():
    assert (hyperrule(100, (95, 96)).precrop, hyperrule(100, (95, 96)).crop) == (160, 128)  # below 96 x 96
    assert (hyperrule(100, (96, 96)).precrop, hyperrule(100, (96, 96)).crop) == (512, 480)
    paper = hyperrule(100, (300, 400), version="paper")
    assert (paper.precrop, paper.crop) == (448, 384)
    largest = hyperrule(100, (300, 400), version="paper", largest_model=True)
    assert (largest.precrop, largest.crop) == (512, 480)


def test_learning_rate_warms_up_linearly_then_divides_by_ten_at_each_decay():
    rule = hyperrule(1_000, (32, 32))
    assert learning_rate(rule, 0) == 0 and learning_rate(rule, 50) == pytest.approx(0.0015)
    assert learning_rate(rule, 100) == pytest.approx(0.003) and learning_rate(rule, 199) == pytest.approx(0.003)
    assert learning_rate(rule, 200) == pytest.approx(3e-4) and learning_rate(rule, 300) == pytest.approx(3e-5)
    assert learning_rate(rule, 499) == pytest.approx(3e-6)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="unknown BiT-HyperRule version 'draft'"):
        hyperrule(100, (32, 32), version="draft")
    with pytest.raises(ValueError, match="0 examples"):
        hyperrule(0, (32, 32))
