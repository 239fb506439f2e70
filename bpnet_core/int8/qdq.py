"""One quantised file from a QAT model: QDQ ONNX with the ranges the network was fine-tuned with.

The QAT model is turned back into plain Keras layers (:func:`bpnet_core.int8.qat.to_float`) and converted with
tf2onnx like any bpnet model; ONNX Runtime's own quantiser (``quantize_static``, QDQ, per-channel INT8 weights,
UINT8 activations) then writes the Q/DQ pairs, with the activation ranges taken from the QAT model instead of a
calibration run (its calibration cache). Weights need no range: the runtime's per-channel symmetric rounding is
the one the QAT layers simulated. :func:`qdq_from_qat` checks the file: every Conv in INT8, and the same scales and
zero points on every tensor as the QAT model (:func:`grid_mismatches`); the export then checks its people on photos.

Mapping the Keras quantisers onto ONNX tensor names is done by value, not by name: the float ONNX graph and the
float Keras model run on one photo, and each ONNX tensor takes the range of the Keras tensor it equals (NCHW or
NHWC); tensors made by padding, pooling, transposes or reshapes take their input's range (the same grid).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from bpnet_core.errors import BpnetError
from bpnet_core.int8.fakequant import activation_scale_zero_point
from bpnet_core.int8.qat import INPUT_QUANT, observed_ranges, quantised_tensors

#: ONNX ops whose output keeps its input's quantisation grid.
SAME_GRID = ("Pad", "MaxPool", "Transpose", "Reshape", "Identity", "Squeeze", "Unsqueeze", "Flatten")
#: ONNX Runtime's name for a graph output's tensor before its Q/DQ pair (``<output>_QuantizeLinear_Input``).
OUTPUT_SUFFIX = "_QuantizeLinear_Input"
#: Relative tolerance of the value match between a Keras tensor and an ONNX tensor.
MATCH_TOLERANCE = 1e-4


def _nhwc_views(a: np.ndarray) -> list[np.ndarray]:
    views = [a]
    if a.ndim == 4:
        views.append(np.transpose(a, (0, 2, 3, 1)))
    return views


def map_ranges(proto, qat_model, float_model, batch: np.ndarray) -> dict[str, tuple[float, float]]:
    """``{ONNX tensor name: (r_min, r_max)}`` for every tensor of ``proto`` that carries a QAT quantiser's values
    (see the module docstring). ``batch``: one photo, NHWC, normalised as the model expects."""
    ranges = observed_ranges(qat_model)
    return {t: ranges[layer] for t, layer in match_tensors(proto, qat_model, float_model, batch).items()}


def match_tensors(proto, qat_model, float_model, batch: np.ndarray) -> dict[str, str]:
    """``{ONNX tensor name: QAT layer name}``: the quantiser whose values each ONNX tensor carries."""
    import onnx
    import onnxruntime as ort

    names, probe = quantised_tensors(qat_model, float_model)
    ref = probe(batch, training=False)
    ref = [np.asarray(r) for r in (ref if isinstance(ref, (list, tuple)) else [ref])]
    aug = onnx.ModelProto()
    aug.CopyFrom(proto)
    have = {o.name for o in aug.graph.output}
    init = {i.name for i in aug.graph.initializer}
    inferred = onnx.shape_inference.infer_shapes(proto)
    is_float = {v.name for v in inferred.graph.value_info if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}
    candidates = [o for n in aug.graph.node for o in n.output if o and o not in init and o in is_float]
    for t in candidates:
        if t not in have:
            aug.graph.output.append(onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(aug.SerializeToString(), so, providers=["CPUExecutionProvider"])
    outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {sess.get_inputs()[0].name: batch})))
    outs[proto.graph.input[0].name] = batch
    by_shape: dict[tuple, list[int]] = {}
    for i, r in enumerate(ref):
        by_shape.setdefault(r.shape, []).append(i)
    mapped: dict[str, str] = {}
    for t, value in outs.items():
        if not isinstance(value, np.ndarray) or value.dtype != np.float32:
            continue
        for view in _nhwc_views(value):
            hit = None
            for i in by_shape.get(view.shape, []):
                scale = max(float(np.abs(ref[i]).max()), 1e-6)
                if float(np.abs(view - ref[i]).max()) <= MATCH_TOLERANCE * scale:
                    hit = i
                    break
            if hit is not None:
                mapped[t] = names[hit]
                break
    for node in proto.graph.node:  # graph order: a pass-through op's input is mapped before its output
        if node.op_type in SAME_GRID and node.input[0] in mapped and node.output[0] not in mapped:
            mapped[node.output[0]] = mapped[node.input[0]]
        # a ReLU the runtime fuses into its convolution: the convolution's output takes the ReLU's grid
        if node.op_type == "Relu" and node.output[0] in mapped and node.input[0] not in mapped:
            mapped[node.input[0]] = mapped[node.output[0]]
    if proto.graph.input[0].name not in mapped and INPUT_QUANT in names:
        mapped[proto.graph.input[0].name] = INPUT_QUANT
    return mapped


def write_cache(ranges: dict[str, tuple[float, float]], path: str | os.PathLike) -> None:
    """ONNX Runtime's calibration cache (MinMax ranges) for ``quantize_static(calibration_cache_path=…)``."""
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorsData, save_tensors_data

    data = {k: (np.float32(lo), np.float32(hi)) for k, (lo, hi) in ranges.items()}
    save_tensors_data(TensorsData(CalibrationMethod.MinMax, data), path)


def quantize_with_ranges(proto, ranges: dict, output_path: str | os.PathLike) -> None:
    """QDQ INT8 of the float ONNX ``proto`` with the activation ranges ``ranges`` (no calibration run)."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    with tempfile.TemporaryDirectory(prefix="bpnet_qdq_") as tmp:
        src, cache = Path(tmp) / "float.onnx", Path(tmp) / "ranges.json"
        onnx.save(proto, str(src))
        write_cache(ranges, cache)
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # ONNX Runtime's quantiser warns on the root logger (pre-processing advice)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                quantize_static(str(src), str(output_path), None, quant_format=QuantFormat.QDQ, per_channel=True,
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                calibration_cache_path=str(cache),
                                extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})  # fmt: skip
        finally:
            root.setLevel(level)


def qdq_parameters(model) -> dict[str, tuple[float, int]]:
    """``{tensor: (scale, zero point)}`` of the per-tensor activation QuantizeLinear nodes of a QDQ ONNX model."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(model)) if isinstance(model, (str, os.PathLike)) else model
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    out = {}
    for n in proto.graph.node:
        if n.op_type == "QuantizeLinear" and n.input[1] in inits and inits[n.input[1]].size == 1:
            zp = inits[n.input[2]] if len(n.input) > 2 and n.input[2] in inits else np.zeros(1, np.uint8)
            out[n.input[0]] = (float(inits[n.input[1]].reshape(-1)[0]), int(zp.reshape(-1)[0]))
    return out


def float_convs(model) -> list[str]:
    """Conv nodes of a QDQ ONNX model whose weights are not INT8 (no DequantizeLinear feeds the weight input)."""
    import onnx

    proto = onnx.load(str(model)) if isinstance(model, (str, os.PathLike)) else model
    dq = {o for n in proto.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return [n.name for n in proto.graph.node if n.op_type == "Conv" and n.input[1] not in dq]


def grid_mismatches(qdq_model, ranges: dict[str, tuple[float, float]]) -> list[str]:
    """Tensors whose scale or zero point in the file differ from what the QAT layers computed from ``ranges``."""
    bad = []
    for t, (scale, zp) in qdq_parameters(qdq_model).items():
        t = t[: -len(OUTPUT_SUFFIX)] if t.endswith(OUTPUT_SUFFIX) and t not in ranges else t
        if t not in ranges:
            bad.append(f"{t} (no QAT range)")
            continue
        s, z = activation_scale_zero_point(*ranges[t])
        if z != zp or abs(s - scale) > 1e-6 * max(s, 1e-12):
            bad.append(f"{t} (file {scale:.6g}/{zp}, QAT {s:.6g}/{z})")
    return bad


def qdq_from_qat(qat_model, float_model, float_proto, batch: np.ndarray, output_path: str | os.PathLike) -> dict:
    """Write the QDQ INT8 file of ``qat_model`` to ``output_path``: ``float_proto`` is ``float_model``
    (:func:`~bpnet_core.int8.qat.to_float` of it) converted to ONNX; ``batch`` one photo for the tensor mapping.
    Refuses (one-line error) a file with a Conv left in float or a tensor whose grid differs from the QAT model's.
    Returns {"tensors_with_qat_ranges", "float_convs", "grid_mismatches"}."""
    ranges = map_ranges(float_proto, qat_model, float_model, batch)
    quantize_with_ranges(float_proto, ranges, output_path)
    floats = float_convs(output_path)
    bad = grid_mismatches(output_path, ranges)
    if floats or bad:
        what = f"Conv left in float: {floats[0]}" if floats else f"quantisation grid differs: {bad[0]}"
        raise BpnetError(f"QAT export: {what} ({len(floats)} float Conv, {len(bad)} grid mismatches)")
    return {"tensors_with_qat_ranges": len(ranges), "float_convs": floats, "grid_mismatches": bad}
