"""TensorRT runner for serialized engines (lazy ``import tensorrt``; needs the ``trt`` extra and an NVIDIA GPU).

An engine has one input size (its optimisation profile's H×W); the contract comes from the engine's sidecar
``<engine>.meta.json`` written by ``bpnet export``. Batches larger than the profile's maximum run in chunks.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

from bpnet_core.errors import BpnetError
from bpnet_core.meta import ModelMeta, read_meta
from bpnet_core.runners.base import check_batch, stage_maps
from bpnet_core.runners.onnx import check_graph_io


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


def check_engine_input(batch_shape: tuple, engine_shape: tuple, layout: str = "NHWC", path: str = "engine") -> None:
    """A batch must have the engine's H×W (an engine is built for one input size)."""
    hw = tuple(batch_shape[1:3]) if layout == "NHWC" else tuple(batch_shape[2:4])
    if len(batch_shape) != 4 or hw != tuple(engine_shape):
        got = "x".join(str(d) for d in hw) if len(batch_shape) == 4 else str(tuple(batch_shape))
        raise BpnetError(
            f"{path}: engine built for {engine_shape[0]}x{engine_shape[1]} (HxW) input, got {got}: rebuild it "
            f"with -d H,W,3 or use pad_image_input at {engine_shape[0]}x{engine_shape[1]}"
        )


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
                raise BpnetError(
                    "TensorRT needs cuda-python or pycuda for GPU buffers (pip install 'bpnet[trt]')"
                ) from None
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


class TensorRTRunner:
    """Runs a serialized engine with the runner interface (``predict(batch) -> (heatmaps, pafs)``).

    The engine's H×W becomes ``meta.input_hw`` (inference forces ``pad_image_input``); batches larger than the
    profile's maximum are run in chunks.
    """

    def __init__(self, path: str | os.PathLike, meta: ModelMeta | None = None):
        trt = import_tensorrt()
        self.path = Path(path)
        self.source = str(self.path)
        if not self.path.is_file():
            raise BpnetError(f"{path}: engine file not found")
        self.meta = meta or read_meta(self.path)
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
        layout = "NCHW" if shape[1] == 3 and shape[-1] != 3 else "NHWC"
        hw = opt[1:3] if layout == "NHWC" else opt[2:4]
        self.meta = self.meta.with_changes(layout=layout, input_hw=(int(hw[0]), int(hw[1])))
        self.max_batch = int(hi[0])
        check_graph_io(
            self.meta,
            {self.input_name: list(shape)},
            {n: list(self.engine.get_tensor_shape(n)) for n in self.outputs},
            self.source,
        )
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

    def predict(self, batch: np.ndarray, stage: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        x = check_batch(batch, self.meta, self.source)
        outs = {}
        for i in range(0, len(x), self.max_batch):
            for name, value in self._run(x[i : i + self.max_batch]).items():
                outs.setdefault(name, []).append(value)
        return stage_maps(self.meta, stage, {n: np.concatenate(v) for n, v in outs.items()})

    def __del__(self):
        for ptr, _ in getattr(self, "_buffers", {}).values():
            with contextlib.suppress(Exception):  # best effort at interpreter shutdown
                self.cuda.free(ptr)
