"""INT8 helpers for real networks (bpnet_core.int8.ptq_real) on a tiny synthetic ONNX graph.

The graph mimics the part of mobilenet_thin that breaks: a depthwise convolution whose channels have very
different scales, fed straight into a pointwise 1×1 convolution, then a head with "heatmap" and "PAF" channels.
"""

from __future__ import annotations

import numpy as np
import pytest

from bpnet_core.errors import BpnetError

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

C, PW, HEAD, HM = 4, 8, 5, 2  # channels, pointwise outputs, head outputs, "heatmap" channels of the head


def _tiny_model(path):
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    channel_scale = np.array([50, 1, 0.2, 0.05], np.float32)[:, None, None, None]
    dw = rng.normal(size=(C, 1, 3, 3)).astype(np.float32) * channel_scale
    pw = rng.normal(size=(PW, C, 1, 1)).astype(np.float32) * 0.5
    head = rng.normal(size=(HEAD, PW, 1, 1)).astype(np.float32) * 0.1
    inits = [numpy_helper.from_array(dw, "dw_w"), numpy_helper.from_array(pw, "pw_w"),
             numpy_helper.from_array(np.zeros(PW, np.float32), "pw_b"), numpy_helper.from_array(head, "head_w"),
             ]  # fmt: skip
    nodes = [
        helper.make_node("Transpose", ["x"], ["xc"], name="to_nchw", perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["xc", "dw_w"], ["d"], name="blk/depthwise", group=C, pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["d", "pw_w", "pw_b"], ["p"], name="blk/pointwise"),
        helper.make_node("Relu", ["p"], ["r"], name="blk/relu"),
        helper.make_node("Conv", ["r", "head_w"], ["h"], name="head/conv"),
        helper.make_node("Transpose", ["h"], ["y"], name="to_nhwc", perm=[0, 2, 3, 1]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 8, C])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 8, HEAD])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return _tiny_model(tmp_path_factory.mktemp("int8") / "tiny.onnx")


@pytest.fixture(scope="module")
def batches():
    rng = np.random.default_rng(1)
    return [rng.uniform(0, 255, size=(1, 8, 8, C)).astype(np.float32) for _ in range(4)]


def test_equalize_is_exact_and_flattens_channel_ranges(tiny, batches):
    from bpnet_core.int8.ptq_real import (
        depthwise_pairs,
        equalize_depthwise,
        run_onnx,
    )

    assert depthwise_pairs(tiny) == [("blk/depthwise", "blk/pointwise")]
    eq, report = equalize_depthwise(tiny, batches)
    assert report["pairs"] == 1 and report["spread_after"] < report["spread_before"] / 4
    for a, b in zip(run_onnx(tiny, batches), run_onnx(eq, batches)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3 * np.abs(a).max())


def test_quantize_onnx_honours_exclusion(tiny, batches, tmp_path):
    from bpnet_core.int8.ptq_real import quantize_onnx_int8

    out = tmp_path / "q.onnx"
    report = quantize_onnx_int8(tiny, out, batches, exclude=["head/conv"])
    q = onnx.load(str(out))
    dq_out = {n.output[0] for n in q.graph.node if n.op_type == "DequantizeLinear"}
    conv = {n.name: n for n in q.graph.node if n.op_type == "Conv"}
    assert conv["head/conv"].input[1] not in dq_out  # float weights
    assert conv["blk/pointwise"].input[1] in dq_out  # int8 weights
    assert report["conv_float"] == ["head/conv"] and "head/conv" in report["kept_float"]
    assert report["conv_int8"] == 2
    with pytest.raises(BpnetError, match="not in"):
        quantize_onnx_int8(tiny, tmp_path / "x.onnx", batches, exclude=["nope"])
    with pytest.raises(BpnetError, match="method"):
        quantize_onnx_int8(tiny, tmp_path / "x.onnx", batches, method="kl")
    with pytest.raises(BpnetError, match="empty"):
        quantize_onnx_int8(tiny, tmp_path / "x.onnx", [])


def test_parity_flags_a_broken_model(tiny, batches, tmp_path):
    from bpnet_core.int8.ptq_real import (
        PARITY_SNR_DB_MIN,
        int8_parity,
        quantize_onnx_int8,
        run_onnx,
    )

    ref = run_onnx(tiny, batches)
    quantize_onnx_int8(tiny, tmp_path / "good.onnx", batches)
    good = int8_parity(ref, run_onnx(tmp_path / "good.onnx", batches), HM)
    assert good["passed"] and good["snr_db"] >= PARITY_SNR_DB_MIN
    # broken on purpose: the head's weights scrambled, as a wrong quantisation scale would
    q = onnx.load(str(tmp_path / "good.onnx"))
    for init in q.graph.initializer:
        if init.name.startswith("head_w") and init.data_type == onnx.TensorProto.INT8:
            arr = onnx.numpy_helper.to_array(init)[::-1].copy()
            init.CopyFrom(onnx.numpy_helper.from_array(arr, init.name))
    onnx.save(q, str(tmp_path / "bad.onnx"))
    bad = int8_parity(ref, run_onnx(tmp_path / "bad.onnx", batches), HM)
    assert not bad["passed"] and bad["snr_db"] < good["snr_db"]
    with pytest.raises(BpnetError):
        int8_parity(ref, ref[:1], HM)
    with pytest.raises(BpnetError):
        int8_parity(ref, ref, HEAD)


def test_sensitive_nodes_is_deterministic(tiny, batches):
    from bpnet_core.int8.ptq_real import sensitive_nodes

    a = sensitive_nodes(tiny, batches, target_db=200.0, max_groups=1, num_heatmaps=HM)
    b = sensitive_nodes(tiny, batches, target_db=200.0, max_groups=1, num_heatmaps=HM)
    assert a["exclude"] == b["exclude"] and len(a["groups"]) <= 1
    assert a["snr_db"][0] == pytest.approx(b["snr_db"][0])


@pytest.mark.slow  # an NNCF quantisation
def test_quantize_openvino_honours_ignored(tiny, batches):
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    from bpnet_core.int8.ptq_real import quantize_openvino_int8

    q, report = quantize_openvino_int8(str(tiny), batches, ignored=["head/conv"])
    assert "head/conv" in report["kept_float"] and report["equalize"]["pairs"] == 1
    fq = [op for op in q.get_ops() if op.get_type_name() == "FakeQuantize"]
    consumers = {t.get_node().get_friendly_name() for op in fq for t in op.output(0).get_target_inputs()}
    assert "head/conv" not in consumers and consumers
    with pytest.raises(BpnetError, match="not in"):
        quantize_openvino_int8(str(tiny), batches, ignored=["nope"])


def _float_nodes(path) -> set[str]:
    q = onnx.load(str(path))
    dq_out = {n.output[0] for n in q.graph.node if n.op_type == "DequantizeLinear"}
    return {n.name for n in q.graph.node if n.op_type == "Conv" and n.input[1] not in dq_out}


@pytest.mark.parametrize("ranking, needed", [("output_first", "head/conv"), ("sensitivity", "blk/depthwise")])
def test_accuracy_controlled_int8_reverts_until_validate_passes(tiny, batches, tmp_path, ranking, needed):
    from bpnet_core.int8.search import accuracy_controlled_int8

    calls = []

    def validate(path):  # a fake metric: fails until the `needed` Conv runs in float
        calls.append(path)
        return 1.0 if needed in _float_nodes(path) else 0.5

    out = tmp_path / "acc.onnx"
    rep = accuracy_controlled_int8(tiny, batches, validate, out, max_drop=0.1, reference_score=1.0, ranking=ranking)
    assert rep["passed"] and rep["score"] == 1.0 and rep["groups_float"] == [needed]
    assert _float_nodes(out) == {needed} and rep["steps"][0]["step"] == "all int8"
    assert len(calls) <= rep["groups_total"] + 3  # bounded: ranking (if any) + bisection
    again = accuracy_controlled_int8(tiny, batches, validate, tmp_path / "b.onnx", max_drop=0.1,
                                     reference_score=1.0, ranking=ranking)  # fmt: skip
    assert again["groups_float"] == rep["groups_float"]  # deterministic
    with pytest.raises(BpnetError, match="backend"):
        accuracy_controlled_int8(tiny, batches, validate, out, backend="tflite")


def test_decoded_agreement_decodes_fp32_once_per_search(pose, coco_sample_json):
    """The INT8 search scores every candidate against FP32's people: with ``reference_people`` FP32 runs once per
    photo for the whole search, and the score is the same as without it."""
    from bpnet_core.export.imported import decoded_agreement, reference_people
    from bpnet_core.runners import RenderedMapsSource

    class Counting(RenderedMapsSource):
        calls = 0

        def predict(self, *a, **k):
            Counting.calls += 1
            return super().predict(*a, **k)

        def predict_with_transforms(self, *a, **k):
            Counting.calls += 1
            return super().predict_with_transforms(*a, **k)

    sample = coco_sample_json.parent
    photos = sorted(sample.glob("*.jpg"))[:4]
    fp32, candidate = Counting(coco_sample_json, sample, pose), RenderedMapsSource(coco_sample_json, sample, pose)
    fresh = decoded_agreement(fp32, candidate, photos)
    assert Counting.calls == len(photos) and fresh["images"] == len(photos)
    assert fresh["AP"] > 0.9 and fresh["passed"]  # the same maps: the same people
    ref = reference_people(fp32, photos)
    runs = Counting.calls
    for _ in range(3):  # three candidates of a search
        assert decoded_agreement(fp32, candidate, photos, ref) == fresh
    assert Counting.calls == runs, "FP32 must not run again once its people are known"
    with pytest.raises(BpnetError, match="other photos"):
        decoded_agreement(fp32, candidate, photos[:2], ref)


def test_full_int8_refuses_what_it_cannot_quantise(tmp_path):
    """``full_int8`` (the fully-INT8 post-training baseline of notebook 05 and the bench) takes an FP32 ``.onnx``
    and writes ``.onnx`` or ``.xml``: anything else is a one-line error and nothing is written."""
    from bpnet_core.errors import BpnetError
    from bpnet_core.export.imported import full_int8

    with pytest.raises(BpnetError, match="full_int8 quantises an FP32 .onnx file"):
        full_int8(tmp_path / "model.keras", tmp_path / "out.onnx", tmp_path)
    with pytest.raises(BpnetError, match=r"write \.onnx \(ONNX Runtime\) or \.xml \(OpenVINO\)"):
        full_int8(tmp_path / "model.onnx", tmp_path / "out.engine", tmp_path)
    assert list(tmp_path.iterdir()) == []
