"""The regularizer ablation's building blocks (Kornblith et al. 2019, Fig. 3 and 5): the demo CNN without BN scale,
with dropout and with an auxiliary head; label smoothing and the aux loss in training; a model's own upstream
settings; model tags as results-table columns."""

import json

import pytest
import timm
import torch

from transferbench.analysis.results import result_row, write_table
from transferbench.config import upstream_settings
from transferbench.models import demo  # noqa: F401  (registers tb_democnn)
from transferbench.models.spec import load_backbone_weights
from transferbench.train.loop import classification_loss, training_loss

pytestmark = pytest.mark.unit


def test_without_bn_scale_every_gamma_stays_one_through_training():
    torch.manual_seed(0)
    model = timm.create_model("tb_democnn", width=4, depth=1, num_classes=3, bn_scale=False)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    loss = classification_loss(model(torch.randn(8, 3, 16, 16)), torch.arange(8) % 3)
    loss.backward()
    optimizer.step()
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(not m.weight.requires_grad and torch.all(m.weight == 1) for m in norms)
    assert any(m.bias.abs().sum() > 0 for m in norms)  # beta still learns


def test_aux_head_returns_its_logits_in_training_only_and_is_left_out_of_checkpoint_loading(tmp_path):
    torch.manual_seed(0)
    model = timm.create_model("tb_democnn", width=4, depth=2, num_classes=5, aux_head=True, dropout=0.3)
    x = torch.randn(2, 3, 16, 16)
    logits, aux = model.train()(x)
    assert logits.shape == aux.shape == (2, 5)
    assert model.eval()(x).shape == (2, 5) and model.drop.p == 0.3
    torch.save(model.state_dict(), tmp_path / "upstream.pth")
    downstream = timm.create_model("tb_democnn", width=4, depth=2, num_classes=5, aux_head=True)
    load_backbone_weights(downstream, tmp_path / "upstream.pth")  # the aux head, like the head, is not loaded
    downstream.reset_classifier(7)
    assert downstream.train()(x)[1].shape == (2, 7)
    assert torch.equal(downstream.features[0][0].weight, model.features[0][0].weight)


def test_training_loss_adds_the_weighted_aux_loss_and_smooths_labels():
    torch.manual_seed(0)
    logits, aux, targets = torch.randn(6, 4), torch.randn(6, 4), torch.arange(6) % 4
    smoothed = torch.nn.functional.cross_entropy(logits, targets, label_smoothing=0.1)
    assert torch.isclose(training_loss(logits, targets, {"label_smoothing": 0.1}), smoothed)
    with_aux = training_loss((logits, aux), targets, {"aux_weight": 0.4})
    expected = classification_loss(logits, targets) + 0.4 * classification_loss(aux, targets)
    assert torch.isclose(with_aux, expected)
    assert torch.isclose(training_loss((logits, aux), targets, {}), classification_loss(logits, targets))


def test_a_models_upstream_settings_override_the_shared_ones():
    config = {"upstream": {"train": {"steps": 50, "grid": {"lr": [0.1], "weight_decay": [0.0]}}},
              "models": {"c1": {"timm": "tb_democnn", "upstream": {"label_smoothing": 0.1, "aux_weight": 0.4}},
                         "c5": {"timm": "tb_democnn"}}}
    c1, c5 = upstream_settings(config, "c1"), upstream_settings(config, "c5")
    assert c1["label_smoothing"] == 0.1 and c1["aux_weight"] == 0.4 and c1["steps"] == c5["steps"] == 50
    assert "label_smoothing" not in c5 and c5 == upstream_settings(config)


def test_model_tags_become_table_columns(tmp_path):
    result = tmp_path / "r.json"
    result.write_text(json.dumps({"metric": "top1", "value": 0.5, "n_test": 10}))
    rows = [result_row("a", "d", "linear", result, 60.0, 100, tags={"architecture": "w8", "setting": "C1"}),
            result_row("b", "d", "linear", result, 61.0, 100)]
    table = write_table(rows, tmp_path / "t.csv")
    assert list(table.columns[-3:]) == ["architecture", "setting", "predictions"]
    assert table.set_index("model").loc["a", "setting"] == "C1" and table.set_index("model")["setting"].isna()["b"]
