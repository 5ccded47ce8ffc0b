"""BatchNorm -> GroupNorm (+ weight standardization) for any timm or torchvision CNN (models/normalization.py)."""

from collections import Counter

import pytest
import timm
import torch
import torch.nn.functional as F
import torchvision
from timm.layers import BatchNormAct2d, Conv2dSame, GroupNormAct, StdConv2d, StdConv2dSame, create_conv2d
from timm.layers.split_batchnorm import SplitBatchNorm2d
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from transferbench.models.normalization import DEFAULT_WS_EPS, convert_norm, group_count

pytestmark = pytest.mark.unit

BATCHNORMS = (nn.modules.batchnorm._BatchNorm, FrozenBatchNorm2d)

CNNS = {
    "torchvision:resnet18": lambda: torchvision.models.resnet18(num_classes=10),
    "torchvision:densenet121": lambda: torchvision.models.densenet121(num_classes=10),
    "torchvision:mobilenet_v2": lambda: torchvision.models.mobilenet_v2(num_classes=10),
    "timm:resnet18": lambda: timm.create_model("resnet18", pretrained=False, num_classes=10),
    "timm:densenet121": lambda: timm.create_model("densenet121", pretrained=False, num_classes=10),
    "timm:mobilenetv2_100": lambda: timm.create_model("mobilenetv2_100", pretrained=False, num_classes=10),
}


def _names(model, types):
    return [name for name, module in model.named_modules() if isinstance(module, types)]


def _shapes(model):
    return {name: tuple(p.shape) for name, p in model.named_parameters()}


@pytest.mark.parametrize("norm", ["groupnorm", "groupnorm_ws"])
@pytest.mark.parametrize("cnn", list(CNNS))
def test_groupnorm_takes_every_batchnorm_position_keeping_parameters_and_output_shape(cnn, norm):
    torch.manual_seed(0)
    model = CNNS[cnn]().eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        shape = model(images).shape
    batchnorms, parameters = _names(model, BATCHNORMS), _shapes(model)
    convs = _names(model, nn.Conv2d)

    conversion = convert_norm(model, norm)

    assert batchnorms and not _names(model, BATCHNORMS)
    assert _names(model, nn.GroupNorm) == batchnorms  # one GroupNorm at each BatchNorm's position
    assert _shapes(model) == parameters  # same names, shapes and count: GN's affine is BN's
    assert list(conversion.groups) == batchnorms
    for name, groups in conversion.groups.items():
        layer = model.get_submodule(name)
        assert layer.num_groups == groups == group_count(layer.num_channels)
        assert not layer.training  # the model's eval mode carries over
    if norm == "groupnorm_ws":
        assert all(type(m) is StdConv2d for m in model.modules() if isinstance(m, nn.Conv2d))
        assert list(conversion.standardized) == convs
    else:
        assert all(type(m) is nn.Conv2d for m in model.modules() if isinstance(m, nn.Conv2d))
    assert conversion.describe().startswith(f"{norm}: {len(batchnorms)} BatchNorm -> GroupNorm (32 groups x")
    with torch.no_grad():
        assert model(images).shape == shape


@pytest.mark.parametrize("norm", ["groupnorm", "groupnorm_ws"])
def test_groupnorm_trains_on_one_image_where_batchnorm_cannot(norm):
    torch.manual_seed(0)
    image, label = torch.randn(1, 3, 32, 32), torch.tensor([3])  # resnet18's last stage is 1x1 at 32 px
    batchnorm_model = torchvision.models.resnet18(num_classes=10).train()
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        batchnorm_model(image)

    model = torchvision.models.resnet18(num_classes=10).train()
    convert_norm(model, norm)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = F.cross_entropy(model(image), label)
    loss.backward()
    optimizer.step()

    assert torch.isfinite(loss)
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert {"conv1.weight", "fc.weight", "layer4.1.bn2.weight", "layer4.1.bn2.bias"} <= changed
    assert len(changed) == len(before)


def test_groupnorm_output_of_a_sample_does_not_depend_on_its_batch():
    torch.manual_seed(0)
    images = torch.randn(2, 3, 64, 64)
    model = torchvision.models.resnet18(num_classes=10).train()
    with torch.no_grad():
        assert not torch.allclose(model(images[:1]), model(images)[:1], atol=1e-4)  # BatchNorm: batch statistics
        convert_norm(model, "groupnorm")
        torch.testing.assert_close(model(images[:1]), model(images)[:1], atol=1e-5, rtol=1e-5)


def test_timm_norm_act_layers_keep_their_activation_and_drop_modules():
    model = timm.create_model("mobilenetv2_100", pretrained=False, num_classes=10)
    old = {name: m for name, m in model.named_modules() if isinstance(m, BatchNormAct2d)}
    acts = Counter(type(m.act).__name__ for m in old.values())
    assert acts["ReLU6"] and acts["Identity"]  # activated norms and the linear bottlenecks' plain ones

    convert_norm(model, "groupnorm")

    for name, batchnorm in old.items():
        layer = model.get_submodule(name)
        assert type(layer) is GroupNormAct
        assert layer.act is batchnorm.act and layer.drop is batchnorm.drop
    assert Counter(type(m).__name__ for m in model.modules())["ReLU6"] == acts["ReLU6"]


def test_group_norm_act_computes_act_of_group_norm_with_the_batchnorm_eps():
    model = nn.Sequential(nn.Conv2d(3, 24, 3), BatchNormAct2d(24, eps=1e-3, act_layer=nn.SiLU, drop_layer=nn.Dropout2d))
    convert_norm(model, "groupnorm")
    layer = model[1].eval()
    assert isinstance(layer.act, nn.SiLU) and isinstance(layer.drop, nn.Dropout2d)
    assert (layer.num_groups, layer.eps) == (12, 1e-3)
    x = torch.randn(2, 24, 5, 5)
    torch.testing.assert_close(layer(x), F.silu(F.group_norm(x, 12, layer.weight, layer.bias, 1e-3)))


@pytest.mark.parametrize(("channels", "groups"), [
    (64, 32), (128, 32), (1024, 32), (96, 32), (320, 32), (144, 24), (48, 24), (42, 21), (32, 16), (24, 12),
    (16, 8), (3, 1), (31, 1), (1, 1),
])
def test_group_count_is_largest_divisor_up_to_32_keeping_two_channels_per_group(channels, groups):
    assert group_count(channels) == groups


def test_group_count_options_set_the_cap_and_the_smallest_group():
    assert group_count(64, groups=16) == 16
    assert group_count(24, min_group_channels=1) == 24  # one channel per group allowed: InstanceNorm
    assert group_count(64, min_group_channels=16) == 4


def test_mobilenet_widths_get_groups_by_the_rule():
    model = timm.create_model("mobilenetv2_100", pretrained=False, num_classes=10)
    conversion = convert_norm(model, "groupnorm")
    pairs = {(model.get_submodule(name).num_channels, g) for name, g in conversion.groups.items()}
    assert {(16, 8), (24, 12), (32, 16), (144, 24), (96, 32), (1280, 32)} <= pairs


def test_parameters_move_over_so_zero_initialized_gammas_survive():
    model = timm.create_model("resnet18", pretrained=False, num_classes=10)  # zero_init_last: bn2 gamma is zero
    gamma, conv_weight = model.layer1[0].bn2.weight, model.layer1[0].conv1.weight
    assert not gamma.any()
    convert_norm(model, "groupnorm_ws")
    assert model.layer1[0].bn2.weight is gamma
    assert model.layer1[0].conv1.weight is conv_weight


def test_standardized_conv_keeps_geometry_and_standardizes_each_filter_with_timm_eps():
    conv = nn.Conv2d(8, 16, 3, stride=2, padding=2, dilation=2, groups=2, bias=True)
    model = nn.Sequential(conv, nn.BatchNorm2d(16))
    convert_norm(model, "groupnorm_ws")
    std = model[0]
    assert type(std) is StdConv2d and std.eps == DEFAULT_WS_EPS == 1e-6
    for setting in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups"):
        assert getattr(std, setting) == getattr(conv, setting)
    assert std.weight is conv.weight and std.bias is conv.bias
    x = torch.randn(2, 8, 9, 9)
    w = conv.weight
    mean, var = w.mean(dim=(1, 2, 3), keepdim=True), w.var(dim=(1, 2, 3), unbiased=False, keepdim=True)
    expected = F.conv2d(x, (w - mean) / torch.sqrt(var + 1e-6), conv.bias, 2, 2, 2, 2)
    torch.testing.assert_close(std(x), expected)


def test_tf_same_padding_conv_becomes_std_conv_same():
    model = nn.Sequential(create_conv2d(3, 8, 4, stride=2, padding="same"), nn.BatchNorm2d(8))
    assert type(model[0]) is Conv2dSame
    x = torch.randn(1, 3, 33, 33)
    shape = model(x).shape
    convert_norm(model, "groupnorm_ws", ws_eps=1e-8)
    assert type(model[0]) is StdConv2dSame and model[0].same_pad and model[0].eps == 1e-8
    assert model(x).shape == shape


def test_frozen_batchnorm_gets_trainable_affine_from_its_buffers():
    model = torchvision.models.resnet18(num_classes=10, norm_layer=FrozenBatchNorm2d)
    frozen = {name: m for name, m in model.named_modules() if isinstance(m, FrozenBatchNorm2d)}
    for layer in frozen.values():  # not GroupNorm's own init (ones, zeros), so a copy shows
        layer.weight.uniform_(0.5, 1.5), layer.bias.normal_()
    count = sum(p.numel() for p in model.parameters())
    convert_norm(model, "groupnorm")
    assert sum(p.numel() for p in model.parameters()) == count + 2 * sum(m.weight.numel() for m in frozen.values())
    for name, old in frozen.items():
        layer = model.get_submodule(name)
        assert type(layer) is nn.GroupNorm and layer.weight.requires_grad
        assert torch.equal(layer.weight, old.weight) and torch.equal(layer.bias, old.bias)


def test_batchnorm_shared_by_two_positions_becomes_one_shared_groupnorm():
    shared = nn.BatchNorm2d(8)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), shared, nn.Conv2d(8, 8, 3), shared)
    count = sum(p.numel() for p in model.parameters())
    convert_norm(model, "groupnorm")
    assert isinstance(model[1], nn.GroupNorm) and model[1] is model[3]
    assert sum(p.numel() for p in model.parameters()) == count


def test_batchnorm_leaves_the_model_unchanged():
    model = timm.create_model("resnet18", pretrained=False, num_classes=10)
    modules = list(model.modules())
    conversion = convert_norm(model, "batchnorm")
    assert list(model.modules()) == modules and conversion.groups == {} and conversion.standardized == ()
    assert "unchanged" in conversion.describe()


@pytest.mark.parametrize("norm", ["groupnorm", "groupnorm_ws"])
def test_vit_has_no_batchnorm_to_convert(norm):
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10)
    with pytest.raises(ValueError, match=f"model 'vit_tiny_patch16_224' has no BatchNorm layer to convert to {norm} "
                                         r"\(its normalization layers: LayerNorm x"):
        convert_norm(model, norm)


def test_bit_is_already_groupnorm_and_is_refused_not_relabelled():
    model = timm.create_model("resnetv2_50x1_bit", pretrained=False, num_classes=10)
    with pytest.raises(ValueError, match=r"no BatchNorm layer.*GroupNormAct x\d+.*already normalizes without batch "
                                         r"statistics.*norm: batchnorm trains the model's own layers"):
        convert_norm(model, "groupnorm_ws")


def test_batchnorm1d_head_is_named_and_nothing_is_converted():
    model = timm.create_model("resnet18", pretrained=False, num_classes=10)
    model.fc = nn.Sequential(nn.Linear(512, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 10))
    types = [type(m) for m in model.modules()]
    with pytest.raises(ValueError, match=r"cannot convert model 'resnet18' to groupnorm: 'fc.1': BatchNorm1d "
                                         r"cannot become GroupNorm"):
        convert_norm(model, "groupnorm")
    assert [type(m) for m in model.modules()] == types


@pytest.mark.parametrize(("layers", "norm", "message"), [
    ([nn.Conv2d(3, 8, 3), nn.SyncBatchNorm(8)], "groupnorm",
     r"'1': SyncBatchNorm cannot become GroupNorm \(convert the norm before nn.SyncBatchNorm.convert_sync_batchnorm"),
    ([nn.Conv2d(3, 8, 3), SplitBatchNorm2d(8, num_splits=2)], "groupnorm",
     r"'1': SplitBatchNorm2d cannot become GroupNorm \(a BatchNorm2d subclass with its own forward"),
    ([nn.Conv2d(3, 8, 3, padding=1, padding_mode="reflect"), nn.BatchNorm2d(8)], "groupnorm_ws",
     r"'0': padding_mode 'reflect': StdConv2d pads with zeros only"),
    ([nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Conv2d(8, 8, 1, groups=8), nn.BatchNorm2d(8)], "groupnorm_ws",
     r"'2': one weight per filter"),
    ([nn.Conv2d(3, 8, 3), nn.ReLU()], "groupnorm",
     r"model Sequential has no BatchNorm layer to convert to groupnorm \(it has no normalization layer at all\)"),
    ([nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8)], "groupnrom", r"unknown norm 'groupnrom'.*did you mean 'groupnorm'"),
])
def test_unconvertible_models_are_named_and_left_unchanged(layers, norm, message):
    model = nn.Sequential(*layers)
    types = [type(m) for m in model.modules()]
    with pytest.raises(ValueError, match=message):
        convert_norm(model, norm)
    assert [type(m) for m in model.modules()] == types
