"""Multi-person pose decoding from heatmaps + Part Affinity Fields (TAO BodyPoseNet's post-processor). NumPy/OpenCV.

```python
from bpnet_core.skeleton import PoseConfig
from bpnet_core.decode import decode, DecodeParams
pose = PoseConfig.from_json("model_pose_config/bpnet_18joints.json")
people = decode(heatmaps, pafs, pose, DecodeParams(), stride=8)   # list[Person], best first
```

Inputs (one image, network-output resolution, channels last): ``heatmaps`` float (H, W, J + 1) with the background
channel last, ``pafs`` float (H', W', 2L) with limb k in channels (2k, 2k + 1). Map cell (i, j) of a map at stride s
is centred on network-input pixel (j·s + (s − 1)/2, i·s + (s − 1)/2), exactly as in :mod:`bpnet_core.data.targets`,
so decoded coordinates are network-input pixels. The PAFs may come at their own ``paf_stride`` (NVIDIA's deployable
BodyPoseNet upsamples them ×4 by nearest neighbour: stride 2 next to stride-8 heatmaps); they are then sampled with
their own cell geometry, and the two grids must cover the same input (``H·stride ≈ H'·paf_stride`` up to the floor
of the division). ``paf_stride=None`` (default) means the same stride, with equal grids.

Pipeline: :func:`~bpnet_core.decode.peaks.find_peaks` (cubic upsampling, smoothing, NMS, threshold) →
:func:`~bpnet_core.decode.paf_score.score_limb` for all candidate pairs of every limb (vectorised line integral on the
low-resolution PAFs) → :func:`~bpnet_core.decode.paf_score.match_greedy` → :func:`~bpnet_core.decode.group.assemble`
(OpenPose-style merging, min-parts / mean-score filters, score ``1 − 1/Σ``). Constants: :class:`DecodeParams`.

Input checks: wrong rank, channel counts that do not match the pose config, or heatmap/PAF grids that do not cover
the same input extent raise :class:`~bpnet_core.errors.BpnetError` naming expected vs got; **NaN or inf values
raise** ``BpnetError`` (a network that emits them is broken; silently zeroing them would hide it). Maps with no value
above the candidate threshold return ``[]`` without further work.

:func:`decode_debug` returns the same people plus every peak candidate and, per limb, every scored candidate pair
with its status (``REJECTED`` by the count/score rule, ``UNMATCHED`` = valid but lost the greedy matching,
``ACCEPTED``), for drawing in the interactive explorer.

Where we differ from TAO's ``BpNetPostprocessor`` (all deliberate, each documented in its module):

* peaks are computed in patches around candidate cells instead of on the whole upsampled map (same peaks, ~10×
  cheaper; :mod:`~bpnet_core.decode.peaks`); the map border is edge-extended, not zero-padded, and a border peak is
  compared with map pixels only; equal adjacent maxima (plateaus) give one peak, not several; at most
  ``max_peaks_per_joint`` (100) candidates per joint are kept;
* PAFs are sampled bilinearly on the low-resolution map (at its own stride) instead of at rounded points of a ×8
  upsampled copy;
* grouping also fills a connection's *start* joint when a person already holds its end, and counts parts exactly
  (:mod:`~bpnet_core.decode.group`).

Person score: TAO's ``1 − 1/Σ`` with Σ = peak values + connection scores (not OpenPose's raw Σ); the mean Σ/parts
is kept in :attr:`Person.mean_score`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bpnet_core.decode.group import Person, assemble
from bpnet_core.decode.paf_score import match_greedy, score_pairs, valid_pairs
from bpnet_core.decode.params import DecodeParams
from bpnet_core.decode.peaks import Peaks, find_peaks
from bpnet_core.errors import BpnetError
from bpnet_core.skeleton import PoseConfig

__all__ = [
    "ACCEPTED", "REJECTED", "UNMATCHED", "DecodeDebug", "DecodeParams", "LimbDebug", "Peaks", "Person", "decode",
    "decode_debug", "find_peaks", "validate_maps",
]  # fmt: skip

#: status codes of :attr:`LimbDebug.status`
REJECTED, UNMATCHED, ACCEPTED = 0, 1, 2
STATUS_NAMES = {REJECTED: "rejected", UNMATCHED: "unmatched", ACCEPTED: "accepted"}


@dataclass
class LimbDebug:
    """Every candidate pair of one limb: flat arrays of length nA·nB (row-major over start × end candidates).

    ``start`` / ``end`` are peak ids (index into :attr:`DecodeDebug.peaks`), ``score`` the line-integral score,
    ``count`` the qualified samples (of ``line_integral_samples``), ``status`` REJECTED / UNMATCHED / ACCEPTED.
    """

    limb: int
    joints: tuple[int, int]
    start: np.ndarray
    end: np.ndarray
    score: np.ndarray
    count: np.ndarray
    status: np.ndarray

    def accepted(self) -> np.ndarray:
        return np.nonzero(self.status == ACCEPTED)[0]


@dataclass
class DecodeDebug:
    """``peaks`` (all joint candidates), ``limbs[k]`` (:class:`LimbDebug`; None when not requested), ``people``."""

    peaks: Peaks
    limbs: list[LimbDebug | None]
    people: list[Person]


def validate_maps(
    heatmaps: np.ndarray,
    pafs: np.ndarray,
    pose: PoseConfig,
    stride: int = 8,
    paf_stride: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Check shapes against ``pose`` and finiteness; return float32 arrays.

    The heatmap grid (stride ``stride``) and the PAF grid (stride ``paf_stride``, None = ``stride``) must cover the
    same network input: some input extent E has ``grid = floor(E / stride)`` for both (equal strides: equal grids).
    """
    hm = np.asarray(heatmaps)
    pf = np.asarray(pafs)
    if hm.ndim != 3:
        raise BpnetError(f"heatmaps must be (H, W, {pose.num_heatmap_channels}); got shape {hm.shape}")
    if pf.ndim != 3:
        raise BpnetError(f"pafs must be (H, W, {pose.num_paf_channels}); got shape {pf.shape}")
    if hm.shape[2] != pose.num_heatmap_channels:
        raise BpnetError(
            f"heatmaps have {hm.shape[2]} channels; pose config {pose.name} expects "
            f"{pose.num_heatmap_channels} ({pose.num_joints} joints + background)"
        )
    if pf.shape[2] != pose.num_paf_channels:
        raise BpnetError(
            f"pafs have {pf.shape[2]} channels; pose config {pose.name} expects "
            f"{pose.num_paf_channels} (2 × {pose.num_limbs} limbs)"
        )
    s_h, s_p = _strides(stride, paf_stride)
    if s_h == s_p:
        if hm.shape[:2] != pf.shape[:2]:
            raise BpnetError(f"heatmaps grid {hm.shape[:2]} and pafs grid {pf.shape[:2]} differ")
    elif not all(
        max(nh * s_h, np_ * s_p) <= min(nh * s_h + s_h, np_ * s_p + s_p) - 1
        for nh, np_ in zip(hm.shape[:2], pf.shape[:2])
    ):
        raise BpnetError(
            f"heatmaps grid {hm.shape[:2]} at stride {s_h} and pafs grid {pf.shape[:2]} at stride "
            f"{s_p} differ in input extent ({hm.shape[0] * s_h}×{hm.shape[1] * s_h} vs "
            f"{pf.shape[0] * s_p}×{pf.shape[1] * s_p} px)"
        )
    if hm.shape[0] == 0 or hm.shape[1] == 0:
        raise BpnetError(f"heatmaps grid {hm.shape[:2]} is empty")
    hm = np.asarray(hm, np.float32)
    pf = np.asarray(pf, np.float32)
    for name, arr in (("heatmaps", hm), ("pafs", pf)):
        if not np.isfinite(arr).all():
            raise BpnetError(f"{name} contain NaN or inf values")
    return hm, pf


def _strides(stride, paf_stride) -> tuple[int, int]:
    """(heatmap stride, PAF stride) as ints >= 1; ``paf_stride`` None = ``stride``."""
    for name, value in (("stride", stride), ("paf_stride", paf_stride)):
        if value is not None and int(value) < 1:
            raise BpnetError(f"{name} must be >= 1; got {value}")
    return int(stride), int(stride if paf_stride is None else paf_stride)


def _run(heatmaps, pafs, pose, params, stride, paf_stride, debug_limbs):
    params = params or DecodeParams()
    stride, paf_stride = _strides(stride, paf_stride)
    hm, pf = validate_maps(heatmaps, pafs, pose, stride, paf_stride)
    peaks = find_peaks(hm, params, stride)
    # every candidate pair of every limb, scored in one vectorised pass
    pair_limb, pair_a, pair_b, shapes = [], [], [], []
    for k, (ja, jb) in enumerate(pose.limbs):
        ids_a, ids_b = peaks.by_joint[ja], peaks.by_joint[jb]
        shapes.append((len(ids_a), len(ids_b)))
        if len(ids_a) and len(ids_b):
            pair_a.append(np.repeat(ids_a, len(ids_b)))
            pair_b.append(np.tile(ids_b, len(ids_a)))
            pair_limb.append(np.full(len(ids_a) * len(ids_b), k, np.intp))
    if pair_limb:
        pa, pb, pl = np.concatenate(pair_a), np.concatenate(pair_b), np.concatenate(pair_limb)
    else:
        pa = pb = pl = np.zeros(0, np.intp)
    score, count = score_pairs(pf, pl, peaks.xy[pa], peaks.xy[pb], params, paf_stride, prefilter=debug_limbs is None)
    valid = valid_pairs(score, count, params)

    limbs_debug: list[LimbDebug | None] = [None] * pose.num_limbs
    connections = []
    offset = 0
    for k, (ja, jb) in enumerate(pose.limbs):
        na, nb = shapes[k]
        sl = slice(offset, offset + na * nb)
        offset += na * nb
        ids_a, ids_b = peaks.by_joint[ja], peaks.by_joint[jb]
        s_k, v_k = score[sl].reshape(na, nb), valid[sl].reshape(na, nb)
        ia, ib, s = match_greedy(s_k, v_k)
        connections.append((ids_a[ia], ids_b[ib], s))
        if debug_limbs is not None and k in debug_limbs:
            status = np.where(v_k, UNMATCHED, REJECTED).astype(np.uint8)
            status[ia, ib] = ACCEPTED
            limbs_debug[k] = LimbDebug(
                k, (ja, jb), pa[sl].astype(np.int64), pb[sl].astype(np.int64), score[sl], count[sl], status.ravel()
            )
    people = assemble(peaks, connections, pose, params)
    return peaks, limbs_debug, people


def decode(
    heatmaps: np.ndarray,
    pafs: np.ndarray,
    pose: PoseConfig,
    params: DecodeParams | None = None,
    stride: int = 8,
    paf_stride: int | None = None,
) -> list[Person]:
    """People in one image's network outputs, best first (see the module docstring). ``paf_stride``: the PAF map's
    stride when it differs from the heatmaps' (None = ``stride``)."""
    return _run(heatmaps, pafs, pose, params, stride, paf_stride, None)[2]


def decode_debug(
    heatmaps: np.ndarray,
    pafs: np.ndarray,
    pose: PoseConfig,
    params: DecodeParams | None = None,
    stride: int = 8,
    limbs: list[int] | int | None = None,
    paf_stride: int | None = None,
) -> DecodeDebug:
    """:func:`decode` plus its intermediates: all peaks and, for ``limbs`` (default all), every scored pair."""
    if limbs is None:
        wanted = set(range(pose.num_limbs))
    else:
        wanted = {int(limbs)} if np.isscalar(limbs) else {int(k) for k in limbs}
        bad = sorted(k for k in wanted if not 0 <= k < pose.num_limbs)
        if bad:
            raise BpnetError(f"limb index {bad[0]} is outside 0..{pose.num_limbs - 1} for pose config {pose.name}")
    peaks, limbs_debug, people = _run(heatmaps, pafs, pose, params, stride, paf_stride, wanted)
    return DecodeDebug(peaks=peaks, limbs=limbs_debug, people=people)
