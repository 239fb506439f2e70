"""The Keras model: shapes, names, widths, parameter count, (de)serialisation, weights from files, bad input."""

from __future__ import annotations

import logging

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from bpnet_core.errors import BpnetError  # noqa: E402
from bpnet_core.model import (  # noqa: E402
    build_model,
    count_conv_params,
    is_output_layer,
    layer_stage,
    load_bpnet_model,
    load_imagenet_weights,
    load_pretrained_weights,
    model_from_spec,
    output_layer_names,
    output_names,
)

TINY = {"width_multiplier": 0.125, "stageT_kernel_sizes": [3, 3], "kernel_initializer": "xavier"}


def tiny(pose, **kw):
    return build_model({**TINY, **kw}, pose)


@pytest.mark.parametrize(
    "arch, stages, width, attention, joints",
    [
        ("vgg", 1, 0.125, False, 18),
        ("vgg", 2, 0.25, True, 18),
        ("vgg", 3, 0.125, False, 17),
        ("mobilenet_v2", 1, 0.25, False, 17),
        ("mobilenet_v2", 3, 0.25, True, 18),
    ],
)
def test_forward_shapes(arch, stages, width, attention, joints, pose, pose17):
    p = pose if joints == 18 else pose17
    model = build_model(
        {"architecture": arch, "stages": stages, "width_multiplier": width, "use_self_attention": attention,
         "stageT_kernel_sizes": [3, 3]}, p,
    )  # fmt: skip
    outs = model(np.zeros((1, 48, 64, 3), np.float32))
    assert len(outs) == 2 * stages
    for t in range(stages):
        assert tuple(outs[t].shape) == (1, 6, 8, p.num_heatmap_channels)
        assert tuple(outs[stages + t].shape) == (1, 6, 8, p.num_paf_channels)
    assert output_names(model) == output_layer_names(stages)


def test_input_and_output_names(pose):
    model = tiny(pose, stages=3)
    assert model.inputs[0].name == "input_1"
    assert tuple(model.inputs[0].shape) == (None, None, None, 3)
    assert output_names(model) == [
        "heatmap_stage1", "heatmap_stage2", "heatmap_out", "paf_stage1", "paf_stage2", "paf_out",
    ]  # fmt: skip
    one = tiny(pose, stages=1)
    assert output_names(one) == ["heatmap_out", "paf_out"]
    names = {layer.name for layer in model.layers}
    assert {"block4_conv2", "interface_conv4_3", "channel_reduction_conv", "stage2_concat", "stage3_conv2"} <= names


def test_vgg_layout_and_width(pose):
    model = build_model({"stages": 2, "width_multiplier": 0.25, "stageT_kernel_sizes": [7, 7, 7, 7, 7]}, pose)
    get = model.get_layer
    assert get("block1_conv1").filters == 16 and get("block1_conv1").strides == (1, 1)
    assert get("block2_conv1").strides == (2, 2) and get("block2_conv2").strides == (1, 1)
    assert get("block3_conv4").filters == 64 and get("block4_conv2").filters == 128
    assert not get("block1_conv1").use_bias  # BN follows
    assert isinstance(get("block1_conv1_bn"), keras.layers.BatchNormalization)
    assert get("interface_conv4_3").filters == 64 and get("channel_reduction_conv").filters == 32
    assert get("stage1_paf_conv4").filters == 128 and get("stage2_conv1").kernel_size == (7, 7)
    assert get("stage2_paf_conv6").filters == 32
    assert not any(isinstance(layer, keras.layers.MaxPooling2D) for layer in model.layers)
    # the minimum of 8 filters
    small = build_model({"stages": 1, "width_multiplier": 0.01}, pose)
    assert small.get_layer("block1_conv1").filters == 8 and small.get_layer("stage1_conv1").filters == 8


def test_full_vgg_parameter_count_matches_tao(pose):
    """TAO's BpNetLite 3-stage model has 16.8 M conv parameters (16,777,835 with BN in TAO's unit test). Build only."""
    model = build_model({"stages": 3}, pose)
    assert count_conv_params(model) == pytest.approx(16.8e6, rel=0.01)
    assert model.get_layer("stage2_conv1").kernel.shape == (7, 7, 128 + 19 + 38, 128)


@pytest.mark.slow  # saves, loads and clones a MobileNetV2 model
def test_save_load_roundtrip_safe_mode(tmp_path, pose):
    model = tiny(pose, stages=2, use_self_attention=True, architecture="mobilenet_v2")
    x = np.random.default_rng(0).normal(size=(2, 32, 40, 3)).astype(np.float32)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False, safe_mode=True)
    for a, b in zip(model(x), loaded(x)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
    assert output_names(loaded) == output_names(model)
    clone = keras.Model.from_config(model.get_config())
    assert [layer.name for layer in clone.layers] == [layer.name for layer in model.layers]
    assert clone.count_params() == model.count_params()


def test_regularizers_and_initializers(pose):
    l1 = tiny(pose, stages=1, regularization_type="l1", kernel_regularization_factor=1e-3, bias_regularization_factor=0)
    conv = l1.get_layer("stage1_conv1")
    assert isinstance(conv.kernel_regularizer, keras.regularizers.L1) and conv.bias_regularizer is None
    assert float(sum(l1.losses)) > 0
    both = tiny(pose, stages=1, regularization_type="l1_l2", kernel_regularization_factor=1e-3,
                bias_regularization_factor=1e-4)  # fmt: skip
    conv = both.get_layer("stage1_conv1")
    assert isinstance(conv.kernel_regularizer, keras.regularizers.L1L2)
    assert isinstance(conv.bias_regularizer, keras.regularizers.L1L2)
    none = tiny(pose, stages=1, kernel_regularization_factor=0, bias_regularization_factor=0)
    assert none.losses == []
    init = {"random_normal": keras.initializers.RandomNormal, "xavier": keras.initializers.GlorotUniform,
            "he_normal": keras.initializers.HeNormal}  # fmt: skip
    for name, cls in init.items():
        m = build_model({"stages": 1, "width_multiplier": 0.125, "kernel_initializer": name}, pose)
        assert isinstance(m.get_layer("stage1_conv1").kernel_initializer, cls)
    std = np.std(np.asarray(build_model({"stages": 1, "width_multiplier": 0.5}, pose).get_layer("stage1_conv1").kernel))
    assert std == pytest.approx(0.01, rel=0.1)  # TAO's N(0, 0.01)


def test_layer_naming_helpers():
    assert layer_stage("block3_conv2") == 0 and layer_stage("channel_reduction_conv") == 0
    assert layer_stage("stage1_conv2") == 1 and layer_stage("heatmap_stage1") == 1
    assert layer_stage("stage4_paf_attention_mul") == 4 and layer_stage("paf_stage3") == 3
    assert layer_stage("heatmap_out", 6) == 6
    assert is_output_layer("heatmap_out") and is_output_layer("paf_stage2") and not is_output_layer("stage2_conv1")


# ---------------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("stages", [0, 11, -1])
def test_stage_count_out_of_range(stages, pose):
    with pytest.raises(BpnetError, match=r"^build_model: model\.stages must be (>= 1|<= 10) \(got -?\d+\)$"):
        build_model({"stages": stages}, pose)


def test_channel_counts_must_match_pose(pose, pose17):
    with pytest.raises(BpnetError, match=r"heat_channels is 19 but pose config .*needs 18 \(17 joints"):
        build_model({"stages": 1, "heat_channels": 19, "paf_channels": 38}, pose17)
    with pytest.raises(BpnetError, match=r"paf_channels is 36 but .*needs 38"):
        build_model({"stages": 1, "paf_channels": 36}, pose)


def test_channel_counts_from_train_spec(pose17):
    from bpnet_core.config import TrainSpec

    spec = TrainSpec.from_dict({"model": {"stages": 1, "width_multiplier": 0.125}}, source="x.yaml")
    with pytest.raises(BpnetError, match=r"x\.yaml: model\.heat_channels is 19"):
        build_model(spec, pose17)


def test_unknown_model_key(pose):
    with pytest.raises(BpnetError, match=r"unknown key 'model\.stagse' \(did you mean 'stages'\?\)"):
        build_model({"stagse": 2}, pose)
    with pytest.raises(
        BpnetError,
        match=r"model\.backbone_attributes\.architecture must be one of 'vgg', 'mobilenet_v2' or 'mobilenet_v1'",
    ):
        build_model({"architecture": "resnet"}, pose)


# ------------------------------------------------------------------------------------------------- weights from files


@pytest.mark.parametrize("suffix", [".weights.h5", ".keras"])
def test_pretrained_weights_roundtrip(suffix, tmp_path, pose):
    keras.utils.set_random_seed(1)
    a = tiny(pose, stages=2)
    path = tmp_path / f"a{suffix}"
    a.save_weights(path) if suffix == ".weights.h5" else a.save(path)
    keras.utils.set_random_seed(2)
    b = tiny(pose, stages=2)
    x = np.random.default_rng(0).normal(size=(1, 32, 32, 3)).astype(np.float32)
    assert not np.allclose(np.asarray(a(x)[-1]), np.asarray(b(x)[-1]))
    report = load_pretrained_weights(b, path)
    assert report["missing"] == [] and "block1_conv1" in report["loaded"]
    for u, v in zip(a(x), b(x)):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), atol=1e-6)


@pytest.mark.slow  # builds and saves three models
def test_pretrained_weights_of_another_architecture(tmp_path, pose):
    other = tiny(pose, stages=2, architecture="mobilenet_v2")
    path = tmp_path / "mnv2.weights.h5"
    other.save_weights(path)
    model = tiny(pose, stages=2)
    expected = (
        r"another architecture: \d+ layers not found in the file: block1_conv1, block1_conv1_bn, .*; "
        r"1 layers have other shapes: channel_reduction_conv"
    )
    with pytest.raises(BpnetError, match=expected):
        load_pretrained_weights(model, path)
    wider = build_model({**TINY, "stages": 2, "width_multiplier": 0.25}, pose)
    wpath = tmp_path / "wide.keras"
    wider.save(wpath)
    with pytest.raises(BpnetError, match=r"layers have other shapes: block1_conv1 \(model 3x3x3x8, file 3x3x3x16\)"):
        load_pretrained_weights(model, wpath)


def test_pretrained_weights_missing_or_unreadable(tmp_path, pose):
    model = tiny(pose, stages=1)
    with pytest.raises(BpnetError, match="pretrained_weights file not found"):
        load_pretrained_weights(model, tmp_path / "nope.keras")
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a zip")
    with pytest.raises(BpnetError, match="cannot read weights"):
        load_pretrained_weights(model, bad)
    tlt = tmp_path / "model.tlt"
    tlt.write_bytes(b"\x00" * 16)
    with pytest.raises(BpnetError, match="encrypted"):
        load_pretrained_weights(model, tlt)


def test_pretrained_weights_with_fewer_stages_warns(tmp_path, pose, caplog):
    two = tiny(pose, stages=2)
    path = tmp_path / "two.weights.h5"
    two.save_weights(path)
    three = tiny(pose, stages=3)
    with caplog.at_level(logging.WARNING, logger="bpnet_core.model"):
        report = load_pretrained_weights(three, path)
    assert "stage3_conv1" in report["missing"] and "stage2_conv1" in report["loaded"]
    assert any("keep their initialisation" in r.getMessage() for r in caplog.records)


def test_imagenet_offline_falls_back_with_one_warning(monkeypatch, pose, caplog):
    from bpnet_core.config import TrainSpec

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -3]")

    monkeypatch.setattr(keras.applications, "VGG19", offline)
    spec = TrainSpec.from_dict({"pretrained_weights": "imagenet", "model": {"stages": 1, "width_multiplier": 0.125}})
    with caplog.at_level(logging.WARNING):
        model = model_from_spec(spec, pose)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("bpnet_core")]
    assert len(warnings) == 1 and "ImageNet weights for vgg are not available" in warnings[0].getMessage()
    assert output_names(model) == ["heatmap_out", "paf_out"]


def test_imagenet_kernels_are_copied_by_name(monkeypatch, pose):
    """A stand-in for keras.applications.VGG19: kernels copy over by name, BGR → RGB for the first conv."""
    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="block1_conv1")(inp)
    x = keras.layers.Conv2D(99, 3, padding="same", name="block1_conv2")(x)  # other width: skipped
    ref = keras.Model(inp, x)
    monkeypatch.setattr(keras.applications, "VGG19", lambda **kw: ref)
    model = tiny(pose, stages=1)
    assert load_imagenet_weights(model, "vgg", 0.125) == 1
    src = np.asarray(ref.get_layer("block1_conv1").kernel)
    np.testing.assert_array_equal(np.asarray(model.get_layer("block1_conv1").kernel), src[:, :, ::-1, :])


def test_load_graph(tmp_path, pose, pose17):
    from bpnet_core.config import TrainSpec

    model = tiny(pose, stages=2)
    path = tmp_path / "pruned.keras"
    model.save(path)
    spec = TrainSpec.from_dict({"pretrained_weights": str(path), "load_graph": True, "model": {"stages": 6}})
    loaded = model_from_spec(spec, pose)
    assert len(loaded.outputs) == 4  # the file's graph, not the spec's 6 stages
    with pytest.raises(BpnetError, match="predicts 19 heatmap / 38 PAF channels but pose config"):
        load_bpnet_model(path, pose17)
    with pytest.raises(BpnetError, match="model file not found"):
        load_bpnet_model(tmp_path / "missing.keras", pose)


def _l1(model) -> float:
    """Σ |kernel| over the convolutions of ``model``."""
    kinds = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)
    return sum(float(np.sum(np.abs(np.asarray(layer.kernel)))) for layer in model.layers if isinstance(layer, kinds))


@pytest.mark.slow  # saves and loads a model per architecture (1-3 s each)
@pytest.mark.parametrize("arch", ["vgg", "mobilenet_v2"])
def test_load_graph_takes_the_specs_regularizers(arch, tmp_path, pose):
    """A loaded graph (load_graph) is regularised as the spec says, not as the file was saved: its L1 term is the
    spec's factor x Σ|kernel| (biases: factor 0 here), and a factor of 0 removes the term."""
    from bpnet_core.config import TrainSpec

    saved = tiny(pose, stages=1, architecture=arch, kernel_regularization_factor=0.5, bias_regularization_factor=0.5)
    path = tmp_path / "graph.keras"
    saved.save(path)

    def load(**reg):
        model = {"backbone_attributes": {"architecture": arch}, "regularization_type": "l1", **reg}
        return model_from_spec(TrainSpec.from_dict({"pretrained_weights": str(path), "load_graph": True,
                                                    "model": model}), pose)  # fmt: skip

    loaded = load(kernel_regularization_factor=1e-3, bias_regularization_factor=0)
    assert float(sum(loaded.losses)) == pytest.approx(1e-3 * _l1(loaded), rel=1e-4)
    depthwise = [layer for layer in loaded.layers if isinstance(layer, keras.layers.DepthwiseConv2D)]
    assert all(isinstance(layer.depthwise_regularizer, keras.regularizers.L1) for layer in depthwise)
    assert (arch == "mobilenet_v2") == bool(depthwise)
    biased = [layer for layer in loaded.layers if getattr(layer, "use_bias", False) and hasattr(layer, "kernel")]
    assert biased and all(layer.bias_regularizer is None and layer.bias.regularizer is None for layer in biased)
    assert load(kernel_regularization_factor=0, bias_regularization_factor=0).losses == []
    default = load()  # the schema's default (TAO: 1e-9 on kernels and biases; the biases are still 0)
    assert float(sum(default.losses)) == pytest.approx(1e-9 * _l1(default), rel=1e-4)
