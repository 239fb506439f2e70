"""What every runner shares: the input check, NCHW feeding, fixed-batch chunking and output slicing."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bpnet_core.errors import BpnetError
from bpnet_core.meta import ModelMeta


def check_batch(batch: np.ndarray, meta: ModelMeta, source: str) -> np.ndarray:
    """A float32 NHWC batch that fits the model: 3 channels, a fixed size if the model has one, multiples of the
    input stride otherwise. Returned in the model's own layout (transposed for NCHW files)."""
    batch = np.asarray(batch, np.float32)
    if batch.ndim != 4 or batch.shape[3] != 3:
        raise BpnetError(f"{source}: expected an NHWC batch (N, H, W, 3), got {batch.shape}")
    hw = tuple(batch.shape[1:3])
    if meta.input_hw and hw != tuple(meta.input_hw):
        h, w = meta.input_hw
        raise BpnetError(f"{source}: built for {h}x{w} (HxW) input, got {hw[0]}x{hw[1]}: use keep_aspect_ratio_mode "
                         f"pad_image_input at {h}x{w}, or export without -d")  # fmt: skip
    m = meta.input_multiple
    if hw[0] % m or hw[1] % m:
        raise BpnetError(f"input {hw[0]}x{hw[1]} is not a multiple of the stride {m}")
    x = batch.transpose(0, 3, 1, 2) if meta.layout == "NCHW" else batch
    return np.ascontiguousarray(x)


def run_chunked(run: Callable[[np.ndarray], list], x: np.ndarray, fixed_batch: int | None) -> list[np.ndarray]:
    """``run`` over ``x`` in chunks of exactly ``fixed_batch`` (zero-padded last chunk; None = one call)."""
    if not fixed_batch or len(x) == fixed_batch:
        return [np.asarray(o) for o in run(x)]
    outs = []
    for i in range(0, len(x), fixed_batch):
        chunk = x[i : i + fixed_batch]
        n = len(chunk)
        if n != fixed_batch:
            chunk = np.concatenate([chunk, np.zeros((fixed_batch - n,) + x.shape[1:], x.dtype)])
        outs.append([np.asarray(o)[:n] for o in run(chunk)])
    return [np.concatenate([o[k] for o in outs]) for k in range(len(outs[0]))]


def stage_maps(meta: ModelMeta, stage: int | None, raw: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(heatmaps, PAFs) of ``stage`` from the raw outputs by name, sliced and made NHWC per the contract."""
    s = meta.stage(stage)
    return s.heatmaps.take(raw[s.heatmaps.name]), s.pafs.take(raw[s.pafs.name])


def wanted_outputs(meta: ModelMeta, stage: int | None) -> list[str]:
    s = meta.stage(stage)
    return list(dict.fromkeys([s.heatmaps.name, s.pafs.name]))
