"""Spatial augmentation: one affine matrix per sample, applied to image, mask and keypoints together.

Modes (TAO ``spatial_augmentation_mode``):

* ``person_centric``: the crop is centred on the record's main person, scaled so that the person's height (bbox
  height) becomes ``target_person_scale × input height``; then random zoom, rotation, translation and flips.
* ``standard``: the whole image is stretched to the input size (aspect ratio not kept), then random transforms.
* ``standard_with_fixed_aspect_ratio``: the whole image is fitted into the input (longer side, letterbox), then
  random transforms.

Flipping left-right mirrors x and swaps left/right joints using ``PoseConfig.flip_permutation``; top-bottom flips
mirror y only. The matrix maps source pixel centres to target pixel centres, so a keypoint at pixel (x, y) lands on
the pixel where ``cv2.warpAffine`` puts the image content that was under it. NumPy/OpenCV only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bpnet_core.errors import BpnetError
from bpnet_core.skeleton import PoseConfig

MODES = ("person_centric", "standard", "standard_with_fixed_aspect_ratio")


@dataclass
class AugParams:
    """The spec's ``spatial_aug_params`` (TAO names and defaults)."""

    flip_lr_prob: float = 0.5
    flip_tb_prob: float = 0.0
    rotate_deg_max: float = 40.0
    rotate_deg_min: float = -40.0
    zoom_prob: float = 0.0
    zoom_ratio_min: float = 1.0
    zoom_ratio_max: float = 1.0
    translate_max_x: float = 40.0
    translate_min_x: float = -40.0
    translate_max_y: float = 40.0
    translate_min_y: float = -40.0
    use_translate_ratio: bool = False
    translate_ratio_max: float = 0.2
    translate_ratio_min: float = -0.2
    target_person_scale: float = 0.6

    @classmethod
    def from_spec(cls, params) -> AugParams:
        names = cls.__dataclass_fields__
        if params is None:
            return cls()
        get = params.get if isinstance(params, dict) else lambda k, d=None: getattr(params, k, d)
        return cls(**{k: get(k, getattr(cls, k)) for k in names if get(k, None) is not None})

    @classmethod
    def identity(cls) -> AugParams:
        """No randomness: used for validation and for pictures of the plain crop."""
        return cls(flip_lr_prob=0.0, flip_tb_prob=0.0, rotate_deg_max=0.0, rotate_deg_min=0.0, zoom_prob=0.0,
                   translate_max_x=0.0, translate_min_x=0.0, translate_max_y=0.0, translate_min_y=0.0,
                   translate_ratio_max=0.0, translate_ratio_min=0.0)  # fmt: skip


def _mat(a: np.ndarray) -> np.ndarray:
    m = np.eye(3)
    m[:2] = a
    return m


def sample_transform(
    rng: np.random.Generator,
    params: AugParams,
    mode: str,
    image_hw: tuple[int, int],
    input_hw: tuple[int, int],
    center: tuple[float, float] | None = None,
    person_height: float | None = None,
) -> tuple[np.ndarray, bool]:
    """Draw one random transform; returns (2×3 affine matrix source→input pixels, flipped_lr)."""
    if mode not in MODES:
        raise BpnetError(f"spatial_augmentation_mode must be one of {list(MODES)} (got {mode!r})")
    h, w = image_hw
    out_h, out_w = input_hw
    if mode == "person_centric" and center is not None and person_height and person_height > 1:
        cx, cy = center
        s = params.target_person_scale * out_h / float(person_height)
        sx = sy = s
    else:
        cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
        if mode == "standard":
            sx, sy = out_w / float(w), out_h / float(h)
        else:  # fixed aspect ratio (also person_centric without a person)
            sx = sy = min(out_w / float(w), out_h / float(h))
    zoom = 1.0
    if params.zoom_prob > 0 and rng.random() < params.zoom_prob:
        zoom = rng.uniform(params.zoom_ratio_min, params.zoom_ratio_max)
    angle = np.deg2rad(rng.uniform(params.rotate_deg_min, params.rotate_deg_max))
    if params.use_translate_ratio:
        tx = rng.uniform(params.translate_ratio_min, params.translate_ratio_max) * out_w
        ty = rng.uniform(params.translate_ratio_min, params.translate_ratio_max) * out_h
    else:
        tx = rng.uniform(params.translate_min_x, params.translate_max_x)
        ty = rng.uniform(params.translate_min_y, params.translate_max_y)
    flip_lr = params.flip_lr_prob > 0 and rng.random() < params.flip_lr_prob
    flip_tb = params.flip_tb_prob > 0 and rng.random() < params.flip_tb_prob

    to_origin = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]], float)
    scale = np.diag([sx * zoom, sy * zoom, 1.0])
    c, s_ = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s_, 0], [s_, c, 0], [0, 0, 1]], float)
    flip = np.diag([-1.0 if flip_lr else 1.0, -1.0 if flip_tb else 1.0, 1.0])
    to_out = np.array([[1, 0, (out_w - 1) / 2.0 + tx], [0, 1, (out_h - 1) / 2.0 + ty], [0, 0, 1]], float)
    m = to_out @ flip @ rot @ scale @ to_origin
    return m[:2].astype(np.float64), bool(flip_lr)


def transform_keypoints(
    keypoints: np.ndarray, matrix: np.ndarray, flipped_lr: bool, pose: PoseConfig, input_hw: tuple[int, int]
) -> np.ndarray:
    """Apply ``matrix`` to (P, J, 3) keypoints; swap left/right joints when flipped; drop joints that leave the
    input."""
    kp = np.array(keypoints, np.float32, copy=True)
    if kp.size == 0:
        return kp.reshape(0, pose.num_joints, 3)
    xy1 = np.concatenate([kp[:, :, :2], np.ones(kp.shape[:2] + (1,), np.float32)], axis=2)
    kp[:, :, :2] = xy1 @ np.asarray(matrix, np.float32).T
    if flipped_lr:
        kp = kp[:, pose.flip_permutation, :]
    h, w = input_hw
    outside = (kp[:, :, 0] < 0) | (kp[:, :, 1] < 0) | (kp[:, :, 0] > w - 1) | (kp[:, :, 1] > h - 1)
    kp[outside | (kp[:, :, 2] <= 0)] = 0.0
    return kp


def warp_image(image: np.ndarray, matrix: np.ndarray, input_hw: tuple[int, int], border: int = 128) -> np.ndarray:
    import cv2

    h, w = input_hw
    return cv2.warpAffine(
        image,
        matrix,
        (w, h),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(border, border, border),
    )


def warp_mask(mask: np.ndarray | None, matrix: np.ndarray, input_hw: tuple[int, int]) -> np.ndarray:
    """Warp a uint8 valid-mask (255 = valid); padding outside the source image is valid (it is background)."""
    import cv2

    h, w = input_hw
    if mask is None:
        return np.full((h, w), 255, np.uint8)
    return cv2.warpAffine(
        mask, matrix, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=255
    )


def augment(
    image: np.ndarray,
    mask: np.ndarray | None,
    keypoints: np.ndarray,
    pose: PoseConfig,
    input_hw: tuple[int, int],
    rng: np.random.Generator,
    params: AugParams,
    mode: str = "person_centric",
    center: tuple[float, float] | None = None,
    person_height: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Augment one sample; returns (image uint8 (H, W, 3), mask uint8 (H, W), keypoints (P, J, 3), 2×3 matrix)."""
    m, flipped = sample_transform(rng, params, mode, image.shape[:2], input_hw, center, person_height)
    return (
        warp_image(image, m, input_hw),
        warp_mask(mask, m, input_hw),
        transform_keypoints(keypoints, m, flipped, pose, input_hw),
        m,
    )
