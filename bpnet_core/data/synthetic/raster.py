"""Drawing primitives of the synthetic generator: fixed-point (sub-pixel) capsules and ellipses, colours and
textures."""

from __future__ import annotations

import math

import cv2
import numpy as np

# ------------------------------------------------------------------------------------------------ geometry helpers
_SHIFT = 4
_ONE = 1 << _SHIFT


def _fx(p: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(p, np.float64) * _ONE).astype(np.int32)


def _pt(p) -> tuple[int, int]:
    q = _fx(p)
    return int(q[0]), int(q[1])


def _draw_capsule(img: np.ndarray, a, b, ra: float, rb: float, value: int) -> None:
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    ra, rb = max(ra, 0.6), max(rb, 0.6)
    d = b - a
    n = math.hypot(d[0], d[1])
    if n > 1e-6:
        perp = np.array([-d[1], d[0]]) / n
        poly = np.array([a + perp * ra, b + perp * rb, b - perp * rb, a - perp * ra])
        cv2.fillConvexPoly(img, _fx(poly), value, cv2.LINE_8, _SHIFT)
    cv2.circle(img, _pt(a), int(round(ra * _ONE)), value, -1, cv2.LINE_8, _SHIFT)
    cv2.circle(img, _pt(b), int(round(rb * _ONE)), value, -1, cv2.LINE_8, _SHIFT)


def _draw_ellipse(img: np.ndarray, c, ax_a: float, ax_b: float, angle_deg: float, value) -> None:
    axes = (int(round(max(ax_a, 0.6) * _ONE)), int(round(max(ax_b, 0.6) * _ONE)))
    cv2.ellipse(img, _pt(c), axes, float(angle_deg), 0, 360, value, -1, cv2.LINE_8, _SHIFT)


# ------------------------------------------------------------------------------------------------ colours, textures
_SKIN = np.array(
    [[196, 224, 255], [125, 194, 241], [105, 172, 224], [66, 134, 198], [36, 85, 141], [38, 58, 92], [150, 190, 230]],
    np.float32,
)  # BGR
_HAIR = np.array(
    [[20, 20, 25], [25, 40, 70], [40, 70, 120], [90, 150, 200], [160, 160, 165], [30, 50, 140], [15, 15, 15]],
    np.float32,
)


def _rand_color(rng: np.random.Generator, sat: tuple = (0.1, 0.9), val: tuple = (0.15, 0.95)) -> np.ndarray:
    h = rng.uniform(0, 180)
    s = rng.uniform(*sat) * 255
    v = rng.uniform(*val) * 255
    hsv = np.array([[[h, s, v]]], np.float32)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def _jitter(rng: np.random.Generator, color: np.ndarray, amount: float = 15.0) -> np.ndarray:
    return np.clip(color + rng.uniform(-amount, amount, 3), 0, 255).astype(np.float32)


def _texture(
    rng: np.random.Generator, h: int, w: int, base: np.ndarray, period: float, p: tuple = (0.4, 0.18, 0.14, 0.16, 0.12)
) -> np.ndarray:
    """An (h, w, 3) float32 fill: flat, stripes, checks, gradient or blotchy noise around ``base``."""
    kind = rng.choice(5, p=np.asarray(p) / np.sum(p))
    base = np.asarray(base, np.float32)
    if kind == 0:
        return np.broadcast_to(base, (h, w, 3))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind in (1, 2):
        other = _rand_color(rng) if rng.random() < 0.6 else np.clip(base * rng.uniform(0.4, 0.8), 0, 255)
        per = max(2.5, period * rng.uniform(0.5, 1.6))
        if kind == 1:
            ang = rng.uniform(0, math.pi)
            t = (xx * math.cos(ang) + yy * math.sin(ang)) / per
            sel = (t % 1.0) < rng.uniform(0.3, 0.6)
        else:
            sel = ((np.floor(xx / per) + np.floor(yy / per)) % 2) == 0
        return np.where(sel[..., None], base, other.astype(np.float32))
    if kind == 3:
        other = _jitter(rng, base * rng.uniform(0.5, 1.3), 30)
        ang = rng.uniform(0, 2 * math.pi)
        t = xx * math.cos(ang) + yy * math.sin(ang)
        t = (t - t.min()) / max(1.0, float(t.max() - t.min()))
        return base * (1 - t[..., None]) + other * t[..., None]
    small = rng.standard_normal((max(2, h // 6), max(2, w // 6), 1), dtype=np.float32)
    noise = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).reshape(h, w, 1)
    fine = rng.standard_normal((h, w, 1), dtype=np.float32) * 6.0
    return np.clip(base + noise * rng.uniform(10, 35) + fine, 0, 255)


def _fill_texture(
    rng: np.random.Generator,
    img: np.ndarray,
    sel: np.ndarray,
    base: np.ndarray,
    period: float,
    p: tuple = (0.4, 0.18, 0.14, 0.16, 0.12),
) -> None:
    """Paint ``img[sel]`` with a texture computed over the bounding box of ``sel`` only."""
    rows, cols = np.flatnonzero(sel.any(1)), np.flatnonzero(sel.any(0))
    if not len(rows):
        return
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    sub = sel[r0:r1, c0:c1]
    tex = _texture(rng, r1 - r0, c1 - c0, base, period, p)
    img[r0:r1, c0:c1][sub] = np.clip(tex[sub], 0, 255).astype(img.dtype)
