"""TAO's ``export --sdk_compatible_model``: the deployable ("SDK-compatible") layout DeepStream's bodypose2d app reads.

>>> export_model("bpnet_model.keras", "bodypose_ds.onnx", input_dims="288,384,3", sdk_compatible_model=True,
...              upsample_ratio=4)

The graph is the normal export's last stage (``--output_stages last``) with three changes made on the ONNX graph:

=====================================  ======================  ====================================================
tensor                                 shape (r = 4)           what
=====================================  ======================  ====================================================
``input_1:0``                          (N, H, W, 3)            the input, renamed (NHWC only, as TAO)
``conv2d_transpose_1/BiasAdd:0``       (N, H/2, W/2, 2L)       the PAF through a transposed convolution: 2L filters,
                                                               kernel r×r, strides r, kernel[:, :, i, i] = 1, bias 0
                                                               — exactly nearest-neighbour upsampling ×r
``heatmap_out/BiasAdd:0``              (N, H/8, W/8, J + 1)    the last stage's heatmap, renamed
=====================================  ======================  ====================================================

Outputs are in TAO's order ``[paf_up, heatmap]``. The file's contract says PAF stride 8 / r, so bpnet's runners and
:class:`~bpnet_core.infer.Predictor` decode it directly (the heatmap at stride 8, the PAFs sampled on their own
grid). Before anything is written the SDK graph is run next to the normal export on the parity image: the heatmap
must be identical and the PAF equal to nearest ×r of the normal PAF (max abs difference ≤ 1e-5 each).

Deviation from TAO: opset 17 (tf2onnx's, as every bpnet export) instead of TAO's 10; TensorRT 8.6+ and DeepStream
6.2+ read both.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bpnet_core.errors import BpnetError
from bpnet_core.export.onnx import onnx_session, parity_batch, parse_input_dims, set_meta
from bpnet_core.fileio import write_bytes_atomic
from bpnet_core.meta import MapOutput, StageOutputs, read_meta

SDK_INPUT = "input_1:0"
SDK_HEATMAP = "heatmap_out/BiasAdd:0"
SDK_PAF = "conv2d_transpose_1/BiasAdd:0"
DEFAULT_UPSAMPLE_RATIO = 4
SDK_TOLERANCE = 1e-5
LAST_STAGE = ("heatmap_out", "paf_out")  # TAO's (and bpnet's) names of the last stage's output layers


def check_upsample_ratio(value, stride: int = 8) -> int:
    """``-u/--upsample_ratio``: a positive integer that divides the map stride (the PAF stride becomes stride / r)."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        f = float("nan")
    if isinstance(value, bool) or not np.isfinite(f) or f != int(f) or int(f) < 1:
        raise BpnetError(f"-u/--upsample_ratio must be a positive integer (got {value!r})")
    r = int(f)
    if stride % r:
        ok = ", ".join(str(d) for d in range(1, stride + 1) if stride % d == 0)
        raise BpnetError(f"-u/--upsample_ratio {r} does not divide the map stride {stride}: the PAF stride would be "
                         f"{stride}/{r} input pixels, not a whole number (use {ok})")  # fmt: skip
    return r


def check_sdk_request(model, backend: str, data_format: str, upsample_ratio) -> int:
    """The flag combinations ``--sdk_compatible_model`` accepts (checked before any work); returns the ratio."""
    r = check_upsample_ratio(upsample_ratio)
    if isinstance(model, (str, os.PathLike)) and Path(model).suffix.lower() not in (".keras", ".hdf5", ".h5",
                                                                                      ".onnx"):  # fmt: skip
        raise BpnetError(f"{model}: --sdk_compatible_model exports a .keras / TAO .hdf5 model or a bpnet .onnx "
                         f"(got {Path(model).suffix or 'no suffix'}; for an OpenVINO IR, export its ONNX)")  # fmt: skip
    if backend != "onnx":
        raise BpnetError(f"--sdk_compatible_model writes ONNX for DeepStream/TensorRT: use --backend onnx "
                         f"(got {backend})")  # fmt: skip
    if data_format != "channels_last":
        raise BpnetError("--sdk_compatible_model: DeepStream's model takes NHWC input (network-input-order=1): use "
                         "-i channels_last")  # fmt: skip
    return r


def check_last_stage(keras_model, source) -> None:
    """The SDK layout is built from the last stage's ``heatmap_out`` / ``paf_out`` outputs."""
    from bpnet_core.model import output_names

    names = output_names(keras_model)
    s = len(names) // 2
    have = (names[s - 1], names[-1]) if s else ()
    if tuple(have) != LAST_STAGE:
        raise BpnetError(f"{source}: --sdk_compatible_model needs the last stage's outputs heatmap_out and paf_out, "
                         f"but the model's outputs are {names} (a truncated model has no last stage)")  # fmt: skip


def upsample_nearest(maps: np.ndarray, ratio: int) -> np.ndarray:
    """Nearest-neighbour ×ratio of NHWC maps (what the transposed convolution computes)."""
    return np.repeat(np.repeat(maps, ratio, axis=1), ratio, axis=2)


def _rename(graph, old: str, new: str) -> None:
    for node in graph.node:
        for k, n in enumerate(node.input):
            if n == old:
                node.input[k] = new
        for k, n in enumerate(node.output):
            if n == old:
                node.output[k] = new
    for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
        if vi.name == old:
            vi.name = new


def sdk_meta(meta, ratio: int, name: str | None = None):
    """The contract of the SDK graph made from an export whose contract is ``meta`` (its last stage)."""
    last = meta.stage()
    if last.stage != meta.num_stages:
        raise BpnetError(f"{meta.name}: --sdk_compatible_model needs the last stage ({meta.num_stages}); the model "
                         f"provides stage(s) {meta.available_stages}")  # fmt: skip
    heat, paf = last.heatmaps, last.pafs
    check_upsample_ratio(ratio, paf.stride)
    out = StageOutputs(last.stage, MapOutput(SDK_HEATMAP, 0, heat.channels, heat.stride, "NHWC"),
                       MapOutput(SDK_PAF, 0, paf.channels, paf.stride // ratio, "NHWC"))  # fmt: skip
    return meta.with_changes(
        name=name or meta.name,
        input_name=SDK_INPUT,
        layout="NHWC",
        outputs=(out,),
        provenance={**meta.provenance, "sdk_compatible": {"upsample_ratio": ratio, "layout": "TAO deployable"}},
    )


def to_sdk_graph(proto, meta, ratio: int, name: str | None = None):
    """The SDK-compatible graph (a new ``onnx.ModelProto``) and its contract, from a bpnet ONNX export ``proto`` whose
    contract ``meta`` has the last stage's heatmap and PAF as whole NHWC outputs."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    last = meta.stage()
    heat, paf = last.heatmaps, last.pafs
    for m in (heat, paf):
        if m.layout != "NHWC":
            raise BpnetError(f"{meta.name}: output {m.name} is {m.layout}; the SDK layout is built from NHWC maps")
    if meta.layout != "NHWC":
        raise BpnetError(f"{meta.name}: the SDK layout takes NHWC input; re-export with -i channels_last")
    new_meta = sdk_meta(meta, ratio, name)
    m = onnx.ModelProto()
    m.CopyFrom(proto)
    g = m.graph
    outs = {o.name: o for o in g.output}
    for n in (heat.name, paf.name):
        if n not in outs:
            raise BpnetError(f"{meta.name}: the graph has no output {n!r} (outputs: {sorted(outs)})")
    if meta.input_name not in {i.name for i in g.input}:
        raise BpnetError(f"{meta.name}: the graph has no input {meta.input_name!r}")
    c = paf.channels
    paf_dims = [d for d in outs[paf.name].type.tensor_type.shape.dim]

    def whole(m) -> bool:  # the map is the whole output tensor (bpnet's exports), not a channel slice of one
        dims = outs[m.name].type.tensor_type.shape.dim
        return m.start == 0 and heat.name != paf.name and len(dims) == 4 and dims[3].dim_value == m.channels

    def up(d):
        return d.dim_value * ratio if d.HasField("dim_value") and d.dim_value > 0 else None

    up_shape = [(paf_dims[0].dim_value if paf_dims[0].HasField("dim_value") else paf_dims[0].dim_param or "N"),
                up(paf_dims[1]) or "H_paf", up(paf_dims[2]) or "W_paf", c]  # fmt: skip
    _rename(g, meta.input_name, SDK_INPUT)
    paf_src = paf.name
    if whole(heat) and whole(paf):
        _rename(g, heat.name, SDK_HEATMAP)
    else:  # one tensor holds both (an imported network, e.g. OpenPose's concat): slice the channels out
        for part, target in ((heat, SDK_HEATMAP), (paf, "paf_slice")):
            pre = f"{target.split('/')[0]}_slice"
            g.initializer.extend([numpy_helper.from_array(np.array([v], np.int64), f"{pre}/{k}")
                                  for k, v in (("starts", part.start), ("ends", part.stop), ("axes", 3))])  # fmt: skip
            g.node.append(helper.make_node("Slice", [part.name, f"{pre}/starts", f"{pre}/ends", f"{pre}/axes"],
                                           [target], name=f"{pre}/Slice"))  # fmt: skip
        paf_src = "paf_slice"
        heat_dims = [d for d in outs[heat.name].type.tensor_type.shape.dim]
        g.output.append(helper.make_tensor_value_info(SDK_HEATMAP, TensorProto.FLOAT, [
            d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or f"d{i}")
            for i, d in enumerate(heat_dims[:3])] + [heat.channels]))  # fmt: skip
    kernel = np.zeros((c, c, ratio, ratio), np.float32)  # ONNX ConvTranspose weight: (C_in, C_out, kH, kW)
    kernel[np.arange(c), np.arange(c)] = 1.0
    g.initializer.extend([numpy_helper.from_array(kernel, "conv2d_transpose_1/kernel"),
                          numpy_helper.from_array(np.zeros(c, np.float32), "conv2d_transpose_1/bias")])  # fmt: skip
    g.node.extend([
        helper.make_node("Transpose", [paf_src], ["conv2d_transpose_1/input_nchw"], perm=[0, 3, 1, 2],
                         name="conv2d_transpose_1/to_nchw"),
        helper.make_node("ConvTranspose", ["conv2d_transpose_1/input_nchw", "conv2d_transpose_1/kernel",
                                           "conv2d_transpose_1/bias"], ["conv2d_transpose_1/BiasAdd_nchw"],
                         kernel_shape=[ratio, ratio], strides=[ratio, ratio], name="conv2d_transpose_1"),
        helper.make_node("Transpose", ["conv2d_transpose_1/BiasAdd_nchw"], [SDK_PAF], perm=[0, 2, 3, 1],
                         name="conv2d_transpose_1/to_nhwc"),
    ])  # fmt: skip
    heat_vi = next(o for o in g.output if o.name == SDK_HEATMAP)
    paf_vi = helper.make_tensor_value_info(SDK_PAF, TensorProto.FLOAT, up_shape)
    keep = onnx.ValueInfoProto()
    keep.CopyFrom(heat_vi)
    del g.output[:]
    g.output.extend([paf_vi, keep])
    set_meta(m, new_meta)
    try:
        onnx.checker.check_model(m)
    except Exception as exc:  # noqa: BLE001 - the checker raises several types
        raise BpnetError(
            f"{meta.name}: the SDK-compatible graph is invalid ({str(exc).splitlines()[0][:160]})"
        ) from None
    return m, new_meta


def compare_with_reference(reference: dict[str, np.ndarray], session, batch: np.ndarray, ratio: int,
                           heat_name: str, paf_name: str) -> dict:  # fmt: skip
    """Run the SDK graph (``session``) on ``batch``; max abs difference of its heatmap to ``reference[heat_name]`` and
    of its PAF to nearest ×ratio of ``reference[paf_name]``."""
    inp = session.get_inputs()[0].name
    got = dict(zip([o.name for o in session.get_outputs()],
                   session.run(None, {inp: np.ascontiguousarray(batch, np.float32)})))  # fmt: skip
    want_paf = upsample_nearest(np.asarray(reference[paf_name], np.float32), ratio)
    want_heat = np.asarray(reference[heat_name], np.float32)
    per = {}
    for name, want in ((SDK_HEATMAP, want_heat), (SDK_PAF, want_paf)):
        g = np.asarray(got[name], np.float32)
        if g.shape != want.shape:
            raise BpnetError(f"SDK output {name} has shape {g.shape}, expected {want.shape}")
        per[name] = float(np.max(np.abs(g - want)))
    scale = max(float(np.max(np.abs(want_heat))), float(np.max(np.abs(want_paf))))
    mx = max(per.values())
    return {"max_abs_diff": mx, "per_output": per, "max_abs_value": scale,
            "relative_diff": mx / scale if scale > 0 else 0.0, "input_shape": list(batch.shape),
            "shapes": {k: list(np.asarray(v).shape) for k, v in got.items()}}  # fmt: skip


def make_sdk_model(proto, meta, ratio: int, batch: np.ndarray, name: str | None = None,
                   tolerance: float = SDK_TOLERANCE):  # fmt: skip
    """:func:`to_sdk_graph` plus the check against the normal export ``proto`` on ``batch`` (ONNX Runtime, CPU).
    Returns ``(sdk proto, sdk meta, report)``; a difference above ``tolerance`` is an error."""
    sdk_proto, sdk = to_sdk_graph(proto, meta, ratio, name)
    ref_sess = onnx_session(proto)
    heat, paf = meta.stage().heatmaps, meta.stage().pafs
    got = dict(
        zip(
            [o.name for o in ref_sess.get_outputs()],
            ref_sess.run(None, {ref_sess.get_inputs()[0].name: np.ascontiguousarray(batch, np.float32)}),
        )
    )
    ref = {"heat": got[heat.name][..., heat.start : heat.stop], "paf": got[paf.name][..., paf.start : paf.stop]}
    report = compare_with_reference(ref, onnx_session(sdk_proto), batch, ratio, "heat", "paf")
    report["upsample_ratio"] = ratio
    report["paf_stride"] = sdk.pafs().stride
    if not report["max_abs_diff"] <= tolerance:
        raise BpnetError(f"the SDK-compatible graph differs from the normal export by {report['max_abs_diff']:.3g} "
                         f"(> {tolerance:g}); nothing written")  # fmt: skip
    return sdk_proto, sdk, report


def compare_with_keras(keras_model, session, batch: np.ndarray, ratio: int) -> dict:
    """The written SDK file (any precision) vs the Keras model: heatmap vs ``heatmap_out``, PAF vs nearest ×ratio of
    ``paf_out``."""
    from bpnet_core.model import output_names

    outs = keras_model(batch, training=False)
    ref = dict(zip(output_names(keras_model), [np.asarray(o) for o in outs]))
    return compare_with_reference(ref, session, batch, ratio, LAST_STAGE[0], LAST_STAGE[1])


def fix_input_size(proto, meta, hw):
    """``proto`` with its (NHWC) input's H and W fixed to ``hw`` and shapes re-inferred."""
    import onnx

    dims = next(i for i in proto.graph.input if i.name == meta.input_name).type.tensor_type.shape.dim
    for d, v in zip((dims[1], dims[2]), hw):
        d.Clear()
        d.dim_value = int(v)
    del proto.graph.value_info[:]
    for o in proto.graph.output:
        for d in o.type.tensor_type.shape.dim[1:3]:
            d.Clear()
    return onnx.shape_inference.infer_shapes(proto)


def export_imported_sdk(model, output_file, ratio: int, input_dims=None, cal_image_dir=None,
                        data_type: str = "fp32") -> dict:  # fmt: skip
    """The SDK-compatible layout of a bpnet ``.onnx`` (an imported network, e.g. ``bpnet import_model``'s): its last
    stage's heatmap and PAF (sliced out when one tensor holds both), the PAF through the ×``ratio`` transposed
    convolution, ``input_1:0``; checked against the source on the parity image (≤ 1e-5) before it is written.
    The input stays as the network takes it (the contract's normalisation and colour order, which
    ``bpnet deepstream_config`` turns into ``net-scale-factor`` / ``offsets`` / ``model-color-format``). FP32
    (DeepStream builds FP16/INT8 engines from it), or INT8 when the source is a QDQ file (a QAT model's export:
    TensorRT builds the INT8 engine from its ranges, no calibration cache)."""
    import onnx

    src, out = Path(model), Path(output_file)
    meta = read_meta(src)
    qdq = data_type == "int8" and meta.precision == "int8"  # a QAT export: TensorRT builds INT8 from its quantisers
    if data_type != "fp32" and not qdq:
        raise BpnetError(f"{src}: --sdk_compatible_model of an imported network writes FP32 ONNX (DeepStream/TensorRT "
                         f"build the {data_type} engine from it; got --data_type {data_type})")  # fmt: skip
    if out.suffix.lower() != ".onnx":
        raise BpnetError(f"{out}: --sdk_compatible_model writes a .onnx file")
    hw = parse_input_dims(input_dims) or tuple(meta.input_hw or meta.inference.get("input_shape") or (368, 368))
    if meta.layout != "NHWC":
        raise BpnetError(f"{src}: takes {meta.layout} input; the SDK layout (input_1:0) is NHWC")
    proto = onnx.load(str(src))
    batch = parity_batch(tuple(hw), meta, cal_image_dir)
    if input_dims and meta.input_hw is None:  # -d fixes the input size, as TAO's export does (DeepStream's infer-dims)
        proto = fix_input_size(proto, meta, hw)
        meta = meta.with_changes(input_hw=(int(hw[0]), int(hw[1])))
    sdk_proto, sdk, report = make_sdk_model(proto, meta, ratio, batch, name=out.stem)
    write_bytes_atomic(out, sdk_proto.SerializeToString())  # creates a missing output folder
    return {"output_file": str(out), "bytes": out.stat().st_size, "data_type": data_type, "source": str(src),
            "input_dims": [int(hw[0]), int(hw[1]), 3], "outputs": [o.name for o in sdk_proto.graph.output],
            "sdk": report}  # fmt: skip
