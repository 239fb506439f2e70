"""Decoder parameter sweeps: run the network once per image, then re-decode the cached maps for each value."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bpnet_core.evaluate import evaluate_coco
from bpnet_core.evaluate.coco_eval import people_to_coco_results
from bpnet_core.fileio import read_image, read_json, safe_join
from bpnet_core.infer.predictor import photo_mapping


def cached_predictions(predictor, annotation_file, images_dir, max_images: int | None = None) -> list[dict]:
    """Merged network maps for the images of a COCO annotation file (``image_id``, maps, transform, image size)."""
    data = read_json(annotation_file, "annotation file")
    out = []
    for im in data["images"][:max_images]:
        path = safe_join(Path(images_dir), im["file_name"])
        image = read_image(path)
        heat, paf, ref = predictor.maps(image, path)
        out.append({"image_id": im["id"], "heatmaps": heat, "pafs": paf, "matrix": ref.matrix,
                    "image_hw": image.shape[:2]})  # fmt: skip
    return out


def decode_cached(cache: list[dict], predictor, params, dataset_keypoints: list[str]) -> list[dict]:
    """COCO results for cached maps decoded with ``params``."""
    results = []
    pose = predictor.pose
    for c in cache:
        people = predictor.decode(c["heatmaps"], c["pafs"], params)
        to_photo = photo_mapping(c["matrix"], c["image_hw"])
        results += people_to_coco_results(c["image_id"], people, pose, dataset_keypoints, scale_xy=to_photo)
    return results


def decoder_sweep(predictor, dataset_spec, sweeps: dict[str, list], max_images: int | None = None) -> list[dict]:
    """AP/AR for each value of each decoder parameter in ``sweeps`` (others at the predictor's spec values)."""
    images_dir, _, ann = dataset_spec.split("test")
    names = list(dataset_spec.categories[0].keypoints)
    gt = read_json(ann, "annotation file")
    if max_images is not None:
        keep = {im["id"] for im in gt["images"][:max_images]}
        gt = {**gt, "images": [im for im in gt["images"] if im["id"] in keep],
              "annotations": [a for a in gt["annotations"] if a["image_id"] in keep]}  # fmt: skip
    cache = cached_predictions(predictor, ann, images_dir, max_images)
    rows = []
    for name, values in sweeps.items():
        for v in values:
            params = dataclasses.replace(predictor.params, **{name: v})
            m = evaluate_coco(gt, decode_cached(cache, predictor, params, names))
            rows.append({"param": name, "value": v, "AP": m["AP"], "AR": m["AR"], "AP50": m["AP50"]})
    return rows
