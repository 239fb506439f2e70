"""Synthetic scene composition: the difficulty presets, backgrounds with clutter, where people stand, foreground
occluders, crowds, and the labels (visible masks, keypoint flags) of one image."""

from __future__ import annotations

import math

import cv2
import numpy as np

from bpnet_core.data.synthetic.raster import (
    _ONE,
    _SHIFT,
    _SKIN,
    _draw_capsule,
    _draw_ellipse,
    _fill_texture,
    _fx,
    _pt,
    _rand_color,
    _texture,
)
from bpnet_core.data.synthetic.render import _composite, _render_figure

# scene statistics
_PEOPLE_P = np.array([0.06, 0.18, 0.2, 0.18, 0.15, 0.12, 0.11])  # 0..6 people per image
_P_UNLABELLED = 0.12
_P_CROWD = 0.15
_P_OCCLUDER = 0.2

# Scene presets. "hard" is the full mix described above (COCO-like crowds, clutter, occlusion). "easy" keeps every
# kind of object (so masks, occlusion flags and crowds still occur) but draws 1-3 mostly large people in everyday
# poses (standing, walking, running, arms raised, reaching: no sitting, squatting, lying or free poses), 75 % facing
# the camera, on calmer backgrounds: a small network learns it on 2 CPU cores in minutes (the demo profile's default).
# "pose_p" (probabilities of _POSES) and "facing" (p_front, p_back, spread in degrees; the rest are any direction) are
# optional; without them a preset uses _POSE_P and _FACING.
DIFFICULTIES = {
    "hard": {
        "people_p": _PEOPLE_P,
        "p_unlabelled": _P_UNLABELLED,
        "p_crowd": _P_CROWD,
        "p_occluder": _P_OCCLUDER,
        "p_small": 0.6,
        "clutter": (3, 16),
        "large": (0.6, 1.25),
        "inside": False,
        "p_group": 0.3,
    },
    "easy": {
        "people_p": np.array([0.0, 0.55, 0.3, 0.15]),
        "p_unlabelled": 0.08,
        "p_crowd": 0.08,
        "p_occluder": 0.05,
        "p_small": 0.05,
        "clutter": (1, 5),
        "large": (0.55, 0.9),
        "inside": True,
        "p_group": 0.1,
        "pose_p": np.array([0.3, 0.3, 0.1, 0.15, 0.15, 0.0, 0.0, 0.0, 0.0]),
        "facing": (0.75, 0.15, 20.0),
    },
}


# ------------------------------------------------------------------------------------------------ scenes
def _background(rng: np.random.Generator, H: int, W: int, clutter: tuple[int, int] = (3, 16)) -> np.ndarray:
    """Gradient walls and floors, random shapes, lines, textured blobs and non-person distractors."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    c1, c2 = _rand_color(rng), _rand_color(rng)
    ang = rng.uniform(0, 2 * math.pi)
    t = xx * math.cos(ang) + yy * math.sin(ang)
    t = (t - t.min()) / max(1.0, float(t.max() - t.min()))
    img = c1 * (1 - t[..., None]) + c2 * t[..., None]
    if rng.random() < 0.55:  # a floor below a horizon
        hy = int(H * rng.uniform(0.35, 0.8))
        f1, f2 = _rand_color(rng, val=(0.1, 0.7)), _rand_color(rng, val=(0.1, 0.9))
        tf = ((yy[hy:] - hy) / max(1, H - hy))[..., None]
        img[hy:] = f1 * (1 - tf) + f2 * tf
        if rng.random() < 0.5:
            img[hy:] = _texture(rng, H - hy, W, img[hy:].mean((0, 1)), max(3.0, H / rng.uniform(8, 30)))
    small = rng.standard_normal((max(2, H // 16), max(2, W // 16), 3), dtype=np.float32)
    img += cv2.resize(small, (W, H), interpolation=cv2.INTER_CUBIC) * rng.uniform(0, 20)
    img = np.clip(img, 0, 255).astype(np.uint8)

    unit = min(H, W)
    for _ in range(int(rng.integers(*clutter))):
        kind = rng.choice(7, p=[0.22, 0.15, 0.15, 0.15, 0.13, 0.1, 0.1])
        col = tuple(float(v) for v in _rand_color(rng))
        cx, cy = rng.uniform(-0.1, 1.1) * W, rng.uniform(-0.1, 1.1) * H
        size = unit * math.exp(rng.uniform(math.log(0.04), math.log(0.6)))
        if kind == 0:  # rectangle (building, window, furniture)
            w2, h2 = size * rng.uniform(0.3, 1.5), size * rng.uniform(0.3, 1.5)
            cv2.rectangle(
                img, _pt((cx - w2 / 2, cy - h2 / 2)), _pt((cx + w2 / 2, cy + h2 / 2)), col, -1, cv2.LINE_AA, _SHIFT
            )
        elif kind == 1:  # circle / ellipse
            cv2.ellipse(
                img,
                _pt((cx, cy)),
                (int(size / 2 * _ONE), int(size / 2 * rng.uniform(0.3, 1) * _ONE)),
                float(rng.uniform(0, 180)),
                0,
                360,
                col,
                -1,
                cv2.LINE_AA,
                _SHIFT,
            )
        elif kind == 2:  # random polygon
            n = int(rng.integers(3, 8))
            angs = np.sort(rng.uniform(0, 2 * math.pi, n))
            rad = size / 2 * rng.uniform(0.4, 1.0, n)
            poly = np.stack([cx + rad * np.cos(angs), cy + rad * np.sin(angs)], 1)
            cv2.fillPoly(img, [_fx(poly)], col, cv2.LINE_AA, _SHIFT)
        elif kind == 3:  # lines
            for _ in range(int(rng.integers(1, 5))):
                a = (rng.uniform(0, W), rng.uniform(0, H))
                b = (rng.uniform(0, W), rng.uniform(0, H))
                cv2.line(img, _pt(a), _pt(b), col, int(rng.integers(1, max(2, unit // 40))), cv2.LINE_AA, _SHIFT)
        elif kind == 4:  # textured blob
            mask = np.zeros((H, W), np.uint8)
            n = int(rng.integers(5, 10))
            angs = np.sort(rng.uniform(0, 2 * math.pi, n))
            rad = size / 2 * rng.uniform(0.5, 1.0, n)
            poly = np.stack([cx + rad * np.cos(angs), cy + rad * np.sin(angs)], 1)
            cv2.fillPoly(mask, [_fx(poly)], 1, cv2.LINE_8, _SHIFT)
            _fill_texture(rng, img, mask > 0, np.array(col, np.float32), max(2.5, size / 8), p=(0, 1, 1, 1, 1))
        elif kind == 5:  # limb-like sticks and round blobs that are not people (poles, branches, balls)
            for _ in range(int(rng.integers(1, 4))):
                a = np.array([cx, cy]) + rng.normal(0, size / 2, 2)
                b = a + rng.normal(0, size / 2, 2)
                c = _SKIN[rng.integers(len(_SKIN))] if rng.random() < 0.3 else _rand_color(rng)
                tmp = np.zeros((H, W), np.uint8)
                _draw_capsule(tmp, a, b, size * rng.uniform(0.03, 0.1), size * rng.uniform(0.03, 0.1), 1)
                img[tmp > 0] = c.astype(np.uint8)
        else:  # tree / lamp: a trunk and a crown
            top = (cx, cy - size)
            cv2.line(img, _pt((cx, cy)), _pt(top), col, max(1, int(size * 0.08)), cv2.LINE_AA, _SHIFT)
            crown = tuple(float(v) for v in _rand_color(rng))
            cv2.circle(img, _pt(top), int(size * rng.uniform(0.15, 0.45) * _ONE), crown, -1, cv2.LINE_AA, _SHIFT)
    return img


def _place_people(rng: np.random.Generator, n: int, H: int, W: int,
                  cfg: dict | None = None) -> list[tuple[float, tuple[float, float]]]:  # fmt: skip
    """(height in px, centre) for n people, small (far) to large (near); some stand in groups to overlap.
    With ``cfg["inside"]`` every body's extent is centred so that it fits in the frame."""
    cfg = cfg or DIFFICULTIES["hard"]
    out = []
    for _ in range(n):
        if rng.random() < cfg["p_small"]:
            frac = math.exp(rng.uniform(math.log(0.2), math.log(0.6)))
        else:
            lo, hi = cfg["large"]
            frac = rng.uniform(lo, hi if n <= 3 else min(hi, 0.9))
        h = frac * H
        if out and rng.random() < cfg["p_group"]:
            _, (px, py) = out[int(rng.integers(len(out)))]
            cx = px + rng.normal(0, 0.2) * h
            cy = py + rng.normal(0, 0.1) * h
        elif cfg["inside"]:
            margin_y, margin_x = min(0.5, frac / 2 + 0.02), min(0.5, frac * 0.3 + 0.02)
            cy = rng.uniform(margin_y, 1 - margin_y) * H
            cx = rng.uniform(margin_x * H / W, 1 - margin_x * H / W) * W
        else:
            cx = rng.uniform(0.02, 0.98) * W
            cy = rng.uniform(0.3, 0.75) * H if frac > 0.6 else rng.uniform(0.15, 0.85) * H
        out.append((h, (cx, cy)))
    out.sort(key=lambda t: t[0])
    return out


def _occluder(rng: np.random.Generator, canvas: np.ndarray) -> np.ndarray:
    """A foreground object (box, table edge, pole, bush) drawn over the people; returns its mask."""
    H, W = canvas.shape[:2]
    mask = np.zeros((H, W), np.uint8)
    kind = rng.choice(3)
    if kind == 0:  # box / table edge from the bottom
        top = rng.uniform(0.6, 0.92) * H
        xa, xb = sorted(rng.uniform(-0.2, 1.2, 2) * W)
        cv2.rectangle(mask, _pt((xa, top)), _pt((xb, H + 1)), 1, -1, cv2.LINE_8, _SHIFT)
    elif kind == 1:  # pole
        x = rng.uniform(0.1, 0.9) * W
        wd = rng.uniform(0.02, 0.06) * W
        cv2.rectangle(mask, _pt((x - wd / 2, -1)), _pt((x + wd / 2, H + 1)), 1, -1, cv2.LINE_8, _SHIFT)
    else:  # bush
        c = (rng.uniform(0, W), rng.uniform(0.75, 1.05) * H)
        _draw_ellipse(mask, c, rng.uniform(0.1, 0.3) * W, rng.uniform(0.08, 0.2) * H, rng.uniform(-20, 20), 1)
    sel = mask > 0
    _fill_texture(rng, canvas, sel, _rand_color(rng), max(2.5, H / 25))
    return sel


def _render_scene(rng: np.random.Generator, H: int, W: int, cfg: dict | None = None) -> tuple[np.ndarray, list[dict]]:
    """One image and its objects (``kind`` person / unlabelled / crowd, full ``mask``, ``visible`` mask, keypoints)."""
    cfg = cfg or DIFFICULTIES["hard"]
    canvas = _background(rng, H, W, cfg["clutter"])
    objects: list[dict] = []
    if rng.random() < cfg["p_crowd"]:  # a crowd region behind everybody
        k = int(rng.integers(4, 10))
        cx, cy = rng.uniform(0.15, 0.85) * W, rng.uniform(0.3, 0.7) * H
        members = []
        for _ in range(k):
            members.append((rng.uniform(0.12, 0.22) * H, (cx + rng.normal(0, 0.1) * W, cy + rng.normal(0, 0.04) * H)))
        members.sort(key=lambda m: m[1][1])
        crowd_mask = np.zeros((H, W), bool)
        for hpx, anchor in members:
            fig = _render_figure(rng, hpx, anchor, H, W, cfg=cfg)
            if fig is not None:
                crowd_mask |= _composite(canvas, fig)
        if crowd_mask.any():
            objects.append({"kind": "crowd", "mask": crowd_mask})

    n = int(rng.choice(len(cfg["people_p"]), p=cfg["people_p"]))
    for hpx, anchor in _place_people(rng, n, H, W, cfg):
        fig = None
        for _ in range(4):
            fig = _render_figure(rng, hpx, anchor, H, W, cfg=cfg)
            inside = (
                fig is not None
                and sum(1 for x, y, _, _ in fig["keypoints"].values() if 0 <= x <= W - 1 and 0 <= y <= H - 1) >= 3
            )
            if inside:
                break
            anchor = (rng.uniform(0.1, 0.9) * W, rng.uniform(0.3, 0.7) * H)
            fig = None
        if fig is None:
            continue
        # unlabelled people are mostly small ones, as on COCO
        p_unlabelled = cfg["p_unlabelled"] * (2.5 if hpx < 0.28 * H else 0.4 if hpx > 0.6 * H else 1.0)
        unlabelled = rng.random() < p_unlabelled
        objects.append(
            {"kind": "unlabelled" if unlabelled else "person", "mask": _composite(canvas, fig), "kp": fig["keypoints"]}
        )

    covered = np.zeros((H, W), bool)
    if objects and rng.random() < cfg["p_occluder"]:
        covered |= _occluder(rng, canvas)
    for obj in reversed(objects):
        obj["visible"] = obj["mask"] & ~covered
        if obj["kind"] == "person":
            kps = {}
            for nm, (x, y, labelled, self_occ) in obj["kp"].items():
                if not labelled or not (0 <= x <= W - 1 and 0 <= y <= H - 1):
                    kps[nm] = (0.0, 0.0, 0)
                elif self_occ or covered[int(round(y)), int(round(x))]:
                    kps[nm] = (x, y, 1)
                else:
                    kps[nm] = (x, y, 2)
            obj["keypoints"] = kps
        covered |= obj["mask"]

    # camera: exposure, colour cast, blur, sensor noise (labels unchanged)
    img = canvas.astype(np.float32)
    img *= np.float32(rng.uniform(0.75, 1.2))
    img += (rng.uniform(-20, 20) + rng.uniform(-8, 8, 3) + 0.5).astype(np.float32)
    if rng.random() < 0.25:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 1.0))
    img += rng.standard_normal((H, W, 1), dtype=np.float32) * np.float32(rng.uniform(0, 6))
    np.clip(img, 0, 255, out=img)
    return img.astype(np.uint8), objects
