"""One Euro filter (Casiez, Roussel & Vogel, CHI 2012) over a vector of values, e.g. one track's joints (J, 2).

Time is in frames, so the cutoffs are in cycles per frame: ``alpha = 1 / (1 + 1 / (2π · cutoff · dt))``; the cutoff of
each value grows with its filtered speed: ``min_cutoff + beta · |speed|`` (px per frame).
"""

from __future__ import annotations

import math

import numpy as np


def _alpha(cutoff, dt: float):
    tau = 1.0 / (2 * math.pi * np.asarray(cutoff, np.float64))
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Filters arrays of a fixed shape; ``valid`` (bool, the shape without the last axis) marks the entries present
    this frame. An entry absent for a frame restarts from its next value (no smoothing across a gap)."""

    def __init__(self, min_cutoff: float = 0.05, beta: float = 0.05, d_cutoff: float = 0.2):
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self.x = self.dx = self.ok = None
        self.t: float | None = None

    def __call__(self, x: np.ndarray, t: float, valid: np.ndarray | None = None) -> np.ndarray:
        x = np.asarray(x, np.float64)
        valid = np.ones(x.shape[:-1], bool) if valid is None else np.asarray(valid, bool)
        if self.x is None or self.t is None or t <= self.t:
            self.x, self.dx, self.ok, self.t = x.copy(), np.zeros_like(x), valid.copy(), float(t)
            return x.copy()
        dt = float(t - self.t)
        cont = valid & self.ok  # entries with a previous value
        dx = (x - self.x) / dt
        a_d = _alpha(self.d_cutoff, dt)
        dx_hat = a_d * dx + (1 - a_d) * self.dx
        speed = np.linalg.norm(dx_hat, axis=-1, keepdims=True)
        a = _alpha(self.min_cutoff + self.beta * speed, dt)
        x_hat = a * x + (1 - a) * self.x
        out = np.where(cont[..., None], x_hat, x)
        self.dx = np.where(cont[..., None], dx_hat, 0.0)
        self.x = np.where(valid[..., None], out, self.x)
        self.ok = valid.copy()
        self.t = float(t)
        return out
