"""Object keypoint similarity between poses, with COCO's per-joint constants mapped by joint name.

``OKS(a, b) = mean over joints present in both of exp(-d² / (2 s² (2σ)²))`` with ``s²`` the pose's area (the mean
of the two keypoint bounding-box areas, at least :data:`MIN_AREA`). Joints COCO has no constant for (``neck``, custom
skeletons) use ``default_sigma`` (:attr:`TrackParams.default_sigma`, 0.079: COCO's shoulder value).
"""

from __future__ import annotations

import numpy as np

from bpnet_core.data.coco import COCO_KEYPOINTS
from bpnet_core.evaluate.coco_eval import COCO_OKS_SIGMAS

#: floor of the area in OKS (px²): a pose of one or two joints still has a scale
MIN_AREA = 64.0
DEFAULT_SIGMA = 0.079


def sigmas_for(joint_names: list[str], default_sigma: float = DEFAULT_SIGMA) -> np.ndarray:
    """Per-joint OKS sigmas: COCO's for COCO joint names, ``default_sigma`` for any other."""
    coco = dict(zip(COCO_KEYPOINTS, COCO_OKS_SIGMAS))
    return np.array([coco.get(n, default_sigma) for n in joint_names], np.float64)


def pose_area(kp: np.ndarray) -> float:
    """Area (px²) of the bounding box of a pose's present joints (confidence > 0), at least :data:`MIN_AREA`."""
    kp = np.asarray(kp)
    pres = kp[:, 2] > 0
    if pres.sum() < 2:
        return MIN_AREA
    xy = kp[pres, :2]
    w, h = xy.max(0) - xy.min(0)
    return float(max(w * h, MIN_AREA))


def pose_center(kp: np.ndarray) -> np.ndarray | None:
    """Mean of the present joints, or None."""
    kp = np.asarray(kp)
    pres = kp[:, 2] > 0
    return kp[pres, :2].mean(0) if pres.any() else None


def oks(a: np.ndarray, b: np.ndarray, sigmas: np.ndarray, area: float | None = None) -> float:
    """OKS between two poses (J, 3); 0 when they share no present joint."""
    return float(oks_matrix(np.asarray(a)[None], np.asarray(b)[None], sigmas, None if area is None else [area])[0, 0])


def oks_matrix(a: np.ndarray, b: np.ndarray, sigmas: np.ndarray, areas_a=None) -> np.ndarray:
    """OKS between every pose of ``a`` (N, J, 3) and every pose of ``b`` (M, J, 3) → (N, M).

    ``areas_a``: the scale of each ``a`` pose (e.g. ground truth areas); default: the mean of both poses' areas."""
    a = np.asarray(a, np.float64).reshape(-1, len(sigmas), 3)
    b = np.asarray(b, np.float64).reshape(-1, len(sigmas), 3)
    out = np.zeros((len(a), len(b)))
    if not len(a) or not len(b):
        return out
    var = (2 * np.asarray(sigmas, np.float64)) ** 2
    area_b = np.array([pose_area(p) for p in b])
    area_a = (
        np.array([pose_area(p) for p in a]) if areas_a is None else np.maximum(np.asarray(areas_a, float), MIN_AREA)
    )
    d2 = ((a[:, None, :, :2] - b[None, :, :, :2]) ** 2).sum(-1)  # (N, M, J)
    common = (a[:, None, :, 2] > 0) & (b[None, :, :, 2] > 0)
    s2 = area_a[:, None] if areas_a is not None else (area_a[:, None] + area_b[None, :]) / 2
    e = np.exp(-d2 / (2 * s2[..., None] * var))
    n = common.sum(-1)
    return np.where(n > 0, (e * common).sum(-1) / np.maximum(n, 1), 0.0)
