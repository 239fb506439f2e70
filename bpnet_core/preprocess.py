"""One preprocessing for every consumer (inference, evaluation, calibration, parity checks, figures): a photo →
the network input a model's contract asks for, plus the transform that maps input pixels back to the photo.

Resize modes (the inference spec's ``keep_aspect_ratio_mode``):

========================  ====================================================================================
``adjust_network_input``  TAO: the shorter side becomes ``input_shape[0]`` (aspect kept; the long side at most
                          4 × that), padded right/bottom to a multiple of the stride
``pad_image_input``       TAO: fitted into (H, W) = ``input_shape`` (aspect kept), padded right/bottom
``fixed_height``          the height becomes ``input_shape[0]`` (aspect kept; width at most 4 × that), padded
                          right/bottom to the stride (Lightweight OpenPose's / Open Model Zoo's recipe)
``stretch``               resized to exactly (H, W), aspect not kept (tf-pose's evaluation)
``letterbox``             fitted into (H, W), aspect kept, centred with symmetric padding (DeepStream's
                          ``maintain-aspect-ratio=1``, ``symmetric-padding=1``)
========================  ====================================================================================

The model's contract (:class:`~bpnet_core.meta.ModelMeta`) gives the colour order, normalisation, resampling
filter and padding value; a fixed-size model forces its size (``pad_image_input`` unless the spec asks for
``stretch`` or ``letterbox``), as TAO does for TensorRT engines.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from bpnet_core.errors import BpnetError
from bpnet_core.meta import RESIZE_MODES, ModelMeta

MAX_SIDE = 16384
MAX_ASPECT = 4  # adjust_network_input / fixed_height: the long side is at most 4 × input_shape[0]
FIXED_SIZE_MODES = ("pad_image_input", "stretch", "letterbox")
_FILTERS = {"linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC, "area": cv2.INTER_AREA, "nearest": cv2.INTER_NEAREST}


@dataclass
class Prepared:
    """One preprocessed image: the batch of one and where the photo sits in it."""

    batch: np.ndarray  # (1, H, W, 3) float32, NHWC, the model's colour order and normalisation
    matrix: np.ndarray  # 2×3: photo pixels → input pixels (x' = sx·x + tx, y' = sy·y + ty)
    box: tuple[int, int, int, int]  # (y0, x0, y1, x1): the input region the photo covers (the rest is padding)

    @property
    def input_hw(self) -> tuple[int, int]:
        return int(self.batch.shape[1]), int(self.batch.shape[2])

    @property
    def scale(self) -> float:
        """Photo → input scale along x (equal to y's except in ``stretch`` mode)."""
        return float(self.matrix[0, 0])


def round_to_stride(v: float, stride: int) -> int:
    return max(stride, int(np.ceil(v / stride)) * stride)


def effective_mode(meta: ModelMeta, mode: str | None, input_shape) -> tuple[str, tuple[int, int]]:
    """The resize mode and input shape actually used: a fixed-size model imposes its size."""
    mode = "adjust_network_input" if mode in (None, "None") else mode
    if mode not in RESIZE_MODES:
        raise BpnetError(f"keep_aspect_ratio_mode must be one of {', '.join(RESIZE_MODES)} (got {mode!r})")
    if meta.input_hw is not None:
        return (mode if mode in FIXED_SIZE_MODES else "pad_image_input"), tuple(meta.input_hw)
    return mode, (int(input_shape[0]), int(input_shape[1]))


def _geometry(h: int, w: int, mode: str, th: int, tw: int, stride: int):
    """(sx, sy, out_hw, (offset_y, offset_x)) of one resize mode."""
    if mode == "adjust_network_input":
        s = min(th / float(min(h, w)), MAX_ASPECT * th / float(max(h, w)))
        return s, s, (round_to_stride(h * s, stride), round_to_stride(w * s, stride)), (0, 0)
    if mode == "fixed_height":
        s = min(th / float(h), MAX_ASPECT * th / float(w))
        return s, s, (round_to_stride(h * s, stride), round_to_stride(w * s, stride)), (0, 0)
    th, tw = round_to_stride(th, stride), round_to_stride(tw, stride)
    if mode == "stretch":
        return tw / w, th / h, (th, tw), (0, 0)
    s = min(th / h, tw / w)
    if mode == "letterbox":
        nh, nw = max(1, min(th, int(round(h * s)))), max(1, min(tw, int(round(w * s))))
        return s, s, (th, tw), ((th - nh) // 2, (tw - nw) // 2)
    return s, s, (th, tw), (0, 0)  # pad_image_input


def prepare(image_bgr: np.ndarray, meta: ModelMeta, input_shape=(368, 368), mode: str | None = "adjust_network_input",
            scale_factor: float = 1.0) -> Prepared:  # fmt: skip
    """Resize and pad one uint8 BGR photo into ``meta``'s normalised NHWC batch of one (see the module docstring)."""
    h, w = image_bgr.shape[:2]
    if h < 1 or w < 1:
        raise BpnetError(f"image of size {w}x{h} cannot be processed")
    mode, input_shape = effective_mode(meta, mode, input_shape)
    stride = int(meta.input_multiple)
    th, tw = int(round(input_shape[0] * scale_factor)), int(round(input_shape[1] * scale_factor))
    if meta.input_hw is not None:
        th, tw = input_shape
    sx, sy, out_hw, (oy, ox) = _geometry(h, w, mode, th, tw, stride)
    if max(out_hw) > MAX_SIDE:
        raise BpnetError(f"network input {out_hw[1]}x{out_hw[0]} is too large (max side {MAX_SIDE})")
    nh = max(1, min(out_hw[0] - oy, int(round(h * sy))))
    nw = max(1, min(out_hw[1] - ox, int(round(w * sx))))
    interp = meta.preprocessing.interpolation
    auto = cv2.INTER_AREA if min(sx, sy) < 1 else cv2.INTER_LINEAR
    flag = auto if interp == "auto" else _FILTERS[interp]
    resized = cv2.resize(image_bgr, (nw, nh), interpolation=flag)
    canvas = np.full((out_hw[0], out_hw[1], 3), meta.preprocessing.pad_value, np.uint8)
    canvas[oy : oy + nh, ox : ox + nw] = resized
    matrix = np.array([[sx, 0.0, ox], [0.0, sy, oy]], np.float64)
    return Prepared(batch=meta.normalize(canvas)[None], matrix=matrix, box=(oy, ox, oy + nh, ox + nw))


def to_photo(xy: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Input-pixel coordinates (..., 2) → photo pixels (the inverse of ``matrix``; axis-aligned scale + shift)."""
    xy = np.asarray(xy, np.float64)
    return np.stack([(xy[..., 0] - matrix[0, 2]) / matrix[0, 0], (xy[..., 1] - matrix[1, 2]) / matrix[1, 1]], -1)


def batch_of(images_bgr: list[np.ndarray], meta: ModelMeta, input_hw: tuple[int, int], mode: str = "pad_image_input"):
    """Several photos at one fixed input size (calibration, parity checks): float32 (N, H, W, 3)."""
    return np.concatenate([prepare(im, meta, input_hw, mode).batch for im in images_bgr])
