"""Synthetic video clips with known identities: the synthetic figures of :mod:`bpnet_core.data.synthetic` walking
across a fixed background, crossing and occluding each other, hiding behind a pole, entering and leaving.

:func:`generate_synthetic_video` writes::

    DIR/clip.avi (or .mp4)                  the frames (cv2.VideoWriter, MJPG / mp4v)
    DIR/annotations.json                    COCO-style: one ``images`` entry per frame (``frame_index``,
                                            ``timestamp_ms``), one annotation per visible person and frame with
                                            ``track_id`` (the identity), 17 COCO ``keypoints``, ``bbox``, ``area``
    DIR/frames/000000.jpg ...               with ``write_frames``: the frames as JPEG (``file_name`` of the images)

Labels follow the still generator: ``v = 2`` visible, ``v = 1`` in the frame but covered (by a person in front, the
pole, or the figure's own parts), ``v = 0`` outside the frame. A person with no labelled keypoint in a frame has no
annotation in it.

The ``standard`` scenario (the default; 256×256, 90 frames at 15 fps) has four people:

* 0 walks left to right in the foreground for the whole clip;
* 1 walks right to left further back and crosses behind 0 mid-clip;
* 2 enters from the left edge at frame 10 and passes behind the pole (hidden for a few frames), then goes on;
* 3 stands near the right edge, then walks out of the frame on the right (leaves).

Each person keeps its body and clothes (its own seed); the walk is a periodic gait. Deterministic for a seed.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import cv2
import numpy as np

from bpnet_core.data.coco import COCO_KEYPOINTS
from bpnet_core.data.synthetic.body import _sample_pose
from bpnet_core.data.synthetic.render import _composite, _render_figure
from bpnet_core.data.synthetic.scene import _background
from bpnet_core.data.synthetic.writer import _category
from bpnet_core.errors import BpnetError
from bpnet_core.fileio import read_json, write_json_atomic

#: (track_id, height as a fraction of H, centre y fraction, x start fraction, x end fraction, first frame fraction,
#: last frame fraction, walk cycle in frames); x moves linearly between first and last frame, standing when equal
STANDARD = (
    (0, 0.62, 0.58, 0.08, 0.92, 0.0, 1.0, 18),
    (1, 0.46, 0.46, 0.88, 0.12, 0.0, 1.0, 22),
    (2, 0.42, 0.44, -0.08, 0.75, 0.11, 1.0, 20),
    (3, 0.5, 0.5, 0.8, 0.8, 0.0, 0.3, 0),  # stands still...
)
_LEAVE = (3, 0.3, 0.6, 0.8, 1.15)  # ... then walks out on the right: (id, from frame fraction, to, x from, x to)
POLE = (0.28, 0.42)  # x fractions of the pole occluder


def _walk_pose(base: dict, phase: float, amp: float) -> dict:
    p = {k: (list(v) if isinstance(v, list) else v) for k, v in base.items()}
    s = math.sin(phase)
    r = math.radians
    p["leg_flex"] = [r(amp * 25) * s, -r(amp * 25) * s]
    p["knee"] = [r(5 + amp * 30 * max(0.0, -math.cos(phase))), r(5 + amp * 30 * max(0.0, math.cos(phase)))]
    p["flex"] = [-r(amp * 22) * s, r(amp * 22) * s]
    p["elbow"] = [r(15 + 10 * amp), r(15 + 10 * amp)]
    return p


def _people_at(frame: int, num_frames: int, H: int, W: int) -> list[dict]:
    out = []
    last = max(num_frames - 1, 1)
    for tid, hf, yf, x0, x1, f0, f1, cycle in STANDARD:
        a, b = f0 * last, f1 * last
        if not a <= frame <= b and tid != _LEAVE[0]:
            continue
        if tid == _LEAVE[0] and frame > b:
            _, la, lb, lx0, lx1 = _LEAVE
            fa, fb = la * last, lb * last
            u = min(1.0, (frame - fa) / max(fb - fa, 1))
            x, walking, direction = lx0 + (lx1 - lx0) * u, True, 1.0
            cycle = 20
        else:
            u = (frame - a) / max(b - a, 1)
            x, walking, direction = x0 + (x1 - x0) * u, x1 != x0, math.copysign(1.0, x1 - x0)
        out.append(
            {
                "track_id": tid,
                "height": hf * H,
                "anchor": (x * W, yf * H),
                "walking": walking,
                "direction": direction,
                "phase": 2 * math.pi * frame / cycle if cycle else 0.0,
            }
        )
    return out


def render_frame(frame: int, num_frames: int, H: int, W: int, background: np.ndarray, seed: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:  # fmt: skip
    """One frame of the standard scenario and its people (``track_id``, COCO ``keypoints`` list, ``bbox``...)."""
    canvas = background.copy()
    objects = []
    for person in sorted(_people_at(frame, num_frames, H, W), key=lambda p: p["height"]):  # far first
        _, base = _sample_pose(np.random.default_rng([seed, 2000 + person["track_id"]]),
                               np.array([0.0, 1.0, 0, 0, 0, 0, 0, 0, 0]))  # fmt: skip
        base.update(lean=0.05, side=0.0, twist=0.0, roll=0.0, nod=0.0, tilt=0.0, head_yaw=0.0)
        pose = _walk_pose(base, person["phase"], 1.0 if person["walking"] else 0.0)
        yaw = person["direction"] * (math.pi / 2 - 0.6) if person["walking"] else 0.0
        # _render_figure centres the body's extent on the anchor, which moves with the swinging limbs: render, then
        # shift so that the mid-hip point sits on the person's path (a steady walk, no gait jitter)
        anchor = np.array(person["anchor"], np.float64)
        fig = None
        for _ in range(2):
            fig = _render_figure(np.random.default_rng([seed, 1000 + person["track_id"]]),
                                 person["height"], tuple(anchor), H, W, pose=pose, yaw=yaw)  # fmt: skip
            if fig is None:
                break
            hips = np.array([fig["keypoints"][n][:2] for n in ("left_hip", "right_hip")]).mean(0)
            target = np.array(person["anchor"]) + [0.0, 0.05 * person["height"]]
            if np.abs(hips - target).max() < 0.5:
                break
            anchor += target - hips
        if fig is None:
            continue
        objects.append({"track_id": person["track_id"], "mask": _composite(canvas, fig), "kp": fig["keypoints"]})
    covered = np.zeros((H, W), bool)
    pole = np.zeros((H, W), bool)
    pole[:, int(POLE[0] * W) : int(POLE[1] * W)] = True
    x = np.linspace(0, 1, pole[:, int(POLE[0] * W) : int(POLE[1] * W)].shape[1])
    canvas[:, int(POLE[0] * W):int(POLE[1] * W)] = (np.array([40, 70, 110]) * (0.7 + 0.5 * np.sin(np.pi * x))[:, None]
                                                   ).astype(np.uint8)[None]  # fmt: skip
    covered |= pole
    anns = []
    for obj in reversed(objects):  # nearest first
        flat, n = [], 0
        for nm in COCO_KEYPOINTS:
            x_, y_, labelled, self_occ = obj["kp"][nm]
            if not labelled or not (0 <= x_ <= W - 1 and 0 <= y_ <= H - 1):
                flat += [0.0, 0.0, 0]
                continue
            v = 1 if self_occ or covered[int(round(y_)), int(round(x_))] else 2
            flat += [round(x_, 2), round(y_, 2), v]
            n += 1
        visible = obj["mask"] & ~covered
        covered |= obj["mask"]
        if n == 0:
            continue
        ys, xs = np.nonzero(visible)
        lab = np.array(flat, np.float64).reshape(-1, 3)
        lab = lab[lab[:, 2] > 0]
        bx = np.concatenate([xs, lab[:, 0]]) if len(xs) else lab[:, 0]
        by = np.concatenate([ys, lab[:, 1]]) if len(ys) else lab[:, 1]
        x0, y0 = float(bx.min()), float(by.min())
        anns.append({"track_id": obj["track_id"], "keypoints": flat, "num_keypoints": n,
                     "num_visible": int(sum(1 for v in flat[2::3] if v == 2)), "area": int(visible.sum()),
                     "bbox": [round(x0, 2), round(y0, 2), round(float(bx.max()) - x0 + 1, 2),
                              round(float(by.max()) - y0 + 1, 2)]})  # fmt: skip
    img = canvas.astype(np.float32) + rng.standard_normal((H, W, 1), dtype=np.float32) * 3.0
    return np.clip(img, 0, 255).astype(np.uint8), sorted(anns, key=lambda a: a["track_id"])


def _check(value, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise BpnetError(f"synthetic_video: {name} must be an integer in {lo}..{hi} (got {value!r})")
    return int(value)


def video_fourcc(video_name: str, fps, who: str) -> str:
    """The OpenCV codec for ``video_name`` (a bare ``.avi`` / ``.mp4`` / ``.mkv`` file name), ``fps`` checked; errors
    name ``who`` (the generator)."""
    if not (isinstance(fps, (int, float)) and 0 < fps <= 1000):
        raise BpnetError(f"{who}: fps must be in (0, 1000] (got {fps!r})")
    fourcc = {".avi": "MJPG", ".mp4": "mp4v", ".mkv": "MJPG"}.get(Path(video_name).suffix.lower())
    if fourcc is None or Path(video_name).name != video_name:
        raise BpnetError(f"{who}: video_name must be a file name ending .avi, .mp4 or .mkv (got {video_name!r})")
    return fourcc


def write_clip(out: Path, video_name: str, fourcc: str, fps: float, size_hw: tuple[int, int], frames,
               info: dict, categories: list) -> dict:  # fmt: skip
    """Write ``out/video_name`` (through a temporary name) from ``frames``, an iterable of ``(frame_bgr, people,
    image_fields)``, and ``out/annotations.json``: one COCO ``images`` entry per frame (``frames/NNNNNN.jpg``,
    ``frame_index``, ``timestamp_ms`` + ``image_fields``) and one annotation per person (``people``: dicts with
    ``track_id``, ``keypoints``, …). Returns the generators' summary."""
    h, w = size_hw
    t0 = time.perf_counter()
    video_path, tmp = out / video_name, out / f".{video_name}.tmp{Path(video_name).suffix.lower()}"
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*fourcc), float(fps), (w, h))
    if not writer.isOpened():
        raise BpnetError(f"{video_path}: OpenCV cannot write {fourcc} video here")
    images, annotations = [], []
    try:
        for f, (frame, people, fields) in enumerate(frames):
            writer.write(frame)
            images.append({"id": f + 1, "file_name": f"frames/{f:06d}.jpg", "frame_index": f,
                           "timestamp_ms": round(1000.0 * f / fps, 3), "height": h, "width": w, **fields})  # fmt: skip
            for a in people:
                annotations.append({"id": len(annotations) + 1, "image_id": f + 1, "category_id": 1, "iscrowd": 0,
                                    **a})  # fmt: skip
    finally:
        writer.release()
    tmp.replace(video_path)
    data = {"info": info, "images": images, "annotations": annotations, "categories": categories}
    write_json_atomic(out / "annotations.json", data, indent=None)
    return {"video": str(video_path), "annotations": str(out / "annotations.json"), "frames": len(images),
            "tracks": len({a["track_id"] for a in annotations}), "people": len(annotations),
            "seconds": time.perf_counter() - t0, "out_dir": str(out)}  # fmt: skip


def generate_synthetic_video(out_dir: str | Path, num_frames: int = 90, image_size: tuple[int, int] = (256, 256),
                             fps: float = 15.0, seed: int = 0, video_name: str = "clip.avi",
                             write_frames: bool = False) -> dict:  # fmt: skip
    """Write the standard scenario's clip and its ground truth (see the module docstring); returns a summary."""
    num_frames = _check(num_frames, "num_frames", 2, 100000)
    H, W = (_check(v, "image_size", 64, 4096) for v in image_size)
    fourcc = video_fourcc(video_name, fps, "synthetic_video")
    out = Path(out_dir).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise BpnetError(f"{out}: output path exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        if write_frames:
            (out / "frames").mkdir(exist_ok=True)
    except OSError as exc:
        raise BpnetError(f"{out}: cannot create output directory: {exc.strerror}") from None
    rng = np.random.default_rng([seed, 0])
    background = _background(rng, H, W, (2, 6))

    def frames():
        for f in range(num_frames):
            frame, anns = render_frame(f, num_frames, H, W, background, seed, np.random.default_rng([seed, 1, f]))
            if write_frames:
                cv2.imwrite(str(out / f"frames/{f:06d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
            yield frame, anns, {}

    info = {"description": "bpnet synthetic video (standard scenario)", "video": video_name, "fps": fps,
            "num_frames": num_frames, "seed": seed}  # fmt: skip
    return write_clip(out, video_name, fourcc, fps, (H, W), frames(), info, [_category()])


def load_video_ground_truth(annotation_file: str | Path) -> tuple[list[str], list[tuple[np.ndarray, list[int]]]]:
    """``(keypoint names, [(keypoints (P, K, 3), track ids) per frame])`` from :func:`generate_synthetic_video`'s
    annotations (frames in ``frame_index`` order)."""
    data = read_json(annotation_file, "video annotation file")
    names = data["categories"][0]["keypoints"]
    by_image: dict = {im["id"]: [] for im in data["images"]}
    for a in data["annotations"]:
        by_image[a["image_id"]].append(a)
    frames = []
    for im in sorted(data["images"], key=lambda im: im["frame_index"]):
        anns = by_image[im["id"]]
        kps = np.array([a["keypoints"] for a in anns], np.float32).reshape(-1, len(names), 3)
        frames.append((kps, [int(a["track_id"]) for a in anns]))
    return names, frames
