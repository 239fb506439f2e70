"""Video inference end to end: ``bpnet synthetic_video`` → ``bpnet inference --input_type video`` with a stand-in
network (maps rendered from the clip's ground truth), the tracker's identity figures on it, and bad inputs."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from bpnet_core.cli import main
from bpnet_core.data.coco import pose_to_dataset
from bpnet_core.data.synthetic_video import load_video_ground_truth
from bpnet_core.infer.video import open_video, run_video_inference
from bpnet_core.runners import RenderedMapsSource
from bpnet_core.track import evaluate_mot

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "fixtures" / "coco_sample"
SAMPLE_JSON = SAMPLE / "person_keypoints_val2017_sample.json"


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    out = tmp_path_factory.mktemp("video")
    assert main(["synthetic_video", "-o", str(out), "--num_frames", "60", "--image_size", "192", "192"]) == 0
    return out / "clip.avi", out / "annotations.json"


@pytest.fixture
def rendered(clip, pose, monkeypatch):
    """``load_runner`` returns maps rendered from the clip's ground truth (a perfect network)."""
    runner = RenderedMapsSource(SAMPLE_JSON, SAMPLE, pose)
    runner.add_video(clip[1], clip[0])
    monkeypatch.setattr("bpnet_core.runners.load_runner", lambda *a, **k: runner)
    return runner


def test_synthetic_video_files(clip):
    video, ann = clip
    cap = cv2.VideoCapture(str(video))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 60
    ok, frame = cap.read()
    assert ok and frame.shape == (192, 192, 3)
    data = json.loads(ann.read_text())
    assert len(data["images"]) == 60 and {a["track_id"] for a in data["annotations"]} == {0, 1, 2, 3}
    assert all(len(a["keypoints"]) == 51 for a in data["annotations"])


def test_video_inference_end_to_end(clip, rendered, pose, tmp_path, capsys):
    res = tmp_path / "res"
    rc = main(
        [
            "inference",
            "--input_type",
            "video",
            "--input",
            str(clip[0]),
            "-m",
            "stand-in.onnx",
            "-r",
            str(res),
            "--dump_visualizations",
            "--dump_openpose_json",
            "--set",
            "tracking.min_hits=1",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    det = json.loads((res / "detections.json").read_text())
    frames = det["images"]
    assert [f["frame_index"] for f in frames] == list(range(60))
    assert frames[1]["timestamp_ms"] == pytest.approx(1000 / 15, abs=0.01)
    assert all(len(f["track_ids"]) == len(f["keypoints"]) == len(f["scores"]) for f in frames)
    assert det["video"]["complete"] and det["video"]["stopped"] == "end of video"
    cap = cv2.VideoCapture(str(res / "annotated.avi"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 60
    op = json.loads((res / "openpose_json" / "clip_000000000005_keypoints.json").read_text())
    assert sorted(p["person_id"][0] for p in op["people"]) == sorted(frames[5]["track_ids"])
    # identities against the ground truth: no switch on the rendered maps of the clip
    names, gt_frames = load_video_ground_truth(clip[1])
    gt, pred = [], []
    for (kp, ids), f in zip(gt_frames, frames):
        keep = [i for i in range(len(kp)) if (kp[i, :, 2] == 2).sum() >= 3]
        xy = np.array(f["keypoints"], np.float32).reshape(len(f["keypoints"]), pose.num_joints, 2)
        k3 = np.concatenate([xy, (np.abs(xy).sum(-1, keepdims=True) > 0).astype(np.float32)], -1)
        gt.append((kp[keep], [ids[i] for i in keep]))
        pred.append((pose_to_dataset(k3, names, pose), f["track_ids"]))
    m = evaluate_mot(gt, pred)
    assert m["id_switches"] == 0, m
    assert m["mota"] > 0.8 and m["idf1"] > 0.8, m


def test_stride_max_frames_and_serial(clip, rendered, tmp_path):
    from bpnet_core.infer import Predictor

    s = run_video_inference(Predictor(rendered), str(clip[0]), tmp_path / "a", stride_frames=3, max_frames=5,
                            progress=False)  # fmt: skip
    det = json.loads((tmp_path / "a" / "detections.json").read_text())
    assert [f["frame_index"] for f in det["images"]] == [0, 3, 6, 9, 12]
    assert s["complete"] and s["stopped"] == "--max_frames 5 reached"
    serial = run_video_inference(Predictor(rendered), str(clip[0]), tmp_path / "b", stride_frames=3, max_frames=5,
                                 progress=False, pipelined=False)  # fmt: skip
    det_b = json.loads((tmp_path / "b" / "detections.json").read_text())
    assert det_b["images"] == det["images"]
    assert not serial["pipelined"]


class FakeCapture:
    """A stand-in for ``cv2.VideoCapture``: ``frames`` frames, claims ``count``; ``opened`` False = a camera that
    does not open."""

    def __init__(self, frames=0, count=0, opened=True, fps=10.0):
        self.frames, self.count, self.opened, self.fps, self.i = frames, count, opened, fps, 0

    def isOpened(self):
        return self.opened

    def read(self):
        if self.i >= self.frames:
            return False, None
        self.i += 1
        return True, np.full((64, 96, 3), 40 * self.i % 255, np.uint8)

    def get(self, prop):
        return {cv2.CAP_PROP_FPS: self.fps, cv2.CAP_PROP_FRAME_COUNT: self.count}.get(prop, 0.0)

    def release(self):
        pass


def test_truncated_stream_keeps_the_prefix(rendered, tmp_path, monkeypatch):
    from bpnet_core.infer import Predictor

    bad = tmp_path / "broken.avi"
    bad.write_bytes(b"x")
    monkeypatch.setattr(cv2, "VideoCapture", lambda *a: FakeCapture(frames=7, count=20))
    s = run_video_inference(Predictor(rendered), str(bad), tmp_path / "r", progress=False)
    det = json.loads((tmp_path / "r" / "detections.json").read_text())
    assert len(det["images"]) == 7 and s["frames"] == 7
    assert not det["video"]["complete"] and "frame 7 of 20 did not decode" in det["video"]["stopped"]


def test_ctrl_c_keeps_a_valid_prefix(clip, rendered, tmp_path, capsys):
    calls = {"n": 0}
    real = rendered.predict_with_transforms

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return real(*a, **k)

    rendered.predict_with_transforms = flaky
    rc = main(["inference", "--input_type", "video", "--input", str(clip[0]), "-m", "x.onnx", "-r",
               str(tmp_path / "r"), "--dump_visualizations"])  # fmt: skip
    assert rc == 130
    det = json.loads((tmp_path / "r" / "detections.json").read_text())
    assert len(det["images"]) == 5 and det["video"]["stopped"].startswith("interrupted")
    assert int(cv2.VideoCapture(str(tmp_path / "r" / "annotated.avi")).get(cv2.CAP_PROP_FRAME_COUNT)) == 5


@pytest.mark.parametrize("case, expect", [
    ("missing", "video file not found"),
    ("empty", "cannot open"),
    ("stride", "--stride_frames must be an integer >= 1 (got 0)"),
    ("max_frames", "--max_frames must be an integer >= 1 (got 0)"),
    ("tracking_key", "unknown key 'tracking.max_ag' (did you mean 'max_age'?)"),
    ("camera", "camera 7: does not open"),
    ("no_frames", "no decodable frames"),
    ("url", "rtsp://127.0.0.1:9/x: cannot open the stream"),
])  # fmt: skip
def test_bad_video_inputs(case, expect, clip, tmp_path, monkeypatch, capsys):
    src = str(clip[0])
    extra = []
    if case == "missing":
        src = str(tmp_path / "nope.mp4")
    elif case == "empty":
        src = str(tmp_path / "empty.mp4")
        Path(src).write_bytes(b"not a video at all")
    elif case == "stride":
        extra = ["--stride_frames", "0"]
    elif case == "max_frames":
        extra = ["--max_frames", "0"]
    elif case == "tracking_key":
        extra = ["--set", "tracking.max_ag=3"]
    elif case == "camera":
        src = "7"
        monkeypatch.setattr(cv2, "VideoCapture", lambda *a: FakeCapture(opened=False))
    elif case == "no_frames":
        monkeypatch.setattr(cv2, "VideoCapture", lambda *a: FakeCapture(frames=0))
    elif case == "url":
        src = "rtsp://127.0.0.1:9/x"
        monkeypatch.setattr(cv2, "VideoCapture", lambda *a: FakeCapture(opened=False))
    if case == "tracking_key":  # the spec is read from the model's card: give it a model
        pose = __import__("bpnet_core.skeleton").skeleton.PoseConfig.from_json(
            ROOT / "model_pose_config" / "bpnet_18joints.json"
        )
        runner = RenderedMapsSource(SAMPLE_JSON, SAMPLE, pose)
        monkeypatch.setattr("bpnet_core.runners.load_runner", lambda *a, **k: runner)
    res = tmp_path / "res"
    rc = main(["inference", "--input_type", "video", "--input", src, "-m", "x.onnx", "-r", str(res)] + extra)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and expect in err[0], err
    assert not res.exists()  # nothing partial left behind


def test_open_video_names_the_camera(monkeypatch):
    monkeypatch.setattr(cv2, "VideoCapture", lambda *a: FakeCapture(frames=3))
    src = open_video("0")
    assert src.kind == "camera" and src.first.shape == (64, 96, 3) and src.frame_count == 0
