"""The one small interface between inference code and a network: ``predict(batch) -> (heatmaps, pafs)``.

``batch`` is float32 (N, H, W, 3), normalised like training input (RGB / image_scale − image_offset); the result is
two float32 arrays (N, H/s, W/s, J + 1) and (N, H/s, W/s, 2L). A runner also has ``stride``, ``fixed_input_shape``
(``None`` when any stride-multiple size works, else (H, W)) and ``num_stages``. ``predict`` takes ``stage`` (1-based;
``None`` = last) and ``context`` (one dict per batch item with ``image_path`` and ``matrix``, the 2×3 transform from
original image pixels to network-input pixels; real networks ignore it).

:class:`RenderedMapsRunner` is a stand-in network that returns label maps rendered from ground-truth annotations:
the decoder, inference and evaluation code can be exercised and measured before a model is trained.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from bpnet_core.data.coco import dataset_to_pose
from bpnet_core.data.targets import render_heatmaps, render_pafs
from bpnet_core.errors import BpnetError
from bpnet_core.fileio import read_json, safe_join
from bpnet_core.skeleton import PoseConfig


class Runner(Protocol):
    stride: int
    fixed_input_shape: tuple[int, int] | None
    num_stages: int

    def predict(self, batch: np.ndarray, stage: int | None = None, context: list[dict] | None = None): ...


class RenderedMapsRunner:
    """Returns heatmaps and PAFs rendered from a COCO annotation file's people (a perfect "network")."""

    fixed_input_shape = None
    num_stages = 1

    def __init__(
        self,
        annotation_file: str | Path,
        images_dir: str | Path,
        pose: PoseConfig,
        stride: int = 8,
        sigma: float = 7.0,
        paf_ortho_dist_thresh: float = 1.0,
        visibility_flags: dict | None = None,
    ):
        self.pose, self.stride, self.sigma, self.paf_thresh = pose, int(stride), float(sigma), paf_ortho_dist_thresh
        data = read_json(annotation_file, "annotation file")
        names = data["categories"][0]["keypoints"]
        by_image: dict[int, list] = {}
        for ann in data["annotations"]:
            if ann.get("num_keypoints", 0) > 0 and not ann.get("iscrowd", 0):
                by_image.setdefault(ann["image_id"], []).append(ann["keypoints"])
        self.people: dict[str, np.ndarray] = {}
        for im in data["images"]:
            kps = np.array(by_image.get(im["id"], []), np.float32).reshape(-1, len(names), 3)
            path = str(safe_join(images_dir, im["file_name"]))
            self.people[path] = dataset_to_pose(kps, names, pose, visibility_flags)

    def predict(self, batch: np.ndarray, stage: int | None = None, context: list[dict] | None = None):
        n, h, w = batch.shape[:3]
        if context is None or len(context) != n:
            raise BpnetError("RenderedMapsRunner needs the per-image context (image_path, matrix)")
        grid = (h // self.stride, w // self.stride)
        heats, pafs = [], []
        for ctx in context:
            kp = self.people.get(str(Path(ctx["image_path"]).resolve()), np.zeros((0, self.pose.num_joints, 3)))
            kp = np.array(kp, np.float32, copy=True)
            if len(kp):
                m = np.asarray(ctx["matrix"], np.float32)
                xy1 = np.concatenate([kp[:, :, :2], np.ones(kp.shape[:2] + (1,), np.float32)], axis=2)
                kp[:, :, :2] = xy1 @ m.T
                if np.linalg.det(m[:, :2]) < 0:  # a mirrored input: a left wrist now looks like a right one
                    kp = kp[:, self.pose.flip_permutation]
            heats.append(render_heatmaps(kp, self.pose, grid, self.stride, self.sigma))
            pafs.append(render_pafs(kp, self.pose, grid, self.stride, self.paf_thresh))
        return np.stack(heats), np.stack(pafs)


class KerasRunner:
    """A Keras BodyPoseNet (``.keras``) whose outputs are ``[heat_1..heat_S, paf_1..paf_S]`` (TAO order)."""

    fixed_input_shape = None

    def __init__(self, model, stride: int = 8):
        self.model, self.stride = model, int(stride)
        outs = model.outputs
        self.num_stages = max(1, len(outs) // 2)
        shape = model.inputs[0].shape
        if shape[1] is not None and shape[2] is not None:
            self.fixed_input_shape = (int(shape[1]), int(shape[2]))

    def predict(self, batch: np.ndarray, stage: int | None = None, context: list[dict] | None = None):
        s = self.num_stages if stage is None else int(stage)
        if not 1 <= s <= self.num_stages:
            raise BpnetError(f"output_stage_to_use={stage} but the model has {self.num_stages} stages")
        outs = self.model(batch, training=False)
        outs = [np.asarray(o) for o in (outs if isinstance(outs, (list, tuple)) else [outs])]
        return outs[s - 1], outs[self.num_stages + s - 1]


def load_runner(path: str | Path, stride: int = 8, pose: PoseConfig | None = None):
    """A runner for a model file: ``.keras`` (Keras), ``.onnx`` (ONNX Runtime) or ``.engine`` (TensorRT).

    The same function as :func:`bpnet_core.deploy.load_runner` (kept here for the inference code's imports).
    """
    from bpnet_core.deploy import load_runner as _load_runner

    return _load_runner(path, stride, pose)
