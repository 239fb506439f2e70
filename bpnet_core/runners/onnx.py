"""ONNX Runtime runner (CPU, or CUDA when onnxruntime-gpu is installed): FP32, FP16 or INT8 (QDQ) files.

The outputs to run come from the file's contract (``metadata_props['bpnet_meta']``); the contract is checked against
the graph when the file is opened (input name, output names, channel counts), so a file whose contract lies fails
at once with one line.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bpnet_core.errors import BpnetError
from bpnet_core.meta import ModelMeta, read_meta
from bpnet_core.runners.base import check_batch, run_chunked, stage_maps, wanted_outputs


def _dim(d) -> int | None:
    return int(d) if isinstance(d, (int, np.integer)) and d > 0 else None


def check_graph_io(meta: ModelMeta, inputs: dict[str, list], outputs: dict[str, list], source: str) -> None:
    """The contract's input and outputs must exist in the graph with compatible shapes (``{name: shape}``)."""
    if meta.input_name not in inputs:
        raise BpnetError(f"{source}: the contract's input {meta.input_name!r} is not in the model "
                         f"(inputs: {sorted(inputs)})")  # fmt: skip
    shape = inputs[meta.input_name]
    if len(shape) != 4 or _dim(shape[3 if meta.layout == "NHWC" else 1]) not in (3, None):
        raise BpnetError(f"{source}: input {meta.input_name} {shape} is not a {meta.layout} 3-channel image")
    for s in meta.outputs:
        for kind, m in (("heatmaps", s.heatmaps), ("pafs", s.pafs)):
            if m.name not in outputs:
                raise BpnetError(f"{source}: the contract's {kind} output {m.name!r} is not in the model "
                                 f"(outputs: {sorted(outputs)})")  # fmt: skip
            oshape = outputs[m.name]
            if len(oshape) != 4:
                raise BpnetError(f"{source}: output {m.name} {oshape} is not a 4-D map")
            c = _dim(oshape[3 if m.layout == "NHWC" else 1])
            if c is not None and c < m.stop:
                raise BpnetError(f"{source}: output {m.name} has {c} channels; the contract's {kind} need channels "
                                 f"{m.start}..{m.stop - 1}")  # fmt: skip


class OnnxRunner:
    """Runs an ONNX file that carries a bpnet model contract."""

    def __init__(self, path: str | os.PathLike, meta: ModelMeta | None = None, providers: list[str] | None = None,
                 threads: int = 0):  # fmt: skip
        import onnxruntime as ort

        self.path = Path(path)
        self.source = str(self.path)
        if not self.path.is_file():
            raise BpnetError(f"{path}: ONNX file not found")
        self.meta = meta or read_meta(self.path)
        available = ort.get_available_providers()
        wanted = providers or [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=wanted)
        except Exception as exc:  # noqa: BLE001 - ORT raises several types for a bad file
            raise BpnetError(f"{path}: not a loadable ONNX model ({str(exc).splitlines()[0][:200]})") from None
        self.providers = self.session.get_providers()
        ins = {i.name: list(i.shape) for i in self.session.get_inputs()}
        outs = {o.name: list(o.shape) for o in self.session.get_outputs()}
        check_graph_io(self.meta, ins, outs, self.source)
        self.fixed_batch = _dim(ins[self.meta.input_name][0])

    def predict(self, batch: np.ndarray, stage: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        x = check_batch(batch, self.meta, self.source)
        names = wanted_outputs(self.meta, stage)
        outs = run_chunked(lambda c: self.session.run(names, {self.meta.input_name: c}), x, self.fixed_batch)
        return stage_maps(self.meta, stage, dict(zip(names, outs)))
