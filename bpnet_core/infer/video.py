"""``bpnet inference --input_type video``: a video file, a camera index or a stream URL → the
:class:`~bpnet_core.infer.predictor.Predictor` → the :class:`~bpnet_core.track.Tracker` → per-frame outputs.

Pipelined (three stages, two bounded queues of ``queue_size`` frames): a background thread reads frames (OpenCV
``VideoCapture``), keeps every ``stride_frames``-th one and preprocesses it (:meth:`Predictor.prepare_all`); the
calling thread runs the network (:meth:`Predictor.maps`); a second background thread decodes
(:meth:`Predictor.result`), tracks (the tracker gets the frame too, to measure the camera's motion), draws and
writes. The network runtimes and most of OpenCV release the GIL, so the stages overlap. ``pipelined=False`` runs
the same steps one after the other in the calling thread (the baseline of ``bpnet bench --only video``); both give
identical outputs. Outputs under ``results_dir``:

* ``detections.json``: TAO's layout with one ``images`` entry per processed frame (``frame_index``,
  ``timestamp_ms``, ``keypoints``, ``scores``, ``track_ids``) and a ``video`` block (source, fps, size, how it ended);
* ``annotated.avi`` (``dump_visualizations``): the processed frames with skeletons coloured by track id, at
  ``fps / stride_frames``;
* ``openpose_json/<name>_<frame:012d>_keypoints.json`` (``dump_openpose_json``): OpenPose's format, ``person_id`` =
  track id.

A stream that breaks, or Ctrl-C, stops the run cleanly: the frames processed so far are written (JSON complete, video
finalised) and the summary says where and why it stopped (Ctrl-C is then re-raised).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from bpnet_core.errors import BpnetError
from bpnet_core.fileio import make_dir, write_json_atomic
from bpnet_core.infer.predictor import make_predictor
from bpnet_core.track import Tracker
from bpnet_core.verbosity import progress_bar
from bpnet_core.viz.draw import draw_tracks

log = logging.getLogger(__name__)

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


@dataclass
class VideoSource:
    """An opened ``cv2.VideoCapture`` whose first frame decoded; ``kind`` is file, camera or url."""

    source: str
    kind: str
    cap: object
    first: np.ndarray
    fps: float
    frame_count: int  # 0 when unknown (cameras, streams)

    @property
    def name(self) -> str:
        return Path(self.source).stem if self.kind == "file" else re.sub(r"[^A-Za-z0-9]+", "_", self.source)[-40:]

    def release(self) -> None:
        with contextlib.suppress(Exception):  # a capture that fails to close changes nothing for the outputs
            self.cap.release()


def open_video(source: str | int | Path) -> VideoSource:
    """Open a video file, a camera index (``"0"``) or a URL and decode its first frame; a one-line
    :class:`BpnetError` naming the input when it cannot."""
    text = str(source).strip()
    if text.isdigit():
        kind, what, arg = "camera", f"camera {text}", int(text)
    elif _URL.match(text):
        kind, what, arg = "url", text, text
    else:
        kind, what, arg = "file", text, text
        path = Path(text)
        if not path.exists():
            raise BpnetError(f"{text}: video file not found")
        if not path.is_file():
            raise BpnetError(f"{text}: not a video file")
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise BpnetError(f"{text}: cannot read video file ({exc.strerror})") from None
    cap = cv2.VideoCapture(arg)
    if not cap.isOpened():
        cap.release()
        reason = {"camera": "does not open (no such camera, or it is busy)", "url": "cannot open the stream",
                  "file": "cannot open (not a video OpenCV can decode)"}[kind]  # fmt: skip
        raise BpnetError(f"{what}: {reason}")
    ok, frame = cap.read()
    if not ok or frame is None or frame.size == 0:
        cap.release()
        raise BpnetError(f"{what}: no decodable frames")
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if kind == "file" else 0
    return VideoSource(text, kind, cap, frame, fps if np.isfinite(fps) and fps > 0 else 0.0, max(count, 0))


def check_video_args(max_frames: int | None, stride_frames: int) -> None:
    if isinstance(stride_frames, bool) or not isinstance(stride_frames, int) or stride_frames < 1:
        raise BpnetError(f"--stride_frames must be an integer >= 1 (got {stride_frames!r})")
    if max_frames is not None and (isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 1):
        raise BpnetError(f"--max_frames must be an integer >= 1 (got {max_frames!r})")


_END = object()


def _frames(src: VideoSource, predictor, stride: int, max_frames: int | None, stop: threading.Event):
    """Read, keep every ``stride``-th frame, preprocess: yields ``(index, ms, image, prepared)``, then
    ``(_END, why it stopped)``."""
    index, kept, reason = 0, 0, "end of video"
    frame = src.first
    t_start = time.perf_counter()
    try:
        while not stop.is_set():
            if frame is None:
                ok, frame = src.cap.read()
                if not ok or frame is None:
                    if src.frame_count and index < src.frame_count:
                        reason = f"stream ended early: frame {index} of {src.frame_count} did not decode"
                    elif src.kind != "file":
                        reason = f"stream ended at frame {index}"
                    break
            if index % stride == 0:
                ms = 1000.0 * index / src.fps if src.fps else 1000.0 * (time.perf_counter() - t_start)
                yield index, ms, frame, predictor.prepare_all(frame)
                kept += 1
                if max_frames is not None and kept >= max_frames:
                    reason = f"--max_frames {max_frames} reached"
                    break
            index += 1
            frame = None
    except Exception as exc:  # noqa: BLE001 - reported to the consumer, which keeps the prefix
        reason = f"reading stopped at frame {index}: {exc}"
    yield _END, reason


def _reader(src: VideoSource, predictor, q: queue.Queue, stop: threading.Event, stride: int,
            max_frames: int | None) -> None:  # fmt: skip
    """Background thread: :func:`_frames` into the bounded queue ``q`` (gives up when ``stop`` is set)."""
    for item in _frames(src, predictor, stride, max_frames, stop):
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                break
            except queue.Full:
                continue
        if stop.is_set():
            return


class _Stage:
    """A worker thread applying ``fn`` to the items of a bounded queue, in order; its first error stops it and is
    re-raised by the producer (:meth:`put`, :meth:`close`)."""

    def __init__(self, fn, size: int, name: str):
        self.fn, self.q, self.error = fn, queue.Queue(maxsize=max(1, size)), None
        self.thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            item = self.q.get()
            if item is _END:
                return
            try:
                self.fn(*item)
            except BaseException as exc:  # noqa: BLE001 - handed to the producer
                self.error = exc
                return

    def put(self, item) -> None:
        while True:
            if self.error is not None:
                raise self.error
            try:
                self.q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """Let the worker finish the queued items, then stop it."""
        while self.thread.is_alive():
            try:
                self.q.put(_END, timeout=0.1)
                break
            except queue.Full:
                continue
        self.thread.join()


def _openpose_json(keypoints: np.ndarray, ids: list[int]) -> dict:
    return {"version": 1.3, "people": [{"person_id": [int(t)], "pose_keypoints_2d": [float(v) for v in kp.reshape(-1)]}
                                       for kp, t in zip(keypoints, ids)]}  # fmt: skip


def run_video_inference(model, source, results_dir: str | Path, spec=None, max_frames: int | None = None,
                        stride_frames: int = 1, dump_visualizations: bool = False, dump_openpose_json: bool = False,
                        progress: bool = True, queue_size: int = 8, pipelined: bool = True) -> dict:  # fmt: skip
    """Run pose estimation and tracking over a video (see the module docstring). ``model``: a model path, a runner or
    a Predictor; ``source``: a path, camera index, URL or an opened :class:`VideoSource`; ``spec``: inference spec
    (its ``tracking:`` block sets the tracker). Returns the summary (also ``inference_summary.json``)."""
    check_video_args(max_frames, stride_frames)
    post = None
    src = source if isinstance(source, VideoSource) else open_video(source)
    try:
        predictor = make_predictor(model, spec)
        results_dir = make_dir(results_dir)
        pose, spec = predictor.pose, predictor.spec
        params = spec.track_params()
        tracker = Tracker(params, pose.joint_names)
        op_dir = results_dir / "openpose_json"
        if dump_openpose_json:
            op_dir.mkdir(exist_ok=True)
        H, W = src.first.shape[:2]
        out_fps = (src.fps or 15.0) / stride_frames
        writer = None
        video_out = results_dir / "annotated.avi"
        if dump_visualizations:
            writer = cv2.VideoWriter(str(video_out), cv2.VideoWriter_fourcc(*"MJPG"), out_fps, (W, H))
            if not writer.isOpened():
                raise BpnetError(f"{video_out}: OpenCV cannot write MJPG video here")
        frames_out: list[dict] = []
        timings: list[dict] = []
        state = {"reason": "end of video", "interrupted": False}
        t0 = time.perf_counter()

        def network(index, image, prepared):
            # a file's frame is named "<file>#<index>" (runners that look up per-image data, e.g. rendered maps)
            t = time.perf_counter()
            heat, paf, ref = predictor.maps(image, f"{src.source}#{index}" if src.kind == "file" else None, prepared)
            return heat, paf, ref, (time.perf_counter() - t) * 1000

        def finish(index, ms, image, heat, paf, ref, network_ms):
            res = predictor.result(image, heat, paf, ref, network_ms)
            ids = tracker.update(res.keypoints, res.scores, index, image=image)
            kps = tracker.keypoints if len(res.keypoints) else res.keypoints
            timings.append(res.timings_ms)
            frames_out.append({"frame_index": int(index), "timestamp_ms": round(float(ms), 3),
                               "keypoints": [[[float(x), float(y)] for x, y, _ in kp] for kp in kps],
                               "scores": [float(s) for s in res.scores],
                               "track_ids": [int(t) for t in ids]})  # fmt: skip
            if writer is not None:
                writer.write(draw_tracks(image, kps, ids, pose))
            if dump_openpose_json:
                write_json_atomic(op_dir / f"{src.name}_{index:012d}_keypoints.json", _openpose_json(kps, ids))
            bar.update(1)

        total = None
        if src.frame_count:
            total = -(-src.frame_count // stride_frames)
            total = min(total, max_frames) if max_frames else total
        bar = progress_bar(total=total, desc="video", unit="frame", enabled=progress)
        stop = threading.Event()
        q: queue.Queue = queue.Queue(maxsize=max(1, queue_size))
        thread = None
        try:
            if pipelined:
                thread = threading.Thread(target=_reader, args=(src, predictor, q, stop, stride_frames, max_frames),
                                          name="bpnet-video-reader", daemon=True)  # fmt: skip
                thread.start()
                post = _Stage(finish, queue_size, "bpnet-video-decode")
                while True:
                    item = q.get()
                    if item[0] is _END:
                        state["reason"] = item[1]
                        break
                    index, ms, image, prepared = item
                    post.put((index, ms, image, *network(index, image, prepared)))
            else:  # serial: the same steps one after the other (the baseline of the throughput comparison)
                for item in _frames(src, predictor, stride_frames, max_frames, stop):
                    if item[0] is _END:
                        state["reason"] = item[1]
                        break
                    index, ms, image, prepared = item
                    finish(index, ms, image, *network(index, image, prepared))
        except KeyboardInterrupt:
            state["interrupted"] = True
            raise
        finally:
            stop.set()
            if post is not None:
                post.close()  # the frames already through the network are decoded and written
                if post.error is not None and not isinstance(post.error, KeyboardInterrupt):
                    state["reason"] = f"decoding stopped at frame {len(frames_out)}: {post.error}"
            if state["interrupted"] or (post is not None and isinstance(post.error, KeyboardInterrupt)):
                state["reason"] = f"interrupted (Ctrl-C) after {len(frames_out)} frames"
            if thread is not None:
                thread.join(timeout=5)
            bar.close()
            if writer is not None:
                writer.release()
            seconds = time.perf_counter() - t0
            complete = state["reason"] in ("end of video",) or state["reason"].startswith("--max_frames")
            if not complete:
                log.warning("%s: %s; kept the %d frames processed", src.source, state["reason"], len(frames_out))
            detections = {
                "categories": [{"supercategory": "person", "id": 1, "name": "person", **pose.to_json_dict()}],
                "inference_spec": spec.to_dict(),
                "model": predictor.meta.name,
                "video": {
                    "source": src.source,
                    "kind": src.kind,
                    "fps": src.fps,
                    "width": W,
                    "height": H,
                    "frame_count": src.frame_count,
                    "stride_frames": stride_frames,
                    "max_frames": max_frames,
                    "stopped": state["reason"],
                    "complete": complete,
                },  # fmt: skip
                "images": frames_out,
            }
            write_json_atomic(results_dir / "detections.json", detections)
            net = [t["network"] for t in timings]
            dec = [t["decode"] for t in timings]
            summary = {
                "frames": len(frames_out),
                "people": int(sum(len(f["scores"]) for f in frames_out)),
                "tracks": len({t for f in frames_out for t in f["track_ids"] if t >= 0}),
                "stopped": state["reason"],
                "complete": complete,
                "seconds": seconds,
                "frames_per_second": len(frames_out) / seconds if seconds > 0 else None,
                "network_ms_median": float(np.median(net)) if net else None,
                "decode_ms_median": float(np.median(dec)) if dec else None,
                "pipelined": pipelined,
                "annotated_video": str(video_out) if writer is not None else None,
                "results_dir": str(results_dir),
            }
            write_json_atomic(results_dir / "inference_summary.json", summary)
    finally:
        src.release()
    if post is not None and post.error is not None:
        raise post.error
    return summary
