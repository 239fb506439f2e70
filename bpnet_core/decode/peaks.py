"""Joint candidates ("peaks") from the heatmaps, TAO-style, at a fraction of TAO's cost.

What TAO does (``BpNetPostprocessor``, ``nvidia_tao_tf1/cv/bpnet/inferencer/postprocessor.py`` in NVIDIA's
tao_tensorflow1_backend) and what we compute — the same peaks:

1. upsample each joint heatmap by ``f = upsampling_factor`` with cubic interpolation (``cv2.resize``, INTER_CUBIC);
2. smooth it with a Gaussian (``smooth_sigma`` in upsampled pixels, kernel ``2·ceil(2σ/3) + 1`` = 5 for TAO's σ 3);
3. a peak is a pixel equal to the maximum of its ``nms_window`` × ``nms_window`` neighbourhood of the smoothed map
   whose *raw* upsampled value is ``> heatmap_threshold``; its score is that raw value.

Upsampling all 18 channels of a 46×54 map ×8 and filtering 2.9 M pixels costs ~16 ms on a CPU core, so the default
``method="patch"`` does it only where a peak can be: around each *candidate cell*, the cell of a 3×3 local maximum
of the ×2-upsampled map above ``heatmap_threshold / 2``. Each candidate gets a 7×7-cell patch (for f = 8) that is
upsampled, smoothed and max-filtered exactly as the whole map would be; peaks are accepted within
``f + kernel/2 + nms_window/2`` upsampled pixels (±1.4 cells at f = 8) of the cell centre, where the patch's margins
make every value equal to the full computation. All patches of all channels are stacked into one image, so the work
is three OpenCV calls. When the patches would cover more pixels than the whole map (heavy noise), and for
f ≤ 2, it uses ``method="full"``, which computes the same thing for the whole map. A peak that the full map has but
that lies farther from every candidate cell (one joint type of two people overlapping on a ridge) is the only
possible difference; ``tests/unit/test_decode.py`` checks that the two methods agree on rendered, noisy and blurred
crowds.

Border semantics. *Where a peak can be:* only on fine pixels between the centres of the two border cells of each axis
(every pixel at ×1; 4 … 8n − 5 at ×8); a joint on the map's outer half cell or beyond it gets its peak on the border
cell's centre line. *Values* (cubic taps, raw score): the low-resolution map is edge-replicated by a few cells
before upsampling (TAO zero-pads in its depthwise convolution, which pulls border peaks inwards; we do not copy
that). *Smoothing and the NMS window* see the upsampled map edge-replicated at the ends of that peak range, so a
border maximum is compared with map pixels only, and continuation pixels are never peaks and take no part in the tie
breaking. The *sub-pixel fit* reads a neighbour beyond the range at its mirror image about the border cell's centre
line, so a blob centred on a border cell gets offset 0. Before, the edge-replicated pad cells took part in the NMS
and the tie breaking as if they were map pixels: at ×1 an equal pad cell won the tie breaking, losing every maximum
on the top row and left column, and at ×8 border peaks moved up to 3.5 px outwards onto the map edge.

Coordinates: upsampled pixel ``u`` is low-res cell ``(u + 0.5)/f − 0.5`` (``cv2.resize`` geometry), and cell ``c`` is
centred on input pixel ``c·s + (s − 1)/2`` (the label generator's convention), so for ``f == s`` an upsampled pixel
is exactly an input pixel, as in TAO.

Optional ``subpixel`` refinement fits a parabola to ``log`` of the raw upsampled values around the peak (exact for a
Gaussian blob), per axis, offset clipped to ±1 upsampled pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from bpnet_core.decode.params import DecodeParams

#: candidate cells: ×2-map local maxima above this fraction of ``heatmap_threshold``. Generous on purpose: a lower
#: floor also catches weak maxima next to fine peaks that sit on a slope of the ×2 map (noise, crowds)
CANDIDATE_FRACTION = 0.5


@dataclass(frozen=True)
class Peaks:
    """All joint candidates of one image, sorted by joint, then y, then x.

    ``xy`` float32 (N, 2) in network-input pixels; ``score`` float32 (N,) raw upsampled heatmap value; ``joint``
    int32 (N,). ``by_joint[j]`` are the indices (into these arrays, i.e. peak ids) of joint j's candidates.
    """

    xy: np.ndarray
    score: np.ndarray
    joint: np.ndarray
    by_joint: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.score)

    @staticmethod
    def empty(num_joints: int) -> Peaks:
        return Peaks(
            np.zeros((0, 2), np.float32),
            np.zeros(0, np.float32),
            np.zeros(0, np.int32),
            [np.zeros(0, np.int64) for _ in range(num_joints)],
        )


def smoothing_kernel_size(sigma: float) -> int:
    """Gaussian kernel size for ``smooth_sigma`` (5 for TAO's σ = 3)."""
    return 2 * math.ceil(2.0 * sigma / 3.0) + 1 if sigma > 0 else 1


def fine_to_input(u: np.ndarray, factor: int, stride: int) -> np.ndarray:
    """Upsampled-map pixel coordinate → network-input pixel coordinate."""
    return ((np.asarray(u, np.float32) + 0.5) / factor - 0.5) * stride + (stride - 1) / 2.0


def _geometry(factor: int, params: DecodeParams) -> tuple[int, int, int, int]:
    """Patch layout around a candidate cell c, relative to fine pixel c·f / cell c.

    Returns (first, last) fine pixel of the search window and (first, last) cell of the patch. The window reaches
    ``f + kernel/2 + r`` fine pixels from the cell centre: a fine peak lies within about a cell of a low-res local
    maximum, and smoothing and the NMS window can move it by kernel/2 + r more.
    """
    f = int(factor)
    r = int(params.nms_window) // 2
    half_kernel = smoothing_kernel_size(params.smooth_sigma) // 2
    reach = f + half_kernel + r
    w_lo = math.floor((f - 1) / 2 - reach)
    w_hi = math.ceil((f - 1) / 2 + reach)
    # peaks are decided on the window ± r (tie breaking looks r further), which needs the local maximum there, i.e.
    # the smoothed map on ± 2r, i.e. the upsampled map on ± (2r + kernel/2); at least 1 for the sub-pixel fit
    m = max(2 * r + half_kernel, 1)
    # cubic taps of fine pixel u: cells floor((u + .5)/f − .5) − 1 … + 2
    lo = math.floor((w_lo - m + 0.5) / f - 0.5) - 1
    hi = math.floor((w_hi + m + 0.5) / f - 0.5) + 2
    return w_lo, w_hi, lo, hi


def _filter(u: np.ndarray, params: DecodeParams, to_map) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed map and its local maximum (the NMS reference), same shape as ``u`` (OpenCV drops a size-1 channel
    axis; it is put back). ``to_map(a)`` replaces every pixel of ``a`` outside the peak range by the nearest pixel in
    it; it is applied before the smoothing and again before the local maximum, so the NMS window compares map pixels
    only."""
    sigma = float(params.smooth_sigma)
    s = to_map(u)
    if sigma > 0:
        k = smoothing_kernel_size(sigma)
        s = to_map(cv2.GaussianBlur(s, (k, k), sigma, borderType=cv2.BORDER_REPLICATE).reshape(u.shape))
    w = int(params.nms_window)
    d = cv2.dilate(s, np.ones((w, w), np.uint8), borderType=cv2.BORDER_REPLICATE).reshape(u.shape) if w > 1 else s
    return s, d


def _break_ties(raw: np.ndarray, r: int) -> np.ndarray:
    """Peaks of ``raw[..., r:-r, r:-r]`` that have no other raw peak earlier in raster order within ``r`` pixels.

    Two pixels within the NMS window that are both local maxima have equal smoothed values (a plateau, typical of
    rendered label maps whose keypoint lies exactly between two pixels); TAO keeps both, we keep the first. The
    callers clear ``raw`` outside the peak range first: a pixel of the border continuation is never a peak, so it
    cannot suppress an equal map pixel (it used to delete every maximum on the top row and left column at ×1).
    """
    if r == 0:
        return raw
    h, w = raw.shape[-2:]
    inner = raw[..., r : h - r, r : w - r]
    earlier = np.zeros_like(inner)
    for dy in range(-r, 1):
        for dx in range(-r, r + 1):
            if dy == 0 and dx >= 0:
                break
            earlier |= raw[..., r + dy : h - r + dy, r + dx : w - r + dx]
    return inner & ~earlier


def _pad(low: np.ndarray, pad: int) -> np.ndarray:
    """The (H, W, C) map extended by ``pad`` cells on each side by edge replication (module docstring)."""
    return np.pad(low, ((pad, pad), (pad, pad), (0, 0)), mode="edge")


def _mirror(g: np.ndarray, num_cells: int, factor: int) -> np.ndarray:
    """Fine pixels outside the peak range → their mirror image about the nearer border cell's centre line."""
    lo2 = factor - 1  # twice the first cell centre's fine coordinate
    hi2 = 2 * (num_cells - 1) * factor + factor - 1
    return np.where(2 * g < lo2, lo2 - g, np.where(2 * g > hi2, hi2 - g, g))


def _upsample(low: np.ndarray, f: int) -> np.ndarray:
    if f == 1:
        return low
    return cv2.resize(low, (low.shape[1] * f, low.shape[0] * f), interpolation=cv2.INTER_CUBIC)


def _subpixel(sample, gy: np.ndarray, gx: np.ndarray, shape: tuple[int, int], f: int) -> tuple[np.ndarray, np.ndarray]:
    """Log-parabola offsets (dy, dx) at fine pixels (gy, gx) of a map of ``shape`` cells; ``sample(yy, xx)`` returns
    the upsampled values at fine pixels (of the same peaks). A neighbour outside the peak range is read at its mirror
    image about the border cell's centre line, so a blob centred on a border cell gets offset 0 there (the
    edge-replicated value would be the peak's own and move it half a pixel out)."""

    def at(dy: int, dx: int) -> np.ndarray:
        v = sample(_mirror(gy + dy, shape[0], f), _mirror(gx + dx, shape[1], f))
        return np.log(np.maximum(v, 1e-6))

    c = at(0, 0)
    out = []
    for minus, plus in ((at(-1, 0), at(1, 0)), (at(0, -1), at(0, 1))):
        den = minus - 2.0 * c + plus
        with np.errstate(divide="ignore", invalid="ignore"):
            off = np.where(den < -1e-9, 0.5 * (minus - plus) / den, 0.0)
        out.append(np.clip(off, -1.0, 1.0).astype(np.float32))
    return out[0], out[1]


def _candidate_cells(low: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Low-res cells (rows, cols, joints) near which a fine peak can be: 3×3 local maxima of the ×2 cubic upsampled
    map above ``floor``, mapped to their cell (×2 resolves two blobs of one joint 1–2 cells apart, which the low-res
    map often shows as a single maximum)."""
    h, w, c = low.shape
    up = cv2.resize(low, (2 * w, 2 * h), interpolation=cv2.INTER_CUBIC).reshape(2 * h, 2 * w, c)
    local_max = cv2.dilate(up, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE).reshape(up.shape)
    v, u, joint = np.nonzero((up >= local_max) & (up > floor))
    # ×2 pixel v is cell (v + 0.5)/2 − 0.5 = v/2 − 0.25, whose nearest cell is v // 2
    key = np.unique((joint.astype(np.int64) * h + v // 2) * w + u // 2)
    joint, rest = np.divmod(key, h * w)
    rows, cols = np.divmod(rest, w)
    return rows, cols, joint


def _peak_range(num_cells: int, factor: int) -> tuple[int, int]:
    """First and last fine pixel along an axis of ``num_cells`` cells that can hold a peak: those between the centres
    of the two border cells (at f = 8: 4 … 8n − 5). The outer half cell is extrapolated by the cubic upsampling from
    the border continuation, not interpolated between cell values."""
    f = int(factor)
    return f // 2, (num_cells - 1) * f + (f - 1) // 2


def _peaks_full(low: np.ndarray, params: DecodeParams, pad: int):
    """Whole-map reference: (joint, fine y, fine x, score, dy, dx) arrays."""
    f = int(params.upsampling_factor)
    h, w, _ = low.shape
    lp = _pad(low, pad)
    u = _upsample(lp, f)
    if u.ndim == 2:
        u = u[:, :, None]
    o = pad * f
    (ay, by), (ax, bx) = _peak_range(h, f), _peak_range(w, f)
    iy = np.clip(np.arange(u.shape[0]), o + ay, o + by)
    ix = np.clip(np.arange(u.shape[1]), o + ax, o + bx)

    def to_map(a):
        return a[iy[:, None], ix[None, :]]

    s, d = _filter(u, params, to_map)
    r = int(params.nms_window) // 2
    crop = (slice(o + ay - r, o + by + 1 + r), slice(o + ax - r, o + bx + 1 + r))
    raw = (s[crop] == d[crop]) & (u[crop] > params.heatmap_threshold)
    if r:  # the r context pixels on each side lie outside the peak range
        raw[:r] = raw[-r:] = False
        raw[:, :r] = raw[:, -r:] = False
    js, ys, xs = np.nonzero(_break_ties(np.moveaxis(raw, -1, 0), r))  # channel first for the tie breaking
    ys, xs = ys + ay, xs + ax  # fine pixels of the (unpadded) map
    score = u[ys + o, xs + o, js]
    if params.subpixel:
        dy, dx = _subpixel(lambda yy, xx: u[yy + o, xx + o, js], ys, xs, (h, w), f)
    else:
        dy = dx = np.zeros(len(ys), np.float32)
    return js, ys, xs, score, dy, dx


def _peaks_patch(
    low: np.ndarray,
    params: DecodeParams,
    cand: tuple[np.ndarray, np.ndarray, np.ndarray],
    pad: int,
    geometry: tuple[int, int, int, int],
):
    """Patch version of :func:`_peaks_full` around the candidate cells ``cand`` = (rows, cols, joints)."""
    f = int(params.upsampling_factor)
    h, w, _ = low.shape
    ci, cj, cjoint = cand
    w_lo, w_hi, lo, hi = geometry
    n = hi - lo + 1  # patch side in cells
    lp = _pad(low, pad)
    rel = np.arange(lo, hi + 1)
    rows = ci[:, None] + pad + rel[None, :]  # (N, n)
    cols = cj[:, None] + pad + rel[None, :]
    patches = lp[rows[:, :, None], cols[:, None, :], cjoint[:, None, None]]  # (N, n, n)
    num = len(ci)
    u = _upsample(np.ascontiguousarray(patches.reshape(num * n, n)), f)  # patches stacked vertically
    nf = n * f
    u3 = u.reshape(num, nf, nf)
    (ay, by), (ax, bx) = _peak_range(h, f), _peak_range(w, f)
    # smoothing and NMS see the map edge-replicated at the peak range (module docstring): clamp each patch's fine
    # coordinates to it (a patch that reaches past one end of the range also covers that end)
    oy, ox = (ci + lo)[:, None] * f, (cj + lo)[:, None] * f  # global fine coordinate of each patch's first pixel
    span = np.arange(nf)
    ey = np.clip(oy + span, ay, by) - oy  # (N, nf) patch-local
    ex = np.clip(ox + span, ax, bx) - ox
    clamp = (np.arange(num)[:, None, None], ey[:, :, None], ex[:, None, :])

    def to_map(a):
        return a.reshape(num, nf, nf)[clamp].reshape(a.shape)

    s, d = _filter(u, params, to_map)
    s3, d3 = s.reshape(num, nf, nf), d.reshape(num, nf, nf)
    # the candidate cell starts at patch fine pixel −lo·f; search window [w_lo, w_hi] from there
    r = int(params.nms_window) // 2
    w0 = -lo * f + w_lo
    win = slice(w0 - r, -lo * f + w_hi + 1 + r)  # the window plus r pixels of context for tie breaking
    sw, dw, uw = s3[:, win, win], d3[:, win, win], u3[:, win, win]
    span = np.arange(w0 - r, -lo * f + w_hi + 1 + r)  # patch-local fine coordinates of the window
    in_y = (ay <= oy + span) & (oy + span <= by)  # inside the peak range
    in_x = (ax <= ox + span) & (ox + span <= bx)
    raw = (sw == dw) & (uw > params.heatmap_threshold) & in_y[:, :, None] & in_x[:, None, :]
    is_peak = _break_ties(raw, r)
    k, wy, wx = np.nonzero(is_peak)
    py = wy + w0  # patch-local fine coordinates
    px = wx + w0
    gy = (ci[k] + lo) * f + py  # global fine coordinates (unpadded map)
    gx = (cj[k] + lo) * f + px
    js = cjoint[k]
    # neighbouring candidates' windows overlap: keep each (joint, y, x) once
    key = (js.astype(np.int64) * (h * f) + gy) * (w * f) + gx
    _, first = np.unique(key, return_index=True)
    k, py, px, gy, gx, js = k[first], py[first], px[first], gy[first], gx[first], js[first]
    score = u3[k, py, px]
    if params.subpixel:
        dy, dx = _subpixel(lambda yy, xx: u3[k, yy - oy[k, 0], xx - ox[k, 0]], gy, gx, (h, w), f)
    else:
        dy = dx = np.zeros(len(k), np.float32)
    return js, gy, gx, score, dy, dx


def find_peaks(heatmaps: np.ndarray, params: DecodeParams, stride: int, method: str = "patch") -> Peaks:
    """Joint candidates of a validated heatmap stack (H, W, J + 1), background last.

    ``method``: ``"patch"`` (default, fast; falls back to full when patches would cost more) or ``"full"``
    (upsample the whole map, the reference).
    """
    low = heatmaps[:, :, :-1]
    num_joints = low.shape[2]
    thr = float(params.heatmap_threshold)
    f = int(params.upsampling_factor)
    geometry = _geometry(f, params)
    lo, hi = geometry[2], geometry[3]
    pad = max(-lo, hi) + 1
    if not np.any(low > thr * CANDIDATE_FRACTION):
        return Peaks.empty(num_joints)
    low = np.ascontiguousarray(low, dtype=np.float32)
    if method == "patch" and f <= 2:
        method = "full"  # the whole map is cheap at these factors
    if method == "patch":
        ci, cj, cjoint = _candidate_cells(low, thr * CANDIDATE_FRACTION)
        n = hi - lo + 1
        patch_px = len(ci) * (n * f) ** 2
        full_px = num_joints * (low.shape[0] + 2 * pad) * (low.shape[1] + 2 * pad) * f * f
        if 0 < patch_px < full_px:  # no candidate cell (a lone cell just above the floor): the reference decides
            js, gy, gx, score, dy, dx = _peaks_patch(low, params, (ci, cj, cjoint), pad, geometry)
        else:
            js, gy, gx, score, dy, dx = _peaks_full(low, params, pad)
    elif method == "full":
        js, gy, gx, score, dy, dx = _peaks_full(low, params, pad)
    else:
        raise ValueError(f"unknown peak method {method!r}; expected 'patch' or 'full'")
    limit = int(params.max_peaks_per_joint)
    if limit and len(js) > limit:
        best = np.lexsort((-score, js))  # by joint, strongest first
        rank = np.arange(len(js)) - np.searchsorted(js[best], js[best])
        keep = np.sort(best[rank < limit])
        js, gy, gx, score, dy, dx = js[keep], gy[keep], gx[keep], score[keep], dy[keep], dx[keep]
    order = np.lexsort((gx, gy, js))
    js, gy, gx, score, dy, dx = js[order], gy[order], gx[order], score[order], dy[order], dx[order]
    xy = np.stack([fine_to_input(gx + dx, f, stride), fine_to_input(gy + dy, f, stride)], axis=1)
    joint = js.astype(np.int32)
    bounds = np.searchsorted(joint, np.arange(num_joints + 1))
    by_joint = [np.arange(bounds[j], bounds[j + 1]) for j in range(num_joints)]
    return Peaks(xy.astype(np.float32), score.astype(np.float32), joint, by_joint)
