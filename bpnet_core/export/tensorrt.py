"""TensorRT engines (FP32 / FP16 / INT8) from the exported ONNX file, and a runner for them.

Needs the ``trt`` extra (``tensorrt`` 10, ``cuda-python``; ``pycuda`` also works for the buffers) and an NVIDIA GPU.
Both are imported inside the functions here, so this module imports on any machine; without TensorRT the builder
and the runner raise one :class:`~bpnet_core.errors.BpnetError` saying so.

Engines have a fixed H×W (``-d``, or TAO's default 256×256 when the ONNX file has dynamic H, W) and a batch range
from the optimisation profile: ``--static_batch_size`` (min = opt = max) or 1 / ``--opt_batch_size`` /
``--max_batch_size``. As in TAO, inference with an engine forces ``pad_image_input`` at the engine's size.

INT8 uses TensorRT's ``IInt8EntropyCalibrator2`` fed by :class:`~bpnet_core.export.calibration.CalibrationBatcher`
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


def import_tensorrt():
    """``import tensorrt``, or a one-line :class:`BpnetError`."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise BpnetError(
            f"TensorRT is not installed ({exc.__class__.__name__}: {exc}); engines need the 'trt' extra "
            "(pip install 'bpnet[trt]') and an NVIDIA GPU"
        ) from None
    return trt


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


def check_engine_input(batch_shape: tuple, engine_shape: tuple, layout: str = "NHWC", path: str = "engine") -> None:
    """A batch must have the engine's H×W (an engine is built for one input size)."""
    hw = tuple(batch_shape[1:3]) if layout == "NHWC" else tuple(batch_shape[2:4])
    if len(batch_shape) != 4 or hw != tuple(engine_shape):
        got = "x".join(str(d) for d in hw) if len(batch_shape) == 4 else str(tuple(batch_shape))
        raise BpnetError(
            f"{path}: engine built for {engine_shape[0]}x{engine_shape[1]} (HxW) input, got {got}: rebuild it "
            f"with -d H,W,3 or use pad_image_input at {engine_shape[0]}x{engine_shape[1]}"
        )


# ---------------------------------------------------------------------------------------------------- CUDA buffers


class _Cuda:
    """Minimal device-memory helper over cuda-python (``cuda.bindings.runtime`` / ``cuda.cudart``) or pycuda."""

    def __init__(self):
        try:
            try:
                from cuda.bindings import runtime as cudart
            except ImportError:
                from cuda import cudart  # type: ignore[no-redef]
            self.rt, self.kind = cudart, "cuda-python"
            self.stream = self._ok(cudart.cudaStreamCreate())
        except ImportError:
            try:
                import pycuda.autoinit  # noqa: F401
                import pycuda.driver as drv
            except ImportError:
                raise BpnetError("TensorRT needs cuda-python or pycuda for GPU buffers (pip install 'bpnet[trt]')") \
                    from None
            self.rt, self.kind = drv, "pycuda"
            self.stream = drv.Stream()

    def _ok(self, result):
        err, *rest = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            raise BpnetError(f"CUDA error {err}")
        return rest[0] if len(rest) == 1 else (rest or None)

    def malloc(self, nbytes: int):
        if self.kind == "pycuda":
            return self.rt.mem_alloc(max(1, nbytes))
        return self._ok(self.rt.cudaMalloc(max(1, nbytes)))

    def free(self, ptr) -> None:
        if self.kind == "pycuda":
            ptr.free()
        else:
            self.rt.cudaFree(ptr)

    def htod(self, ptr, host: np.ndarray) -> None:
        if self.kind == "pycuda":
            self.rt.memcpy_htod_async(ptr, host, self.stream)
        else:
            kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
            self._ok(self.rt.cudaMemcpyAsync(ptr, host.ctypes.data, host.nbytes, kind, self.stream))

    def dtoh(self, host: np.ndarray, ptr) -> None:
        if self.kind == "pycuda":
            self.rt.memcpy_dtoh_async(host, ptr, self.stream)
        else:
            kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
            self._ok(self.rt.cudaMemcpyAsync(host.ctypes.data, ptr, host.nbytes, kind, self.stream))

    def sync(self) -> None:
        if self.kind == "pycuda":
            self.stream.synchronize()
        else:
            self._ok(self.rt.cudaStreamSynchronize(self.stream))

    @property
    def stream_handle(self) -> int:
        return self.stream.handle if self.kind == "pycuda" else int(self.stream)


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
    from bpnet_core.fileio import write_bytes_atomic

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
) -> dict:
    """Parse ``onnx_file`` and build a serialized engine at ``engine_file`` (atomically). Returns a report."""
    import time

    from bpnet_core.fileio import write_bytes_atomic

    trt = import_tensorrt()
    if plan.precision == "int8" and batcher is None and not (cache_path and Path(cache_path).is_file()):
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
        flag = getattr(trt.BuilderFlag, "OBEY_PRECISION_CONSTRAINTS", None) or getattr(trt.BuilderFlag, "STRICT_TYPES")
        config.set_flag(flag)
    profile = builder.create_optimization_profile()
    profile.set_shape(plan.input_name, plan.min_shape, plan.opt_shape, plan.max_shape)
    config.add_optimization_profile(profile)
    if plan.precision == "int8":
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
            "calibration_cache": str(cache_path) if cache_path else None,
            "seconds": round(time.perf_counter() - t0, 1), "bytes": Path(engine_file).stat().st_size}  # fmt: skip


# ---------------------------------------------------------------------------------------------------- runner


class TensorRTRunner:
    """Runs a serialized engine with the runner interface (``predict(batch) -> (heatmaps, pafs)``).

    The engine's H×W is :attr:`fixed_input_shape` (inference forces ``pad_image_input``); batches larger than the
    profile's maximum are run in chunks.
    """

    def __init__(self, path: str | os.PathLike, stride: int = 8):
        from bpnet_core.infer.onnx_runner import stage_outputs

        trt = import_tensorrt()
        self.path, self.stride = Path(path), int(stride)
        if not self.path.is_file():
            raise BpnetError(f"{path}: engine file not found")
        self.trt = trt
        self.cuda = _Cuda()
        self.logger = trt.Logger(trt.Logger.WARNING)  # must outlive the runtime and the engine
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise BpnetError(f"{path}: not a TensorRT engine for this TensorRT version and GPU")
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in inputs]
        if len(inputs) != 1:
            raise BpnetError(f"{path}: expected one image input, found {inputs}")
        self.input_name = inputs[0]
        shape = tuple(self.engine.get_tensor_shape(self.input_name))
        lo, opt, hi = (tuple(s) for s in self.engine.get_tensor_profile_shape(self.input_name, 0))
        self.layout = "NCHW" if shape[1] == 3 and shape[-1] != 3 else "NHWC"
        hw = opt[1:3] if self.layout == "NHWC" else opt[2:4]
        self.fixed_input_shape = (int(hw[0]), int(hw[1]))
        self.max_batch = int(hi[0])
        channels = {n: int(self.engine.get_tensor_shape(n)[-1]) for n in self.outputs}
        self.stages, self.num_stages, self.pose = stage_outputs(self.outputs, channels, {}, str(path))
        self.context = self.engine.create_execution_context()
        self._buffers: dict = {}

    def _run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        trt = self.trt
        self.context.set_input_shape(self.input_name, batch.shape)
        host_out = {}
        for name in [self.input_name] + self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(name)))
            nbytes = int(np.prod(shape)) * dtype.itemsize
            old = self._buffers.get(name)
            if old is None or old[1] < nbytes:
                if old is not None:
                    self.cuda.free(old[0])
                self._buffers[name] = (self.cuda.malloc(nbytes), nbytes)
            self.context.set_tensor_address(name, int(self._buffers[name][0]))
            if name != self.input_name:
                host_out[name] = np.empty(shape, dtype)
        self.cuda.htod(self._buffers[self.input_name][0], np.ascontiguousarray(batch, np.float32))
        if not self.context.execute_async_v3(self.cuda.stream_handle):
            raise BpnetError(f"{self.path}: TensorRT execution failed")
        for name, host in host_out.items():
            self.cuda.dtoh(host, self._buffers[name][0])
        self.cuda.sync()
        return {n: h.astype(np.float32, copy=False) for n, h in host_out.items()}

    def predict(self, batch: np.ndarray, stage: int | None = None, context: list[dict] | None = None):
        s = self.num_stages if stage is None else int(stage)
        if s not in self.stages:
            raise BpnetError(f"output_stage_to_use={stage}: {self.path} has stage(s) {sorted(self.stages)}")
        batch = np.asarray(batch, np.float32)
        check_engine_input(batch.shape, self.fixed_input_shape, "NHWC", str(self.path))
        if self.layout == "NCHW":
            batch = batch.transpose(0, 3, 1, 2)
        heat_name, paf_name = self.stages[s]
        heats, pafs = [], []
        for i in range(0, len(batch), self.max_batch):
            out = self._run(batch[i:i + self.max_batch])
            heats.append(out[heat_name])
            pafs.append(out[paf_name])
        return np.concatenate(heats), np.concatenate(pafs)

    def __del__(self):
        for ptr, _ in getattr(self, "_buffers", {}).values():
            try:
                self.cuda.free(ptr)
            except Exception:  # noqa: BLE001 - best effort at interpreter shutdown
                pass
