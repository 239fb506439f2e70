"""ONNX Runtime runner (CPU, or CUDA when onnxruntime-gpu is installed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bpnet_core.errors import BpnetError


class OnnxRunner:
    """Runs a bpnet ONNX file; outputs named ``heatmap_*``/``paf_*`` (or TAO-ordered heat…, paf…)."""

    def __init__(self, path: str | Path, stride: int = 8, providers: list[str] | None = None):
        import onnxruntime as ort

        self.path, self.stride = Path(path), int(stride)
        available = ort.get_available_providers()
        wanted = providers or [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        try:
            self.session = ort.InferenceSession(str(path), providers=wanted)
        except Exception as exc:  # noqa: BLE001 - ORT raises several types for a bad file
            raise BpnetError(f"{path}: not a loadable ONNX model ({str(exc).splitlines()[0][:200]})") from None
        inp = self.session.get_inputs()
        if len(inp) != 1 or len(inp[0].shape) != 4:
            raise BpnetError(f"{path}: expected one NHWC image input, found {[i.name for i in inp]}")
        self.input_name = inp[0].name
        h, w = inp[0].shape[1], inp[0].shape[2]
        self.fixed_input_shape = (int(h), int(w)) if isinstance(h, int) and isinstance(w, int) else None
        outs = self.session.get_outputs()
        if len(outs) < 2 or len(outs) % 2:
            raise BpnetError(f"{path}: not a bpnet model (expected heatmap and PAF outputs, found {len(outs)} outputs)")
        self.output_names = [o.name for o in outs]
        self.num_stages = len(outs) // 2

    def predict(self, batch: np.ndarray, stage: int | None = None, context: list[dict] | None = None):
        s = self.num_stages if stage is None else int(stage)
        if not 1 <= s <= self.num_stages:
            raise BpnetError(f"output_stage_to_use={stage} but {self.path} has {self.num_stages} stages")
        outs = self.session.run(self.output_names, {self.input_name: np.ascontiguousarray(batch, np.float32)})
        return outs[s - 1], outs[self.num_stages + s - 1]
