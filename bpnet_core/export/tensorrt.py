"""TensorRT engines (FP32 / FP16 / INT8) from the exported ONNX file, and a runner for them.

Needs the ``trt`` extra (``tensorrt`` 10, ``cuda-python``; ``pycuda`` also works for the buffers) and an NVIDIA GPU.
Both are imported inside the functions here, so this module imports on any machine; without TensorRT the builder
and the runner raise one :class:`~bpnet_core.errors.BpnetError` saying so.

Engines have a fixed H×W (``-d``, or TAO's default 256×256 when the ONNX file has dynamic H, W) and a batch range
from the optimisation profile: ``--static_batch_size`` (min = opt = max) or 1 / ``--opt_batch_size`` /
``--max_batch_size``. As in TAO, inference with an engine forces ``pad_image_input`` at the engine's size.

INT8 uses TensorRT's ``IInt8EntropyCalibrator2`` fed by :class:`~bpnet_core.int8.calibration.CalibrationBatcher`
(``--batch_size`` images per batch, ``--batches`` batches; pre-processed exactly like inference) with the
calibration cache read from / written to ``--cal_cache_file``. A cache of another network is refused.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bpnet_core.errors import BpnetError
from bpnet_core.fileio import write_bytes_atomic
from bpnet_core.runners.tensorrt import _Cuda, check_engine_input, import_tensorrt  # noqa: F401 - used and re-exported

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")
DEFAULT_WORKSPACE = 2 << 30  # TAO's --max_workspace_size default (2 GiB)


def tensorrt_available() -> bool:
    """Whether the ``tensorrt`` package can be found (without importing it)."""
    import importlib.util

    try:
        return importlib.util.find_spec("tensorrt") is not None
    except (ValueError, AttributeError):  # a module set to None in sys.modules (tests) or without a spec
        return False


def tensorrt_status() -> tuple[bool, str]:
    """``(usable, one line)``: whether engines can be built here, and the TensorRT version or why not."""
    if not tensorrt_available():
        return False, "TensorRT is not installed (pip install 'bpnet[trt]' on a machine with an NVIDIA GPU)"
    try:
        trt = import_tensorrt()
    except BpnetError as exc:
        return False, str(exc)
    return True, f"TensorRT {trt.__version__}"


# ---------------------------------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class EnginePlan:
    """Everything the builder does, decided (and checked) without TensorRT."""

    precision: str
    input_name: str
    min_shape: tuple[int, int, int, int]
    opt_shape: tuple[int, int, int, int]
    max_shape: tuple[int, int, int, int]
    calibration_shape: tuple[int, int, int, int] | None
    workspace: int
    strict: bool
    layout: str = "NHWC"


def _shape(batch: int, hw: tuple[int, int], layout: str) -> tuple[int, int, int, int]:
    h, w = hw
    return (batch, 3, h, w) if layout == "NCHW" else (batch, h, w, 3)


def plan_engine(
    precision: str = "fp32",
    input_hw: tuple[int, int] = (256, 256),
    layout: str = "NHWC",
    max_batch_size: int = 1,
    opt_batch_size: int = 1,
    static_batch_size: int = -1,
    batch_size: int = 1,
    max_workspace_size: int = DEFAULT_WORKSPACE,
    strict_type_constraints: bool = False,
    input_name: str = "input_1",
) -> EnginePlan:
    """Check the engine flags and derive the optimisation profile (TAO's semantics)."""
    if precision not in PRECISIONS:
        raise BpnetError(f"--data_type must be one of {', '.join(PRECISIONS)} (got {precision!r})")
    for flag, v in (("--max_batch_size", max_batch_size), ("--opt_batch_size", opt_batch_size),
                    ("--batch_size", batch_size)):  # fmt: skip
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise BpnetError(f"{flag} must be a positive integer (got {v!r})")
    if static_batch_size is not None and static_batch_size > 0:
        lo = opt = hi = int(static_batch_size)
    else:
        lo, opt, hi = 1, int(opt_batch_size), int(max_batch_size)
        if opt > hi:
            raise BpnetError(f"--opt_batch_size {opt} is larger than --max_batch_size {hi}")
    if precision == "int8" and batch_size > hi:
        raise BpnetError(f"--batch_size {batch_size} (calibration) is larger than the engine's max batch {hi}")
    if isinstance(max_workspace_size, bool) or not isinstance(max_workspace_size, (int, np.integer)) or \
            max_workspace_size < (1 << 20):  # fmt: skip
        raise BpnetError(f"--max_workspace_size must be at least 1 MiB in bytes (got {max_workspace_size!r})")
    cal = _shape(int(batch_size), input_hw, layout) if precision == "int8" else None
    return EnginePlan(precision, input_name, _shape(lo, input_hw, layout), _shape(opt, input_hw, layout),
                      _shape(hi, input_hw, layout), cal, int(max_workspace_size), bool(strict_type_constraints),
                      layout)  # fmt: skip


# ---------------------------------------------------------------------------------------------------- CUDA buffers


# ---------------------------------------------------------------------------------------------------- calibrator


class _NoBatches:
    """Calibration from the cache alone: TensorRT reads the cache and never asks for a batch."""

    def __init__(self, shape):
        self.batch_shape, self.batch_size = tuple(shape), int(shape[0])

    def __iter__(self):
        return iter(())


def make_calibrator(batcher, cache_path: str | os.PathLike, read_cache: bool = True):
    """A ``trt.IInt8EntropyCalibrator2`` over a :class:`CalibrationBatcher`, with the cache at ``cache_path``."""
    trt = import_tensorrt()

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.cuda = _Cuda()
            self.batches = iter(batcher)
            self.count = 0
            self.device = self.cuda.malloc(int(np.prod(batcher.batch_shape)) * 4)

        def get_batch_size(self):
            return batcher.batch_size

        def get_batch(self, names):
            batch = next(self.batches, None)
            if batch is None:
                return None
            self.cuda.htod(self.device, np.ascontiguousarray(batch, np.float32))
            self.cuda.sync()
            self.count += 1
            return [int(self.device)]

        def read_calibration_cache(self):
            path = Path(cache_path)
            if read_cache and path.is_file():
                log.info("using calibration cache %s", path)
                return path.read_bytes()
            return None

        def write_calibration_cache(self, cache):
            write_bytes_atomic(cache_path, bytes(cache))
            log.info("calibration cache → %s", cache_path)

    return EntropyCalibrator()


# ---------------------------------------------------------------------------------------------------- builder


def build_engine(
    onnx_file: str | os.PathLike,
    engine_file: str | os.PathLike,
    plan: EnginePlan,
    batcher=None,
    cache_path: str | os.PathLike | None = None,
    read_cache: bool = True,
    explicit: bool = False,
) -> dict:
    """Parse ``onnx_file`` and build a serialized engine at ``engine_file`` (atomically). Returns a report.

    ``explicit``: the ONNX file carries its own Q/DQ pairs (a QAT export): TensorRT's explicit quantisation, the
    INT8 flag without a calibrator (NVIDIA's documented path for QDQ networks; its implicit calibrators are
    deprecated in TensorRT 10)."""
    import time

    trt = import_tensorrt()
    has_cache = bool(cache_path and Path(cache_path).is_file())
    if plan.precision == "int8" and not explicit and batcher is None and not has_cache:
        raise BpnetError("INT8 engines need calibration data: give --cal_image_dir, --cal_data_file or an existing "
                         "--cal_cache_file")  # fmt: skip
    t0 = time.perf_counter()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):  # TensorRT 8; implicit in 10
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_file).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BpnetError(f"{onnx_file}: TensorRT cannot parse the ONNX file: {errors[:300]}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace)
    if plan.precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if plan.precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
    if plan.strict:
        flag = getattr(trt.BuilderFlag, "OBEY_PRECISION_CONSTRAINTS", None) or trt.BuilderFlag.STRICT_TYPES
        config.set_flag(flag)
    profile = builder.create_optimization_profile()
    profile.set_shape(plan.input_name, plan.min_shape, plan.opt_shape, plan.max_shape)
    config.add_optimization_profile(profile)
    if plan.precision == "int8" and not explicit:
        cal_profile = builder.create_optimization_profile()
        cal_profile.set_shape(plan.input_name, plan.calibration_shape, plan.calibration_shape, plan.calibration_shape)
        config.set_calibration_profile(cal_profile)
        config.int8_calibrator = make_calibrator(batcher or _NoBatches(plan.calibration_shape), cache_path, read_cache)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BpnetError(f"TensorRT could not build an engine from {onnx_file} (see the TensorRT log above)")
    write_bytes_atomic(engine_file, bytes(serialized))
    return {"engine_file": str(engine_file), "precision": plan.precision, "tensorrt": trt.__version__,
            "profile": {"min": plan.min_shape, "opt": plan.opt_shape, "max": plan.max_shape},
            "calibration_cache": str(cache_path) if cache_path and not explicit else None,
            "quantization": "explicit (Q/DQ in the ONNX file)" if explicit else "implicit (calibrator)",
            "seconds": round(time.perf_counter() - t0, 1), "bytes": Path(engine_file).stat().st_size}  # fmt: skip


# ---------------------------------------------------------------------------------------------------- runner
