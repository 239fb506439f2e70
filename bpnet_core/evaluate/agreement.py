"""How well one model's decoded people agree with another's, without labels: COCO keypoint AP of the candidate's
people scored against the reference's people taken as ground truth (pycocotools, OKS with COCO's constants).

This is the parity check of a quantised (or otherwise converted) model against its FP32 source on calibration
photos: it measures what users see (decoded people), not raw map values, which drift harmlessly in background
areas. A broken quantisation scores ≈ 0; a faithful one scores near 1.
"""

from __future__ import annotations

import numpy as np

from bpnet_core.data.coco import COCO_KEYPOINTS, pose_to_dataset
from bpnet_core.errors import BpnetError
from bpnet_core.evaluate.coco_eval import evaluate_coco
from bpnet_core.skeleton import PoseConfig


def _flat(kp: np.ndarray, visible_flag: int) -> list[float]:
    out: list[float] = []
    for x, y, c in kp:
        out += [float(x), float(y), visible_flag if c > 0 else 0]
    return out


def agreement_ap(reference: list[np.ndarray], candidate: list[tuple[np.ndarray, list[float]]],
                 image_hw: list[tuple[int, int]], pose: PoseConfig) -> dict:  # fmt: skip
    """AP / AP50 / AR of ``candidate`` people against ``reference`` people, image by image.

    ``reference``: per image, keypoints (P, J, 3) in photo pixels (confidence 0 = missing); ``candidate``: per
    image, (keypoints, scores). Joints are mapped to the 17 COCO keypoints by name; a reference person's area is
    its keypoints' bounding box. Returns ``{"AP", "AP50", "AR", "reference_people", "candidate_people"}``."""
    if not any(n in pose.joint_names for n in COCO_KEYPOINTS):
        raise BpnetError(f"pose config {pose.name}: no COCO keypoint names, agreement AP needs them")
    if not (len(reference) == len(candidate) == len(image_hw)):
        raise BpnetError("agreement_ap: reference, candidate and image sizes must cover the same images")
    images, anns, results = [], [], []
    for i, (ref, (cand, scores), (h, w)) in enumerate(zip(reference, candidate, image_hw), start=1):
        images.append({"id": i, "width": int(w), "height": int(h), "file_name": f"{i}.jpg"})
        for kp in pose_to_dataset(np.asarray(ref, np.float32).reshape(-1, pose.num_joints, 3), COCO_KEYPOINTS, pose):
            vis = kp[:, 2] > 0
            if vis.sum() < 2:
                continue
            x0, y0 = kp[vis, :2].min(0)
            x1, y1 = kp[vis, :2].max(0)
            bw, bh = max(float(x1 - x0), 1.0), max(float(y1 - y0), 1.0)
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": 1, "iscrowd": 0, "area": bw * bh,
                         "bbox": [float(x0), float(y0), bw, bh], "num_keypoints": int(vis.sum()),
                         "keypoints": _flat(kp, 2)})  # fmt: skip
        cand = pose_to_dataset(np.asarray(cand, np.float32).reshape(-1, pose.num_joints, 3), COCO_KEYPOINTS, pose)
        for kp, score in zip(cand, scores):
            results.append({"image_id": i, "category_id": 1, "keypoints": _flat(kp, 1), "score": float(score)})
    out = {"reference_people": len(anns), "candidate_people": len(results)}
    if not anns:
        return {**out, "AP": 1.0 if not results else 0.0, "AP50": 1.0 if not results else 0.0, "AR": 1.0}
    gt = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": 1, "name": "person", "keypoints": list(COCO_KEYPOINTS), "skeleton": []}],
    }
    m = evaluate_coco(gt, results)
    return {**out, "AP": float(m["AP"]), "AP50": float(m["AP50"]), "AR": float(m["AR"])}
