"""``bpnet dataset_convert``: COCO-format annotations → TFRecords of training samples (+ masks), TAO semantics.

What it does, per image (as TAO's ``nvidia_tao_tf1/cv/bpnet/dataio/coco_converter.py`` does, in NVIDIA's
tao_tensorflow1_backend):

* **Main people** (crop centres): ``num_keypoints >= min_acceptable_kpts``, segmentation area >=
  ``min_acceptable_width × min_acceptable_height`` and a centre farther than ``min_acceptable_interperson_dist_ratio
  × max(bbox w, h)`` from every main person chosen before. With ``duplicate_data_with_each_person_as_center`` each
  main person gives one record with that person as the centre; otherwise an image gives one record.
  In ``test`` mode every image gives one record (evaluation needs them all).
* **Masks** (``--generate_masks``): ``(crowd − crowd ∩ labelled) ∪ unlabelled people``, inverted so valid = 255,
  written as lossless PNG (TAO writes JPEG, whose artefacts blur a binary mask) under ``mask_root_dir_path``, only
  for images that have something to mask; the record's ``frame/mask_path`` is empty otherwise (= all valid).
* **Records**: TAO's features (``frame/*``, ``person/*``, ``dataset``); the image is stored by path, or also as bytes
  (``frame/image_raw``) with ``embed_images``.

Beyond TAO: images are processed on all cores (processes) behind a progress bar; every shard and mask is written
atomically (temp file + rename), so a run killed at any point and started again ends with exactly the output of an
uninterrupted run; ``summary.json`` lists counts and every skipped item with its reason; ``check_files`` decodes
every image and reports the broken ones by name (they are skipped).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bpnet_core.config import load_dataset_spec
from bpnet_core.errors import BpnetError
from bpnet_core.fileio import make_dir, read_image, read_json, safe_join, write_bytes_atomic, write_json_atomic
from bpnet_core.verbosity import progress_bar
from bpnet_core.workers import process_pool

log = logging.getLogger(__name__)

RECORD_FEATURES = (
    "frame/image_id", "frame/height", "frame/width", "frame/image_path", "frame/mask_path", "dataset",
    "person/joints", "person/scales", "person/centers", "person/person_idx", "person/num_other_people",
)  # fmt: skip


@dataclass(frozen=True)
class _Job:
    """Everything a worker needs for one image (picklable, no TensorFlow)."""

    image: dict
    anns: tuple
    images_dir: str
    masks_dir: str
    mode: str
    num_keypoints: int
    generate_masks: bool
    check_files: bool
    duplicate: bool
    min_h: float
    min_w: float
    min_kpts: int
    dist_ratio: float
    embed_images: bool


def _spec_get(obj: Any, *path: str) -> Any:
    for key in path:
        obj = obj[key] if isinstance(obj, dict) else getattr(obj, key)
    return obj


# ------------------------------------------------------------------------------------------------ annotations
def load_annotations(annotation_file: Path, num_keypoints: int) -> tuple[list[dict], dict[int, list[dict]]]:
    """Read and check a COCO keypoint annotation file; return (images, person annotations by image id)."""
    data = read_json(annotation_file, "annotation file")
    if not isinstance(data, dict):
        raise BpnetError(f"{annotation_file}: annotation file must be a JSON object with 'images' and 'annotations'")
    for key in ("images", "annotations"):
        if not isinstance(data.get(key), list):
            raise BpnetError(f"{annotation_file}: missing or invalid key '{key}' (a list)")
    person_ids = {c.get("id") for c in data.get("categories", []) if c.get("name") == "person"} or {1}
    images, seen = [], set()
    for n, img in enumerate(data["images"]):
        for key in ("id", "file_name", "height", "width"):
            if key not in img:
                raise BpnetError(f"{annotation_file}: images[{n}] has no '{key}'")
        if img["id"] in seen:
            raise BpnetError(f"{annotation_file}: duplicate image id {img['id']}")
        if int(img["height"]) <= 0 or int(img["width"]) <= 0:
            raise BpnetError(f"{annotation_file}: images[{n}] ({img['file_name']}) has a non-positive size")
        seen.add(img["id"])
        images.append(img)
    by_image: dict[int, list[dict]] = {i: [] for i in seen}
    for n, ann in enumerate(data["annotations"]):
        if ann.get("category_id", 1) not in person_ids:
            continue
        for key in ("image_id", "bbox"):
            if key not in ann:
                raise BpnetError(f"{annotation_file}: annotations[{n}] has no '{key}'")
        if ann["image_id"] not in by_image:
            raise BpnetError(f"{annotation_file}: annotations[{n}] refers to unknown image id {ann['image_id']}")
        kps = ann.get("keypoints", [0] * (3 * num_keypoints))
        if len(kps) != 3 * num_keypoints:
            raise BpnetError(
                f"{annotation_file}: annotations[{n}].keypoints has {len(kps)} values; expected {3 * num_keypoints}"
            )
        by_image[ann["image_id"]].append(ann)
    images.sort(key=lambda im: im["id"])
    return images, by_image


# ------------------------------------------------------------------------------------------------ masks
def _segmentation_mask(ann: dict, h: int, w: int) -> np.ndarray:
    from pycocotools import mask as mask_utils

    seg = ann.get("segmentation")
    if not seg:
        x, y, bw, bh = ann["bbox"]
        m = np.zeros((h, w), np.uint8)
        m[max(0, int(y)) : int(np.ceil(y + bh)), max(0, int(x)) : int(np.ceil(x + bw))] = 1
        return m
    if isinstance(seg, list):
        polys = [p for p in seg if len(p) >= 6]
        if not polys:
            return np.zeros((h, w), np.uint8)
        rle = mask_utils.merge(mask_utils.frPyObjects(polys, h, w))
    elif isinstance(seg.get("counts"), list):
        rle = mask_utils.frPyObjects(seg, h, w)
    else:
        rle = dict(seg)
        if isinstance(rle["counts"], str):
            rle["counts"] = rle["counts"].encode("ascii")
    return mask_utils.decode(rle).astype(np.uint8)


def compute_mask(anns: list[dict], h: int, w: int) -> np.ndarray | None:
    """Loss mask for one image, uint8 (valid 255, ignored 0), or None when nothing is masked.

    ``ignored = (crowd − crowd ∩ labelled) ∪ unlabelled people`` (labelled = ``num_keypoints > 0``).
    """
    crowd = np.zeros((h, w), bool)
    labelled = np.zeros((h, w), bool)
    unlabelled = np.zeros((h, w), bool)
    for ann in anns:
        m = _segmentation_mask(ann, h, w).astype(bool)
        if ann.get("iscrowd", 0):
            crowd |= m
        elif ann.get("num_keypoints", 0) > 0:
            labelled |= m
        else:
            unlabelled |= m
    ignored = (crowd & ~labelled) | unlabelled
    if not ignored.any():
        return None
    return np.where(ignored, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------------ people
def select_main_people(anns: list[dict], min_kpts: int, min_area: float, dist_ratio: float) -> list[int]:
    """Indices (into ``anns``) of TAO's "main persons", in annotation order."""
    chosen: list[int] = []
    centres: list[np.ndarray] = []
    for i, ann in enumerate(anns):
        if ann.get("iscrowd", 0) or ann.get("num_keypoints", 0) < min_kpts:
            continue
        if float(ann.get("area", 0.0)) < min_area:
            continue
        x, y, bw, bh = (float(v) for v in ann["bbox"])
        c = np.array([x + bw / 2.0, y + bh / 2.0])
        if any(np.linalg.norm(c - o) < dist_ratio * max(bw, bh) for o in centres):
            continue
        chosen.append(i)
        centres.append(c)
    return chosen


def _process_image(job: _Job) -> dict:
    """Worker: records (as plain dicts), mask written, skip reasons, for one image."""
    img = job.image
    h, w = int(img["height"]), int(img["width"])
    out: dict = {
        "image_id": img["id"],
        "records": [],
        "skipped": [],
        "mask_written": False,
        "people": 0,
        "clipped_keypoints": 0,
    }
    image_path = safe_join(job.images_dir, img["file_name"], what=f"image {img['id']} file_name")
    if not image_path.is_file():
        raise BpnetError(f"{image_path}: image of annotation image id {img['id']} not found")
    raw = None
    if job.check_files or job.embed_images:
        try:
            decoded = read_image(image_path)
        except BpnetError as exc:
            out["skipped"].append({"image_id": img["id"], "file": str(image_path), "reason": f"broken image: {exc}"})
            return out
        if decoded.shape[:2] != (h, w):
            reason = f"size {decoded.shape[1]}x{decoded.shape[0]} differs from annotation {w}x{h}"
            out["skipped"].append({"image_id": img["id"], "file": str(image_path), "reason": reason})
            return out
        raw = image_path.read_bytes() if job.embed_images else None

    anns = list(job.anns)
    labelled = [a for a in anns if not a.get("iscrowd", 0) and a.get("num_keypoints", 0) > 0]
    out["people"] = len(labelled)
    mask_path = ""
    if job.generate_masks:
        mask = compute_mask(anns, h, w)
        if mask is not None:
            import cv2

            target = safe_join(job.masks_dir, str(Path(img["file_name"]).with_suffix(".png")), what="mask path")
            target.parent.mkdir(parents=True, exist_ok=True)
            ok, buf = cv2.imencode(".png", mask)
            write_bytes_atomic(target, buf.tobytes())
            mask_path = str(target)
            out["mask_written"] = True

    joints = np.array([a["keypoints"] for a in labelled], np.float64).reshape(-1, job.num_keypoints, 3)
    outside = (joints[:, :, 2] > 0) & (
        (joints[:, :, 0] < 0) | (joints[:, :, 1] < 0) | (joints[:, :, 0] > w - 1) | (joints[:, :, 1] > h - 1)
    )
    if outside.any():  # keypoints outside the image: treated as not labelled
        out["clipped_keypoints"] = int(outside.sum())
        joints[outside] = 0.0
    boxes = np.array([a["bbox"] for a in labelled], np.float64).reshape(-1, 4)
    scales = boxes[:, 3] if len(boxes) else np.zeros(0)
    centers = (
        np.stack([boxes[:, 0] + boxes[:, 2] / 2, boxes[:, 1] + boxes[:, 3] / 2], 1) if len(boxes) else np.zeros((0, 2))
    )

    def record(centre: int) -> dict:
        order = (
            [centre] + [i for i in range(len(labelled)) if i != centre] if centre >= 0 else list(range(len(labelled)))
        )
        rec = {
            "frame/image_id": int(img["id"]), "frame/height": h, "frame/width": w,
            "frame/image_path": str(image_path), "frame/mask_path": mask_path, "dataset": "coco",
            "person/joints": joints[order].astype(np.float64).tobytes() if order else b"",
            "person/scales": [float(scales[i]) for i in order],
            "person/centers": [float(v) for i in order for v in centers[i]],
            "person/person_idx": 0 if centre >= 0 else -1,
            "person/num_other_people": max(0, len(order) - 1),
        }  # fmt: skip
        if raw is not None:
            rec["frame/image_raw"] = raw
        return rec

    if job.mode == "test":
        out["records"].append(record(-1))
        return out
    main = select_main_people(labelled, job.min_kpts, job.min_h * job.min_w, job.dist_ratio)
    if not main:
        out["skipped"].append({"image_id": img["id"], "file": str(image_path), "reason": "no main person"})
        return out
    for centre in main if job.duplicate else main[:1]:
        out["records"].append(record(centre))
    return out


# ------------------------------------------------------------------------------------------------ records
def _to_example(rec: dict):
    import tensorflow as tf

    def b(v):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v if isinstance(v, bytes) else v.encode()]))

    def i(v):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v)]))

    def f(v):
        return tf.train.Feature(float_list=tf.train.FloatList(value=list(v)))

    feats = {
        "frame/image_id": i(rec["frame/image_id"]), "frame/height": i(rec["frame/height"]),
        "frame/width": i(rec["frame/width"]), "frame/image_path": b(rec["frame/image_path"]),
        "frame/mask_path": b(rec["frame/mask_path"]), "dataset": b(rec["dataset"]),
        "person/joints": b(rec["person/joints"]), "person/scales": f(rec["person/scales"]),
        "person/centers": f(rec["person/centers"]), "person/person_idx": i(rec["person/person_idx"]),
        "person/num_other_people": i(rec["person/num_other_people"]),
    }  # fmt: skip
    if "frame/image_raw" in rec:
        feats["frame/image_raw"] = b(rec["frame/image_raw"])
    return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString(deterministic=True)


def _write_tfrecord(path: Path, payloads: list[bytes]) -> None:
    """Write one TFRecord file atomically (TensorFlow's writer into a temp file, then rename)."""
    import tensorflow as tf

    tmp = path.with_name(f".{path.name}.tmp")
    with tf.io.TFRecordWriter(str(tmp)) as writer:
        for p in payloads:
            writer.write(p)
    os.replace(tmp, path)


def shard_names(output_filename: str | Path, num_partitions: int, num_shards: int) -> list[list[Path]]:
    """TAO file names: ``OUT-fold-000-of-001`` (+ ``-shard-00000-of-00004`` when sharded), by fold."""
    out = Path(output_filename)
    names = []
    for fold in range(num_partitions):
        base = f"{out.name}-fold-{fold:03d}-of-{num_partitions:03d}"
        if num_shards > 0:
            names.append([out.with_name(f"{base}-shard-{s:05d}-of-{num_shards:05d}") for s in range(num_shards)])
        else:
            names.append([out.with_name(base)])
    return names


def _run_jobs(jobs: list[_Job], workers: int, progress: bool) -> list[dict]:
    bar = progress_bar(total=len(jobs), desc="dataset_convert", unit="img", enabled=progress)
    results = []
    try:
        if workers <= 1 or len(jobs) < 32:
            for job in jobs:
                results.append(_process_image(job))
                bar.update(1)
        else:
            chunk = max(1, min(64, len(jobs) // (workers * 8)))
            with process_pool(workers) as pool:
                for res in pool.map(_process_image, jobs, chunksize=chunk):
                    results.append(res)
                    bar.update(1)
    finally:
        bar.close()
    return results


def convert_dataset(
    dataset_spec,
    output_filename: str | Path,
    mode: str = "train",
    num_partitions: int = 1,
    num_shards: int = 0,
    generate_masks: bool = False,
    check_files: bool = False,
    results_dir: str | Path | None = None,
    embed_images: bool = False,
    workers: int | None = None,
    progress: bool = True,
) -> dict:
    """Convert one split of a COCO-format dataset to TFRecords; returns the summary (also written as JSON).

    ``dataset_spec`` is a loaded :class:`~bpnet_core.config.DatasetSpec` or a path to one.
    """
    t0 = time.perf_counter()
    if isinstance(dataset_spec, (str, os.PathLike)):
        dataset_spec = load_dataset_spec(dataset_spec)
    if mode not in ("train", "test"):
        raise BpnetError(f"--mode must be 'train' or 'test' (got {mode!r})")
    if num_partitions < 1:
        raise BpnetError(f"--num_partitions must be >= 1 (got {num_partitions})")
    if num_shards < 0:
        raise BpnetError(f"--num_shards must be >= 0 (got {num_shards})")
    output_filename = Path(output_filename)
    out_dir = output_filename.parent
    make_dir(out_dir, "output directory")  # TAO's -o $DATA_DIR/train: the folder is created
    if not os.access(out_dir, os.W_OK):
        raise BpnetError(f"{out_dir}: output directory is not writable")
    results_dir = Path(results_dir) if results_dir else out_dir
    make_dir(results_dir)

    images_dir, masks_dir, ann_file = dataset_spec.split(mode)
    keypoint_names = list(_spec_get(dataset_spec, "categories")[0].keypoints)
    filt = dataset_spec.data_filtering_params
    images, by_image = load_annotations(Path(ann_file), len(keypoint_names))
    if not images:
        raise BpnetError(f"{ann_file}: the dataset has no images")
    if not Path(images_dir).is_dir():
        raise BpnetError(f"{images_dir}: image directory not found")
    if generate_masks:
        Path(masks_dir).mkdir(parents=True, exist_ok=True)
    jobs = [
        _Job(image=img, anns=tuple(by_image[img["id"]]), images_dir=str(images_dir), masks_dir=str(masks_dir),
             mode=mode, num_keypoints=len(keypoint_names), generate_masks=generate_masks, check_files=check_files,
             duplicate=bool(dataset_spec.duplicate_data_with_each_person_as_center),
             min_h=float(filt.min_acceptable_height), min_w=float(filt.min_acceptable_width),
             min_kpts=int(filt.min_acceptable_kpts), dist_ratio=float(filt.min_acceptable_interperson_dist_ratio),
             embed_images=embed_images)
        for img in images
    ]  # fmt: skip
    # fail on unsafe or missing image paths before any work is done or anything is written
    for job in jobs:
        p = safe_join(job.images_dir, job.image["file_name"], what=f"image {job.image['id']} file_name")
        if not p.is_file():
            raise BpnetError(f"{p}: image of annotation image id {job.image['id']} not found")
    results = _run_jobs(jobs, workers or os.cpu_count() or 1, progress)

    # assign images to folds round-robin, then records to shards contiguously
    names = shard_names(output_filename, num_partitions, num_shards)
    for stale in out_dir.glob(f".{output_filename.name}-fold-*.tmp"):
        stale.unlink()
    shards_summary = []
    for fold, fold_names in enumerate(names):
        recs = [r for k, res in enumerate(results) if k % num_partitions == fold for r in res["records"]]
        payloads = [_to_example(r) for r in recs]
        per = int(np.ceil(len(payloads) / len(fold_names))) if payloads else 0
        for s, path in enumerate(fold_names):
            part = payloads[s * per : (s + 1) * per]
            _write_tfrecord(path, part)
            shards_summary.append({"file": str(path), "records": len(part)})

    skipped = [s for res in results for s in res["skipped"]]
    summary = {
        "mode": mode,
        "dataset_spec": str(getattr(dataset_spec, "source", "")),
        "annotation_file": str(ann_file),
        "images": len(images),
        "images_with_records": sum(1 for r in results if r["records"]),
        "people": int(sum(r["people"] for r in results)),
        "records": int(sum(len(r["records"]) for r in results)),
        "masks_written": int(sum(r["mask_written"] for r in results)),
        "keypoints_outside_image": int(sum(r["clipped_keypoints"] for r in results)),
        "broken_images": [s for s in skipped if s["reason"].startswith("broken image")],
        "skipped": skipped,
        "shards": shards_summary,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    summary["records_per_second"] = round(summary["records"] / max(summary["seconds"], 1e-9), 1)
    for item in summary["broken_images"]:
        log.warning("skipped %s", item["reason"])
    write_json_atomic(results_dir / f"{output_filename.name}_summary.json", summary)
    write_json_atomic(results_dir / "summary.json", summary)
    return summary


def read_records(paths: list[str | Path]) -> list[dict]:
    """Parse TFRecord files written by :func:`convert_dataset` into plain dicts (joints as (N, K, 3) float arrays)."""
    import tensorflow as tf

    out = []
    for path in paths:
        if not Path(path).is_file():
            raise BpnetError(f"{path}: TFRecord file not found")
        try:
            for raw in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
                ex = tf.train.Example.FromString(raw).features.feature
                rec = {
                    "image_id": ex["frame/image_id"].int64_list.value[0],
                    "height": ex["frame/height"].int64_list.value[0],
                    "width": ex["frame/width"].int64_list.value[0],
                    "image_path": ex["frame/image_path"].bytes_list.value[0].decode(),
                    "mask_path": ex["frame/mask_path"].bytes_list.value[0].decode(),
                    "joints": np.frombuffer(ex["person/joints"].bytes_list.value[0], np.float64),
                    "scales": np.array(ex["person/scales"].float_list.value, np.float32),
                    "centers": np.array(ex["person/centers"].float_list.value, np.float32).reshape(-1, 2),
                    "person_idx": ex["person/person_idx"].int64_list.value[0],
                }
                if "frame/image_raw" in ex:
                    rec["image_raw"] = ex["frame/image_raw"].bytes_list.value[0]
                n = len(rec["scales"])
                rec["joints"] = (
                    rec["joints"].reshape(n, -1, 3).astype(np.float32) if n else np.zeros((0, 0, 3), np.float32)
                )
                out.append(rec)
        except tf.errors.DataLossError:
            raise BpnetError(f"{path}: TFRecord file is corrupt or truncated") from None
    return out
