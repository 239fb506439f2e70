"""Joint mapping between a dataset's keypoints (COCO: 17) and a model's ``PoseConfig`` (TAO: 18 with neck).

Joints are matched **by name**. A joint listed in the pose config's ``derived_joints`` (the neck) is the mean of its
source joints, and only when every source joint is labelled — TAO also derives it from unlabelled shoulders, which
puts a "visible" neck at a wrong position; we do not copy that.

Flags in the pose space: 2 visible, 1 occluded/annotatable, 0 absent. The dataset's own flag values are translated
with the dataset spec's ``visibility_flags`` (``value``: name → number, ``mapping``: name → internal state).
"""

from __future__ import annotations

import numpy as np

from bpnet_core.errors import BpnetError
from bpnet_core.fileio import read_image, read_json, safe_join
from bpnet_core.skeleton import PoseConfig

COCO_KEYPOINTS = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
]  # fmt: skip

# internal visibility states (TAO names) → our flag
_STATE_FLAG = {
    "visible": 2,
    "annotatable": 1,
    "occluded": 1,
    "truncated": 0,
    "not_labeled": 0,
    "not_labeled_in_dataset": 0,
}
DEFAULT_VISIBILITY = {
    "value": {"visible": 2, "occluded": 1, "not_labeled": 0},
    "mapping": {"visible": "visible", "occluded": "occluded", "not_labeled": "not_labeled"},
}


def flag_table(visibility_flags: dict | None = None) -> dict[int, int]:
    """Dataset flag value → pose flag (2 visible, 1 occluded, 0 absent) from a spec's ``visibility_flags``."""
    vf = visibility_flags or DEFAULT_VISIBILITY
    table = {}
    for name, value in vf["value"].items():
        state = vf["mapping"].get(name)
        if state not in _STATE_FLAG:
            raise BpnetError(f"visibility_flags.mapping.{name}: unknown state {state!r}; allowed {sorted(_STATE_FLAG)}")
        table[int(value)] = _STATE_FLAG[state]
    return table


def dataset_to_pose(
    keypoints: np.ndarray,
    dataset_keypoints: list[str],
    pose: PoseConfig,
    visibility_flags: dict | None = None,
) -> np.ndarray:
    """Map dataset keypoints (N, K, 3) (x, y, dataset flag) to the pose config's joints (N, J, 3)."""
    kp = np.asarray(keypoints, dtype=np.float32).reshape(-1, len(dataset_keypoints), 3)
    table = flag_table(visibility_flags)
    flags = np.vectorize(lambda v: table.get(int(v), 0), otypes=[np.float32])(kp[:, :, 2]) if kp.size else kp[:, :, 2]
    src = {name: i for i, name in enumerate(dataset_keypoints)}
    out = np.zeros((len(kp), pose.num_joints, 3), np.float32)
    for j, name in enumerate(pose.joint_names):
        if name in src:
            i = src[name]
            out[:, j, :2] = kp[:, i, :2]
            out[:, j, 2] = flags[:, i]
        elif name in pose.derived_joints:
            parents = pose.derived_joints[name]
            missing = [p for p in parents if p not in src]
            if missing:
                raise BpnetError(
                    f"{pose.source or pose.name}: derived joint {name!r} needs {missing}, which the "
                    f"dataset does not have"
                )
            idx = [src[p] for p in parents]
            pf = flags[:, idx]
            ok = (pf > 0).all(axis=1)
            out[ok, j, :2] = kp[ok][:, idx, :2].mean(axis=1)
            out[ok, j, 2] = pf[ok].min(axis=1)
        # else: the dataset has no such joint; it stays absent
    out[out[:, :, 2] <= 0, :2] = 0.0
    return out


def pose_to_dataset(keypoints: np.ndarray, dataset_keypoints: list[str], pose: PoseConfig) -> np.ndarray:
    """Map pose keypoints (N, J, 3) back to the dataset's order (N, K, 3); joints the dataset lacks (neck) drop out."""
    kp = np.asarray(keypoints, dtype=np.float32).reshape(-1, pose.num_joints, 3)
    index = {name: j for j, name in enumerate(pose.joint_names)}
    out = np.zeros((len(kp), len(dataset_keypoints), 3), np.float32)
    for i, name in enumerate(dataset_keypoints):
        if name in index:
            out[:, i, :] = kp[:, index[name], :]
    return out


def labelled_example(annotation_file, images_dir, pose: PoseConfig, index: int = 0):
    """The ``index``-th image that has labelled people: (image BGR, pose keypoints (P, J, 3), image entry)."""
    from pathlib import Path

    data = read_json(annotation_file, "annotation file")
    names = data["categories"][0]["keypoints"] if data.get("categories") else COCO_KEYPOINTS
    by_image: dict = {}
    for ann in data["annotations"]:
        if ann.get("num_keypoints", 0) > 0 and not ann.get("iscrowd", 0):
            by_image.setdefault(ann["image_id"], []).append(ann)
    images = [im for im in data["images"] if im["id"] in by_image]
    if not images:
        raise BpnetError(f"{annotation_file}: no image has labelled people")
    info = images[index % len(images)]
    anns = by_image[info["id"]]
    image = read_image(safe_join(Path(images_dir), info["file_name"]))
    kp = dataset_to_pose(np.array([a["keypoints"] for a in anns], np.float32), names, pose)
    return image, kp, info
