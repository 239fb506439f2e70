"""Tracking: OKS, the Tracker (association, crossing, re-identification, max_age, min_hits), camera-motion
compensation (from the joints and from the frames), One Euro smoothing, the MOT evaluator, the ``tracking:`` spec
block, and zero identity switches on the standard synthetic clip."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from bpnet_core.config.schema import InferSpec
from bpnet_core.data.coco import COCO_KEYPOINTS
from bpnet_core.errors import BpnetError
from bpnet_core.track import (
    FlowCameraEstimator,
    OneEuroFilter,
    Tracker,
    TrackParams,
    estimate_camera_motion,
    evaluate_mot,
    oks,
    sigmas_for,
)


def body(cx: float, cy: float, h: float = 80.0, rng=None, noise: float = 0.0) -> np.ndarray:
    """A 17-joint COCO stick figure centred at (cx, cy), height h."""
    rel = np.array([[0, -0.45], [0.03, -0.47], [-0.03, -0.47], [0.06, -0.45], [-0.06, -0.45], [0.12, -0.3],
                    [-0.12, -0.3], [0.16, -0.1], [-0.16, -0.1], [0.17, 0.08], [-0.17, 0.08], [0.08, 0.05],
                    [-0.08, 0.05], [0.09, 0.28], [-0.09, 0.28], [0.09, 0.5], [-0.09, 0.5]])  # fmt: skip
    xy = rel * h + [cx, cy]
    if rng is not None and noise:
        xy = xy + rng.normal(0, noise, xy.shape)
    return np.concatenate([xy, np.ones((17, 1))], 1)


def run(tracker, frames):
    return [tracker.update(np.array(f).reshape(-1, 17, 3), None, i) for i, f in enumerate(frames)]


# ---------------------------------------------------------------------------------------------------- OKS
def test_oks_same_pose_is_one_and_far_pose_is_zero():
    sig = sigmas_for(COCO_KEYPOINTS)
    a = body(50, 50)
    assert oks(a, a, sig) == pytest.approx(1.0)
    assert oks(a, body(300, 50), sig) < 1e-6
    assert 0.3 < oks(a, body(55, 50), sig) < 1.0
    b = a.copy()
    b[:, 2] = 0
    assert oks(a, b, sig) == 0.0  # no common joint


def test_sigmas_by_name_with_a_documented_default():
    sig = sigmas_for(["nose", "neck", "left_hip", "tail"], default_sigma=0.05)
    assert sig.tolist() == pytest.approx([0.026, 0.05, 0.107, 0.05])
    assert TrackParams().default_sigma == pytest.approx(0.079)


# ---------------------------------------------------------------------------------------------------- Tracker
def test_min_hits_then_stable_ids():
    ids = run(Tracker(TrackParams(min_hits=2)), [[body(50 + 2 * t, 60), body(200 - 2 * t, 60)] for t in range(5)])
    assert ids[0] == [-1, -1]
    assert all(i == [0, 1] for i in ids[1:])
    assert run(Tracker(TrackParams(min_hits=1)), [[body(50, 60)]]) == [[0]]


def test_crossing_keeps_identities():
    """Two people walk towards each other on the same line and pass through each other; detections come in a
    shuffled order; constant-velocity prediction keeps each on its side."""
    rng = np.random.default_rng(0)
    frames, truth = [], []
    for t in range(40):
        a, b = body(40 + 4 * t, 100, rng=rng, noise=0.5), body(200 - 4 * t, 104, rng=rng, noise=0.5)
        order = rng.permutation(2)
        frames.append([(a, b)[k] for k in order])
        truth.append(list(order))
    ids = run(Tracker(TrackParams(min_hits=1)), frames)
    first = {truth[0][k]: ids[0][k] for k in range(2)}
    for t in range(40):
        assert {truth[t][k]: ids[t][k] for k in range(2)} == first, f"identity changed at frame {t}"


def test_reidentified_after_a_short_occlusion():
    """A walking person disappears for 6 frames and comes back half visible (upper body only) further along its
    path: same id; a new person appearing far away gets a new id."""
    tr = Tracker(TrackParams(min_hits=1, max_age=10))
    for t in range(10):
        assert tr.update(body(40 + 3 * t, 100)[None], None, t) == [0]
    for t in range(10, 16):
        assert tr.update(np.zeros((0, 17, 3)), None, t) == []
    back = body(40 + 3 * 16, 100)
    back[11:, 2] = 0  # hips and legs hidden
    assert tr.update(np.stack([back, body(250, 40)]), None, 16) == [0, 1]


def test_track_forgotten_after_max_age():
    tr = Tracker(TrackParams(min_hits=1, max_age=3))
    tr.update(body(50, 50)[None], None, 0)
    for t in range(1, 6):
        tr.update(np.zeros((0, 17, 3)), None, t)
    assert tr.update(body(50, 50)[None], None, 6) == [1]


def test_disabled_tracker_and_bad_calls():
    assert Tracker(TrackParams(enabled=False)).update(body(1, 1)[None], None, 0) == [-1]
    tr = Tracker()
    tr.update(body(1, 1)[None], None, 5)
    with pytest.raises(BpnetError, match="must increase"):
        tr.update(body(1, 1)[None], None, 5)
    with pytest.raises(BpnetError, match="people, joints, 3"):
        tr.update(np.zeros((2, 17)), None, 6)


def test_one_euro_reduces_jitter_on_a_noisy_track():
    """A person walking at 1 px/frame, joints jittered by 2 px: the smoothed track's frame-to-frame jitter (mean
    |second difference|) falls by more than half and its error to the truth does not grow."""
    rng = np.random.default_rng(1)
    truth = [body(40 + 1.0 * t, 100) for t in range(120)]
    noisy = [b + np.c_[rng.normal(0, 2.0, (17, 2)), np.zeros(17)] for b in truth]
    tr = Tracker(TrackParams(min_hits=1, smoothing=True))
    smooth = []
    for t, kp in enumerate(noisy):
        tr.update(kp[None], None, t)
        smooth.append(tr.keypoints[0, :, :2].copy())
    raw, smooth, true = np.array(noisy)[10:, :, :2], np.array(smooth)[10:], np.array(truth)[10:, :, :2]

    def jitter(x):
        return np.abs(np.diff(x, 2, axis=0)).mean()

    assert jitter(smooth) < 0.5 * jitter(raw)
    assert np.abs(smooth - true).mean() < np.abs(raw - true).mean()
    assert Tracker(TrackParams(min_hits=1)).update(noisy[0][None], None, 0) == [0]  # off by default
    # the filter on its own: a still point
    f = OneEuroFilter(min_cutoff=0.05, beta=0.0)
    xs = [f(np.array([[10.0 + rng.normal(0, 1), 5.0]]), t)[0, 0] for t in range(200)]
    assert np.std(xs[50:]) < 0.5


# ---------------------------------------------------------------------------------------------------- camera motion
W, H = 320, 240  # the picture of the camera tests
PHOTO = Path(__file__).resolve().parents[1] / "fixtures" / "coco_sample" / "000000196141.jpg"
WORLD = [(40, 120, 70), (110, 110, 80), (180, 125, 75), (250, 115, 80), (320, 120, 70)]  # people standing: x, y, h


def camera(t: int, frames: int = 60) -> np.ndarray:
    """World → picture (2×3) at frame ``t``: still for 5 frames, then zoom 1 → 1.6 → 1 while the view's centre pans
    right, back left past the start and back (up to ~20 px per frame)."""
    u = max(t - 5, 0) / (frames - 6)
    z = 1 + 0.6 * np.sin(np.pi * u)
    cx, cy = 180 + 110 * np.sin(2 * np.pi * u), 120 + 20 * np.sin(np.pi * u)
    return np.array([[z, 0, W / 2 - z * cx], [0, z, H / 2 - z * cy]])


def pan_zoom_people(frames: int = 60, seed: int = 3) -> list:
    """Per frame ``(keypoints (P, 17, 3), ids)``: every still person through the frame's camera (plus 0.5 px of
    joint noise); joints outside the picture are missing, people with fewer than 3 joints inside are gone."""
    rng = np.random.default_rng(seed)
    out = []
    for t in range(frames):
        M = camera(t, frames)
        kps, ids = [], []
        for i, (x, y, h) in enumerate(WORLD):
            k = body(x, y, h)
            k[:, :2] = k[:, :2] @ M[:, :2].T + M[:, 2] + rng.normal(0, 0.5, (17, 2))
            inside = (k[:, 0] >= 0) & (k[:, 0] < W) & (k[:, 1] >= 0) & (k[:, 1] < H)
            k[~inside] = 0
            if inside.sum() >= 3:
                kps.append(k)
                ids.append(i)
        out.append((np.array(kps).reshape(-1, 17, 3), ids))
    return out


def track_clip(clip, params: dict, images=None) -> dict:
    tr = Tracker(TrackParams(**params))
    pred = [(k, tr.update(k, None, t, (H, W), None if images is None else images[t])) for t, (k, _) in enumerate(clip)]
    return evaluate_mot(clip, pred)


def test_pure_camera_pan_zoom_pose_only():
    """Five people stand still while the camera pans and zooms (every pose through the same similarity); people
    leave the picture at its edges and come back. The motion is large: a person's pose at the previous frame often
    has OKS below the association threshold with their pose now. With the camera's motion estimated from the joints
    of the people in view (no image), no identity switch; without it, people come back away from their tracks and
    get new ids."""
    clip = pan_zoom_people()
    sig = sigmas_for(COCO_KEYPOINTS)
    gated_out = 0
    for (k0, i0), (k1, i1) in zip(clip, clip[1:]):
        for a, g in enumerate(i0):
            if g in i1:
                gated_out += oks(k0[a], k1[i1.index(g)], sig) < TrackParams().oks_threshold
    assert gated_out >= 10
    assert [len(i) for _, i in clip].count(3) > 20  # two people out of the picture for a while
    m = track_clip(clip, {"camera_motion": "pose"})
    assert m["id_switches"] == 0 and m["predicted_tracks"] == 5 and m["mota"] > 0.95, m
    off = track_clip(clip, {"camera_motion": "still"})
    assert off["id_switches"] >= 1 and off["predicted_tracks"] > 5, off


def test_camera_motion_from_the_frames():
    """The same camera over a photo (a COCO sample image as the world): the optical-flow estimate (people masked
    out) recovers each frame-to-frame similarity within 0.5 px over the picture, and the tracker given the frames
    makes no switch."""
    world = cv2.resize(cv2.imread(str(PHOTO)), (420, 300), interpolation=cv2.INTER_AREA)
    frames = [cv2.warpAffine(world, camera(t), (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
              for t in range(60)]  # fmt: skip
    clip = pan_zoom_people()
    est = FlowCameraEstimator()
    corners = np.array([[0, 0], [W, 0], [0, H], [W, H]], np.float64)
    assert est(frames[0], clip[0][0]) is None  # no previous frame
    worst = 0.0
    for t in range(1, 60):
        M = est(frames[t], clip[t][0])
        A, B = np.vstack([camera(t), [0, 0, 1]]), np.vstack([camera(t - 1), [0, 0, 1]])
        true = (A @ np.linalg.inv(B))[:2]
        assert M is not None, t
        worst = max(worst, np.abs(corners @ M[:, :2].T + M[:, 2] - (corners @ true[:, :2].T + true[:, 2])).max())
    assert worst < 0.5, worst
    assert FlowCameraEstimator()(np.full((H, W, 3), 128, np.uint8)) is None
    m = track_clip(clip, {"camera_motion": "image"}, frames)
    assert m["id_switches"] == 0 and m["predicted_tracks"] == 5 and m["mota"] > 0.95, m


def test_retrack_saved_detections():
    """``retrack`` re-runs the tracker over a ``detections.json`` with other settings (no frames): the same ids as a
    tracker fed directly."""
    from bpnet_core.track import retrack

    clip = pan_zoom_people()
    det = {"categories": [{"keypoints": COCO_KEYPOINTS}], "video": {"width": W, "height": H},
           "images": [{"frame_index": t, "keypoints": k[:, :, :2].tolist(), "track_ids": [-1] * len(k)}
                      for t, (k, _) in enumerate(clip)]}  # fmt: skip
    for mode in ("pose", "still"):
        ids = [f["track_ids"] for f in retrack(det, {"camera_motion": mode})["images"]]
        tr = Tracker(TrackParams(camera_motion=mode), COCO_KEYPOINTS)
        assert ids == [tr.update(k, None, t, (H, W)) for t, (k, _) in enumerate(clip)]
    assert all(f["track_ids"] == [-1] * len(f["keypoints"]) for f in det["images"])  # the input is left as it was


def test_pose_camera_estimate_needs_agreeing_people():
    """Joints moved by one similarity give it back; one person alone gives no estimate; when people disagree (two
    move one way, two another, one more a third way) no similarity has most people's support."""
    M = np.array([[1.02, -0.01, 4.0], [0.01, 1.02, -3.0]])
    people = [body(x, 100)[:, :2] for x in (40, 120, 200, 280)]
    pairs = [(b, b @ M[:, :2].T + M[:, 2]) for b in people]
    est, info = estimate_camera_motion(pairs, [50.0] * 4, 0.1, 2)
    assert np.allclose(est, M, atol=1e-6) and info["supporters"] == 4
    assert estimate_camera_motion(pairs[:1], [50.0], 0.1, 2)[0] is None
    moves = [(30, 0), (30, 0), (0, 30), (0, 30)]
    apart = [(b, b + d) for b, d in zip(people, moves)] + [(people[0] + 200, people[0] + 200 + [-30, -30])]
    assert estimate_camera_motion(apart, [50.0] * 5, 0.1, 2)[0] is None


# ---------------------------------------------------------------------------------------------------- params / spec
def test_params_are_strict():
    with pytest.raises(BpnetError, match=r"unknown key 'max_ag' \(did you mean 'max_age'\?\)"):
        TrackParams.from_dict({"max_ag": 3})
    with pytest.raises(BpnetError, match="min_hits=0 must be an integer >= 1"):
        TrackParams(min_hits=0)
    with pytest.raises(BpnetError, match=r"x.yaml: unknown key 'tracking.min_hit' \(did you mean 'min_hits'\?\)"):
        InferSpec.from_dict({"tracking": {"min_hit": 1}}, "x.yaml")
    with pytest.raises(BpnetError, match=r"tracking.oks_threshold must be in \[0, 1\)"):
        InferSpec.from_dict({"tracking": {"oks_threshold": 1.5}}, "x.yaml")
    assert InferSpec.from_dict({"tracking": {"smoothing": True}}).track_params().smoothing is True
    with pytest.raises(BpnetError, match=r"tracking.camera_motion must be one of 'image', 'pose', 'still'"):
        InferSpec.from_dict({"tracking": {"camera_motion": "flow"}}, "x.yaml")
    assert InferSpec.from_dict({"tracking": {"camera_motion": "pose"}}).track_params().camera_motion == "pose"
    with pytest.raises(BpnetError, match=r"tracking.camera_motion must be a string: YAML reads unquoted on/off"):
        InferSpec.from_dict(yaml.safe_load("tracking: {camera_motion: off}"), "x.yaml")  # YAML 1.1: off = false


# ---------------------------------------------------------------------------------------------------- MOT metrics
def test_mot_metrics_on_hand_made_cases():
    a, b = body(50, 50), body(200, 50)
    two = np.stack([a, b])
    perfect = evaluate_mot([(two, [1, 2])] * 4, [(two, [7, 8])] * 4)
    assert perfect["id_switches"] == 0 and perfect["mota"] == 1.0 and perfect["idf1"] == 1.0
    # the predicted ids swap at frame 2: each ground-truth track switches once
    swap = evaluate_mot([(two, [1, 2])] * 4, [(two, [7, 8])] * 2 + [(two, [8, 7])] * 2)
    assert swap["id_switches"] == 2 and swap["mota"] == pytest.approx(1 - 2 / 8) and swap["idf1"] == pytest.approx(0.5)
    # person 1 missed in frame 1 (id -1 counts as no prediction), then found again with the same id
    gap = evaluate_mot([(two, [1, 2])] * 3, [(two, [7, 8]), (two, [-1, 8]), (two, [7, 8])])
    assert (gap["misses"], gap["fragmentations"], gap["id_switches"]) == (1, 1, 0)
    # a prediction far from everybody is a false positive
    fp = evaluate_mot([(a[None], [1])], [(np.stack([a, body(400, 400)]), [3, 4])])
    assert (fp["matches"], fp["false_positives"]) == (1, 1)
    # person 1 leaves the picture for a frame and comes back with a new id: a switch after absence; person 2's
    # swap in view is not
    away = evaluate_mot([(two, [1, 2]), (b[None], [2]), (two, [1, 2]), (two, [1, 2])],
                        [(two, [7, 8]), (b[None], [8]), (two, [9, 8]), (two, [9, 5])])  # fmt: skip
    assert (away["id_switches"], away["id_switches_after_absence"]) == (2, 1)


# ---------------------------------------------------------------------------------------------------- standard clip
@pytest.fixture(scope="module")
def standard_clip(tmp_path_factory):
    from bpnet_core.data.synthetic_video import generate_synthetic_video, load_video_ground_truth

    s = generate_synthetic_video(tmp_path_factory.mktemp("clip"))
    return load_video_ground_truth(s["annotations"])


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.slow  # renders the 90-frame standard clip
def test_zero_identity_switches_on_the_standard_clip(standard_clip, stride):
    """Ground-truth poses (visible joints only, people with >= 3 of them) of the standard clip: crossing, passing
    behind the pole and behind each other, entering and leaving; 0 identity switches, one predicted track per
    person."""
    names, frames = standard_clip
    tr = Tracker(TrackParams(), names)
    gt, pred = [], []
    for f, (kp, ids) in enumerate(frames):
        if f % stride:
            continue
        kp = kp.copy()
        kp[kp[:, :, 2] < 2] = 0
        keep = [i for i in range(len(kp)) if (kp[i, :, 2] > 0).sum() >= 3]
        det = kp[keep]
        gt.append((det, [ids[i] for i in keep]))
        pred.append((det, tr.update(det, None, f)))
    m = evaluate_mot(gt, pred)
    assert m["id_switches"] == 0 and m["fragmentations"] == 0
    assert m["gt_tracks"] == m["predicted_tracks"] == 4
    assert m["idf1"] > 0.97 and m["mota"] > 0.95
