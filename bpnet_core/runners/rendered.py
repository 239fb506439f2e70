"""A maps source that is not a network: heatmaps and PAFs rendered from ground-truth annotations.

It exercises the decoder, inference, evaluation and the explorer before any model is trained (a perfect "network").
It needs to know where each image's people land in the network input, so the Predictor calls
``predict_with_transforms(batch, transforms, stage)`` with one :class:`Transform` per batch item instead of
``predict``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bpnet_core.data.coco import dataset_to_pose
from bpnet_core.data.targets import render_heatmaps, render_pafs
from bpnet_core.errors import BpnetError
from bpnet_core.fileio import read_json, safe_join
from bpnet_core.meta import ModelMeta, bpnet_meta
from bpnet_core.skeleton import PoseConfig


@dataclass
class Transform:
    """Where one batch item came from: the image file and the 2×3 matrix photo pixels → input pixels (a mirrored
    input has a negative x scale)."""

    image_path: str
    matrix: np.ndarray


class RenderedMapsSource:
    """Returns heatmaps and PAFs rendered from a COCO annotation file's people."""

    needs_transforms = True

    def __init__(self, annotation_file: str | Path, images_dir: str | Path, pose: PoseConfig, stride: int = 8,
                 sigma: float = 7.0, paf_ortho_dist_thresh: float = 1.0,
                 visibility_flags: dict | None = None):  # fmt: skip
        self.pose, self.sigma, self.paf_thresh = pose, float(sigma), paf_ortho_dist_thresh
        self.meta: ModelMeta = bpnet_meta(pose, 1, ["heatmap_out", "paf_out"], stride=int(stride), name="rendered maps")
        self.source = "rendered maps"
        self.people: dict[str, np.ndarray] = {}
        self.add(annotation_file, images_dir, visibility_flags)

    def add(self, annotation_file: str | Path, images_dir: str | Path, visibility_flags: dict | None = None) -> None:
        """Also render the people of another ``(annotation_file, images_dir)``."""
        data = read_json(annotation_file, "annotation file")
        names = data["categories"][0]["keypoints"]
        by_image: dict[int, list] = {}
        for ann in data["annotations"]:
            if ann.get("num_keypoints", 0) > 0 and not ann.get("iscrowd", 0):
                by_image.setdefault(ann["image_id"], []).append(ann["keypoints"])
        for im in data["images"]:
            kps = np.array(by_image.get(im["id"], []), np.float32).reshape(-1, len(names), 3)
            path = str(safe_join(images_dir, im["file_name"]))
            self.people[path] = dataset_to_pose(kps, names, self.pose, visibility_flags)

    def add_video(self, annotation_file: str | Path, video_path: str | Path, visible_only: bool = True) -> None:
        """Also render the people of a video's per-frame annotations (:mod:`bpnet_core.data.synthetic_video`): frame
        ``i`` is looked up as ``"<video_path>#<i>"``, the image path video inference gives the Predictor. With
        ``visible_only`` covered joints (``v = 1``) are left out, as a network would miss them."""
        data = read_json(annotation_file, "video annotation file")
        names = data["categories"][0]["keypoints"]
        by_image: dict[int, list] = {}
        for ann in data["annotations"]:
            by_image.setdefault(ann["image_id"], []).append(ann["keypoints"])
        for im in data["images"]:
            kps = np.array(by_image.get(im["id"], []), np.float32).reshape(-1, len(names), 3)
            if visible_only:
                kps[kps[:, :, 2] < 2] = 0
            key = str(Path(f"{video_path}#{im['frame_index']}").resolve())
            self.people[key] = dataset_to_pose(kps, names, self.pose)

    def predict(self, batch: np.ndarray, stage: int | None = None):
        raise BpnetError("rendered maps need each image's transform: run them through bpnet_core.infer.Predictor")

    def predict_with_transforms(self, batch: np.ndarray, transforms: list[Transform], stage: int | None = None):
        n, h, w = batch.shape[:3]
        if len(transforms) != n:
            raise BpnetError(f"rendered maps: {len(transforms)} transforms for a batch of {n}")
        stride = self.meta.stride
        grid = (h // stride, w // stride)
        heats, pafs = [], []
        for t in transforms:
            kp = self.people.get(str(Path(t.image_path).resolve()), np.zeros((0, self.pose.num_joints, 3)))
            kp = np.array(kp, np.float32, copy=True)
            if len(kp):
                m = np.asarray(t.matrix, np.float32)
                xy1 = np.concatenate([kp[:, :, :2], np.ones(kp.shape[:2] + (1,), np.float32)], axis=2)
                kp[:, :, :2] = xy1 @ m.T
                if np.linalg.det(m[:, :2]) < 0:  # a mirrored input: a left wrist now looks like a right one
                    kp = kp[:, self.pose.flip_permutation]
            heats.append(render_heatmaps(kp, self.pose, grid, stride, self.sigma))
            pafs.append(render_pafs(kp, self.pose, grid, stride, self.paf_thresh))
        return np.stack(heats), np.stack(pafs)
