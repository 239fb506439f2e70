"""An embedded synthetic COCO-keypoints dataset: articulated people on cluttered backgrounds, in COCO's own layout.

:func:`generate_synthetic_coco` writes::

    DIR/train2017/000000000001.jpg ...          JPEG, quality 90
    DIR/val2017/...
    DIR/annotations/person_keypoints_train2017.json
    DIR/annotations/person_keypoints_val2017.json
    DIR/dataset_spec.json                        data_pose_config/synthetic_spec.json, root_directory_path = DIR

so every later step (``dataset_convert``, training, COCO evaluation) runs on it exactly as on COCO 2017, with no
download and no network.

How a figure is made
--------------------
Each person is a small 3-D body: a pelvis, a spine (lean, side bend, twist), a neck and an ellipsoidal head, and
two-segment arms and legs with joint-angle limits. A pose family (standing, walking, running, arms raised,
reaching, sitting, squatting, lying, free) sets the joint angles; a yaw turns the body (facing the camera, turned
away, profiles) and a roll tilts it in the image plane. The body is projected orthographically and drawn part by
part, back to front by depth: tapered limbs, a two-piece torso (shirt over trousers), hands, shoes, a head with
hair, eyes and sometimes a chest print on the front. Clothes get flat, striped, checked, noisy or gradient
textures and the parts are shaded so that overlapping limbs stay distinguishable.

Keypoint semantics are COCO's, exactly: ``left_*`` is the figure's own left (image right for a figure facing the
camera), every body keypoint sits at the centre of the drawn joint, eyes/nose/ears sit on the head.

Labels
------
* ``v = 2`` visible; ``v = 1`` in the image but covered: by a person drawn later (in front), by a foreground
  object, or by one of the figure's own parts in front of it (a hip behind a forearm, the far shoulder in a
  profile); ``v = 0`` outside the image, or a face point on the far side of the head (COCO leaves the eyes and
  nose of a person seen from behind unlabelled). ``v = 0`` comes with ``x = y = 0``.
* ``segmentation`` is the visible silhouette (later figures cut out) as polygons from ``cv2.findContours``;
  ``area`` is that mask's pixel count; ``bbox`` covers the visible silhouette and the labelled keypoints.
* About one person in eight is left unlabelled (``num_keypoints: 0``, all keypoints 0, with a segmentation), and
  some images hold a crowd: a tight group of small figures annotated as one ``iscrowd: 1`` RLE region. Training
  must mask both out, as on COCO.

Determinism: image *i* of a split is drawn from ``SeedSequence([seed, split, i])`` alone, so the output does not
depend on the number of worker processes or their scheduling; image ids are 1..num_train for train2017 and
continue with num_train+1.. for val2017.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import os
import re
import time
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bpnet_core.errors import BpnetError
from bpnet_core.fileio import read_json, write_bytes_atomic, write_json_atomic
from bpnet_core.paths import project_file

log = logging.getLogger(__name__)

SPLITS = ("train2017", "val2017")
MARKER = ".bpnet_synthetic.json"
JPEG_QUALITY = 90
MIN_IMAGE_SIZE = 32
MAX_IMAGE_SIZE = 4096
MAX_PEOPLE = 6
_FILE_RE = re.compile(r"^\d{12}\.jpg$")

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
    "hard": {"people_p": _PEOPLE_P, "p_unlabelled": _P_UNLABELLED, "p_crowd": _P_CROWD, "p_occluder": _P_OCCLUDER,
             "p_small": 0.6, "clutter": (3, 16), "large": (0.6, 1.25), "inside": False, "p_group": 0.3},
    "easy": {"people_p": np.array([0.0, 0.55, 0.3, 0.15]), "p_unlabelled": 0.08, "p_crowd": 0.08,
             "p_occluder": 0.05, "p_small": 0.05, "clutter": (1, 5), "large": (0.55, 0.9), "inside": True,
             "p_group": 0.1, "pose_p": np.array([0.3, 0.3, 0.1, 0.15, 0.15, 0.0, 0.0, 0.0, 0.0]),
             "facing": (0.75, 0.15, 20.0)},
}
_MIN_AREA = 4  # visible pixels below which a drawn object gets no annotation


# ------------------------------------------------------------------------------------------------ public API
def generate_synthetic_coco(
    out_dir: str | os.PathLike,
    num_train: int = 1000,
    num_val: int = 100,
    image_size: tuple[int, int] = (256, 256),
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
    difficulty: str = "hard",
) -> dict:
    """Write a synthetic COCO-keypoints dataset (COCO 2017 layout) under ``out_dir``.

    Args:
        out_dir: output folder; created if missing. It must be empty or an earlier synthetic output (overwritten).
        num_train, num_val: number of images in ``train2017`` and ``val2017``.
        image_size: ``(height, width)`` in pixels, each 32..4096.
        seed: non-negative integer; the same seed gives byte-identical images and JSON.
        workers: processes to render with (default ``os.cpu_count()``); the output does not depend on it.
        progress: show a tqdm progress bar.
        difficulty: ``"hard"`` (0-6 people from small to frame-filling, clutter, crowds, occluders) or ``"easy"``
            (1-3 mostly medium-to-large people, calmer scenes; see :data:`DIFFICULTIES`).

    Returns:
        A summary: ``images``, ``train_images``, ``val_images``, ``people`` (individual figures annotated),
        ``labelled_people``, ``unlabelled_people``, ``crowd_regions``, ``annotations``, ``visible_keypoints``,
        ``occluded_keypoints``, ``seconds``, ``images_per_second``, ``out_dir``.
    """
    num_train = _check_count(num_train, "num_train")
    num_val = _check_count(num_val, "num_val")
    height, width = _check_size(image_size)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise BpnetError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    if workers is None:
        workers = os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise BpnetError(f"workers must be a positive integer, got {workers!r}")
    if difficulty not in DIFFICULTIES:
        raise BpnetError(f"difficulty must be one of {sorted(DIFFICULTIES)}, got {difficulty!r}")
    category = _category()
    out = _prepare_out_dir(out_dir)

    write_json_atomic(
        out / MARKER,
        {"generator": "bpnet_core.data.synthetic", "seed": seed, "image_size": [height, width],
         "num_train": num_train, "num_val": num_val, "difficulty": difficulty},
    )
    t0 = time.perf_counter()
    counts = {"labelled_people": 0, "unlabelled_people": 0, "crowd_regions": 0, "visible_keypoints": 0,
              "occluded_keypoints": 0}
    tasks_by_split = {}
    first_id = 1
    for split_code, (split, n) in enumerate(zip(SPLITS, (num_train, num_val))):
        (out / split).mkdir(exist_ok=True)
        tasks_by_split[split] = [
            (seed, split_code, i, first_id + i, height, width, str(out / split / f"{first_id + i:012d}.jpg"),
             difficulty)
            for i in range(n)
        ]
        first_id += n
    (out / "annotations").mkdir(exist_ok=True)

    total = num_train + num_val
    results: dict[str, list] = {split: [] for split in SPLITS}
    from tqdm.auto import tqdm

    with tqdm(total=total, desc="synthetic data", unit="img", disable=not progress) as bar:
        n_proc = min(int(workers), max(1, total))
        if n_proc <= 1:
            for split in SPLITS:
                for task in tasks_by_split[split]:
                    results[split].append(_make_image(task))
                    bar.update(1)
        else:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=n_proc, mp_context=ctx, initializer=_init_worker) as pool:
                for split in SPLITS:
                    tasks = tasks_by_split[split]
                    chunk = max(1, min(16, len(tasks) // (4 * n_proc)))
                    for res in pool.map(_make_image, tasks, chunksize=chunk):
                        results[split].append(res)
                        bar.update(1)

    ann_id = 1
    for split in SPLITS:
        images, annotations = [], []
        for image, anns in results[split]:
            images.append(image)
            for ann in anns:
                ann["id"] = ann_id
                ann_id += 1
                annotations.append(ann)
                if ann["iscrowd"]:
                    counts["crowd_regions"] += 1
                elif ann["num_keypoints"] > 0 or ann.get("_labelled"):
                    counts["labelled_people"] += 1
                else:
                    counts["unlabelled_people"] += 1
                ann.pop("_labelled", None)
                v = ann["keypoints"][2::3]
                counts["visible_keypoints"] += sum(1 for f in v if f == 2)
                counts["occluded_keypoints"] += sum(1 for f in v if f == 1)
        doc = {
            "info": {"description": "bpnet synthetic COCO-keypoints dataset", "version": "1.0", "year": 2026,
                     "contributor": "bpnet_core.data.synthetic", "url": "", "date_created": "",
                     "seed": seed},
            "licenses": [{"id": 1, "name": "CC0 1.0 (synthetic)",
                          "url": "https://creativecommons.org/publicdomain/zero/1.0/"}],
            "images": images,
            "annotations": annotations,
            "categories": [category],
        }
        write_json_atomic(out / "annotations" / f"person_keypoints_{split}.json", doc, indent=None)

    spec = read_json(project_file("data_pose_config", "synthetic_spec.json"), "dataset spec")
    spec["root_directory_path"] = str(out)
    write_json_atomic(out / "dataset_spec.json", spec)

    seconds = time.perf_counter() - t0
    summary = {
        "out_dir": str(out),
        "images": total,
        "train_images": num_train,
        "val_images": num_val,
        "people": counts["labelled_people"] + counts["unlabelled_people"],
        **counts,
        "annotations": ann_id - 1,
        "seconds": round(seconds, 3),
        "images_per_second": round(total / seconds, 1) if seconds > 0 else 0.0,
    }
    log.info("synthetic dataset: %d images (%.1f img/s), %d people, %d crowd regions in %s", total,
             summary["images_per_second"], summary["people"], summary["crowd_regions"], out)
    return summary


# ------------------------------------------------------------------------------------------------ checks, layout
def _check_count(n: Any, name: str) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise BpnetError(f"{name} must be an integer, got {n!r}")
    if n < 0:
        raise BpnetError(f"{name} must be >= 0, got {n}")
    return int(n)


def _check_size(image_size: Any) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise BpnetError(f"image_size must be (height, width), got {image_size!r}") from None
    for name, v in (("height", height), ("width", width)):
        if not MIN_IMAGE_SIZE <= v <= MAX_IMAGE_SIZE:
            raise BpnetError(f"image_size {name} {v} is outside {MIN_IMAGE_SIZE}..{MAX_IMAGE_SIZE} pixels")
    return height, width


def _prepare_out_dir(out_dir: str | os.PathLike) -> Path:
    out = Path(out_dir).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise BpnetError(f"{out}: output path exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise BpnetError(f"{out}: output directory is not empty and is not a bpnet synthetic dataset; "
                         "choose a new or empty directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BpnetError(f"{out}: cannot create output directory: {exc.strerror}") from None
    # re-run into an earlier synthetic output: remove the images it wrote so no stale file survives
    for split in SPLITS:
        folder = out / split
        if folder.is_dir():
            for p in folder.iterdir():
                if _FILE_RE.match(p.name) or (p.name.startswith(".") and p.name.endswith(".tmp")):
                    p.unlink()
    for split in ("train_mask2017", "val_mask2017"):
        if (out / split).is_dir():
            log.warning("%s: masks from an earlier dataset_convert are now stale; re-run dataset_convert", out / split)
    return out


@lru_cache(maxsize=1)
def _category_json() -> str:
    spec = read_json(project_file("data_pose_config", "synthetic_spec.json"), "dataset spec")
    try:
        cat = next(c for c in spec["categories"] if c.get("name") == "person")
    except (KeyError, StopIteration, TypeError):
        raise BpnetError("data_pose_config/synthetic_spec.json: no 'person' entry in 'categories'") from None
    missing = [n for n in cat["keypoints"] if n not in _JOINTS]
    if missing:
        raise BpnetError(f"data_pose_config/synthetic_spec.json: the synthetic figure has no joint {missing[0]!r}")
    return json.dumps({k: cat[k] for k in ("supercategory", "id", "name", "keypoints", "skeleton")})


def _category() -> dict:
    """COCO's person category (17 keypoints in COCO order, 1-based skeleton) from the synthetic spec."""
    return json.loads(_category_json())


def _init_worker() -> None:
    cv2.setNumThreads(1)


def _make_image(task: tuple) -> tuple[dict, list[dict]]:
    """Render, write and annotate one image (runs in a worker process)."""
    seed, split_code, index, image_id, height, width, path, difficulty = task
    rng = np.random.default_rng(np.random.SeedSequence([seed, split_code, index]))
    image, objects = _render_scene(rng, height, width, DIFFICULTIES[difficulty])
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:  # pragma: no cover - OpenCV always encodes uint8 BGR
        raise BpnetError(f"{path}: JPEG encoding failed")
    write_bytes_atomic(path, buf.tobytes())
    names = _category()["keypoints"]
    anns = []
    for obj in objects:
        ann = _annotation(obj, names, height, width)
        if ann is not None:
            ann["image_id"] = image_id
            anns.append(ann)
    record = {"id": image_id, "file_name": os.path.basename(path), "height": height, "width": width, "license": 1}
    return record, anns


def _annotation(obj: dict, names: list[str], height: int, width: int) -> dict | None:
    from pycocotools import mask as mask_utils

    vis = obj["visible"]
    area = int(vis.sum())
    if area < _MIN_AREA:
        return None
    ys, xs = np.nonzero(vis)
    x0, x1, y0, y1 = float(xs.min()), float(xs.max() + 1), float(ys.min()), float(ys.max() + 1)
    keypoints = [0] * (3 * len(names))
    num = 0
    crowd = obj["kind"] == "crowd"
    if obj["kind"] == "person":
        for j, name in enumerate(names):
            x, y, v = obj["keypoints"][name]
            if v > 0:
                keypoints[3 * j: 3 * j + 3] = [round(float(x), 2), round(float(y), 2), int(v)]
                num += 1
                x0, x1 = min(x0, math.floor(x)), max(x1, math.ceil(x))
                y0, y1 = min(y0, math.floor(y)), max(y1, math.ceil(y))
    x0, y0 = max(0.0, x0), max(0.0, y0)
    x1, y1 = min(float(width), x1), min(float(height), y1)
    if crowd:
        rle = mask_utils.encode(np.asfortranarray(vis.astype(np.uint8)))
        segmentation: Any = {"counts": rle["counts"].decode("ascii"), "size": [int(height), int(width)]}
    else:
        segmentation = _polygons(vis)
        if not segmentation:
            return None
    return {
        "image_id": 0,
        "category_id": 1,
        "iscrowd": 1 if crowd else 0,
        "num_keypoints": num,
        "keypoints": keypoints,
        "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
        "area": area,
        "segmentation": segmentation,
        "_labelled": obj["kind"] == "person",
    }


def _polygons(mask: np.ndarray) -> list[list[float]]:
    """COCO polygons ([[x1, y1, x2, y2, ...], ...]) of a binary mask's outer contours (each >= 3 points)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for c in contours:
        if len(c) >= 8:
            c = cv2.approxPolyDP(c, 0.6, True)
        if len(c) < 3:
            # a thin sliver: use its (slightly grown) bounding box so the polygon is valid and non-empty
            x, y, w, h = cv2.boundingRect(c)
            c = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])
        polys.append([float(v) for v in np.asarray(c).reshape(-1)])
    return polys


# ------------------------------------------------------------------------------------------------ geometry helpers
_SHIFT = 4
_ONE = 1 << _SHIFT


def _fx(p: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(p, np.float64) * _ONE).astype(np.int32)


def _pt(p) -> tuple[int, int]:
    q = _fx(p)
    return int(q[0]), int(q[1])


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-9 else v


def _rotate_about(v: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    axis = _unit(axis)
    c, s = math.cos(angle), math.sin(angle)
    return v * c + _cross(axis, v) * s + axis * float(np.dot(axis, v)) * (1.0 - c)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def _perp_part(v: np.ndarray, axis: np.ndarray) -> np.ndarray:
    return v - axis * float(np.dot(v, axis))


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
_SKIN = np.array([[196, 224, 255], [125, 194, 241], [105, 172, 224], [66, 134, 198], [36, 85, 141], [38, 58, 92],
                  [150, 190, 230]], np.float32)  # BGR
_HAIR = np.array([[20, 20, 25], [25, 40, 70], [40, 70, 120], [90, 150, 200], [160, 160, 165], [30, 50, 140],
                  [15, 15, 15]], np.float32)


def _rand_color(rng: np.random.Generator, sat: tuple = (0.1, 0.9), val: tuple = (0.15, 0.95)) -> np.ndarray:
    h = rng.uniform(0, 180)
    s = rng.uniform(*sat) * 255
    v = rng.uniform(*val) * 255
    hsv = np.array([[[h, s, v]]], np.float32)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def _jitter(rng: np.random.Generator, color: np.ndarray, amount: float = 15.0) -> np.ndarray:
    return np.clip(color + rng.uniform(-amount, amount, 3), 0, 255).astype(np.float32)


def _texture(rng: np.random.Generator, h: int, w: int, base: np.ndarray, period: float,
             p: tuple = (0.4, 0.18, 0.14, 0.16, 0.12)) -> np.ndarray:
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


def _fill_texture(rng: np.random.Generator, img: np.ndarray, sel: np.ndarray, base: np.ndarray, period: float,
                  p: tuple = (0.4, 0.18, 0.14, 0.16, 0.12)) -> None:
    """Paint ``img[sel]`` with a texture computed over the bounding box of ``sel`` only."""
    rows, cols = np.flatnonzero(sel.any(1)), np.flatnonzero(sel.any(0))
    if not len(rows):
        return
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    sub = sel[r0:r1, c0:c1]
    tex = _texture(rng, r1 - r0, c1 - c0, base, period, p)
    img[r0:r1, c0:c1][sub] = np.clip(tex[sub], 0, 255).astype(img.dtype)


# ------------------------------------------------------------------------------------------------ the body model
# keypoint name -> the parts it belongs to (a keypoint covered by any other, later-drawn part is occluded)
_JOINTS = {
    "nose": ("head",), "left_eye": ("head",), "right_eye": ("head",), "left_ear": ("head",), "right_ear": ("head",),
    "left_shoulder": ("upper_arm_l", "torso_upper"), "right_shoulder": ("upper_arm_r", "torso_upper"),
    "left_elbow": ("upper_arm_l", "forearm_l"), "right_elbow": ("upper_arm_r", "forearm_r"),
    "left_wrist": ("forearm_l", "hand_l"), "right_wrist": ("forearm_r", "hand_r"),
    "left_hip": ("torso_lower", "thigh_l"), "right_hip": ("torso_lower", "thigh_r"),
    "left_knee": ("thigh_l", "shin_l"), "right_knee": ("thigh_r", "shin_r"),
    "left_ankle": ("shin_l", "foot_l"), "right_ankle": ("shin_r", "foot_r"),
}
_FACE = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")

_RING_COS = np.cos(np.linspace(0, 2 * math.pi, 10, endpoint=False))
_RING_SIN = np.sin(np.linspace(0, 2 * math.pi, 10, endpoint=False))

_POSES = ("stand", "walk", "run", "arms_up", "reach", "sit", "squat", "lie", "free")
_POSE_P = np.array([0.16, 0.2, 0.08, 0.11, 0.12, 0.1, 0.06, 0.07, 0.1])
#: Default facing: (p_front, p_back, spread in degrees); the rest face any direction (profiles).
_FACING = (0.5, 0.25, 30.0)


def _sample_pose(rng: np.random.Generator, pose_p: np.ndarray = _POSE_P) -> tuple[str, dict]:
    """Joint angles (radians) of one of the pose families (probabilities ``pose_p``), within joint limits."""
    r = math.radians

    def u(a: float, b: float) -> float:
        return r(rng.uniform(a, b))

    kind = _POSES[rng.choice(len(_POSES), p=pose_p)]
    p = {
        "lean": u(-4, 8), "side": u(-5, 5), "twist": u(-10, 10), "nod": u(-10, 15), "tilt": u(-10, 10),
        "head_yaw": u(-30, 30), "roll": u(-6, 6),
        "abd": [u(4, 20), u(4, 20)], "flex": [u(-12, 20), u(-12, 20)], "arm_twist": [u(-30, 20), u(-30, 20)],
        "elbow": [u(0, 35), u(0, 35)], "leg_flex": [u(-5, 10), u(-5, 10)], "leg_abd": [u(-2, 9), u(-2, 9)],
        "knee": [u(0, 12), u(0, 12)],
    }
    a = int(rng.integers(2))  # the "first" side for asymmetric poses
    b = 1 - a
    if kind == "walk" or kind == "run":
        big = kind == "run"
        p["leg_flex"][a] = u(30, 70) if big else u(12, 32)
        p["leg_flex"][b] = u(-35, -10) if big else u(-22, -5)
        p["knee"][a] = u(30, 90) if big else u(5, 25)
        p["knee"][b] = u(50, 110) if big else u(10, 45)
        p["flex"][a] = u(-50, -20) if big else u(-30, -5)
        p["flex"][b] = u(30, 70) if big else u(10, 35)
        p["elbow"] = [u(70, 110), u(70, 110)] if big else [u(10, 40), u(10, 40)]
        p["abd"] = [u(5, 20), u(5, 20)]
        if big:
            p["lean"] = u(8, 22)
    elif kind == "arms_up":
        sides = [a] if rng.random() < 0.4 else [0, 1]
        for s in sides:
            if rng.random() < 0.5:
                p["abd"][s], p["flex"][s] = u(70, 170), u(-10, 30)
            else:
                p["abd"][s], p["flex"][s] = u(5, 35), u(110, 175)
            p["elbow"][s] = u(0, 100)
    elif kind == "reach":
        p["abd"][a], p["flex"][a], p["elbow"][a] = u(0, 60), u(50, 110), u(0, 50)
        if rng.random() < 0.5:  # other hand on the hip
            p["abd"][b], p["flex"][b], p["elbow"][b], p["arm_twist"][b] = u(35, 50), u(-20, 0), u(90, 130), u(60, 90)
    elif kind == "sit":
        p["leg_flex"] = [u(70, 100), u(70, 100)]
        p["knee"] = [u(70, 110), u(70, 110)]
        p["leg_abd"] = [u(0, 20), u(0, 20)]
        p["lean"] = u(-10, 20)
        p["flex"] = [u(10, 50), u(10, 50)]
        p["elbow"] = [u(30, 90), u(30, 90)]
    elif kind == "squat":
        p["leg_flex"] = [u(90, 125), u(90, 125)]
        p["knee"] = [u(110, 150), u(110, 150)]
        p["leg_abd"] = [u(5, 30), u(5, 30)]
        p["lean"] = u(20, 45)
        p["flex"] = [u(30, 90), u(30, 90)]
        p["elbow"] = [u(0, 90), u(0, 90)]
    elif kind == "lie":
        p["roll"] = r(rng.choice([-1, 1]) * rng.uniform(70, 105))
        p["abd"] = [u(0, 90), u(0, 90)]
        p["knee"] = [u(0, 60), u(0, 60)]
        p["leg_flex"] = [u(-5, 40), u(-5, 40)]
    elif kind == "free":
        p.update(lean=u(-10, 35), side=u(-15, 15), twist=u(-25, 25), nod=u(-20, 30), head_yaw=u(-50, 50))
        p["abd"] = [u(-10, 170), u(-10, 170)]
        p["flex"] = [u(-50, 170), u(-50, 170)]
        p["elbow"] = [u(0, 145), u(0, 145)]
        p["arm_twist"] = [u(-60, 60), u(-60, 60)]
        p["leg_flex"] = [u(-30, 110), u(-30, 110)]
        p["leg_abd"] = [u(-10, 45), u(-10, 45)]
        p["knee"] = [u(0, 140), u(0, 140)]
    if kind != "lie" and rng.random() < 0.05:
        p["roll"] = u(-40, 40)
    return kind, p


def _sample_yaw(rng: np.random.Generator, facing: tuple[float, float, float] = _FACING) -> float:
    """Facing = (p_front, p_back, spread in degrees); default: 50 % towards the camera, 25 % away (± 30°), 25 % any
    direction (profiles)."""
    p_front, p_back, spread = facing
    t = rng.random()
    if t < p_front:
        return float(rng.normal(0.0, math.radians(spread)))
    if t < p_front + p_back:
        return float(math.pi + rng.normal(0.0, math.radians(spread)))
    return float(rng.uniform(-math.pi, math.pi))


def _body(rng: np.random.Generator, pose: dict) -> tuple[dict, list]:
    """A posed 3-D body in body units (height ~ 1; x = the figure's left, y = down, z = its front).

    Returns the joints (name -> (point, face normal or None)) and the parts
    (kind, name, material, geometry...).
    """
    def g(m: float, spread: float = 0.06) -> float:
        return m * rng.uniform(1 - spread, 1 + spread)

    child = rng.random() < 0.08
    head_k = 1.3 if child else 1.0
    limb_k = 0.9 if child else 1.0
    build = rng.uniform(0.85, 1.3)
    torso_len, sh_half, hip_half = g(0.30), g(0.115), g(0.085)
    upper_arm, forearm, hand = g(0.165 * limb_k), g(0.15 * limb_k), g(0.055)
    thigh, shin, foot = g(0.245 * limb_k), g(0.245 * limb_k), g(0.075)
    neck_len = g(0.095)
    head_r = g(0.056) * head_k
    head_rv = head_r * g(1.18, 0.05)

    lat0 = np.array([1.0, 0.0, 0.0])
    down0 = np.array([0.0, 1.0, 0.0])
    up0 = -down0
    fwd0 = np.array([0.0, 0.0, 1.0])
    side, lean = pose["side"], pose["lean"]
    up_t = _unit(math.sin(side) * lat0 + math.cos(side) * (math.cos(lean) * up0 + math.sin(lean) * fwd0))
    lat_t = _unit(_perp_part(lat0, up_t))
    fwd_t = _cross(up_t, lat_t)
    tw = pose["twist"]
    lat_t = math.cos(tw) * lat_t + math.sin(tw) * fwd_t
    fwd_t = _cross(up_t, lat_t)
    lat_w = _unit(lat0 + lat_t)  # waist: half of the twist
    fwd_w = _unit(_cross(_unit(up0 + up_t), lat_w))

    pelvis = np.zeros(3)
    chest_top = pelvis + up_t * torso_len
    neck_base = chest_top + up_t * 0.012
    shoulder = [chest_top - up_t * 0.015 + s * lat_t * sh_half for s in (1, -1)]
    hip = [pelvis + s * lat0 * hip_half + down0 * 0.01 for s in (1, -1)]

    nod, tilt, hy = pose["nod"], pose["tilt"], pose["head_yaw"]
    up_h = _unit(math.sin(tilt) * lat_t + math.cos(tilt) * (math.cos(nod) * up_t + math.sin(nod) * fwd_t))
    lat_h = _unit(_perp_part(lat_t, up_h))
    fwd_h = _cross(up_h, lat_h)
    lat_h = math.cos(hy) * lat_h + math.sin(hy) * fwd_h
    fwd_h = _cross(up_h, lat_h)
    head_c = neck_base + _unit(up_t + up_h) * neck_len + fwd_h * 0.008

    def head_point(x: float, y: float, z: float) -> tuple[np.ndarray, np.ndarray]:
        local = lat_h * x + up_h * y + fwd_h * z
        return head_c + local * (head_r / 0.056), _unit(local)

    joints: dict[str, tuple[np.ndarray, np.ndarray | None]] = {
        "nose": head_point(0.0, -0.012, 0.05),
        "left_eye": head_point(0.022, 0.008, 0.042),
        "right_eye": head_point(-0.022, 0.008, 0.042),
        "left_ear": head_point(0.047, 0.0, -0.006),
        "right_ear": head_point(-0.047, 0.0, -0.006),
    }
    parts: list = []
    # torso: hulls of elliptical cross-sections
    def ring(c: np.ndarray, lat: np.ndarray, fwd: np.ndarray, rl: float, rf: float) -> np.ndarray:
        k = build ** 0.5
        return c + np.outer(_RING_COS * (rl * k), lat) + np.outer(_RING_SIN * (rf * k), fwd)

    waist = pelvis + up_t * (0.45 * torso_len)
    lower = np.concatenate([ring(pelvis + down0 * 0.055, lat0, fwd0, 0.07, 0.055),
                            ring(pelvis, lat0, fwd0, 0.1, 0.065), ring(waist, lat_w, fwd_w, 0.082, 0.055)])
    upper = np.concatenate([ring(waist, lat_w, fwd_w, 0.082, 0.055),
                            ring(pelvis + up_t * (0.75 * torso_len), lat_t, fwd_t, 0.1, 0.065),
                            ring(chest_top - up_t * 0.01, lat_t, fwd_t, 0.105, 0.05)])
    parts.append(("hull", "torso_lower", "pants", lower, pelvis))
    parts.append(("hull", "torso_upper", "shirt", upper, pelvis + up_t * (0.7 * torso_len), fwd_t))
    parts.append(("cap", "neck", "skin", neck_base - up_t * 0.03, head_c, 0.027 * build ** 0.5, 0.025))
    parts.append(("head", "head", "skin", head_c, head_r, head_rv, up_h, lat_h, fwd_h))

    for i, s in enumerate((1, -1)):
        tag = "lr"[i]
        name = ("left_", "right_")[i]
        abd, flex = pose["abd"][i], pose["flex"][i]
        v_loc = np.array([s * math.sin(abd), math.cos(abd) * math.cos(flex), math.cos(abd) * math.sin(flex)])
        v = _unit(v_loc[0] * lat_t - v_loc[1] * up_t + v_loc[2] * fwd_t)
        elbow = shoulder[i] + v * upper_arm
        b_loc = np.array([0.0, -v_loc[2], v_loc[1]])
        bend = _perp_part(b_loc[0] * lat_t - b_loc[1] * up_t + b_loc[2] * fwd_t, v)
        if np.linalg.norm(bend) < 0.3:
            bend = _perp_part(fwd_t, v)
        bend = _rotate_about(_unit(bend), v, -s * pose["arm_twist"][i])
        e = pose["elbow"][i]
        fdir = _unit(math.cos(e) * v + math.sin(e) * bend)
        wrist = elbow + fdir * forearm
        joints[name + "shoulder"] = (shoulder[i], None)
        joints[name + "elbow"] = (elbow, None)
        joints[name + "wrist"] = (wrist, None)
        parts.append(("cap", "upper_arm_" + tag, "sleeve_upper", shoulder[i], elbow, 0.042 * build, 0.032 * build))
        parts.append(("cap", "forearm_" + tag, "sleeve_lower", elbow, wrist, 0.031 * build, 0.023 * build))
        parts.append(("cap", "hand_" + tag, "skin", wrist + fdir * 0.01, wrist + fdir * hand, 0.024 * build ** 0.5,
                      0.02 * build ** 0.5))

        lf, la = pose["leg_flex"][i], pose["leg_abd"][i]
        v_loc = np.array([s * math.sin(la), math.cos(la) * math.cos(lf), math.cos(la) * math.sin(lf)])
        v = _unit(v_loc[0] * lat0 + v_loc[1] * down0 + v_loc[2] * fwd0)
        knee = hip[i] + v * thigh
        bend = _perp_part(v_loc[2] * down0 - v_loc[1] * fwd0, v)
        if np.linalg.norm(bend) < 0.3:
            bend = _perp_part(-fwd0, v)
        bend = _unit(bend)
        k = pose["knee"][i]
        sdir = _unit(math.cos(k) * v + math.sin(k) * bend)
        ankle = knee + sdir * shin
        fdir = _unit(_perp_part(_unit(fwd0 + s * 0.3 * lat0), sdir) + 0.25 * sdir)
        joints[name + "hip"] = (hip[i], None)
        joints[name + "knee"] = (knee, None)
        joints[name + "ankle"] = (ankle, None)
        parts.append(("cap", "thigh_" + tag, "pants", hip[i], knee, 0.064 * build, 0.045 * build))
        parts.append(("cap", "shin_" + tag, "pants_lower", knee, ankle, 0.044 * build, 0.03 * build))
        parts.append(("cap", "foot_" + tag, "shoes", ankle - fdir * 0.02 + sdir * 0.025, ankle + fdir * foot + sdir *
                      0.02, 0.027 * build ** 0.5, 0.022 * build ** 0.5))
    return joints, parts


def _outfit(rng: np.random.Generator) -> dict:
    """Material name -> base BGR colour."""
    skin = _jitter(rng, _SKIN[rng.integers(len(_SKIN))], 12)
    shirt = _rand_color(rng)
    pants = _rand_color(rng, sat=(0.0, 0.7), val=(0.1, 0.8))
    sleeves = rng.choice(3, p=[0.45, 0.4, 0.15])  # long, short, none
    legs = rng.choice(2, p=[0.75, 0.25])  # long, shorts
    return {
        "skin": skin,
        "hair": _jitter(rng, _HAIR[rng.integers(len(_HAIR))], 10) if rng.random() > 0.07 else skin * 0.9,
        "shirt": shirt,
        "pants": pants,
        "shoes": _rand_color(rng, val=(0.05, 0.5)),
        "sleeve_upper": "skin" if sleeves == 2 else "shirt",
        "sleeve_lower": "shirt" if sleeves == 0 else "skin",
        "pants_lower": "pants" if legs == 0 else "skin",
        "print": _rand_color(rng, sat=(0.5, 1.0), val=(0.6, 1.0)) if rng.random() < 0.5 else None,
    }


def _render_figure(rng: np.random.Generator, height_px: float, anchor: tuple[float, float], H: int, W: int,
                   pose: dict | None = None, yaw: float | None = None, cfg: dict | None = None) -> dict | None:
    """Project and draw one figure (pose families and facing from the preset ``cfg``). Returns its crop (colour,
    alpha, part labels) and keypoints, or None if the figure would fall outside the image."""
    cfg = cfg or {}
    if pose is None:
        _, pose = _sample_pose(rng, cfg.get("pose_p", _POSE_P))
    yaw = _sample_yaw(rng, cfg.get("facing", _FACING)) if yaw is None else yaw
    joints, parts = _body(rng, pose)
    outfit = _outfit(rng)

    cy, sy = math.cos(yaw), math.sin(yaw)
    rot_yaw = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    cr, sr = math.cos(pose["roll"]), math.sin(pose["roll"])
    rot_roll = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    rot = rot_roll @ rot_yaw

    # the body's 2-D extent (at scale 1) to place it: the anchor is the centre of its extent
    pts = np.array([j[0] for j in joints.values()] + [p[3] for p in parts if p[0] == "cap"]
                   + [p[4] for p in parts if p[0] == "cap"])
    proj = pts @ rot.T
    lo, hi = proj[:, :2].min(0), proj[:, :2].max(0)
    scale = height_px
    offset = np.array(anchor, np.float64) - scale * (lo + hi) / 2

    def P(p: np.ndarray) -> np.ndarray:
        p = np.asarray(p)
        if p.ndim == 2:
            return (p @ rot[:2].T) * scale + offset
        return (rot[:2] @ p) * scale + offset

    def Z(p: np.ndarray) -> float:
        return float((rot @ p)[2])

    # bounds of the crop
    margin = 0.12 * scale + 3
    x0 = int(math.floor(scale * lo[0] + offset[0] - margin))
    y0 = int(math.floor(scale * lo[1] + offset[1] - margin))
    x1 = int(math.ceil(scale * hi[0] + offset[0] + margin))
    y1 = int(math.ceil(scale * hi[1] + offset[1] + margin))
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(W, x1), min(H, y1)
    if cx1 - cx0 < 2 or cy1 - cy0 < 2:
        return None
    org = np.array([cx0, cy0], np.float64)
    h, w = cy1 - cy0, cx1 - cx0

    # draw order: far parts first; the torso and head are treated as a little further back than their centre so
    # that limbs at the same depth (arms hanging at the sides) are drawn over their edges
    keyed = []
    for part in parts:
        kind, name = part[0], part[1]
        if kind == "hull":
            key = Z(part[4]) - 0.035
        elif kind == "head":
            key = Z(part[3]) - 0.02
        elif name == "neck":
            key = -1e9  # replaced below
        else:
            key = (Z(part[3]) + Z(part[4])) / 2
            if name.startswith(("hand", "foot")):
                key += 0.002
        keyed.append([key, part])
    head_key = next(k for k, p in keyed if p[0] == "head")
    torso_key = min(k for k, p in keyed if p[0] == "hull")
    for item in keyed:
        if item[1][1] == "neck":
            item[0] = min(head_key, torso_key) - 0.001
    keyed.sort(key=lambda kp: kp[0])

    label = np.zeros((h, w), np.uint8)
    part_ids: dict[str, list[int]] = {}
    materials = [None]
    head_info = None
    for _, part in keyed:
        kind, name, mat = part[0], part[1], part[2]
        mat = outfit[mat] if isinstance(outfit.get(mat), str) else mat
        pid = len(materials)
        materials.append(mat)
        part_ids[name] = [pid]
        if kind == "cap":
            _draw_capsule(label, P(part[3]) - org, P(part[4]) - org, part[5] * scale, part[6] * scale, pid)
        elif kind == "hull":
            poly = P(part[3]) - org
            hull = cv2.convexHull(_fx(poly))
            cv2.fillConvexPoly(label, hull, pid, cv2.LINE_8, _SHIFT)
        else:  # head + hair
            _, _, _, c, r, rv, up_h, lat_h, fwd_h = part
            c2 = P(c) - org
            up2 = (rot @ up_h)[:2]
            ang = math.degrees(math.atan2(up2[1], up2[0])) + 90.0
            rv_eff = r + (rv - r) * min(1.0, float(np.linalg.norm(up2)))
            _draw_ellipse(label, c2, r * scale, rv_eff * scale, ang, pid)
            head_mask = label == pid
            hair_id = len(materials)
            materials.append("hair")
            part_ids[name].append(hair_id)
            fwd3 = rot @ fwd_h
            fz = float(fwd3[2])
            face = np.zeros_like(label)
            if fz > -0.3:
                down2 = -up2
                fc = c2 + fwd3[:2] * (0.42 * r * scale) + down2 * (0.22 * r * scale)
                k = 0.55 + 0.45 * max(0.0, fz)
                _draw_ellipse(face, fc, 0.8 * r * scale * k, 0.85 * rv_eff * scale, ang, 1)
            label[head_mask & (face == 0)] = hair_id
            head_info = (c2, r * scale, fwd3, rot @ lat_h, up2)

    # colours: one texture per material over the crop
    mat_names = sorted({m for m in materials[1:]})
    mat_index = {m: i + 1 for i, m in enumerate(mat_names)}
    lut = np.zeros(256, np.uint8)
    for pid, m in enumerate(materials):
        if m is not None:
            lut[pid] = mat_index[m]
    matmap = lut[label]
    color = np.zeros((h, w, 3), np.float32)
    period = max(2.5, 0.04 * scale)
    for m in mat_names:
        sel = matmap == mat_index[m]
        if m in ("skin", "hair"):
            color[sel] = outfit[m]
        else:
            _fill_texture(rng, color, sel, outfit[m], period)

    mask = label > 0
    # chest print on the front of the shirt
    if outfit["print"] is not None:
        tid = part_ids["torso_upper"][0]
        torso = next(p for p in parts if p[1] == "torso_upper")
        if float((rot @ torso[5])[2]) > 0.2:
            chest = torso[4]
            c2 = P(chest) - org
            pm = np.zeros_like(label)
            rr = 0.035 * scale
            if rng.random() < 0.5:
                _draw_ellipse(pm, c2, rr, rr, 0, 1)
            else:
                _draw_ellipse(pm, c2, rr * 1.4, rr * 0.6, math.degrees(pose["roll"]), 1)
            sel = (pm > 0) & (label == tid)
            color[sel] = outfit["print"]

    # face details
    if head_info is not None:
        c2, r_px, fwd3, lat3, up2 = head_info
        head_ids = set(part_ids["head"])
        if r_px >= 3.5 and fwd3[2] > 0.15:
            er = max(0.6, 0.12 * r_px)
            for nm in ("left_eye", "right_eye"):
                p3, normal = joints[nm]
                if (rot @ normal)[2] > 0.15:
                    e2 = P(p3) - org
                    xi, yi = int(round(e2[0])), int(round(e2[1]))
                    if 0 <= xi < w and 0 <= yi < h and label[yi, xi] in head_ids:
                        cv2.circle(color, _pt(e2), int(round(er * _ONE)), (25, 25, 30), -1, cv2.LINE_AA, _SHIFT)
            if r_px >= 7 and fwd3[2] > 0.4:
                m2 = c2 + fwd3[:2] * 0.6 * r_px - up2 * 0.45 * r_px
                d = lat3[:2]
                a, b = m2 - d * 0.25 * r_px, m2 + d * 0.25 * r_px
                cv2.line(color, _pt(a), _pt(b), tuple(float(v) for v in outfit["skin"] * 0.55), 1, cv2.LINE_AA,
                         _SHIFT)

    # shading: darker towards each part's outline, so that limbs over the torso stay visible
    edge = np.zeros_like(mask)
    edge[:, 1:] |= label[:, 1:] != label[:, :-1]
    edge[:, :-1] |= label[:, 1:] != label[:, :-1]
    edge[1:, :] |= label[1:, :] != label[:-1, :]
    edge[:-1, :] |= label[1:, :] != label[:-1, :]
    dist = cv2.distanceTransform((~edge).astype(np.uint8), cv2.DIST_L2, 3)
    limb_px = max(1.0, 0.035 * scale)
    shade = 0.62 + 0.38 * np.sqrt(np.clip(dist / limb_px, 0.0, 1.0))
    light = rng.uniform(0.85, 1.15)
    color *= (shade * light)[..., None]
    np.clip(color, 0, 255, out=color)

    # keypoints: image position, labelled-ness and self-occlusion
    kps = {}
    for nm, owners in _JOINTS.items():
        p3, normal = joints[nm]
        p2 = P(p3)
        labelled = True
        if normal is not None and (rot @ normal)[2] < -0.25:
            labelled = False  # far side of the head
        own = [pid for o in owners for pid in part_ids[o]]
        q = p2 - org
        xi, yi = int(round(q[0])), int(round(q[1]))
        self_occ = False
        if 0 <= xi < w and 0 <= yi < h:
            lab = int(label[yi, xi])
            self_occ = lab != 0 and lab not in own and lab > max(own)
        kps[nm] = (float(p2[0]), float(p2[1]), labelled, self_occ)

    alpha = mask.astype(np.float32)
    if scale > 24:
        alpha = alpha * cv2.GaussianBlur(alpha, (3, 3), 0.7)
    return {"x0": cx0, "y0": cy0, "color": color, "alpha": alpha, "mask": mask, "keypoints": kps}


def _composite(canvas: np.ndarray, fig: dict) -> np.ndarray:
    """Blend a rendered figure into the canvas; return its full-image mask."""
    x0, y0 = fig["x0"], fig["y0"]
    h, w = fig["mask"].shape
    region = canvas[y0:y0 + h, x0:x0 + w].astype(np.float32)
    a = fig["alpha"][..., None]
    canvas[y0:y0 + h, x0:x0 + w] = np.clip(region * (1 - a) + fig["color"] * a + 0.5, 0, 255).astype(np.uint8)
    full = np.zeros(canvas.shape[:2], bool)
    full[y0:y0 + h, x0:x0 + w] = fig["mask"]
    return full


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
            cv2.rectangle(img, _pt((cx - w2 / 2, cy - h2 / 2)), _pt((cx + w2 / 2, cy + h2 / 2)), col, -1,
                          cv2.LINE_AA, _SHIFT)
        elif kind == 1:  # circle / ellipse
            cv2.ellipse(img, _pt((cx, cy)), (int(size / 2 * _ONE), int(size / 2 * rng.uniform(0.3, 1) * _ONE)),
                        float(rng.uniform(0, 180)), 0, 360, col, -1, cv2.LINE_AA, _SHIFT)
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
            inside = fig is not None and sum(
                1 for x, y, _, _ in fig["keypoints"].values() if 0 <= x <= W - 1 and 0 <= y <= H - 1) >= 3
            if inside:
                break
            anchor = (rng.uniform(0.1, 0.9) * W, rng.uniform(0.3, 0.7) * H)
            fig = None
        if fig is None:
            continue
        # unlabelled people are mostly small ones, as on COCO
        p_unlabelled = cfg["p_unlabelled"] * (2.5 if hpx < 0.28 * H else 0.4 if hpx > 0.6 * H else 1.0)
        unlabelled = rng.random() < p_unlabelled
        objects.append({"kind": "unlabelled" if unlabelled else "person", "mask": _composite(canvas, fig),
                        "kp": fig["keypoints"]})

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
