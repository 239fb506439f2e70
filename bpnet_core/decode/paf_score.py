"""Limb scoring: the PAF line integral for every candidate pair of a limb at once, and greedy one-to-one matching.

For a limb k from joint a to joint b, every pair (candidate i of a, candidate j of b) is scored:

* ``N = line_integral_samples`` points ``p_t = A + t·(B − A)``, ``t = 0, 1/(N−1), …, 1`` (endpoints included);
* the PAF (channels 2k, 2k+1) is sampled **bilinearly on the low-resolution map** at each point (TAO upsamples the
  38 PAF channels ×8 and rounds the points to the nearest upsampled pixel; the bilinear sample is the same field
  without the cost). Input pixel x is map column ``(x − (s − 1)/2)/s`` with s the PAF map's own stride (which
  may differ from the heatmaps', see :func:`bpnet_core.decode.decode`), clamped to the map;
* a sample *qualifies* when ``dot(paf, unit(B − A)) > paf_threshold``;
* score = mean of the qualified samples' dot products (TAO; OpenPose-C++ too), plus, only with
  ``use_distance_prior``, OpenPose-Python's ``min(0.5·H/‖B − A‖ − 1, 0)`` with H the network-input height;
* a pair is *valid* when ``count > min_sample_fraction × N`` and ``score > 0`` (TAO: ≥ 9 of 10 samples).

Valid pairs are then matched greedily by descending score, each candidate used at most once per limb (TAO, OpenPose).

Cost: all limbs' pairs are scored in one vectorised pass (:func:`score_pairs`), and a two-stage probe of a few
samples drops pairs that cannot reach the required count before the full integral, so the all-pairs part stays
small next to the rest even for 30 people (the result is exactly the same).
"""

from __future__ import annotations

import math

import numpy as np

from bpnet_core.decode.params import DecodeParams


def sample_bilinear(field: np.ndarray, cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``field`` (H, W, C) at map coordinates (cx, cy) (any equal shapes) → (..., C).

    Coordinates are clamped to the map (the field is edge-extended).
    """
    h, w, c = field.shape
    chan = np.arange(c)
    idx, weights = _bilinear_index(h, w, c, np.asarray(cx, np.float32), np.asarray(cy, np.float32))
    flat = field.reshape(-1)
    out = sum(flat[i[..., None] + chan] * wt[..., None] for i, wt in zip(idx, weights))
    return out.astype(np.float32)


def _bilinear_index(h: int, w: int, c: int, cx: np.ndarray, cy: np.ndarray):
    """Flat indices (channel 0) of the 4 neighbours in an (H, W, C) array and their bilinear weights."""
    x = np.clip(cx, 0.0, w - 1.0)
    y = np.clip(cy, 0.0, h - 1.0)
    x0 = np.minimum(x.astype(np.intp), max(w - 2, 0))  # x >= 0, so truncation = floor
    y0 = np.minimum(y.astype(np.intp), max(h - 2, 0))
    fx = x - x0
    fy = y - y0
    dx = 1 if w > 1 else 0
    dy = w if h > 1 else 0
    base = (y0 * w + x0) * c
    idx = (base, base + dx * c, base + dy * c, base + (dx + dy) * c)
    weights = ((1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy)
    return idx, weights


def _dots(
    pafs: np.ndarray, chan: np.ndarray, a: np.ndarray, vec: np.ndarray, unit: np.ndarray, t: np.ndarray, stride: int
) -> np.ndarray:
    """dot(PAF, unit) at points a + t·vec of M pairs (limb x-channel ``chan``) → (M, len(t))."""
    h, w, c = pafs.shape
    half = (stride - 1) / 2.0
    px = (a[:, None, 0] + t[None, :] * vec[:, None, 0] - half) / stride
    py = (a[:, None, 1] + t[None, :] * vec[:, None, 1] - half) / stride
    idx, weights = _bilinear_index(h, w, c, px, py)
    flat = pafs.reshape(-1)
    ch = chan[:, None]
    sx = sum(flat[i + ch] * wt for i, wt in zip(idx, weights))
    sy = sum(flat[i + ch + 1] * wt for i, wt in zip(idx, weights))
    return sx * unit[:, None, 0] + sy * unit[:, None, 1]


def required_count(params: DecodeParams) -> int:
    """Smallest qualified-sample count that passes ``count > min_sample_fraction × samples``."""
    return int(math.floor(params.min_sample_fraction * params.line_integral_samples)) + 1


def score_pairs(
    pafs: np.ndarray,
    limb: np.ndarray,
    start_xy: np.ndarray,
    end_xy: np.ndarray,
    params: DecodeParams,
    stride: int,
    prefilter: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Line-integral ``score`` float32 (M,) and ``count`` int (M,) of M candidate limbs, any mix of limbs.

    ``pafs`` (H, W, 2L) at network-output resolution, ``stride`` its stride (the PAF map's own); ``limb`` (M,) limb
    index of each pair; ``start_xy`` /
    ``end_xy`` (M, 2) in network-input pixels. With ``prefilter`` a few evenly spread samples are evaluated first
    (two stages): a pair with more failed samples than a valid pair may have cannot reach the required count and is
    returned with score 0, count 0 without the full integral (exact: it is rejected either way). This keeps the
    all-pairs cost small: only pairs that lie along a PAF get the full integral. Use ``prefilter=False`` for the
    true score of every pair.
    """
    n = int(params.line_integral_samples)
    m = len(limb)
    score = np.zeros(m, np.float32)
    count = np.zeros(m, np.int64)
    if m == 0:
        return score, count
    a = np.asarray(start_xy, np.float32).reshape(m, 2)
    vec = np.asarray(end_xy, np.float32).reshape(m, 2) - a
    norm = np.sqrt((vec**2).sum(-1))
    unit = vec / (norm[:, None] + 1e-6)
    chan = 2 * np.asarray(limb, np.intp)
    t = np.linspace(0.0, 1.0, n, dtype=np.float32)
    keep = np.arange(m)
    may_fail = n - required_count(params)  # samples a valid pair may lose
    if prefilter and may_fail >= 0 and 2 * (may_fail + 1) < n:
        # two probe stages of may_fail + 1 interior samples each; a pair is dropped as soon as more than may_fail of
        # its probed samples fail (it could not reach the required count)
        order = np.round(np.linspace(0, n - 1, 2 * (may_fail + 1) + 2)[1:-1]).astype(np.intp)
        stages = (order[0::2], order[1::2])
        failed = np.zeros(m, np.int64)
        for probe in stages:
            d = _dots(pafs, chan[keep], a[keep], vec[keep], unit[keep], t[probe], stride)
            failed_k = failed[keep] + (d <= params.paf_threshold).sum(axis=1)
            alive = failed_k <= may_fail
            failed[keep] = failed_k
            keep = keep[alive]
            if len(keep) == 0:
                break
    if len(keep):
        dots = _dots(pafs, chan[keep], a[keep], vec[keep], unit[keep], t, stride)
        ok = dots > params.paf_threshold
        cnt = ok.sum(-1)
        total = np.where(ok, dots, 0.0).sum(-1)
        score[keep] = np.where(cnt > 0, total / np.maximum(cnt, 1), 0.0)
        count[keep] = cnt
        if params.use_distance_prior:
            height = pafs.shape[0] * stride
            nk = norm[keep]
            with np.errstate(divide="ignore"):
                prior = np.where(nk > 0, np.minimum(0.5 * height / np.maximum(nk, 1e-6) - 1.0, 0.0), 0.0)
            score[keep] += prior.astype(np.float32)
    return score, count


def score_limb(
    paf: np.ndarray,
    start_xy: np.ndarray,
    end_xy: np.ndarray,
    params: DecodeParams,
    stride: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Line-integral score and qualified-sample count of every (start, end) pair of one limb (no prefilter).

    ``paf``: float32 (H, W, 2) = this limb's (x, y) channels at network-output resolution; ``start_xy`` (nA, 2) and
    ``end_xy`` (nB, 2) in network-input pixels. Returns ``score`` float32 (nA, nB) and ``count`` int (nA, nB).
    """
    a = np.asarray(start_xy, np.float32).reshape(-1, 2)
    b = np.asarray(end_xy, np.float32).reshape(-1, 2)
    na, nb = len(a), len(b)
    aa = np.repeat(a, nb, axis=0)
    bb = np.tile(b, (na, 1))
    score, count = score_pairs(
        np.ascontiguousarray(paf, np.float32), np.zeros(na * nb, np.intp), aa, bb, params, stride, prefilter=False
    )
    return score.reshape(na, nb), count.reshape(na, nb)


def valid_pairs(score: np.ndarray, count: np.ndarray, params: DecodeParams) -> np.ndarray:
    """TAO's acceptance rule: ``count > min_sample_fraction × samples`` and ``score > 0``."""
    return (count > params.min_sample_fraction * params.line_integral_samples) & (score > 0)


def match_greedy(score: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy one-to-one matching of the valid pairs by descending score (ties: row-major order).

    Returns (start index, end index, score) of the accepted pairs, best first.
    """
    ia, ib = np.nonzero(valid)
    if len(ia) == 0:
        empty = np.zeros(0, np.intp)
        return empty, empty, np.zeros(0, np.float32)
    s = score[ia, ib]
    order = np.argsort(-s, kind="stable")
    used_a: set[int] = set()
    used_b: set[int] = set()
    keep = []
    limit = min(score.shape)
    for t in order.tolist():
        i, j = int(ia[t]), int(ib[t])
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        keep.append(t)
        if len(keep) == limit:
            break
    keep_arr = np.asarray(keep, np.intp)
    return ia[keep_arr], ib[keep_arr], s[keep_arr].astype(np.float32)
