"""INT8 with ONNX Runtime: static post-training quantisation (QDQ, per-channel weights) for the CPU.

``quant_pre_process`` (graph optimisation + shape inference) → ``quantize_static`` with a
``CalibrationDataReader`` over calibration images pre-processed exactly like inference
(:class:`bpnet_core.int8.calibration.CalibrationBatcher`). Activations are unsigned 8-bit and weights signed
8-bit per output channel (ONNX Runtime's recommendation for x86 CPUs; VNNI CPUs run it fastest). Calibration
methods: ``minmax`` (default; fast), ``entropy`` (KL divergence over a 1024-bin histogram, TensorRT's choice;
slower) and ``percentile`` (99.999 %).

Dynamic quantisation is not offered: on convolution networks it is slower than FP32 on the CPU (activations are
re-quantised on the fly at every layer).
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import logging
import os
import tempfile
from pathlib import Path

from bpnet_core.errors import BpnetError
from bpnet_core.int8.calibration import ort_calibration_reader

log = logging.getLogger(__name__)

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


def _method(name: str):
    from onnxruntime.quantization import CalibrationMethod

    table = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
             "percentile": CalibrationMethod.Percentile}  # fmt: skip
    key = str(name).lower()
    if key not in table:
        raise BpnetError(f"--calibration_method must be one of {', '.join(CALIBRATION_METHODS)} (got {name!r})")
    return table[key]


def ort_cache_names(path: str | os.PathLike) -> set[str]:
    """Tensor names in an ONNX Runtime calibration cache (JSON written by ``quantize_static``)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BpnetError(f"{path}: not an ONNX Runtime calibration cache (JSON): {exc}") from None
    if not isinstance(data, dict):
        raise BpnetError(f"{path}: not an ONNX Runtime calibration cache (JSON object expected)")
    ranges = data.get("data", data)
    if not isinstance(ranges, dict) or not ranges:
        raise BpnetError(f"{path}: not an ONNX Runtime calibration cache (no tensor ranges)")
    return {k for k in ranges if isinstance(k, str)}


def check_ort_cache(path: str | os.PathLike, proto) -> None:
    """An ONNX Runtime cache must hold the ranges of this graph: its tensors must be tensors of the graph, and the
    graph's convolution outputs must be in it (else it was calibrated on another model)."""
    names = ort_cache_names(path)
    known = names & tensor_names(proto)
    convs = {o for n in proto.graph.node if n.op_type == "Conv" for o in n.output}
    covered = len(convs & names) / max(1, len(convs))
    if len(known) < 0.9 * len(names) or covered < 0.9:
        raise BpnetError(
            f"{path}: calibration cache of another model ({len(known)} of its {len(names)} tensors are in this "
            f"network, which has {len(convs)} convolutions): delete it or use --force_ptq to recalibrate"
        )


ENTROPY_BINS = 1024  # histogram bins; the KL search runs over thresholds of 128 quantised bins (TensorRT: 2048)


def _entropy_ranges(model_path: Path, reader, out: Path, tmp: Path) -> None:
    """KL-divergence (entropy) ranges with a real histogram. ``quantize_static`` builds its entropy calibrator with
    128 bins = 128 quantised bins, where the only threshold left is the full range, i.e. MinMax; here the
    histogram has :data:`ENTROPY_BINS` bins. The ranges go to ONNX Runtime's calibration cache format."""
    from onnxruntime.quantization import CalibrationMethod
    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    ops = sorted(set(QLinearOpsRegistry) | set(QDQRegistry))
    calibrator = create_calibrator(model_path, ops, augmented_model_path=str(tmp / "augmented.onnx"),
                                   calibrate_method=CalibrationMethod.Entropy,
                                   extra_options={"num_bins": ENTROPY_BINS, "num_quantized_bins": 128})  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):  # ONNX Runtime prints progress lines here
        calibrator.collect_data(reader)
        data = calibrator.compute_data()
    save_tensors_data(data, out)


def supports_ort_cache() -> bool:
    from onnxruntime.quantization import quantize_static

    return "calibration_cache_path" in inspect.signature(quantize_static).parameters


def quantize_int8(
    fp32_proto,
    output_path: str | os.PathLike,
    batcher,
    input_name: str = "input_1",
    method: str = "minmax",
    per_channel: bool = True,
    cache_file: str | os.PathLike | None = None,
    force: bool = False,
) -> dict:
    """Quantise ``fp32_proto`` (an ``onnx.ModelProto``) to a QDQ INT8 model written to ``output_path``.

    ``cache_file``: ONNX Runtime's JSON calibration cache (activation ranges). An existing cache of this model is
    reused (no calibration run) unless ``force``; a cache of another model is an error. Returns a report.
    """
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quant_pre_process, quantize_static

    calibrate_method = _method(method)
    report: dict = {"method": method.lower(), "per_channel": per_channel, "format": "QDQ",
                    "activations": "uint8", "weights": "int8"}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bpnet_quant_") as tmp:
        src, pre = Path(tmp) / "fp32.onnx", Path(tmp) / "pre.onnx"
        onnx.save(fp32_proto, str(src))
        try:
            import sympy  # noqa: F401

            skip_symbolic = False
        except ImportError:  # ONNX shape inference suffices for this conv-only graph
            skip_symbolic = True
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=skip_symbolic)
        kwargs = {}
        cache = Path(cache_file) if cache_file else None
        if cache is not None and supports_ort_cache():
            if cache.is_file() and force:
                cache.unlink()
            if cache.is_file():
                check_ort_cache(cache, onnx.load(str(pre)))
                report["calibration_cache"] = {"path": str(cache), "reused": True}
            else:
                report["calibration_cache"] = {"path": str(cache), "reused": False}
            kwargs["calibration_cache_path"] = str(cache)
        elif cache is not None:
            log.warning("this ONNX Runtime cannot cache calibration ranges; %s is not used", cache)
        reader = None
        if not report.get("calibration_cache", {}).get("reused"):
            reader = ort_calibration_reader(batcher, input_name)
            if report["method"] == "entropy" and not supports_ort_cache():
                log.warning("this ONNX Runtime cannot take precomputed ranges, and its own entropy calibration "
                            "(128 bins) gives MinMax ranges; a newer one (quantize_static with "
                            "calibration_cache_path) gets real entropy ranges")  # fmt: skip
            elif report["method"] == "entropy":
                ranges = Path(cache) if cache is not None else Path(tmp) / "entropy.json"
                _entropy_ranges(pre, reader, ranges, Path(tmp))
                report["calibration_batches"] = reader.batches
                kwargs["calibration_cache_path"], reader = str(ranges), None
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # percentile calibration prints progress lines
                quantize_static(
                    str(pre), str(output_path), reader, quant_format=QuantFormat.QDQ, per_channel=per_channel,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibrate_method=calibrate_method,
                    extra_options={"CalibMovingAverage": False}, **kwargs,
                )  # fmt: skip
        except ValueError as exc:
            raise BpnetError(f"INT8 quantisation failed: {str(exc).splitlines()[0][:200]}") from None
        if reader is not None:
            report["calibration_batches"] = reader.batches
        if "calibration_batches" in report:
            report["calibration_images"] = report["calibration_batches"] * batcher.batch_size
            report["skipped_images"] = list(batcher.skipped)
            if report["calibration_batches"] == 0:
                raise BpnetError("INT8 calibration saw no batch (no usable calibration images)")
    return report


def tensor_names(proto) -> set[str]:
    """Every tensor name of the graph (inputs, outputs, node outputs, initializers)."""
    g = proto.graph
    names = {i.name for i in g.input} | {o.name for o in g.output} | {i.name for i in g.initializer}
    for node in g.node:
        names.update(node.output)
    return names
