"""Decoder: geometry pinning, peak finding, line integrals, grouping, input checks, debug output (synthetic maps)."""

import subprocess
import sys

import numpy as np
import pytest

from bpnet_core.data.targets import render_heatmaps, render_labels
from bpnet_core.decode import (
    ACCEPTED,
    REJECTED,
    UNMATCHED,
    DecodeParams,
    Person,
    decode,
    decode_debug,
    find_peaks,
    validate_maps,
)  # fmt: skip
from bpnet_core.decode.paf_score import match_greedy, score_limb, score_pairs, valid_pairs
from bpnet_core.errors import BpnetError

# a standing person facing the camera, in units of body height (x centred, y down)
CANONICAL = {
    "nose": (0.0, 0.06), "neck": (0.0, 0.17), "right_shoulder": (-0.11, 0.18), "right_elbow": (-0.16, 0.33),
    "right_wrist": (-0.18, 0.46), "left_shoulder": (0.11, 0.18), "left_elbow": (0.16, 0.33),
    "left_wrist": (0.18, 0.46), "right_hip": (-0.07, 0.5), "right_knee": (-0.08, 0.72),
    "right_ankle": (-0.08, 0.95), "left_hip": (0.07, 0.5), "left_knee": (0.08, 0.72), "left_ankle": (0.08, 0.95),
    "right_eye": (-0.025, 0.04), "left_eye": (0.025, 0.04), "right_ear": (-0.055, 0.05), "left_ear": (0.055, 0.05),
}  # fmt: skip


def make_person(pose, cx, top, height, rng=None, drop=()):
    kp = np.zeros((pose.num_joints, 3), np.float32)
    for j, name in enumerate(pose.joint_names):
        if name in drop:
            continue
        x, y = CANONICAL[name]
        if rng is not None:
            x, y = x + rng.uniform(-0.02, 0.02), y + rng.uniform(-0.01, 0.01)
        kp[j] = (cx + x * height, top + y * height, 2)
    return kp


def crowd(pose, rows, cols, cell_h=150, cell_w=110, seed=0, drop_leaves=False):
    """People on a grid (no overlap), random size/jitter; optionally some wrists/ankles/ears missing."""
    rng = np.random.default_rng(seed)
    leaves = ["right_wrist", "left_wrist", "right_ankle", "left_ankle", "right_ear", "left_ear"]
    people = []
    for r in range(rows):
        for c in range(cols):
            height = rng.uniform(0.7, 0.9) * cell_h
            drop = [n for n in leaves if drop_leaves and rng.random() < 0.3]
            people.append(
                make_person(
                    pose,
                    c * cell_w + cell_w / 2 + rng.uniform(-5, 5),
                    r * cell_h + rng.uniform(4, 10),
                    height,
                    rng,
                    drop=drop,
                )
            )
    shape = (rows * cell_h // 8 * 8 + 8, cols * cell_w // 8 * 8 + 8)
    return np.stack(people), shape


def match_people(gt, people):
    """For each GT person, the decoded person with the closest mean joint position (over GT joints)."""
    out = []
    for g in gt:
        vis = g[:, 2] > 0
        d = [np.linalg.norm(p.keypoints[vis, :2] - g[vis, :2], axis=1).mean() for p in people]
        out.append(people[int(np.argmin(d))])
    return out


# ----------------------------------------------------------------------------------------------- import boundary
def test_decode_does_not_import_tensorflow():
    code = "import sys, bpnet_core.decode, bpnet_core.decode.group; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ----------------------------------------------------------------------------------------------- geometry pinning
@pytest.mark.parametrize("stride", [4, 8])
@pytest.mark.parametrize("upsampling,subpixel,tol", [
    ("stride", False, 1.0),  # TAO: upsampled pixel = input pixel; 0.5 px quantisation
    ("stride", True, 0.5),
    (2, True, 1.0),
    (1, True, 1.0),  # no upsampling: the log-parabola fit recovers the sub-cell position
])  # fmt: skip
def test_single_keypoint_decodes_back_to_its_pixel(pose, stride, upsampling, subpixel, tol):
    rng = np.random.default_rng(stride)
    f = stride if upsampling == "stride" else upsampling
    params = DecodeParams(upsampling_factor=f, subpixel=subpixel)
    grid = (96 // stride, 128 // stride)
    for _ in range(6):
        x, y = rng.uniform(20, 100), rng.uniform(20, 70)
        kp = np.zeros((1, pose.num_joints, 3), np.float32)
        kp[0, pose.joint_index("left_wrist")] = (x, y, 2)
        heat = render_heatmaps(kp, pose, grid, stride, sigma=7.0)
        peaks = find_peaks(heat, params, stride)
        assert len(peaks) == 1 and peaks.joint[0] == pose.joint_index("left_wrist")
        assert np.abs(peaks.xy[0] - (x, y)).max() <= tol, (x, y, peaks.xy[0])


def test_without_upsampling_or_subpixel_peaks_sit_on_cell_centres(pose):
    stride = 8
    kp = np.zeros((1, pose.num_joints, 3), np.float32)
    kp[0, 0] = (43.0, 29.0, 2)
    heat = render_heatmaps(kp, pose, (12, 12), stride, sigma=7.0)
    peaks = find_peaks(heat, DecodeParams(upsampling_factor=1), stride)
    assert len(peaks) == 1
    np.testing.assert_allclose(peaks.xy[0], (5 * 8 + 3.5, 3 * 8 + 3.5))  # the nearest cell centre


@pytest.mark.parametrize("stride", [4, 8])
@pytest.mark.parametrize("upsampling", [1, 8])
def test_whole_person_round_trip_in_input_pixels(pose, stride, upsampling):
    kp = make_person(pose, 64.3, 10.6, 100.0)[None]
    heat, paf = render_labels(kp, pose, (128, 128), stride, 7.0)
    people = decode(heat, paf, pose, DecodeParams(upsampling_factor=upsampling, subpixel=True), stride=stride)
    assert len(people) == 1
    err = np.abs(people[0].keypoints[:, :2] - kp[0, :, :2]).max()
    assert err <= 1.0, err


# ----------------------------------------------------------------------------------------------- peaks
def noisy_crowd_maps(pose, seed, noise=0.02, blur=0.0):
    import cv2

    kp, shape = crowd(pose, 2, 4, seed=seed)
    heat, paf = render_labels(kp, pose, shape, 8, 7.0)
    rng = np.random.default_rng(seed)
    heat = heat + rng.normal(0, noise, heat.shape).astype(np.float32)
    if blur:
        heat = cv2.GaussianBlur(heat, (0, 0), blur)
    return heat, paf


@pytest.mark.parametrize("params", [
    DecodeParams(),
    DecodeParams(subpixel=True),
    DecodeParams(upsampling_factor=4, nms_window=5),
    DecodeParams(upsampling_factor=2, smooth_sigma=0.0),
    DecodeParams(upsampling_factor=1),
    DecodeParams(heatmap_threshold=0.3, smooth_sigma=1.5),
])  # fmt: skip
@pytest.mark.parametrize("noise,blur", [(0.0, 0.0), (0.03, 0.0), (0.02, 1.0)])
def test_patch_peaks_equal_full_map_peaks(pose, params, noise, blur):
    heat, _ = noisy_crowd_maps(pose, seed=3, noise=noise, blur=blur)
    fast = find_peaks(heat, params, 8, method="patch")
    full = find_peaks(heat, params, 8, method="full")
    assert len(fast) == len(full) > 0
    np.testing.assert_array_equal(fast.joint, full.joint)
    # same pixels; values may differ in the last float bits (OpenCV's SIMD row tails differ with the image width)
    np.testing.assert_allclose(fast.xy, full.xy, atol=1e-3)
    np.testing.assert_allclose(fast.score, full.score, atol=1e-5)


def test_plateau_ties_give_one_peak(pose):
    # a keypoint exactly between two upsampled pixels makes two equal maxima; TAO would keep both
    kp = np.zeros((1, pose.num_joints, 3), np.float32)
    kp[0, 1] = (443.5, 100.0, 2)
    heat = render_heatmaps(kp, pose, (30, 70), 8, sigma=7.0)
    for method in ("patch", "full"):
        assert len(find_peaks(heat, DecodeParams(), 8, method=method)) == 1


def test_threshold_is_on_the_raw_value_and_peak_cap(pose):
    kp = np.zeros((2, pose.num_joints, 3), np.float32)
    kp[0, 0] = (40, 40, 2)
    kp[1, 0] = (120, 40, 2)
    heat = render_heatmaps(kp, pose, (12, 24), 8, sigma=7.0)
    heat[:, 12:, 0] *= 0.5  # second peak ~0.5
    assert len(find_peaks(heat, DecodeParams(heatmap_threshold=0.4), 8)) == 2
    assert len(find_peaks(heat, DecodeParams(heatmap_threshold=0.6), 8)) == 1
    noise = np.random.default_rng(0).uniform(0, 1, (40, 40, 19)).astype(np.float32)
    peaks = find_peaks(noise, DecodeParams(max_peaks_per_joint=7), 8)
    assert max(len(ids) for ids in peaks.by_joint) == 7
    uncapped = find_peaks(noise, DecodeParams(max_peaks_per_joint=0), 8)
    assert max(len(ids) for ids in uncapped.by_joint) > 7
    # the cap keeps the strongest candidates
    j = int(np.argmax([len(ids) for ids in uncapped.by_joint]))
    top = np.sort(uncapped.score[uncapped.by_joint[j]])[-7:]
    np.testing.assert_allclose(np.sort(peaks.score[peaks.by_joint[j]]), top)


# ----------------------------------------------------------------------------------------------- line integral
def uniform_paf(h, w, vec):
    paf = np.zeros((h, w, 2), np.float32)
    paf[:, :] = vec
    return paf


def test_line_integral_scores_direction():
    params = DecodeParams()
    paf = uniform_paf(20, 20, (1.0, 0.0))
    start = np.array([[20.0, 50.0]])
    ends = np.array([[100.0, 50.0], [20.0, 130.0], [-60.0, 50.0], [100.0, 130.0]])  # along, across, back, diagonal
    score, count = score_limb(paf, start, ends, params, stride=8)
    assert score.shape == count.shape == (1, 4)
    assert score[0, 0] == pytest.approx(1.0, abs=1e-5) and count[0, 0] == 10
    assert count[0, 1] == 0 and score[0, 1] == 0.0
    assert count[0, 2] == 0
    assert score[0, 3] == pytest.approx(np.cos(np.pi / 4), abs=1e-4) and count[0, 3] == 10
    valid = valid_pairs(score, count, params)
    assert valid.tolist() == [[True, False, False, True]]
    # the distance prior only penalises limbs longer than half the input height (160 px here)
    prior = DecodeParams(use_distance_prior=True)
    s_prior, _ = score_limb(
        uniform_paf(20, 40, (1.0, 0.0)),
        np.array([[5.0, 50.0]]),
        np.array([[60.0, 50.0], [300.0, 50.0]]),
        prior,
        stride=8,
    )
    assert s_prior[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert s_prior[0, 1] == pytest.approx(1.0 + 0.5 * 160 / 295 - 1.0, abs=1e-4)


def test_line_integral_count_rule_needs_nine_of_ten():
    params = DecodeParams()
    paf = uniform_paf(10, 40, (1.0, 0.0))
    paf[:, 20:] = 0.0  # the field stops at map column 20 (input x ~ 160)
    start = np.array([[3.5, 35.5]])
    ends = np.array([[3.5 + 8 * 21.5, 35.5], [3.5 + 8 * 30, 35.5]])  # ~1 of 10 vs ~3 of 10 samples off the field
    score, count = score_limb(paf, start, ends, params, stride=8)
    assert count[0, 0] == 9 and count[0, 1] < 9
    assert valid_pairs(score, count, params).tolist() == [[True, False]]


def test_prefilter_is_exact():
    rng = np.random.default_rng(0)
    paf = rng.normal(0, 0.6, (30, 30, 6)).astype(np.float32)
    paf[10:14, :, 0] = 1.0  # a strong horizontal band in limb 0
    n = 3000
    limb = rng.integers(0, 3, n)
    a = rng.uniform(0, 240, (n, 2)).astype(np.float32)
    b = rng.uniform(0, 240, (n, 2)).astype(np.float32)
    a[:200, 1] = b[:200, 1] = 8 * 12 + 3.5
    limb[:200] = 0
    for params in (DecodeParams(), DecodeParams(min_sample_fraction=0.5), DecodeParams(line_integral_samples=25)):
        s0, c0 = score_pairs(paf, limb, a, b, params, 8, prefilter=False)
        s1, c1 = score_pairs(paf, limb, a, b, params, 8, prefilter=True)
        v0, v1 = valid_pairs(s0, c0, params), valid_pairs(s1, c1, params)
        assert v0.sum() > 10
        np.testing.assert_array_equal(v0, v1)
        np.testing.assert_allclose(s0[v0], s1[v1])


def test_greedy_matching_is_one_to_one_by_score():
    score = np.array([[0.9, 0.8, 0.1], [0.85, 0.2, 0.0]], np.float32)
    valid = score > 0.05
    ia, ib, s = match_greedy(score, valid)
    assert list(zip(ia.tolist(), ib.tolist())) == [(0, 0), (1, 1)]
    np.testing.assert_allclose(s, [0.9, 0.2])


# ----------------------------------------------------------------------------------------------- grouping
@pytest.mark.parametrize("drop_leaves", [False, True])
def test_synthetic_crowd_round_trip(pose, drop_leaves):
    kp, shape = crowd(pose, 3, 5, seed=1 if drop_leaves else 2, drop_leaves=drop_leaves)
    heat, paf = render_labels(kp, pose, shape, 8, 7.0)
    people = decode(heat, paf, pose)
    assert len(people) == len(kp) == 15
    matched = match_people(kp, people)
    assert len({id(p) for p in matched}) == len(kp)  # one decoded person per GT person
    for g, p in zip(kp, matched):
        np.testing.assert_array_equal(p.keypoints[:, 2] > 0, g[:, 2] > 0)  # the same joints, no strays
        assert np.abs(p.keypoints[g[:, 2] > 0, :2] - g[g[:, 2] > 0, :2]).max() <= 1.5
        assert p.num_parts == int((g[:, 2] > 0).sum())


def test_crowd_17_joint_config_needs_no_code_change(pose17):
    kp, shape = crowd(pose17, 2, 5, seed=4)
    heat, paf = render_labels(kp, pose17, shape, 8, 7.0)
    assert heat.shape[2] == 18 and paf.shape[2] == 38
    people = decode(heat, paf, pose17)
    assert len(people) == 10
    for g, p in zip(kp, match_people(kp, people)):
        assert p.keypoints.shape == (17, 3)
        assert p.num_parts == 17
        assert np.abs(p.keypoints[:, :2] - g[:, :2]).max() <= 1.5


def test_person_fields_and_order(pose):
    kp, shape = crowd(pose, 1, 3, seed=5)
    kp[1, pose.joint_index("left_wrist")] = 0  # a missing joint
    heat, paf = render_labels(kp, pose, shape, 8, 7.0)
    heat[:, shape[1] // 8 * 2 // 3 :, :-1] *= 0.7  # the third person is weaker
    people = decode(heat, paf, pose)
    assert [type(p) for p in people] == [Person] * 3
    scores = [p.score for p in people]
    assert scores == sorted(scores, reverse=True) and all(0 < s < 1 for s in scores)
    for p in people:
        assert p.keypoints.dtype == np.float32 and p.keypoints.shape == (18, 3)
        assert p.num_parts == int((p.keypoints[:, 2] > 0).sum()) == int((p.peak_ids >= 0).sum())
        assert p.mean_score >= DecodeParams().min_person_score
        total = p.mean_score * p.num_parts
        assert p.score == pytest.approx(1 - 1 / total)  # TAO's person score
        missing = p.keypoints[:, 2] == 0
        assert (p.keypoints[missing, :2] == 0).all()
    assert people[-1].keypoints[0, 0] > 2 * shape[1] / 3  # the weak one last
    wristless = match_people(kp[1:2], people)[0]
    assert wristless.keypoints[pose.joint_index("left_wrist"), 2] == 0 and wristless.num_parts == 17


def only(pose, names, cx=60.0):
    kp = make_person(pose, cx, 10.0, 120.0)
    for j, n in enumerate(pose.joint_names):
        if n not in names:
            kp[j] = 0
    return kp[None]


def test_last_two_limbs_do_not_start_people(pose):
    assert pose.limbs[-2:] == [(14, 16), (15, 17)]  # TAO order: the eye -> ear edges
    params = DecodeParams(min_parts=2, min_person_score=0.0)
    heat, paf = render_labels(only(pose, {"right_eye", "right_ear"}), pose, (96, 128), 8, 7.0)
    assert decode(heat, paf, pose, params) == []
    heat, paf = render_labels(only(pose, {"nose", "right_eye"}), pose, (96, 128), 8, 7.0)
    people = decode(heat, paf, pose, params)
    assert len(people) == 1 and people[0].num_parts == 2


def test_start_joint_is_filled_when_only_the_end_is_held(pose):
    # no nose: the eyes can only join through the (eye -> ear) edges, whose end (the ear) the person already holds
    names = set(CANONICAL) - {"nose"}
    heat, paf = render_labels(only(pose, names), pose, (160, 128), 8, 7.0)
    people = decode(heat, paf, pose)
    assert len(people) == 1 and people[0].num_parts == 17
    assert people[0].keypoints[pose.joint_index("right_eye"), 2] > 0


def test_min_parts_and_min_person_score(pose):
    heat, paf = render_labels(only(pose, {"neck", "right_hip", "right_knee", "right_ankle"}), pose, (160, 128), 8, 7.0)
    assert len(decode(heat, paf, pose, DecodeParams(min_parts=4))) == 1
    assert decode(heat, paf, pose, DecodeParams(min_parts=5)) == []
    assert decode(heat, paf, pose, DecodeParams(min_person_score=2.5)) == []  # Σ/parts ~ 1.75 here


def test_decoder_needs_the_pafs(pose):
    kp, shape = crowd(pose, 1, 2, seed=6)
    heat, paf = render_labels(kp, pose, shape, 8, 7.0)
    assert len(decode(heat, paf, pose)) == 2
    assert decode(heat, -paf, pose) == []  # every limb reversed
    assert decode(heat, np.zeros_like(paf), pose) == []


# ----------------------------------------------------------------------------------------------- input checks
def test_input_validation(pose):
    heat = np.zeros((10, 12, 19), np.float32)
    paf = np.zeros((10, 12, 38), np.float32)
    with pytest.raises(BpnetError, match="heatmaps have 18 channels.*expects 19"):
        decode(heat[:, :, :18], paf, pose)
    with pytest.raises(BpnetError, match="pafs have 36 channels.*expects 38"):
        decode(heat, paf[:, :, :36], pose)
    with pytest.raises(BpnetError, match="differ"):
        decode(heat, paf[:9], pose)
    with pytest.raises(BpnetError, match=r"must be \(H, W, 19\)"):
        decode(heat[0], paf, pose)
    for bad in (np.nan, np.inf):
        h = heat.copy()
        h[3, 4, 2] = bad
        with pytest.raises(BpnetError, match="NaN or inf"):
            decode(h, paf, pose)
        p = paf.copy()
        p[1, 1, 7] = bad
        with pytest.raises(BpnetError, match="pafs contain NaN or inf"):
            decode(heat, p, pose)
    with pytest.raises(BpnetError, match="stride"):
        decode(heat, paf, pose, stride=0)
    assert decode(heat, paf, pose) == []
    hm, pf = validate_maps(heat.astype(np.float64), paf, pose)
    assert hm.dtype == pf.dtype == np.float32


def test_params_validation():
    with pytest.raises(BpnetError, match="max_peaks_per_joint"):
        DecodeParams(max_peaks_per_joint=-1)
    with pytest.raises(BpnetError, match="nms_window"):
        DecodeParams(nms_window=4)
    assert DecodeParams().max_peaks_per_joint == 100 and DecodeParams().line_integral_samples == 10


# ----------------------------------------------------------------------------------------------- debug output
def test_decode_debug_reports_candidates_and_connections(pose):
    kp, shape = crowd(pose, 1, 3, seed=7)
    heat, paf = render_labels(kp, pose, shape, 8, 7.0)
    dbg = decode_debug(heat, paf, pose)
    people = decode(heat, paf, pose)
    assert len(dbg.people) == len(people) == 3
    for a, b in zip(dbg.people, people):
        np.testing.assert_array_equal(a.keypoints, b.keypoints)
    assert len(dbg.peaks) == 54 and dbg.peaks.xy.shape == (54, 2)
    assert all(len(ids) == 3 for ids in dbg.peaks.by_joint)
    assert len(dbg.limbs) == pose.num_limbs
    for k, limb in enumerate(dbg.limbs):
        assert limb.limb == k and limb.joints == pose.limbs[k]
        assert len(limb.start) == len(limb.end) == len(limb.score) == len(limb.count) == len(limb.status) == 9
        assert (dbg.peaks.joint[limb.start] == limb.joints[0]).all()
        assert (dbg.peaks.joint[limb.end] == limb.joints[1]).all()
        assert (limb.status == ACCEPTED).sum() == 3 and set(limb.status.tolist()) <= {ACCEPTED, REJECTED, UNMATCHED}
        acc = limb.accepted()
        assert (limb.score[acc] > 0.9).all() and (limb.count[acc] == 10).all()
        # every accepted connection joins two joints of one decoded person
        for i in acc:
            owner = [p for p in dbg.people if limb.start[i] in p.peak_ids]
            assert len(owner) == 1 and limb.end[i] in owner[0].peak_ids
    one = decode_debug(heat, paf, pose, limbs=[3])
    assert one.limbs[3] is not None and sum(x is not None for x in one.limbs) == 1
    with pytest.raises(BpnetError, match="limb index 19"):
        decode_debug(heat, paf, pose, limbs=19)
