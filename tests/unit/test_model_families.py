"""The real networks' families in the model builder (``model.head``, ``backbone_attributes.architecture:
mobilenet_v1``): shapes at stride 8, spec validation, padding, batch norm, and the shipped cards' parameter counts."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from bpnet_core.errors import BpnetError  # noqa: E402
from bpnet_core.model import build_model, output_layer_names, output_names  # noqa: E402

#: A small MobileNetV1: width 0.125, cut after Conv2d_5 (output stride 8 is reached at Conv2d_4).
SMALL_V1 = {"architecture": "mobilenet_v1", "last_layer": 5}


def small(pose, head="openpose", stages=2, init="random_normal", **backbone):
    return build_model({"stages": stages, "width_multiplier": 0.125, "head": head, "refinement_blocks": 1,
                        "stageT_kernel_sizes": [3, 3], "kernel_initializer": init,
                        "backbone_attributes": {**SMALL_V1, **backbone}}, pose)  # fmt: skip


@pytest.mark.parametrize("head, stages, architecture", [
    ("openpose", 2, "mobilenet_v1"),
    ("openpose_separable", 3, "mobilenet_v1"),
    ("lightweight_openpose", 2, "mobilenet_v1"),
    ("lightweight_openpose", 1, "mobilenet_v2"),            # a head is independent of the backbone
])  # fmt: skip
def test_each_family_builds_and_runs_at_stride_8(pose, pose17, head, stages, architecture):
    p = pose17 if architecture == "mobilenet_v2" else pose
    backbone = SMALL_V1 if architecture == "mobilenet_v1" else {"architecture": architecture}
    model = build_model({"stages": stages, "width_multiplier": 0.125, "head": head, "refinement_blocks": 1,
                         "stageT_kernel_sizes": [3, 3], "backbone_attributes": backbone}, p)  # fmt: skip
    outs = model(np.zeros((1, 64, 64, 3), np.float32))
    assert [tuple(o.shape) for o in outs] == ([(1, 8, 8, p.num_heatmap_channels)] * stages
                                              + [(1, 8, 8, p.num_paf_channels)] * stages)  # fmt: skip
    assert output_names(model) == output_layer_names(stages)


def test_family_layer_names(pose):
    names = {layer.name for layer in small(pose, "openpose_separable", feature_layers=[3, 5]).layers}
    assert {"conv0", "conv5_dw", "conv5_pw", "feature_pool3", "feature_concat", "stage1_paf_conv1_dw",
            "stage2_concat", "stage2_heat_conv4_dw"} <= names and "conv6_dw" not in names  # fmt: skip
    names = {layer.name for layer in small(pose, "lightweight_openpose").layers}
    assert {"cpm_align", "cpm_dw3", "cpm_add", "cpm_conv", "stage1_conv1", "stage2_block1_add", "stage2_paf_conv1"} <= (
        names
    )


def test_feature_layers_concat_their_channels(pose):
    """Conv2d_3 (stride 4, max-pooled) and Conv2d_5 (stride 8) side by side: 16 + 32 channels at width 0.125."""
    model = small(pose, feature_layers=[3, 5])
    concat = model.get_layer("feature_concat")
    assert tuple(concat.output.shape) == (None, None, None, 16 + 32)
    assert model.get_layer("feature_pool3").pool_size == (2, 2)


@pytest.mark.parametrize("backbone, words", [
    ({"strides": [2, 1, 2]}, "strides must have one value per layer Conv2d_0..Conv2d_5 (6) (got 3)"),
    ({"dilations": [1]}, "dilations must have one value per layer Conv2d_0..Conv2d_5 (6) (got 1)"),
    ({"strides": [2, 1, 2, 1, 2, 2]}, "strides take the output stride past 8 at Conv2d_5"),
    ({"strides": [2, 1, 2, 1, 1, 1]}, "strides give output stride 4; bpnet predicts at stride 8"),
    ({"feature_layers": [1, 5]}, "feature_layers Conv2d_1 is at stride 2; feature layers must be at stride 4 or 8"),
    ({"feature_layers": [7]}, "feature_layers must name layers 0..5 (got 7)"),
    ({"padding": "valid"}, "padding must be one of 'same' or 'symmetric'"),
    ({"last_layer": 14}, "last_layer must be <= 13"),
])  # fmt: skip
def test_bad_mobilenet_v1_attributes_name_the_key(backbone, words):
    with pytest.raises(BpnetError, match="model.backbone_attributes." + words.replace("(", r"\(").replace(")", r"\)")
                       .replace(".", r"\.")):  # fmt: skip
        build_model({"backbone_attributes": {**SMALL_V1, **backbone}})


def test_bad_head_and_refinement_blocks_name_the_key():
    with pytest.raises(
        BpnetError, match=r"model\.head must be one of 'openpose', 'openpose_separable' or 'lightweight"
    ):
        build_model({"head": "nope"})
    with pytest.raises(BpnetError, match=r"model\.refinement_blocks must be >= 1"):
        build_model({"head": "lightweight_openpose", "refinement_blocks": 0})


def _config(layer) -> dict:
    cfg = layer.get_config()
    cfg.pop("name", None)
    return cfg


def test_symmetric_padding_differs_from_same_only_at_stride_2(pose):
    """``padding: symmetric`` adds a ZeroPadding2D of 1 (k // 2 · dilation) before each stride-2 convolution and makes
    it ``valid``; every other layer is the same, and with the same weights the maps differ."""
    keras.utils.set_random_seed(0)
    kw = {"init": "he_normal", "dilations": [1, 1, 1, 1, 1, 2]}
    same = small(pose, "lightweight_openpose", padding="same", **kw)
    sym = small(pose, "lightweight_openpose", padding="symmetric", **kw)
    pads = sorted(layer.name for layer in sym.layers if isinstance(layer, keras.layers.ZeroPadding2D))
    assert pads == ["conv0_pad", "conv2_dw_pad", "conv4_dw_pad"]  # MobileNetV1's stride-2 layers up to Conv2d_5
    assert all(sym.get_layer(p).padding == ((1, 1), (1, 1)) for p in pads)
    by_name = {layer.name: layer for layer in same.layers}
    differ = set()
    for layer in sym.layers:
        if layer.name in pads:
            continue
        if _config(layer) != _config(by_name[layer.name]):
            differ.add(layer.name)
    assert differ == {"conv0", "conv2_dw", "conv4_dw"}
    assert all(sym.get_layer(n).padding == "valid" and sym.get_layer(n).strides == (2, 2) for n in differ)
    assert sym.get_layer("conv5_dw").padding == "same" and sym.get_layer("conv5_dw").dilation_rate == (2, 2)
    sym.set_weights(same.get_weights())
    x = np.random.default_rng(0).uniform(-1, 1, (1, 64, 64, 3)).astype(np.float32)
    a, b = np.asarray(same(x)[-1]), np.asarray(sym(x)[-1])
    assert a.shape == b.shape and np.abs(a - b).max() > 1e-2 * np.abs(a).max() > 0


@pytest.mark.parametrize("batch_norm, depthwise_bn_relu", [(True, True), (False, True), (False, False)])
def test_batch_norm_or_folded_biases(pose, batch_norm, depthwise_bn_relu):
    model = small(pose, "openpose_separable", batch_norm=batch_norm, depthwise_bn_relu=depthwise_bn_relu)
    bn = [layer.name for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    backbone = [model.get_layer(n) for n in ["conv0"] + [f"conv{i}_{k}" for i in range(1, 6) for k in ("dw", "pw")]]
    if batch_norm:
        assert bn == ["conv0_bn"] + [f"conv{i}_{k}_bn" for i in range(1, 6) for k in ("dw", "pw")]
        assert not any(layer.use_bias for layer in backbone)  # BN's beta is the bias
    else:
        assert bn == []
        pointwise = [layer for layer in backbone if not layer.name.endswith("_dw")]
        depthwise = [layer for layer in backbone if layer.name.endswith("_dw")]
        assert all(layer.use_bias for layer in pointwise)  # batch norm folded into the bias
        assert all(layer.use_bias == depthwise_bn_relu for layer in depthwise)
    relus = {layer.name for layer in model.layers if isinstance(layer, keras.layers.ReLU)}
    assert ("conv1_dw_relu" in relus) == depthwise_bn_relu and "conv1_pw_relu" in relus


@pytest.mark.parametrize("card, params, features, channels", [
    ("mobilenet_thin", 1_930_872, "feature_concat", 864),    # pool(Conv2d_3), Conv2d_7, Conv2d_11 at width 0.75
    ("human-pose-estimation-0001", 4_099_058, "conv11_pw", 512),  # Conv2d_11 at width 1, into the CPM
])  # fmt: skip
def test_the_shipped_cards_architectures_have_the_real_networks_size(card, params, features, channels):
    """Built from the card's ``architecture:`` block alone (no weights): the parameter count of the real network."""
    from bpnet_core.cards import load_card

    meta, data = load_card(card)
    model = build_model(data["architecture"], meta.pose)
    assert model.count_params() == params
    assert model.get_layer(features).output.shape[-1] == channels
    assert len(model.outputs) == 2 * meta.num_stages
