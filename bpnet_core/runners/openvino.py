"""OpenVINO runner (``.xml`` + ``.bin``), compiled for the CPU with dynamic batch, height and width.

OpenVINO's CPU plugin runs bf16 (or f16) by default on CPUs that have it, which changes results; the runner asks
for ``INFERENCE_PRECISION_HINT = f32`` unless told otherwise, so FP32 IRs match ONNX Runtime (INT8 IRs run their
quantised layers in INT8 either way).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bpnet_core.errors import BpnetError
from bpnet_core.meta import ModelMeta, read_ir, read_meta
from bpnet_core.runners.base import check_batch, stage_maps, wanted_outputs
from bpnet_core.runners.onnx import check_graph_io

PRECISION_HINTS = ("f32", "bf16", "f16")


def _shape(port) -> list:
    ps = port.get_partial_shape()
    return [d.get_length() if d.is_static else None for d in ps]


def ov_names(port) -> set[str]:
    return set(port.get_names())


def make_dynamic(model, meta: ModelMeta) -> None:
    """Batch, height and width of the image input become dynamic (unless the contract fixes the size)."""
    inp = next(p for p in model.inputs if meta.input_name in p.get_names())
    shape = _shape(inp)
    if meta.input_hw is None and len(shape) == 4:
        new = [-1, -1, -1, 3] if meta.layout == "NHWC" else [-1, 3, -1, -1]
        model.reshape({inp.any_name: new})


class OpenVinoRunner:
    """Runs an OpenVINO IR that carries a bpnet model contract (``rt_info['bpnet_meta']``)."""

    def __init__(self, path: str | os.PathLike, meta: ModelMeta | None = None, precision_hint: str = "f32",
                 threads: int = 0, model=None):  # fmt: skip
        import openvino as ov

        self.path = Path(path)
        self.source = str(self.path)
        if precision_hint not in PRECISION_HINTS:
            raise BpnetError(f"OpenVINO precision hint must be one of {', '.join(PRECISION_HINTS)} "
                             f"(got {precision_hint!r})")  # fmt: skip
        model = model if model is not None else read_ir(self.path)
        self.meta = meta or read_meta(self.path)
        ins = {n: _shape(p) for p in model.inputs for n in p.get_names()}
        outs = {n: _shape(p) for p in model.outputs for n in p.get_names()}
        check_graph_io(self.meta, ins, outs, self.source)
        make_dynamic(model, self.meta)
        config = {"INFERENCE_PRECISION_HINT": precision_hint, "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            self.compiled = ov.Core().compile_model(model, "CPU", config)
        except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeError subclasses
            raise BpnetError(
                f"{path}: OpenVINO cannot compile the model ({str(exc).strip().splitlines()[0][:160]})"
            ) from None
        self.request = self.compiled.create_infer_request()
        self.ports = {n: p for p in self.compiled.outputs for n in p.get_names()}
        self.precision_hint = precision_hint

    def predict(self, batch: np.ndarray, stage: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        x = check_batch(batch, self.meta, self.source)
        res = self.request.infer({self.meta.input_name: x})
        raw = {n: np.asarray(res[self.ports[n]]) for n in wanted_outputs(self.meta, stage)}
        return stage_maps(self.meta, stage, raw)
