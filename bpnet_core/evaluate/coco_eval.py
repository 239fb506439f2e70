"""COCO keypoint evaluation (pycocotools ``COCOeval(iouType="keypoints")``) and the results writer.

* :func:`evaluate_coco` — AP/AR over OKS like TAO's ``evaluate`` (pycocotools defaults: maxDets 20, area ranges
  all / medium / large), quiet (pycocotools' prints are swallowed), returning the 10 stats as floats.
  :data:`KPI_NAMES` are TAO's names for the same 10 numbers (``results.csv``).
* :func:`people_to_coco_results` — decoded people → COCO results entries in TAO's format: ``keypoints`` as flat
  ``[x, y, v]`` with v = 1 detected / 0 missing (x = y = 0), ``category_id`` 1, ``score``. TAO writes ``int(x)``;
  we keep floats (truncation costs OKS on small people).
* :func:`per_image_table` — per image: annotated people, detections and the OKS of greedy matches (for reports).

Ground truth with ``num_keypoints == 0`` and crowd annotations are ignored by pycocotools' keypoint evaluation;
:func:`per_image_table` counts only annotated, non-crowd people too.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bpnet_core.data.coco import pose_to_dataset
from bpnet_core.errors import BpnetError
from bpnet_core.skeleton import PoseConfig

#: pycocotools' 10 keypoint stats, in order, by TAO's KPI names
KPI_NAMES = [
    "AP_0.50:0.95_all", "AP_0.5", "AP_0.75", "AP_0.50:0.95_medium", "AP_0.50:0.95_large",
    "AR_0.50:0.95_all", "AR_0.5", "AR_0.75", "AR_0.50:0.95_medium", "AR_0.50:0.95_large",
]  # fmt: skip
#: short keys returned by :func:`evaluate_coco`, same order as :data:`KPI_NAMES`
STAT_KEYS = ["AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"]

#: COCO's per-keypoint OKS constants (the 17 COCO keypoints, COCO order), as in pycocotools
COCO_OKS_SIGMAS = (
    np.array([0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89])
    / 10.0
)


def _load_json(value: Any, what: str) -> Any:
    if isinstance(value, (str, Path)):
        path = Path(value)
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise BpnetError(f"{path}: {what} file not found") from None
        except json.JSONDecodeError as exc:
            raise BpnetError(f"{path}: {what} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    return value


def _coco_gt(gt: Any):
    from pycocotools.coco import COCO

    if isinstance(gt, COCO):
        return gt
    data = _load_json(gt, "ground-truth")
    if not isinstance(data, dict) or "annotations" not in data or "images" not in data:
        raise BpnetError("ground truth must be a COCO dataset (a JSON object with 'images' and 'annotations')")
    coco = COCO()
    coco.dataset = copy.deepcopy(data)
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _results_list(results: Any) -> list[dict]:
    data = _load_json(results, "results")
    if isinstance(data, dict) and "annotations" in data:
        data = data["annotations"]
    if not isinstance(data, list):
        raise BpnetError("results must be a list of COCO keypoint results (image_id, category_id, keypoints, score)")
    for i, r in enumerate(data):
        if not isinstance(r, dict) or not {"image_id", "keypoints", "score"} <= set(r):
            raise BpnetError(f"results[{i}] needs image_id, keypoints and score")
    return data


def evaluate_coco(gt_json: Any, results_json: Any) -> dict[str, float]:
    """COCO keypoint AP/AR of ``results_json`` against ``gt_json`` (paths, loaded JSON, or a ``COCO`` for gt).

    Returns ``{AP, AP50, AP75, APm, APl, AR, AR50, AR75, ARm, ARl}`` as floats; an empty results list gives zeros.
    pycocotools' −1 ("no ground truth in this area range") is reported as 0.0.
    """
    from pycocotools.cocoeval import COCOeval

    gt = _coco_gt(gt_json)
    results = _results_list(results_json)
    if not results:
        return {k: 0.0 for k in STAT_KEYS}
    known = set(gt.getImgIds())
    unknown = sorted({r["image_id"] for r in results} - known)
    if unknown:
        raise BpnetError(
            f"results name image_id {unknown[0]} which is not in the ground truth ({len(unknown)} unknown image ids)"
        )
    results = [dict(r, category_id=r.get("category_id", 1)) for r in copy.deepcopy(results)]
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, iouType="keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {k: float(max(v, 0.0)) for k, v in zip(STAT_KEYS, ev.stats)}


def kpi_dict(stats: dict[str, float]) -> dict[str, float]:
    """:func:`evaluate_coco`'s result under TAO's KPI names."""
    return {name: float(stats[key]) for name, key in zip(KPI_NAMES, STAT_KEYS)}


def people_to_coco_results(
    image_id: int,
    people: Sequence[Any],
    pose: PoseConfig,
    dataset_keypoints: list[str],
    scale_xy: tuple[float, float] | Callable[[np.ndarray], np.ndarray] = (1.0, 1.0),
    category_id: int = 1,
) -> list[dict]:
    """COCO results entries for one image's decoded people (TAO's ``detections_coco_format.json`` entries).

    ``people``: objects with ``.keypoints`` (J, 3) in network-input pixels and ``.score`` (e.g.
    :class:`bpnet_core.decode.Person`). Joints are mapped to ``dataset_keypoints`` by name (the neck drops out).
    ``scale_xy``: (sx, sy) with image = input × (sx, sy), or a callable mapping (N, 2) input xy → image xy.
    """
    out = []
    for person in people:
        kp = np.asarray(person.keypoints, np.float32).reshape(pose.num_joints, 3)
        ds = pose_to_dataset(kp[None], dataset_keypoints, pose)[0]
        found = ds[:, 2] > 0
        xy = ds[:, :2].astype(np.float64)
        if callable(scale_xy):
            mapped = np.asarray(scale_xy(xy[found]), np.float64).reshape(-1, 2)
            xy[found] = mapped
        else:
            xy = xy * np.asarray(scale_xy, np.float64).reshape(1, 2)
        xy[~found] = 0.0
        flat = np.concatenate([xy, found[:, None].astype(np.float64)], axis=1).reshape(-1)
        out.append(
            {
                "image_id": int(image_id),
                "category_id": int(category_id),
                "keypoints": [float(v) for v in flat],
                "score": float(person.score),
            }
        )
    return out


def oks(gt_ann: dict, dt_keypoints: Sequence[float], sigmas: np.ndarray = COCO_OKS_SIGMAS) -> float:
    """Object keypoint similarity of one detection with one COCO ground-truth annotation (pycocotools' formula)."""
    g = np.asarray(gt_ann["keypoints"], np.float64).reshape(-1, 3)
    d = np.asarray(dt_keypoints, np.float64).reshape(-1, 3)
    vis = g[:, 2] > 0
    if not vis.any():
        return 0.0
    var = (2 * sigmas) ** 2
    area = float(gt_ann.get("area", 0.0)) + np.spacing(1)
    e = ((d[:, 0] - g[:, 0]) ** 2 + (d[:, 1] - g[:, 1]) ** 2) / var / area / 2
    return float(np.exp(-e[vis]).mean())


def per_image_table(gt: Any, results: Any) -> list[dict]:
    """Per image: ``image_id``, ``annotated`` (non-crowd people with keypoints), ``detected``, ``matched_oks`` (OKS
    of greedy matches, detections by descending score each taking the best free person), ``mean_oks`` (0.0 when
    nothing matched)."""
    data = _load_json(gt, "ground-truth")
    if hasattr(data, "dataset"):
        data = data.dataset
    res = _results_list(results)
    by_image: dict[int, list[dict]] = {}
    for r in res:
        by_image.setdefault(int(r["image_id"]), []).append(r)
    anns: dict[int, list[dict]] = {}
    for a in data["annotations"]:
        if not a.get("iscrowd", 0) and a.get("num_keypoints", 0) > 0:
            anns.setdefault(int(a["image_id"]), []).append(a)
    table = []
    for img in data["images"]:
        iid = int(img["id"])
        gts, dts = anns.get(iid, []), sorted(by_image.get(iid, []), key=lambda r: -float(r["score"]))
        free = list(range(len(gts)))
        matched = []
        for d in dts:
            if not free:
                break
            sims = [oks(gts[g], d["keypoints"]) for g in free]
            best = int(np.argmax(sims))
            if sims[best] <= 0:
                continue
            matched.append(round(float(sims[best]), 6))
            free.pop(best)
        table.append(
            {
                "image_id": iid,
                "annotated": len(gts),
                "detected": len(dts),
                "matched_oks": matched,
                "mean_oks": float(np.mean(matched)) if matched else 0.0,
            }
        )
    return table
