"""``bpnet export``: Keras → ONNX (FP32 / FP16 / INT8 for ONNX Runtime) and, where TensorRT is installed, an engine.

>>> report = export_model("bpnet_model.keras", "bpnet_model.onnx", input_dims="288,384,3", data_type="int8",
...                       cal_image_dir="calibration_samples/", batches=100)
>>> report["parity"]["max_abs_diff"], report["bytes"]

What happens, in order (nothing is written until every check has passed; files appear atomically):

1. flags are checked (``-d`` multiple of the stride, INT8 has calibration data, TensorRT installed for
   ``--engine_file``, calibration images readable);
2. the Keras model is converted with tf2onnx (dynamic batch; H, W fixed by ``-d`` or dynamic; all stages in TAO's
   order, or ``--output_stages last``; ``channels_first`` adds a transpose at the input);
3. **parity**: Keras and ONNX Runtime run on a real-looking image (the first calibration image, else a synthetic
   scene) pre-processed exactly as inference does; a max abs difference above 1e-3 is an error;
4. ``--data_type fp16``: weights and activations in float16 (input and outputs stay float32);
   ``--data_type int8``: ONNX Runtime static quantisation (QDQ, per-channel, calibrated on ``--cal_image_dir``
   images pre-processed with ``pad_image_input`` at the export size; ``--calibration_method``);
5. ``--engine_file``: a TensorRT engine of ``--data_type`` built from the FP32 ONNX graph (TensorRT calibrates INT8
   itself with ``IInt8EntropyCalibrator2``; cache in ``--cal_cache_file``).

Sub-modules: :mod:`~bpnet_core.export.onnx`, :mod:`~bpnet_core.int8.ptq`,
:mod:`~bpnet_core.int8.calibration`, :mod:`~bpnet_core.export.tensorrt` (lazy ``tensorrt`` import).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from bpnet_core.errors import BpnetError
from bpnet_core.export import onnx as ox
from bpnet_core.export import sdk
from bpnet_core.export.imported import export_imported
from bpnet_core.export.tensorrt import build_engine, import_tensorrt, plan_engine
from bpnet_core.fileio import atomic_path, make_dir, write_text_atomic
from bpnet_core.int8.calibration import (
    CalibrationBatcher,
    calibration_cache_path,
    check_calibration_cache,
    list_images,
    make_batcher,
    sample_calibration_images,
)
from bpnet_core.int8.ptq import CALIBRATION_METHODS, quantize_int8, tensor_names
from bpnet_core.meta import engine_sidecar, read_meta

log = logging.getLogger(__name__)

BACKENDS = ("onnx", "tfonnx", "openvino")
DATA_TYPES = ("fp32", "fp16", "int8")

__all__ = ["BACKENDS", "DATA_TYPES", "CalibrationBatcher", "ExportOptions", "calibration_cache_path",
           "check_calibration_cache", "export_model", "export_options", "list_images", "make_batcher",
           "sample_calibration_images"]  # fmt: skip


def _check_flags(output_file, backend, data_type, data_format, engine_file, cal_image_dir, cal_data_file,
                 cal_cache_file, batches, batch_size, parity_tolerance, calibration_method) -> None:  # fmt: skip
    if backend == "uff":
        raise BpnetError("-t/--backend uff (TensorRT 7's UFF) is not supported: use onnx")
    if backend not in BACKENDS:
        raise BpnetError(f"-t/--backend must be onnx (or TAO's alias tfonnx) or openvino, got {backend!r}")
    if backend == "openvino" and engine_file:
        raise BpnetError("--engine_file builds a TensorRT engine from ONNX: use --backend onnx")
    if data_type not in DATA_TYPES:
        raise BpnetError(f"--data_type must be one of {', '.join(DATA_TYPES)} (got {data_type!r})")
    if str(calibration_method).lower() not in CALIBRATION_METHODS:
        raise BpnetError(f"--calibration_method must be one of {', '.join(CALIBRATION_METHODS)} "
                         f"(got {calibration_method!r})")  # fmt: skip
    if data_format not in ("channels_last", "channels_first"):
        raise BpnetError(f"-i/--data_format must be channels_last or channels_first (got {data_format!r})")
    want = ".xml" if backend == "openvino" else ".onnx"
    if Path(output_file).suffix.lower() != want:
        raise BpnetError(f"{output_file}: the output file of --backend {backend} must end in {want}")
    make_dir(Path(output_file).parent, "output folder")
    if engine_file and Path(engine_file).resolve() == Path(output_file).resolve():
        raise BpnetError("--engine_file must differ from the ONNX output file")
    for flag, v in (("--batches", batches), ("--batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise BpnetError(f"{flag} must be a positive integer (got {v!r})")
    if not (isinstance(parity_tolerance, (int, float)) and parity_tolerance > 0):
        raise BpnetError(f"parity tolerance must be a positive number (got {parity_tolerance!r})")
    if data_type == "int8":
        have_data = bool(cal_image_dir) or (cal_data_file and Path(cal_data_file).is_file())
        have_cache = bool(cal_cache_file) and Path(cal_cache_file).is_file()
        if not (have_data or have_cache):
            raise BpnetError("--data_type int8 needs calibration data: give --cal_image_dir DIR (or an existing "
                             "--cal_data_file / --cal_cache_file)")  # fmt: skip
    if cal_image_dir:
        list_images(cal_image_dir)  # a missing or image-less folder fails now, before any work


def _load_keras(model, pose):
    """The Keras model to export and its contract: a ``.keras`` file's own, or built from ``pose`` for an in-memory
    model. ``pose`` given with a file is checked against the file's contract."""
    from bpnet_core.model import check_model_channels, model_meta
    from bpnet_core.model.tao import TAO_SUFFIXES, load_model_file

    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if path.suffix.lower() not in (".keras", *TAO_SUFFIXES):
            raise BpnetError(f"{path}: export takes a .keras model, a TAO 5 .hdf5 or a bpnet .onnx / .xml model (got "
                             f"{path.suffix or 'no suffix'})")  # fmt: skip
        if not path.is_file():
            raise BpnetError(f"{path}: model file not found")
        keras_model, meta = load_model_file(path)
        if pose is not None:
            check_model_channels(keras_model, pose, str(path))
    else:
        keras_model, path = model, Path(getattr(model, "name", "model"))
        if pose is None:
            raise BpnetError("exporting an in-memory Keras model needs its pose config (pose=...)")
        meta = model_meta(keras_model, pose)
    outs = keras_model.outputs
    if len(outs) < 2 or len(outs) % 2:
        raise BpnetError(f"{path}: not a BodyPoseNet model ({len(outs)} outputs; expected heatmaps + PAFs per stage)")
    return keras_model, path, meta


@dataclass(frozen=True)
class ExportOptions:
    """How :func:`export_model` exports: TAO's ``export`` flags (see the module docstring and ``bpnet export --help``).

    >>> export_model("m.keras", "m.onnx", ExportOptions(input_dims="288,384,3", data_type="fp16"))
    >>> export_model("m.keras", "m.onnx", input_dims="288,384,3")          # the same, as keyword overrides
    """

    #: ``-t``: ``onnx`` (TAO's alias ``tfonnx``) or ``openvino`` (an IR ``.xml``)
    backend: str = "onnx"
    #: ``-d``: ``"H,W,C"`` / ``"H,W"``; ``None`` = dynamic H and W
    input_dims: str | None = None
    #: ``-i``: ``channels_last`` or ``channels_first`` (a transpose at the input)
    data_format: str = "channels_last"
    #: ``fp32``, ``fp16`` or ``int8``
    data_type: str = "fp32"
    #: a TensorRT engine to build from the FP32 ONNX graph (needs TensorRT)
    engine_file: str | os.PathLike | None = None
    #: INT8 calibration images
    cal_image_dir: str | os.PathLike | None = None
    #: INT8 calibration tensors (TAO's ``--cal_data_file``)
    cal_data_file: str | os.PathLike | None = None
    #: INT8 calibration cache (TensorRT's, and ONNX Runtime's beside it as ``.ort.json``)
    cal_cache_file: str | os.PathLike | None = None
    #: calibration batches
    batches: int = 10
    #: calibration batch size
    batch_size: int = 1
    #: TensorRT engine: largest batch
    max_batch_size: int = 1
    #: TensorRT engine: batch the engine is tuned for
    opt_batch_size: int = 1
    #: a fixed batch dimension (``-1``: dynamic)
    static_batch_size: int = -1
    #: TensorRT builder workspace in bytes
    max_workspace_size: int = 2 << 30
    #: TensorRT: keep the requested precision in every layer
    strict_type_constraints: bool = False
    #: recalibrate even when a calibration cache exists
    force_ptq: bool = False
    #: ``all`` stages in TAO's order, or the ``last`` stage's two outputs
    output_stages: str = "all"
    #: ONNX Runtime INT8 calibration method
    calibration_method: str = "minmax"
    #: a :class:`~bpnet_core.skeleton.PoseConfig`, checked against the model's output widths and stored in the file
    pose: Any = None
    #: largest max abs difference accepted between ONNX and Keras
    parity_tolerance: float = 1e-3
    #: TAO's ``--sdk_compatible_model`` (:mod:`~bpnet_core.export.sdk`)
    sdk_compatible_model: bool = False
    #: the SDK graph's PAF upsampling ratio
    upsample_ratio: Any = 4


def export_options(options: ExportOptions | None = None, **overrides) -> ExportOptions:
    """``options`` (default :class:`ExportOptions`) with ``overrides`` replaced; an unknown keyword is an error."""
    if options is None:
        options = ExportOptions()
    elif not isinstance(options, ExportOptions):
        raise BpnetError(f"export_model: options must be an ExportOptions (got {type(options).__name__}); give "
                         "flags as keywords, e.g. backend='onnx'")  # fmt: skip
    known = {f.name for f in fields(ExportOptions)}
    for key in overrides:
        if key not in known:
            raise BpnetError(f"export_model: unknown option {key!r}")
    return replace(options, **overrides) if overrides else options


def export_model(model, output_file: str | os.PathLike, options: ExportOptions | None = None, **overrides) -> dict:
    """Export a Keras BodyPoseNet (path or ``keras.Model``) to ONNX (and optionally a TensorRT engine).

    ``options`` (:class:`ExportOptions`) mirror TAO's ``export`` flags (see the module docstring and
    ``bpnet export --help``); any of its fields may also be given as a keyword, which overrides ``options``.
    ``pose`` (a :class:`PoseConfig`) is checked against the model's output widths and stored in the file's metadata.

    Returns a report: ``output_file``, ``bytes``, ``data_type``, ``input_dims`` (None = dynamic), ``outputs``,
    ``parity`` (FP32 ONNX vs Keras: ``max_abs_diff`` …), ``deployed_vs_keras`` (the written file vs Keras, for
    FP16/INT8), ``calibration`` (INT8), ``engine`` (when built), ``seconds``; with ``sdk_compatible_model`` (TAO's
    ``--sdk_compatible_model``, :mod:`~bpnet_core.export.sdk`) also ``sdk`` (the SDK graph vs the normal export).
    """
    opts = export_options(options, **overrides)
    backend, input_dims, data_format, data_type = opts.backend, opts.input_dims, opts.data_format, opts.data_type
    engine_file, cal_image_dir, cal_data_file = opts.engine_file, opts.cal_image_dir, opts.cal_data_file
    cal_cache_file, batches, batch_size = opts.cal_cache_file, opts.batches, opts.batch_size
    max_batch_size, opt_batch_size, static_batch_size = opts.max_batch_size, opts.opt_batch_size, opts.static_batch_size
    max_workspace_size, strict_type_constraints = opts.max_workspace_size, opts.strict_type_constraints
    force_ptq, output_stages, calibration_method = opts.force_ptq, opts.output_stages, opts.calibration_method
    pose, parity_tolerance = opts.pose, opts.parity_tolerance
    sdk_compatible_model, upsample_ratio = opts.sdk_compatible_model, opts.upsample_ratio
    import onnx

    t0 = time.perf_counter()
    backend, data_type = str(backend).lower(), str(data_type).lower()
    backend = "onnx" if backend == "tfonnx" else backend
    if _qat_file(model) or (not isinstance(model, (str, os.PathLike)) and _holds_quantisers(model)):
        return _export_qat(model, output_file, opts)
    _check_flags(output_file, backend, data_type, data_format, engine_file, cal_image_dir, cal_data_file,
                 cal_cache_file, batches, batch_size, parity_tolerance, calibration_method)  # fmt: skip
    input_name = ox.INPUT_NAME
    if sdk_compatible_model:
        upsample_ratio = sdk.check_sdk_request(model, backend, data_format, upsample_ratio)
        output_stages, input_name = "last", sdk.SDK_INPUT
    if sdk_compatible_model and isinstance(model, (str, os.PathLike)) and Path(model).suffix.lower() == ".onnx":
        r = sdk.export_imported_sdk(model, output_file, upsample_ratio, input_dims, cal_image_dir, data_type)
        r["seconds"] = round(time.perf_counter() - t0, 1)
        return r
    if isinstance(model, (str, os.PathLike)) and Path(model).suffix.lower() in (".onnx", ".xml"):
        return export_imported(model, output_file, backend, data_type, cal_image_dir, batches, calibration_method,
                               parity_tolerance=parity_tolerance)  # fmt: skip
    if backend == "openvino":  # Keras → FP32 ONNX (checked against Keras) → IR (checked against the ONNX file)
        with tempfile.TemporaryDirectory(prefix="bpnet_ov_") as tmp:
            first = export_model(model, Path(tmp) / f"{Path(output_file).stem}.onnx", backend="onnx",
                                 input_dims=input_dims, data_format=data_format, output_stages=output_stages,
                                 static_batch_size=static_batch_size, pose=pose,
                                 parity_tolerance=parity_tolerance)  # fmt: skip
            report = export_imported(
                Path(tmp) / f"{Path(output_file).stem}.onnx",
                output_file,
                "openvino",
                data_type,
                cal_image_dir,
                batches,
                calibration_method,
                parity_tolerance=parity_tolerance,
            )
        report.update({"onnx_vs_keras": first["parity"], "input_dims": first["input_dims"],
                       "outputs": first["outputs"], "seconds": round(time.perf_counter() - t0, 1)})  # fmt: skip
        return report
    input_hw = ox.parse_input_dims(input_dims)
    static = int(static_batch_size) if static_batch_size and static_batch_size > 0 else 0
    if static:  # a fixed batch dimension: calibrate and check with batches of exactly that size
        batch_size = static
    work_hw = input_hw or ox.DEFAULT_CAL_HW
    ox.select_outputs(["h", "p"], output_stages)
    plan = None
    if engine_file:
        plan = plan_engine(data_type, work_hw, "NCHW" if data_format == "channels_first" else "NHWC",
                           max_batch_size, opt_batch_size, static_batch_size, batch_size, max_workspace_size,
                           strict_type_constraints, input_name)  # fmt: skip
        import_tensorrt()
    keras_model, source, source_meta = _load_keras(model, pose)
    if _holds_quantisers(keras_model):  # a QAT model whose contract does not say so
        return _export_qat(keras_model, output_file, opts, source_meta, source)
    if sdk_compatible_model:
        sdk.check_last_stage(keras_model, source)

    proto = ox.keras_to_onnx(keras_model, input_hw, data_format, output_stages, static_batch_size)
    wanted = [o.name for o in proto.graph.output]
    meta = ox.export_meta(source_meta, wanted, data_format, input_hw, len(keras_model.outputs) // 2,
                          Path(output_file).stem)  # fmt: skip
    ox.set_meta(proto, meta)
    batch = ox.parity_batch(work_hw, meta, cal_image_dir)
    if static:
        batch = np.repeat(batch, static, axis=0)
    parity = ox.compare_with_keras(keras_model, ox.onnx_session(proto), batch, data_format)
    log.info("ONNX vs Keras: max abs difference %.2e", parity["max_abs_diff"])
    if not parity["max_abs_diff"] <= parity_tolerance:
        raise BpnetError(f"ONNX output differs from Keras by {parity['max_abs_diff']:.3g} (> {parity_tolerance:g}) "
                         f"on a {work_hw[0]}x{work_hw[1]} image; nothing written")  # fmt: skip
    report = {"output_file": str(output_file), "data_type": data_type, "input_dims": list(input_hw) if input_hw
              else None, "data_format": data_format, "outputs": wanted, "num_stages": meta.num_stages,
              "parity": parity}  # fmt: skip
    if sdk_compatible_model:
        proto, meta, report["sdk"] = sdk.make_sdk_model(proto, meta, upsample_ratio, batch)
        report["outputs"] = [o.name for o in proto.graph.output]

    batcher = None
    if (data_type == "int8" or (plan and plan.precision == "int8")) and (
        cal_image_dir or (cal_data_file and Path(cal_data_file).is_file())
    ):
        batcher = make_batcher(work_hw, cal_image_dir, cal_data_file, batch_size, batches, meta, data_format)
    trt_cache = ort_cache = None
    if data_type == "int8":
        if engine_file:
            trt_cache = calibration_cache_path(cal_cache_file, engine_file, output_file, work_hw)
            ort_cache = Path(cal_cache_file).with_suffix(".ort.json") if cal_cache_file else None
        else:
            ort_cache = Path(cal_cache_file) if cal_cache_file else None
    with atomic_path(output_file) as tmp:
        if data_type == "fp32":
            final = proto
            onnx.save(final, str(tmp))
        elif data_type == "fp16":
            final = ox.convert_fp16(proto)
            ox.set_meta(final, meta.with_changes(precision="fp16"))
            onnx.save(final, str(tmp))
        else:
            if batcher is None and not (ort_cache and ort_cache.is_file()):
                raise BpnetError("--data_type int8 needs calibration images (--cal_image_dir) or data "
                                 "(--cal_data_file) for ONNX Runtime")  # fmt: skip
            report["calibration"] = quantize_int8(proto, tmp, batcher, input_name, calibration_method,
                                                  cache_file=ort_cache, force=force_ptq)  # fmt: skip
            final = onnx.load(str(tmp))
            ox.set_meta(final, meta.with_changes(precision="int8", provenance={
                **meta.provenance, "calibration": report["calibration"]["method"]}))  # fmt: skip
            onnx.save(final, str(tmp))
        if data_type != "fp32" and sdk_compatible_model:
            report["deployed_vs_keras"] = sdk.compare_with_keras(keras_model, ox.onnx_session(str(tmp)), batch,
                                                                 upsample_ratio)  # fmt: skip
        elif data_type != "fp32":
            report["deployed_vs_keras"] = ox.compare_with_keras(keras_model, ox.onnx_session(str(tmp)), batch,
                                                                data_format)  # fmt: skip
        if plan is not None:
            report["engine"] = _build_engine(proto, engine_file, plan, batcher, trt_cache, force_ptq)
            write_text_atomic(engine_sidecar(engine_file), meta.with_changes(
                input_hw=tuple(work_hw), precision=plan.precision).to_json())  # fmt: skip
    report["bytes"] = Path(output_file).stat().st_size
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return report


def _qat_file(model) -> bool:
    """Whether ``model`` is a ``.keras`` file whose contract records a quantisation-aware fine-tune."""
    if not isinstance(model, (str, os.PathLike)) or Path(model).suffix.lower() != ".keras" or not Path(model).is_file():
        return False
    return read_meta(model).provenance.get("quantization", {}).get("method") == "qat"


def _holds_quantisers(keras_model) -> bool:
    from bpnet_core.int8.fakequant import is_qat_model  # Keras: loaded only when a model is

    return is_qat_model(keras_model)


def _export_qat(model, output_file, opts: ExportOptions, meta=None, source=None) -> dict:
    """A QAT model: INT8 only (:mod:`bpnet_core.export.qat`); the flags that do not apply are refused."""
    from bpnet_core.export.qat import export_qat, refuse_float_export  # Keras and tf2onnx: only for a QAT model

    if meta is None:
        model, source, meta = _load_keras(model, opts.pose)
    if str(opts.data_type).lower() != "int8":
        refuse_float_export(source, meta, str(opts.data_type).lower())
    if opts.data_format == "channels_first":
        raise BpnetError(f"{source}: -i channels_first is not available for a QAT model yet (its QDQ file takes NHWC)")
    backend = "onnx" if str(opts.backend).lower() == "tfonnx" else str(opts.backend).lower()
    ratio = None
    if opts.sdk_compatible_model:  # DeepStream's layout around the QDQ file: TensorRT reads its ranges, no cache
        ratio = sdk.check_sdk_request(None, backend, opts.data_format, opts.upsample_ratio)
        sdk.check_last_stage(model, source)
    plan = None
    if opts.engine_file:  # TensorRT's explicit quantisation from the QDQ file: the engine runs at one size
        hw = ox.parse_input_dims(opts.input_dims) or tuple(meta.inference.get("input_shape") or (368, 368))
        plan = plan_engine("int8", hw, "NHWC", opts.max_batch_size, opts.opt_batch_size, opts.static_batch_size,
                           1, opts.max_workspace_size, opts.strict_type_constraints,
                           sdk.SDK_INPUT if ratio else ox.INPUT_NAME)  # fmt: skip
        import_tensorrt()
    if ratio:
        if Path(output_file).suffix.lower() != ".onnx":
            raise BpnetError(f"{output_file}: --sdk_compatible_model writes a .onnx file")
        make_dir(Path(output_file).parent, "output folder")
        with tempfile.TemporaryDirectory(prefix=f".{Path(output_file).stem}.", dir=Path(output_file).parent) as tmp:
            qdq = Path(tmp) / Path(output_file).name
            report = export_qat(model, meta, Path(source), qdq, "onnx", opts.input_dims, opts.cal_image_dir,
                                opts.batches)  # fmt: skip
            report["sdk"] = sdk.export_imported_sdk(qdq, output_file, ratio, opts.input_dims, opts.cal_image_dir,
                                                    "int8")["sdk"]  # fmt: skip
        report.update(output_file=str(output_file), outputs=[sdk.SDK_PAF, sdk.SDK_HEATMAP],
                      bytes=Path(output_file).stat().st_size)  # fmt: skip
    else:
        report = export_qat(model, meta, Path(source), output_file, backend, opts.input_dims, opts.cal_image_dir,
                            opts.batches)  # fmt: skip
    if plan is not None:
        if backend != "onnx":
            raise BpnetError("--engine_file builds from the ONNX export: use --backend onnx")
        report["engine"] = build_engine(output_file, opts.engine_file, plan, explicit=True)
        write_text_atomic(engine_sidecar(opts.engine_file), read_meta(output_file).with_changes(
            input_hw=tuple(plan.opt_shape[1:3]), precision="int8").to_json())  # fmt: skip
    return report


def _build_engine(proto, engine_file, plan, batcher, cache_path, force_ptq) -> dict:
    import onnx

    read_cache = not force_ptq
    if plan.precision == "int8" and cache_path and Path(cache_path).is_file() and read_cache:
        check_calibration_cache(cache_path, tensor_names(proto), plan.input_name)
    with tempfile.TemporaryDirectory(prefix="bpnet_trt_") as tmp:
        src = Path(tmp) / "model.onnx"
        onnx.save(proto, str(src))
        return build_engine(src, engine_file, plan, batcher, cache_path, read_cache)
