"""``bpnet inference``: images → :class:`~bpnet_core.infer.predictor.Predictor` → ``detections.json`` (TAO layout),
COCO-format results, OpenPose JSON and annotated images. Keypoints are in original image pixels."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from bpnet_core.data.coco import COCO_KEYPOINTS
from bpnet_core.errors import BpnetError
from bpnet_core.evaluate.coco_eval import people_to_coco_results
from bpnet_core.fileio import (
    list_images,
    make_dir,
    read_image,
    read_json,
    safe_join,
    write_bytes_atomic,
    write_json_atomic,
)
from bpnet_core.infer.predictor import ImageResult, make_predictor, photo_mapping
from bpnet_core.verbosity import progress_bar
from bpnet_core.viz.draw import draw_people, to_png

log = logging.getLogger(__name__)


def list_inputs(input_type: str, input_path: str | Path, image_root_path: str | Path | None = None) -> list[dict]:
    """The images to process: ``[{"path": Path, "image_id": int | None}]`` for image, dir or json (COCO) inputs."""
    input_path = Path(input_path)
    if input_type == "image":
        if not input_path.is_file():
            raise BpnetError(f"{input_path}: input image not found")
        return [{"path": input_path, "image_id": None}]
    if input_type == "dir":
        files = list_images(input_path, "input directory not found")
        return [{"path": p, "image_id": None} for p in files]
    if input_type == "json":
        data = read_json(input_path, "annotation file")
        if not isinstance(data, dict) or not isinstance(data.get("images"), list):
            raise BpnetError(f"{input_path}: expected a COCO annotation file with an 'images' list")
        root = Path(image_root_path) if image_root_path else input_path.parent
        return [{"path": safe_join(root, im["file_name"]), "image_id": im["id"]} for im in data["images"]]
    raise BpnetError(f"--input_type must be image, dir or json (got {input_type!r})")


def _openpose_json(result: ImageResult) -> dict:
    return {"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": [float(v) for v in kp.reshape(-1)]}
                                       for kp in result.keypoints]}  # fmt: skip


def run_inference(
    spec,
    model,
    input_type: str,
    input_path: str | Path,
    results_dir: str | Path,
    image_root_path: str | Path | None = None,
    dump_visualizations: bool = False,
    dump_openpose_json: bool = False,
    dataset_keypoints: list[str] | None = None,
    progress: bool = True,
) -> dict:
    """Run inference over images; write ``detections.json`` (TAO layout), ``detections_coco_format.json``
    (17 COCO keypoints, when ``dataset_keypoints`` or the default COCO names apply), optional per-image OpenPose JSON
    and annotated images. ``model``: a model path, a runner or a :class:`Predictor`; ``spec``: an inference spec, or
    ``None`` for the model's recommended settings. Returns a summary (also ``inference_summary.json``)."""
    items = list_inputs(input_type, input_path, image_root_path)
    predictor = make_predictor(model, spec)
    results_dir = make_dir(results_dir)
    pose, spec = predictor.pose, predictor.spec
    names = dataset_keypoints or COCO_KEYPOINTS
    viz_dir = results_dir / "images_annotated"
    op_dir = results_dir / "openpose_json"
    for d, on in ((viz_dir, dump_visualizations), (op_dir, dump_openpose_json)):
        if on:
            d.mkdir(exist_ok=True)

    images_out, coco_results, skipped, timings = [], [], [], []
    for idx, item in enumerate(progress_bar(items, desc="inference", unit="img", enabled=progress)):
        try:
            image = read_image(item["path"])
        except BpnetError as exc:
            if input_type == "image":  # the one image asked for is unreadable: an error, not a skip
                raise
            log.warning("skipped %s", exc)
            skipped.append({"file": str(item["path"]), "reason": str(exc)})
            continue
        res = predictor(image, item["path"])
        timings.append(res.timings_ms)
        entry = {
            "full_image_path": str(item["path"]),
            "keypoints": [[[float(x), float(y)] for x, y, _ in kp] for kp in res.keypoints],
            "scores": res.scores,
        }
        if item["image_id"] is not None:
            entry["image_id"] = item["image_id"]
            to_photo = photo_mapping(res.matrix, image.shape[:2])
            coco_results += people_to_coco_results(item["image_id"], res.people, pose, names, scale_xy=to_photo)
        if dump_visualizations:
            entry["viz_id"] = idx
            write_bytes_atomic(viz_dir / f"{idx}.png", to_png(draw_people(image, res.keypoints, pose, res.scores)))
        if dump_openpose_json:
            write_json_atomic(op_dir / f"{Path(item['path']).stem}_keypoints.json", _openpose_json(res))
        images_out.append(entry)

    detections = {
        "categories": [{"supercategory": "person", "id": 1, "name": "person", **pose.to_json_dict()}],
        "inference_spec": spec.to_dict(),
        "model": predictor.meta.name,
        "images": images_out,
    }
    write_json_atomic(results_dir / "detections.json", detections)
    if any(it["image_id"] is not None for it in items):
        write_json_atomic(results_dir / "detections_coco_format.json", coco_results, indent=None)
    net = [t["network"] for t in timings]
    dec = [t["decode"] for t in timings]
    summary = {
        "images": len(items),
        "processed": len(images_out),
        "people": int(sum(len(e["scores"]) for e in images_out)),
        "skipped": skipped,
        "network_ms_median": float(np.median(net)) if net else None,
        "decode_ms_median": float(np.median(dec)) if dec else None,
        "results_dir": str(results_dir),
    }
    write_json_atomic(results_dir / "inference_summary.json", summary)
    return summary
