"""The one inference path: photo → preprocessing (from the model's contract) → network → flip test / multi-scale
merge → decoder → people in photo pixels.

>>> predictor = Predictor(load_runner("thin.onnx"))          # the model's recommended settings
>>> predictor = Predictor(runner, load_infer_spec("specs/infer_spec.yaml"))
>>> result = predictor(cv2.imread("photo.jpg"))               # ImageResult: keypoints (P, J, 3) in photo pixels

``multi_scale_inference``: for each of ``scales`` the network runs on the image resized by that scale; each scale's
maps are cropped to the image content, resized to the largest scale's map size and averaged with equal weights.

``flip_test`` (bpnet extension, as in OpenPose's and HRNet's evaluations): at every scale the network also runs on the
left-right mirrored input; its maps are mirrored back (left/right joints and limbs swapped, PAF x negated, see
:meth:`PoseConfig.flip_maps`) and averaged with the direct ones. Twice the network time, better joint localisation.

Heatmaps and PAFs may come at different strides (the contract says which); each is merged on its own grid and the
decoder samples each on its own grid. Every consumer (``bpnet inference`` / ``evaluate``, decoder sweeps, the
explorer, notebooks, benchmarks) calls this class.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from bpnet_core.config import infer_spec_from_model
from bpnet_core.decode import DecodeParams, decode
from bpnet_core.errors import BpnetError
from bpnet_core.preprocess import Prepared, prepare, to_photo
from bpnet_core.runners import load_runner
from bpnet_core.runners.rendered import Transform


@dataclass
class ImageResult:
    """What :class:`Predictor` returns for one image."""

    keypoints: np.ndarray  # (P, J, 3) x, y in photo pixels, confidence (0 = missing)
    scores: list[float]
    heatmaps: np.ndarray  # (h, w, J+1) the maps that were decoded (after flip / multi-scale merging)
    pafs: np.ndarray  # (h', w', 2L), at the PAF stride
    input_hw: tuple[int, int]  # network input size of the reference scale
    matrix: np.ndarray  # 2×3 photo → reference network input
    timings_ms: dict = field(default_factory=dict)
    people: list = field(default_factory=list)  # the decoder's Person objects (network-input coordinates)

    @property
    def scale(self) -> float:
        """Photo → network input scale along x."""
        return float(self.matrix[0, 0])


def photo_mapping(matrix: np.ndarray, image_hw: tuple[int, int]):
    """The map network-input xy (..., 2) → photo pixels, clipped to the photo (``scale_xy`` of
    :func:`bpnet_core.evaluate.people_to_coco_results`; what :func:`people_to_photo` applies)."""

    def to_clipped_photo(xy: np.ndarray) -> np.ndarray:
        out = to_photo(xy, matrix)
        out[..., 0] = np.clip(out[..., 0], 0, image_hw[1] - 1)
        out[..., 1] = np.clip(out[..., 1], 0, image_hw[0] - 1)
        return out

    return to_clipped_photo


def people_to_photo(people: list, matrix: np.ndarray, image_hw: tuple[int, int], num_joints: int) -> np.ndarray:
    """Decoded people (network-input pixels) → keypoints (P, J, 3) in photo pixels, clipped to the photo."""
    kps = np.zeros((len(people), num_joints, 3), np.float32)
    mapping = photo_mapping(matrix, image_hw)
    for n, person in enumerate(people):
        kp = np.asarray(person.keypoints, np.float32)
        present = kp[:, 2] > 0
        xy = mapping(kp[:, :2])
        kps[n, :, 0] = xy[:, 0] * present
        kps[n, :, 1] = xy[:, 1] * present
        kps[n, :, 2] = kp[:, 2] * present
    return kps


def _cells(box: tuple[int, int, int, int], stride: int) -> tuple[int, int, int, int]:
    """The map cells (y0, x0, y1, x1) that cover an input-pixel box."""
    y0, x0, y1, x1 = box
    return y0 // stride, x0 // stride, int(np.ceil(y1 / stride)), int(np.ceil(x1 / stride))


class Predictor:
    """Runs one runner with one inference spec (``None``: the model's recommended settings)."""

    def __init__(self, runner, spec=None):
        self.runner = runner
        self.meta = runner.meta
        self.pose = self.meta.pose
        self.spec = spec if spec is not None else infer_spec_from_model(self.meta)
        self.params: DecodeParams = self.spec.decode_params()
        self.stage = self.spec.output_stage_to_use
        self.meta.stage(self.stage)  # an unavailable stage fails now, naming the model
        self.flip = self.pose.flip_maps() if self.spec.flip_test else None
        self.scales = sorted(self.spec.scales) if self.spec.multi_scale_inference else [1.0]
        if self.meta.input_hw is not None:
            self.scales = [1.0]  # a fixed-size model runs at its size
        self.heat_stride = self.meta.heatmaps(self.stage).stride
        self.paf_stride = self.meta.pafs(self.stage).stride
        self.forward_passes = 0

    def with_spec(self, spec) -> Predictor:
        return Predictor(self.runner, spec)

    # ------------------------------------------------------------------ network
    def prepare(self, image_bgr: np.ndarray, scale_factor: float = 1.0) -> Prepared:
        return prepare(image_bgr, self.meta, tuple(self.spec.input_shape), self.spec.keep_aspect_ratio_mode,
                       scale_factor)  # fmt: skip

    def _run(self, batch: np.ndarray, transform: Transform) -> tuple[np.ndarray, np.ndarray]:
        self.forward_passes += 1
        if getattr(self.runner, "needs_transforms", False):
            heat, paf = self.runner.predict_with_transforms(batch, [transform], stage=self.stage)
        else:
            heat, paf = self.runner.predict(batch, stage=self.stage)
        heat, paf = np.asarray(heat[0], np.float32), np.asarray(paf[0], np.float32)
        pose = self.pose
        if heat.shape[2] != pose.num_heatmap_channels or paf.shape[2] != pose.num_paf_channels:
            raise BpnetError(f"{getattr(self.runner, 'source', self.meta.name)}: model outputs {heat.shape[2]} "
                             f"heatmap / {paf.shape[2]} PAF channels but pose config {pose.name} needs "
                             f"{pose.num_heatmap_channels} / {pose.num_paf_channels}")  # fmt: skip
        return heat, paf

    def _maps_one_scale(self, pre: Prepared, image_path) -> tuple[np.ndarray, np.ndarray]:
        """The maps of one preprocessed input; with flip test averaged with those of the mirrored input."""
        path = str(image_path) if image_path else ""
        heat, paf = self._run(pre.batch, Transform(path, pre.matrix))
        if self.flip is None:
            return heat, paf
        heat_perm, paf_perm, paf_sign = self.flip
        w = pre.batch.shape[2]
        mirror = np.array([[-1.0, 0.0, w - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        matrix = (mirror @ np.vstack([pre.matrix, [0, 0, 1]]))[:2]
        heat_m, paf_m = self._run(np.ascontiguousarray(pre.batch[:, :, ::-1]), Transform(path, matrix))
        heat_m, paf_m = heat_m[:, ::-1], paf_m[:, ::-1]
        return (heat + heat_m[..., heat_perm]) / 2, (paf + paf_m[..., paf_perm] * paf_sign) / 2

    def prepare_all(self, image_bgr: np.ndarray) -> dict:
        """The preprocessed input of every scale this predictor runs (``{scale: Prepared}``): what a background
        thread computes ahead of :meth:`__call__` (``prepared=``)."""
        return {sf: self.prepare(image_bgr, sf) for sf in self.scales}

    def maps(self, image_bgr: np.ndarray, image_path: str | Path | None = None, prepared: dict | None = None):
        """``(heatmaps, pafs, reference Prepared)`` after flip test and multi-scale merging. ``prepared``: the
        output of :meth:`prepare_all` for this image, computed earlier."""
        ref = acc_h = acc_p = None
        for sf in self.scales[::-1]:  # largest scale first: it defines the common map size
            pre = prepared[sf] if prepared is not None and sf in prepared else self.prepare(image_bgr, sf)
            heat, paf = self._maps_one_scale(pre, image_path)
            if ref is None:
                ref, acc_h, acc_p = pre, heat.copy(), paf.copy()
                continue
            for acc, m, s in ((acc_h, heat, self.heat_stride), (acc_p, paf, self.paf_stride)):
                ry0, rx0, ry1, rx1 = _cells(ref.box, s)
                y0, x0, y1, x1 = _cells(pre.box, s)
                acc[ry0:ry1, rx0:rx1] += cv2.resize(m[y0:y1, x0:x1], (rx1 - rx0, ry1 - ry0),
                                                    interpolation=cv2.INTER_CUBIC)  # fmt: skip
        if len(self.scales) > 1:
            acc_h /= len(self.scales)
            acc_p /= len(self.scales)
        return acc_h, acc_p, ref

    # ------------------------------------------------------------------ decoding
    def decode(self, heatmaps: np.ndarray, pafs: np.ndarray, params: DecodeParams | None = None) -> list:
        """People (network-input pixels) from merged maps, with this predictor's (or the given) decoder constants."""
        return decode(heatmaps, pafs, self.pose, params or self.params, stride=self.heat_stride,
                      paf_stride=self.paf_stride)  # fmt: skip

    def __call__(self, image_bgr: np.ndarray, image_path: str | Path | None = None,
                 prepared: dict | None = None) -> ImageResult:  # fmt: skip
        t0 = time.perf_counter()
        heat, paf, ref = self.maps(image_bgr, image_path, prepared)
        return self.result(image_bgr, heat, paf, ref, (time.perf_counter() - t0) * 1000)

    def result(self, image_bgr: np.ndarray, heat: np.ndarray, paf: np.ndarray, ref: Prepared,
               network_ms: float = 0.0) -> ImageResult:  # fmt: skip
        """Decode the output of :meth:`maps` and map the people back to the photo (the second half of
        :meth:`__call__`, which a video pipeline runs in another thread than the network)."""
        t1 = time.perf_counter()
        people = self.decode(heat, paf)
        t2 = time.perf_counter()
        return ImageResult(
            keypoints=people_to_photo(people, ref.matrix, image_bgr.shape[:2], self.pose.num_joints),
            scores=[float(p.score) for p in people],
            heatmaps=heat,
            pafs=paf,
            input_hw=ref.input_hw,
            matrix=ref.matrix,
            timings_ms={"network": float(network_ms), "decode": (t2 - t1) * 1000},
            people=people,
        )


def make_predictor(model, spec=None) -> Predictor:
    """A :class:`Predictor` from a model path, a runner or a Predictor (``spec`` replaces the latter's spec)."""
    if isinstance(model, Predictor):
        return model if spec is None else model.with_spec(spec)
    if isinstance(model, (str, Path)):
        model = load_runner(model)
    return Predictor(model, spec)
