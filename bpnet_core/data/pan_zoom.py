"""A real clip with known identities: a virtual camera pans and zooms across one real COCO photo.

:func:`generate_pan_zoom_video` crops the photo along a smooth path (one affine matrix per frame, applied with
``cv2.warpAffine`` to the photo and with NumPy to its ground-truth keypoints) and writes, like
:func:`~bpnet_core.data.synthetic_video.generate_synthetic_video`::

    DIR/clip.avi (or .mp4)      the frames
    DIR/annotations.json        COCO-style: one ``images`` entry per frame (``frame_index``, ``timestamp_ms``), one
                                annotation per labelled person in view with ``track_id`` = the COCO annotation id,
                                the 17 keypoints mapped by the frame's matrix (``v = 0`` once outside the frame),
                                ``bbox``, ``area``, and the frame's ``matrix`` in its ``images`` entry

The camera path (``u`` = frame / (frames − 1)): zoom ``1 + (max_zoom − 1) · sin(π u)`` (the whole photo at the first
and last frame), the crop centre sweeping left → right (``0.5 − 0.5 cos(π u)`` of the free range) and up and down
once (``sin(2π u)``, half the free range). The people stand still in the photo, so every motion in the clip is the
camera's: the people move, grow and leave the frame at the edges while zoomed in, and come back.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from bpnet_core.data.synthetic_video import _check, video_fourcc, write_clip
from bpnet_core.errors import BpnetError
from bpnet_core.fileio import make_dir, read_json


def camera_matrix(u: float, image_hw: tuple[int, int], frame_hw: tuple[int, int], max_zoom: float) -> np.ndarray:
    """The 2×3 affine matrix (photo pixels → frame pixels) of the camera at ``u`` in [0, 1]."""
    ih, iw = image_hw
    fh, fw = frame_hw
    base_w = min(iw, ih * fw / fh)  # the largest crop of the frame's aspect that fits in the photo
    zoom = 1.0 + (max_zoom - 1.0) * math.sin(math.pi * u)
    cw = base_w / zoom
    ch = cw * fh / fw
    cx = cw / 2 + (iw - cw) * (0.5 - 0.5 * math.cos(math.pi * u))
    cy = ih / 2 + 0.5 * (ih - ch) / 2 * math.sin(2 * math.pi * u)
    s = fw / cw
    return np.array([[s, 0.0, s * (cw / 2 - cx)], [0.0, s, s * (ch / 2 - cy)]])


def _warp_annotation(a: dict, M: np.ndarray, frame_hw: tuple[int, int]) -> dict | None:
    fh, fw = frame_hw
    kp = np.array(a["keypoints"], np.float64).reshape(-1, 3)
    xy = kp[:, :2] @ M[:, :2].T + M[:, 2]
    inside = (xy[:, 0] >= 0) & (xy[:, 0] <= fw - 1) & (xy[:, 1] >= 0) & (xy[:, 1] <= fh - 1)
    v = np.where((kp[:, 2] > 0) & inside, kp[:, 2], 0).astype(int)
    if not (v > 0).any():
        return None
    flat = []
    for (x, y), vis in zip(xy, v):
        flat += [round(float(x), 2), round(float(y), 2), int(vis)] if vis else [0.0, 0.0, 0]
    x, y, w, h = a["bbox"]
    corners = np.array([[x, y], [x + w, y + h]]) @ M[:, :2].T + M[:, 2]
    x0, y0 = np.clip(corners[0], 0, [fw - 1, fh - 1])
    x1, y1 = np.clip(corners[1], 0, [fw - 1, fh - 1])
    full = max((corners[1] - corners[0]).prod(), 1e-6)
    area = float(a.get("area", w * h)) * M[0, 0] ** 2 * max(x1 - x0, 0) * max(y1 - y0, 0) / full
    return {"track_id": int(a["id"]), "keypoints": flat, "num_keypoints": int((v > 0).sum()),
            "bbox": [round(float(x0), 2), round(float(y0), 2), round(float(x1 - x0), 2), round(float(y1 - y0), 2)],
            "area": round(area, 2)}  # fmt: skip


def generate_pan_zoom_video(out_dir: str | Path, image: str | Path, annotations: str | Path, num_frames: int = 60,
                            frame_size: tuple[int, int] | None = None, max_zoom: float = 1.4, fps: float = 15.0,
                            video_name: str = "clip.avi") -> dict:  # fmt: skip
    """Write the pan/zoom clip of ``image`` (a photo listed in the COCO keypoints file ``annotations``, matched by
    file name) and its ground truth (see the module docstring). ``frame_size``: (H, W), default the photo's size.
    Returns a summary (paths, frames, tracks, person-frames)."""
    image = Path(image)
    if not image.is_file():
        raise BpnetError(f"{image}: image not found")
    photo = cv2.imread(str(image), cv2.IMREAD_COLOR)
    if photo is None:
        raise BpnetError(f"{image}: not an image OpenCV can read")
    data = read_json(annotations, "COCO keypoints annotation file")
    entry = next((im for im in data.get("images", []) if Path(im.get("file_name", "")).name == image.name), None)
    if entry is None:
        raise BpnetError(f"{annotations}: no images entry with file_name {image.name!r}")
    people = [a for a in data.get("annotations", []) if a.get("image_id") == entry["id"] and not a.get("iscrowd")
              and a.get("num_keypoints", 0) > 0]  # fmt: skip
    if not people:
        raise BpnetError(f"{annotations}: {image.name} has no person with labelled keypoints")
    num_frames = _check(num_frames, "num_frames", 2, 100000)
    ih, iw = photo.shape[:2]
    fh, fw = (ih, iw) if frame_size is None else (_check(v, "frame_size", 64, 4096) for v in frame_size)
    fh, fw = fh // 2 * 2, fw // 2 * 2  # even sizes for every codec
    if not (isinstance(max_zoom, (int, float)) and 1.0 <= max_zoom <= 8.0):
        raise BpnetError(f"pan_zoom: max_zoom must be in [1, 8] (got {max_zoom!r})")
    fourcc = video_fourcc(video_name, fps, "pan_zoom")
    out = make_dir(out_dir, "output directory")

    def frames():
        for f in range(num_frames):
            M = camera_matrix(f / (num_frames - 1), (ih, iw), (fh, fw), float(max_zoom))
            frame = cv2.warpAffine(photo, M, (fw, fh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            warped = [w for w in (_warp_annotation(a, M, (fh, fw)) for a in people) if w is not None]
            yield frame, warped, {"matrix": [[round(float(v), 6) for v in row] for row in M]}

    info = {"description": f"bpnet pan/zoom clip of {image.name}", "video": video_name, "fps": fps,
            "num_frames": num_frames, "source_image": image.name, "max_zoom": max_zoom}  # fmt: skip
    category = [c for c in data["categories"] if c.get("id") == 1]
    summary = write_clip(out, video_name, fourcc, fps, (fh, fw), frames(), info, category)
    return {**summary, "frame_size": [fh, fw]}
