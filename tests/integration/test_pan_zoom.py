"""The pan/zoom clip of a real photo (``bpnet synthetic_video --from_image``): geometry, files, bad inputs, and
video inference on it (pipelined = serial; identities with a perfect stand-in and with a real network)."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from bpnet_core.cli import main
from bpnet_core.data.pan_zoom import camera_matrix, generate_pan_zoom_video
from bpnet_core.infer.video import run_video_inference
from bpnet_core.runners import RenderedMapsSource
from bpnet_core.track import evaluate_video_tracking

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "fixtures" / "coco_sample"
SAMPLE_JSON = SAMPLE / "person_keypoints_val2017_sample.json"
PHOTO = SAMPLE / "000000197388.jpg"  # five people, 13 to 16 labelled joints each


@pytest.fixture(scope="module")
def real_clip(tmp_path_factory):
    out = tmp_path_factory.mktemp("panzoom")
    assert main(["synthetic_video", "-o", str(out), "--from_image", str(PHOTO), "--annotations", str(SAMPLE_JSON),
                 "--num_frames", "40"]) == 0  # fmt: skip
    return out / "clip.avi", out / "annotations.json"


def test_dots_land_where_the_ground_truth_says(tmp_path):
    """Geometry pinning: white dots on a dark photo, labelled as a person's joints, are found in every frame at
    the ground truth's coordinates (within 1.5 px, after MJPG)."""
    H, W = 240, 360
    photo = np.full((H, W, 3), 20, np.uint8)
    pts = [(60.0, 50.0), (300.0, 60.0), (180.0, 120.0), (90.0, 200.0), (280.0, 190.0)]
    for x, y in pts:
        cv2.circle(photo, (int(x), int(y)), 2, (255, 255, 255), -1)
    cv2.imwrite(str(tmp_path / "dots.png"), photo)
    kp = [0.0] * 51
    for j, (x, y) in enumerate(pts):
        kp[3 * j : 3 * j + 3] = [x, y, 2]
    coco = {"images": [{"id": 5, "file_name": "dots.png", "height": H, "width": W}],
            "annotations": [{"id": 77, "image_id": 5, "category_id": 1, "iscrowd": 0, "num_keypoints": 5,
                             "keypoints": kp, "bbox": [50, 40, 260, 170], "area": 1000.0}],
            "categories": [json.loads(SAMPLE_JSON.read_text())["categories"][0]]}  # fmt: skip
    (tmp_path / "dots.json").write_text(json.dumps(coco))
    s = generate_pan_zoom_video(tmp_path / "clip", tmp_path / "dots.png", tmp_path / "dots.json", num_frames=12,
                                max_zoom=2.0)  # fmt: skip
    gt = json.loads(Path(s["annotations"]).read_text())
    assert {a["track_id"] for a in gt["annotations"]} == {77}
    cap = cv2.VideoCapture(s["video"])
    by_frame = {a["image_id"]: np.array(a["keypoints"]).reshape(-1, 3) for a in gt["annotations"]}
    checked = 0
    for im in gt["images"]:
        ok, frame = cap.read()
        assert ok
        g = frame.max(-1).astype(np.float64)
        for x, y, v in by_frame[im["id"]][:5]:
            if v == 0 or not (4 <= x < W - 4 and 4 <= y < H - 4):
                continue
            win = g[int(y) - 4 : int(y) + 5, int(x) - 4 : int(x) + 5]
            w = np.clip(win - 60, 0, None)
            yy, xx = np.mgrid[int(y) - 4 : int(y) + 5, int(x) - 4 : int(x) + 5]
            cy, cx = (w * yy).sum() / w.sum(), (w * xx).sum() / w.sum()
            assert abs(cx - x) < 1.5 and abs(cy - y) < 1.5, (im["frame_index"], x, y, cx, cy)
            checked += 1
    assert checked > 30
    # the first and last frames show the whole photo; mid-clip is zoomed 2x
    assert np.allclose(camera_matrix(0.0, (H, W), (H, W), 2.0), [[1, 0, 0], [0, 1, 0]])
    assert camera_matrix(0.5, (H, W), (H, W), 2.0)[0, 0] == pytest.approx(2.0)


def test_real_clip_files(real_clip):
    video, ann = real_clip
    cap = cv2.VideoCapture(str(video))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 40
    ok, frame = cap.read()
    assert ok and frame.shape == (392, 640, 3)
    data = json.loads(ann.read_text())
    src = json.loads(SAMPLE_JSON.read_text())
    ids = {a["id"] for a in src["annotations"] if a["image_id"] == 197388 and a["num_keypoints"] > 0}
    assert {a["track_id"] for a in data["annotations"]} == ids and len(ids) == 5
    first = {a["track_id"]: a["keypoints"] for a in data["annotations"] if a["image_id"] == 1}
    for a in src["annotations"]:
        if a["id"] in first:  # frame 0 is the photo itself
            assert np.allclose(first[a["id"]], a["keypoints"], atol=0.01)


@pytest.mark.parametrize("extra, expect", [
    (["--from_image", "nope.jpg", "--annotations", str(SAMPLE_JSON)], "nope.jpg: image not found"),
    (["--from_image", str(PHOTO)], "--from_image and --annotations go together"),
    (["--from_image", str(ROOT / "README.md"), "--annotations", str(SAMPLE_JSON)], "README.md: not an image"),
    (["--from_image", str(PHOTO), "--annotations", str(SAMPLE_JSON), "--max_zoom", "0.5"], "max_zoom must be in"),
    (["--from_image", str(PHOTO), "--annotations", str(ROOT / "pyproject.toml")], "pyproject.toml"),
])  # fmt: skip
def test_bad_pan_zoom_inputs(extra, expect, tmp_path, capsys):
    rc = main(["synthetic_video", "-o", str(tmp_path / "o")] + extra)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and expect in err[0], err


def test_photo_missing_from_the_annotations(tmp_path, capsys):
    other = tmp_path / "other.jpg"
    other.write_bytes(PHOTO.read_bytes())
    rc = main(["synthetic_video", "-o", str(tmp_path / "o"), "--from_image", str(other), "--annotations",
               str(SAMPLE_JSON)])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "no images entry with file_name 'other.jpg'" in err[0], err


@pytest.mark.slow  # runs the clip twice
def test_pipelined_equals_serial_and_no_switch_in_view(real_clip, pose, tmp_path):
    """The perfect stand-in on the real clip: pipelined and serial runs write the same detections (the tracker's
    camera motion from the frames included); no identity switch, not even for the people who leave the picture while
    the camera zooms in and come back."""
    from bpnet_core.infer import Predictor

    runner = RenderedMapsSource(SAMPLE_JSON, SAMPLE, pose)
    runner.add_video(real_clip[1], real_clip[0])
    out = {}
    for mode in (True, False):
        s = run_video_inference(Predictor(runner), str(real_clip[0]), tmp_path / str(mode), progress=False,
                                pipelined=mode, dump_visualizations=True)  # fmt: skip
        assert s["frames"] == 40 and s["pipelined"] is mode
        out[mode] = json.loads((tmp_path / str(mode) / "detections.json").read_text())["images"]
    assert out[True] == out[False]
    m = evaluate_video_tracking(tmp_path / "True" / "detections.json", real_clip[1])
    assert m["gt_tracks"] == 5 and m["mota"] > 0.65 and m["idf1"] > 0.65, m
    # without camera-motion compensation (tracking.camera_motion: still) 1 switch here (before it: 2), of a person
    # the decoder loses for 17 frames while the camera zooms, who is then far from where the tracker expects him
    assert m["id_switches"] == 0, m


@pytest.mark.slow
def test_real_network_tracks_the_real_clip(real_clip, tmp_path):
    """human-pose-estimation-0001 (OpenVINO) on the 40-frame pan/zoom clip: no identity switch with the camera's
    motion measured on the frames (camera_motion: image, the default; with "still": 1 switch, before the
    compensation: 2, of people lost by the detector for several frames while the camera zooms, then re-acquired away
    from the motion model's guess)."""
    from bpnet_core.tutorial import real_networks

    model = real_networks(tmp_path, ["human-pose-estimation-0001"])["human-pose-estimation-0001"]
    run_video_inference(model, str(real_clip[0]), tmp_path / "r", progress=False)
    m = evaluate_video_tracking(tmp_path / "r" / "detections.json", real_clip[1])
    assert m["id_switches"] == 0 and m["gt_tracks"] == 5, m
    assert m["mota"] > 0.7 and m["idf1"] > 0.7, m
