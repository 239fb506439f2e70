"""The synthetic dataset writer: :func:`generate_synthetic_coco` renders the images (in worker processes) and
writes them with their COCO-keypoints annotations and a dataset spec, in COCO 2017's layout."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bpnet_core.data.synthetic.body import _JOINTS
from bpnet_core.data.synthetic.scene import DIFFICULTIES, _render_scene
from bpnet_core.errors import BpnetError
from bpnet_core.fileio import read_json, write_bytes_atomic, write_json_atomic
from bpnet_core.paths import project_file
from bpnet_core.verbosity import progress_bar
from bpnet_core.workers import process_pool

log = logging.getLogger(__name__)

SPLITS = ("train2017", "val2017")
MARKER = ".bpnet_synthetic.json"
JPEG_QUALITY = 90
MIN_IMAGE_SIZE = 32
MAX_IMAGE_SIZE = 4096
MAX_PEOPLE = 6
_FILE_RE = re.compile(r"^\d{12}\.jpg$")

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
        {
            "generator": "bpnet_core.data.synthetic",
            "seed": seed,
            "image_size": [height, width],
            "num_train": num_train,
            "num_val": num_val,
            "difficulty": difficulty,
        },
    )
    t0 = time.perf_counter()
    counts = {
        "labelled_people": 0,
        "unlabelled_people": 0,
        "crowd_regions": 0,
        "visible_keypoints": 0,
        "occluded_keypoints": 0,
    }
    tasks_by_split = {}
    first_id = 1
    for split_code, (split, n) in enumerate(zip(SPLITS, (num_train, num_val))):
        (out / split).mkdir(exist_ok=True)
        tasks_by_split[split] = [
            (
                seed,
                split_code,
                i,
                first_id + i,
                height,
                width,
                str(out / split / f"{first_id + i:012d}.jpg"),
                difficulty,
            )
            for i in range(n)
        ]
        first_id += n
    (out / "annotations").mkdir(exist_ok=True)

    total = num_train + num_val
    results: dict[str, list] = {split: [] for split in SPLITS}
    with progress_bar(total=total, desc="synthetic data", unit="img", enabled=progress) as bar:
        n_proc = min(int(workers), max(1, total))
        if n_proc <= 1:
            for split in SPLITS:
                for task in tasks_by_split[split]:
                    results[split].append(_make_image(task))
                    bar.update(1)
        else:
            with process_pool(n_proc, initializer=_init_worker) as pool:
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
            "info": {
                "description": "bpnet synthetic COCO-keypoints dataset",
                "version": "1.0",
                "year": 2026,
                "contributor": "bpnet_core.data.synthetic",
                "url": "",
                "date_created": "",
                "seed": seed,
            },
            "licenses": [
                {"id": 1, "name": "CC0 1.0 (synthetic)", "url": "https://creativecommons.org/publicdomain/zero/1.0/"}
            ],
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
    log.debug(  # the CLI prints its own summary line
        "synthetic dataset: %d images (%.1f img/s), %d people, %d crowd regions in %s",
        total,
        summary["images_per_second"],
        summary["people"],
        summary["crowd_regions"],
        out,
    )
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
        raise BpnetError(
            f"{out}: output directory is not empty and is not a bpnet synthetic dataset; "
            "choose a new or empty directory"
        )
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
                keypoints[3 * j : 3 * j + 3] = [round(float(x), 2), round(float(y), 2), int(v)]
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
