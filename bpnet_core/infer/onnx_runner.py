"""ONNX Runtime runner (CPU, or CUDA when onnxruntime-gpu is installed) with the runner interface.

Outputs are found **by name**: ``heatmap_stage{t}`` / ``paf_stage{t}`` for stage ``t`` and ``heatmap_out`` /
``paf_out`` for the last stage (TAO's names; ``…:0`` suffixes and ``/BiasAdd`` tails are tolerated). Files
without such names fall back to TAO's order (all heatmaps, then all PAFs), checked by channel counts. bpnet's own
exports also carry their facts in the ONNX metadata (``metadata_props['bpnet']``: stride, number of stages, pose
config), which the runner exposes as :attr:`num_stages` and :attr:`pose`.

A file with fixed H, W sets :attr:`fixed_input_shape`: inference then forces ``pad_image_input`` at that size (TAO
does the same for TensorRT engines). ``channels_first`` files (input (N, 3, H, W)) are fed transposed batches.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from bpnet_core.errors import BpnetError

_STAGE_NAME = re.compile(r"^(heatmap|paf)_(?:stage(\d+)|out)$")


def _clean(name: str) -> str:
    """``heatmap_out:0`` / ``heatmap_out/BiasAdd:0`` → ``heatmap_out``."""
    return name.split(":")[0].split("/")[0]


def pose_from_metadata(d: dict | None, source: str):
    """A :class:`PoseConfig` from the metadata's ``pose`` (the file form), or ``None``."""
    if not d:
        return None
    from bpnet_core.skeleton import PoseConfig

    try:
        names = list(d["keypoints"])
        limbs = [(int(a) - 1, int(b) - 1) for a, b in d["skeleton"]]
        return PoseConfig(name=str(d.get("name", "pose")), joint_names=names, limbs=limbs,
                          derived_joints=dict(d.get("derived_joints") or {}), source=source)  # fmt: skip
    except (KeyError, TypeError, ValueError):
        return None


def stage_outputs(names: list[str], channels: dict[str, int], meta: dict | None = None, path: str = "model"):
    """Map output names to stages: ``({stage: (heatmap name, paf name)}, num_stages, pose)``.

    By name when every output is called ``heatmap_*``/``paf_*``; else by TAO's order (first half heatmaps, second
    half PAFs, equal channel counts within each half). Anything else is not a bpnet model.
    """
    meta = meta or {}
    pose = pose_from_metadata(meta.get("pose"), f"{path} (metadata)")
    if len(names) < 2:
        raise BpnetError(f"{path}: not a bpnet model (expected heatmap and PAF outputs, found {names})")
    parsed = {n: _STAGE_NAME.match(_clean(n)) for n in names}
    if all(parsed.values()):
        heat, paf, last = {}, {}, {}
        for n, m in parsed.items():
            kind, t = m.group(1), m.group(2)
            if t is None:
                last[kind] = n
            else:
                (heat if kind == "heatmap" else paf)[int(t)] = n
        total = int(meta.get("num_stages") or (max(list(heat) + list(paf) + [0]) + (1 if last else 0)))
        if last:
            heat.setdefault(total, last.get("heatmap"))
            paf.setdefault(total, last.get("paf"))
        stages = {t: (heat[t], paf.get(t)) for t in heat if heat[t] and paf.get(t)}
        if not stages or len(stages) * 2 != len(names):
            raise BpnetError(f"{path}: not a bpnet model (heatmap and PAF outputs do not pair up: {names})")
        return stages, total, pose
    if len(names) % 2:
        raise BpnetError(f"{path}: not a bpnet model ({len(names)} outputs; expected heatmaps + PAFs per stage: "
                         f"{names})")  # fmt: skip
    s = len(names) // 2
    hc = {channels.get(n) for n in names[:s]}
    pc = {channels.get(n) for n in names[s:]}
    if len(hc) != 1 or len(pc) != 1 or hc == pc:
        raise BpnetError(f"{path}: not a bpnet model (outputs {names} are not heatmaps then PAFs by channel count)")
    return {t: (names[t - 1], names[s + t - 1]) for t in range(1, s + 1)}, s, pose


def _dim(d) -> int | None:
    return int(d) if isinstance(d, (int, np.integer)) and d > 0 else None


class OnnxRunner:
    """Runs a bpnet ONNX file (FP32, FP16 or INT8 QDQ) with ONNX Runtime."""

    def __init__(self, path: str | Path, stride: int = 8, providers: list[str] | None = None, threads: int = 0):
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise BpnetError(f"{path}: ONNX file not found")
        available = ort.get_available_providers()
        wanted = providers or [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=wanted)
        except Exception as exc:  # noqa: BLE001 - ORT raises several types for a bad file
            raise BpnetError(f"{path}: not a loadable ONNX model ({str(exc).splitlines()[0][:200]})") from None
        self.providers = self.session.get_providers()
        meta_map = self.session.get_modelmeta().custom_metadata_map or {}
        try:
            self.metadata = json.loads(meta_map.get("bpnet", "{}"))
        except json.JSONDecodeError:
            self.metadata = {}
        self.stride = int(self.metadata.get("stride", stride))
        self.precision = self.metadata.get("precision")
        inp = self.session.get_inputs()
        if len(inp) != 1 or len(inp[0].shape) != 4:
            raise BpnetError(f"{path}: not a bpnet model (expected one image input, found "
                             f"{[(i.name, i.shape) for i in inp]})")  # fmt: skip
        self.input_name = inp[0].name
        shape = inp[0].shape
        if shape[3] == 3:
            self.layout, hw = "NHWC", (shape[1], shape[2])
        elif shape[1] == 3:
            self.layout, hw = "NCHW", (shape[2], shape[3])
        else:
            raise BpnetError(f"{path}: not a bpnet model (input {self.input_name} {shape} has no 3-channel axis)")
        h, w = _dim(hw[0]), _dim(hw[1])
        self.fixed_input_shape = (h, w) if h and w else None
        self.fixed_batch = _dim(shape[0])
        outs = self.session.get_outputs()
        self.output_names = [o.name for o in outs]
        channels = {o.name: _dim(o.shape[-1]) for o in outs if len(o.shape) == 4}
        if len(channels) != len(outs):
            raise BpnetError(f"{path}: not a bpnet model (outputs must be 4-D maps: "
                             f"{[(o.name, o.shape) for o in outs]})")  # fmt: skip
        self.stages, self.num_stages, self.pose = stage_outputs(self.output_names, channels, self.metadata, str(path))

    @property
    def available_stages(self) -> list[int]:
        return sorted(self.stages)

    def predict(self, batch: np.ndarray, stage: int | None = None, context: list[dict] | None = None):
        s = self.num_stages if stage is None else int(stage)
        if s not in self.stages:
            raise BpnetError(f"output_stage_to_use={stage}: {self.path} holds stage(s) {self.available_stages} "
                             "(export with --output_stages all for every stage)")  # fmt: skip
        batch = np.asarray(batch, np.float32)
        if batch.ndim != 4 or batch.shape[3] != 3:
            raise BpnetError(f"{self.path}: expected an NHWC batch (N, H, W, 3), got {batch.shape}")
        if self.fixed_input_shape and tuple(batch.shape[1:3]) != self.fixed_input_shape:
            h, w = self.fixed_input_shape
            raise BpnetError(f"{self.path}: built for {h}x{w} (HxW) input, got {batch.shape[1]}x{batch.shape[2]}: use "
                             f"keep_aspect_ratio_mode pad_image_input at {h}x{w}, or export without -d")  # fmt: skip
        if batch.shape[1] % self.stride or batch.shape[2] % self.stride:
            raise BpnetError(f"input {batch.shape[1]}x{batch.shape[2]} is not a multiple of the stride {self.stride}")
        x = batch.transpose(0, 3, 1, 2) if self.layout == "NCHW" else batch
        heat_name, paf_name = self.stages[s]
        if self.fixed_batch and len(x) != self.fixed_batch:
            chunks = [x[i:i + self.fixed_batch] for i in range(0, len(x), self.fixed_batch)]
            if len(chunks[-1]) != self.fixed_batch:
                pad = np.zeros((self.fixed_batch - len(chunks[-1]),) + x.shape[1:], np.float32)
                chunks[-1] = np.concatenate([chunks[-1], pad])
            outs = [self.session.run([heat_name, paf_name], {self.input_name: np.ascontiguousarray(c)}) for c in chunks]
            heat = np.concatenate([o[0] for o in outs])[: len(x)]
            paf = np.concatenate([o[1] for o in outs])[: len(x)]
        else:
            heat, paf = self.session.run([heat_name, paf_name], {self.input_name: np.ascontiguousarray(x)})
        return np.asarray(heat, np.float32), np.asarray(paf, np.float32)
