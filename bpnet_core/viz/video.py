"""Figures of a video run: a strip of frames with track ids, and each track's trajectory (matplotlib figures)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from bpnet_core.fileio import read_json
from bpnet_core.viz.draw import draw_tracks


def _load(detections) -> dict:
    return detections if isinstance(detections, dict) else read_json(detections, "detections file")


def frame_strip(video: str | Path, detections, pose, num: int = 4, width: float = 14.0):
    """``num`` evenly spaced processed frames of ``video`` with the people of ``detections`` (``detections.json``)
    drawn in their track's colour and labelled with their id."""
    import matplotlib.pyplot as plt

    det = _load(detections)
    frames = det["images"]
    picks = [frames[i] for i in np.linspace(0, len(frames) - 1, min(num, len(frames))).astype(int)]
    wanted, images, cap, i = {f["frame_index"] for f in picks}, {}, cv2.VideoCapture(str(video)), 0
    while len(images) < len(wanted):  # read in order (seeking is not exact for every codec)
        ok, image = cap.read()
        if not ok:
            break
        if i in wanted:
            images[i] = image
        i += 1
    fig, axes = plt.subplots(1, len(picks), figsize=(width, width / len(picks) * 0.7))
    for ax, f in zip(np.atleast_1d(axes), picks):
        image = images[f["frame_index"]]
        xy = np.array(f["keypoints"], np.float32).reshape(len(f["keypoints"]), pose.num_joints, 2)
        kps = np.concatenate([xy, (np.abs(xy).sum(-1, keepdims=True) > 0).astype(np.float32)], -1)
        ax.imshow(cv2.cvtColor(draw_tracks(image, kps, f["track_ids"], pose), cv2.COLOR_BGR2RGB))
        ax.set_title(f"frame {f['frame_index']}: ids {sorted(t for t in f['track_ids'] if t >= 0)}", fontsize=9)
        ax.axis("off")
    cap.release()
    fig.tight_layout()
    return fig


def trajectories(detections, width: float = 6.0):
    """The centre of each track (mean of its joints) over the frames: x against frame index, one line per id."""
    import matplotlib.pyplot as plt

    det = _load(detections)
    tracks: dict[int, list] = {}
    for f in det["images"]:
        for kp, t in zip(f["keypoints"], f["track_ids"]):
            xy = np.array(kp, np.float32)
            xy = xy[np.abs(xy).sum(-1) > 0]
            if t >= 0 and len(xy):
                tracks.setdefault(t, []).append((f["frame_index"], float(xy[:, 0].mean())))
    fig, ax = plt.subplots(figsize=(width, width * 0.6))
    for t, pts in sorted(tracks.items()):
        ax.plot([p[0] for p in pts], [p[1] for p in pts], ".-", ms=3, label=f"id {t}")
    ax.set_xlabel("frame")
    ax.set_ylabel("x of the person's centre (px)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return fig
