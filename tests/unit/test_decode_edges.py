"""Decoder edge cases: peaks on the map border, one- and two-joint skeletons, PAFs at their own stride."""

import numpy as np
import pytest

from bpnet_core.data.targets import render_heatmaps, render_labels
from bpnet_core.decode import DecodeParams, decode, decode_debug, find_peaks, validate_maps
from bpnet_core.errors import BpnetError
from bpnet_core.skeleton import PoseConfig

from .test_decode import crowd

STRIDE = 8
GRID = (12, 16)  # rows, cols


def centre(cell, stride=STRIDE):
    return cell * stride + (stride - 1) / 2


# every edge (middle cell) and every corner, plus one interior reference point
BORDER_CELLS = [(0, 0), (0, 7), (0, 15), (5, 0), (5, 15), (11, 0), (11, 7), (11, 15), (6, 8)]


def border_params():
    out = []
    for f in (1, 8):
        for sigma in (0.0, 3.0):
            for subpixel in (False, True):
                out.append(
                    pytest.param(
                        DecodeParams(upsampling_factor=f, smooth_sigma=sigma, subpixel=subpixel),
                        id=f"x{f}-sigma{sigma:g}-{'subpixel' if subpixel else 'pixel'}",
                    )
                )
    return out


def one_keypoint_per_joint(pose, points):
    """One person per point, each point in its own joint channel (so the peaks cannot interact)."""
    kp = np.zeros((len(points), pose.num_joints, 3), np.float32)
    for j, (x, y) in enumerate(points):
        kp[j, j] = (x, y, 2)
    return kp


@pytest.mark.parametrize("method", ["patch", "full"])
@pytest.mark.parametrize("params", border_params())
def test_peaks_on_every_border_cell_are_found_in_place(pose, params, method):
    points = [(centre(c), centre(r)) for r, c in BORDER_CELLS]
    heat = render_heatmaps(one_keypoint_per_joint(pose, points), pose, GRID, STRIDE, sigma=7.0)
    peaks = find_peaks(heat, params, STRIDE, method=method)
    # at x8 the fine pixels next to a cell centre (3.5 px) are 3 and 4: 0.5 px without the sub-pixel fit
    tol = 0.25 if params.subpixel else (0.0 if params.upsampling_factor == 1 else 0.5)
    for j, xy in enumerate(points):
        ids = peaks.by_joint[j]
        assert len(ids) == 1, (BORDER_CELLS[j], peaks.xy[ids])
        assert np.abs(peaks.xy[ids[0]] - xy).max() <= tol + 1e-4, (BORDER_CELLS[j], peaks.xy[ids[0]])
    assert len(peaks) == len(points)


@pytest.mark.parametrize("method", ["patch", "full"])
@pytest.mark.parametrize("params", border_params())
def test_border_plateaus_and_near_border_blobs_give_one_peak(pose, params, method):
    h, w = GRID[0] * STRIDE, GRID[1] * STRIDE
    points = [
        (centre(0.5), centre(0)),  # between the first two cells of the top row: a plateau at x1
        (centre(0), centre(0.5)),  # the same down the left column
        (centre(14.5), centre(11)),  # bottom row
        (centre(15), centre(10.5)),  # right column
        (12.0, 9.5),  # between the border cell and the next: no false maximum in the half-cell margin
        (w - 10.0, h - 9.0),
        (60.0, -6.0),  # a joint just beyond the top edge: its peak lies on the top row
    ]
    heat = render_heatmaps(one_keypoint_per_joint(pose, points), pose, GRID, STRIDE, sigma=7.0)
    peaks = find_peaks(heat, params, STRIDE, method=method)
    for j, (x, y) in enumerate(points):
        ids = peaks.by_joint[j]
        assert len(ids) == 1, ((x, y), peaks.xy[ids])
        got = peaks.xy[ids[0]]
        if y < 0:
            assert abs(got[0] - x) <= 4.0 and got[1] <= centre(0) + 0.5, got
        elif params.upsampling_factor == 1 and params.smooth_sigma > 0:
            assert np.abs(got - (x, y)).max() <= 9.0, ((x, y), got)  # a 5x5-cell blur: within a cell
        elif params.upsampling_factor == 1:
            assert np.abs(got - (x, y)).max() <= (4.5 if params.subpixel else 8.0), ((x, y), got)
        else:
            assert np.abs(got - (x, y)).max() <= 1.5, ((x, y), got)


@pytest.mark.parametrize("upsampling", [1, 8])
def test_whole_people_touching_the_borders_decode(pose, upsampling):
    """A person whose head touches the top row and whose arm reaches the left column (x1 used to lose 7 joints and
    x8 put the nose 3 px out)."""
    from .test_decode import make_person

    kp = make_person(pose, 20.0, -2.0, 100.0)[None]  # nose at y = 4, right wrist at x = 2
    heat, paf = render_labels(kp, pose, (112, 96), STRIDE, 7.0)
    people = decode(heat, paf, pose, DecodeParams(upsampling_factor=upsampling, smooth_sigma=0.0, subpixel=True))
    assert len(people) == 1 and people[0].num_parts == 18
    inside = (kp[0, :, 0] >= 3.5) & (kp[0, :, 1] >= 3.5)
    err = np.abs(people[0].keypoints[:, :2] - kp[0, :, :2])
    assert err[inside].max() <= 1.5, err  # the edge-replicated cubic taps bend blobs within a cell of the border
    assert err[~inside].max() <= 1.5 + 1e-4, err  # the eyes (y = 2) and a wrist (x = 2): on the border cell centre


# ----------------------------------------------------------------------------------------------- tiny skeletons
@pytest.mark.parametrize("method", ["patch", "full"])
@pytest.mark.parametrize("upsampling", [1, 2, 8])
@pytest.mark.parametrize("sigma", [0.0, 3.0])
def test_single_joint_heatmaps(upsampling, sigma, method):
    """A one-joint stack (joint + background): OpenCV drops a size-1 channel axis, which used to crash at x1."""
    pose = PoseConfig("pair", ["head", "tail"], [(0, 1)])
    kp = np.zeros((2, 2, 3), np.float32)
    kp[0, 0] = (100.0, 20.0, 2)
    kp[1, 0] = (centre(0), centre(9), 2)  # on the left column
    heat = render_heatmaps(kp, pose, GRID, STRIDE, sigma=7.0)[:, :, [0, 2]]  # (H, W, 1 + background)
    params = DecodeParams(upsampling_factor=upsampling, smooth_sigma=sigma, subpixel=True)
    peaks = find_peaks(heat, params, STRIDE, method=method)
    assert len(peaks.by_joint) == 1 and len(peaks) == 2
    assert (peaks.joint == 0).all()
    found = sorted(map(tuple, peaks.xy.round(0).tolist()), key=lambda p: p[1])
    np.testing.assert_allclose(found, [(100.0, 20.0), (centre(0), centre(9))], atol=1.5)


@pytest.mark.parametrize("params", [
    DecodeParams(upsampling_factor=1, smooth_sigma=0.0, subpixel=True, min_parts=2),
    DecodeParams(upsampling_factor=1, smooth_sigma=0.0, min_parts=2),
    DecodeParams(min_parts=2),
])  # fmt: skip
def test_two_joint_skeleton_decodes(params):
    pose = PoseConfig("pair", ["head", "tail"], [(0, 1)])
    kp = np.array([[[20, 12, 2], [60, 50, 2]], [[100, 20, 2], [90, 70, 2]], [[3.5, 70, 2], [40, 90, 2]]], np.float32)
    heat, paf = render_labels(kp, pose, (96, 128), STRIDE, 7.0)
    assert heat.shape[2] == 3 and paf.shape[2] == 2
    people = decode(heat, paf, pose, params)
    assert len(people) == 3 and all(p.num_parts == 2 for p in people)
    for g in kp:
        d = [np.abs(p.keypoints[:, :2] - g[:, :2]).max() for p in people]
        assert min(d) <= 4.0, d  # cell centres at x1 without the sub-pixel fit
    dbg = decode_debug(heat, paf, pose, params)
    assert len(dbg.people) == 3 and len(dbg.limbs) == 1


# ----------------------------------------------------------------------------------------------- PAF stride
def same_people(a, b, tol=1.0):
    """Both lists hold the same people (same peaks, joints within ``tol`` px), in any order."""
    assert len(a) == len(b) > 0
    key = lambda p: tuple(p.peak_ids.tolist())  # noqa: E731
    for p, q in zip(sorted(a, key=key), sorted(b, key=key)):
        np.testing.assert_array_equal(p.peak_ids, q.peak_ids)
        assert np.abs(p.keypoints[:, :2] - q.keypoints[:, :2]).max() <= tol
        assert p.score == pytest.approx(q.score, abs=0.01)


@pytest.mark.parametrize("params", [
    DecodeParams(),
    DecodeParams(upsampling_factor=1, smooth_sigma=0.0, subpixel=True),
])  # fmt: skip
@pytest.mark.parametrize("drop_leaves", [False, True])
def test_pafs_at_their_own_stride_decode_the_same_people(pose, params, drop_leaves):
    kp, shape = crowd(pose, 3, 5, seed=1 if drop_leaves else 2, drop_leaves=drop_leaves)
    heat, paf8 = render_labels(kp, pose, shape, 8, 7.0)
    ref = decode(heat, paf8, pose, params)
    assert len(ref) == 15
    # NVIDIA's deployable model: the stride-8 PAFs nearest-upsampled x4
    paf_up = np.repeat(np.repeat(paf8, 4, axis=0), 4, axis=1)
    same_people(ref, decode(heat, paf_up, pose, params, stride=8, paf_stride=2))
    # PAFs rendered at stride 2: as wide in input pixels as at stride 8, and the default (4x thinner: +-2 px, so a
    # cell-geometry error of a few pixels would lose limbs)
    for thresh in (4.0, 1.0):
        paf2 = render_labels(kp, pose, shape, 2, 7.0, paf_ortho_dist_thresh=thresh)[1]
        assert paf2.shape[:2] == (4 * heat.shape[0], 4 * heat.shape[1])
        same_people(ref, decode(heat, paf2, pose, params, paf_stride=2))
    dbg = decode_debug(heat, paf_up, pose, params, paf_stride=2)
    same_people(ref, dbg.people)
    assert all((limb.count[limb.accepted()] == 10).all() for limb in dbg.limbs)


def test_paf_stride_none_is_the_heatmap_stride(pose):
    kp, shape = crowd(pose, 1, 3, seed=5)
    heat, paf = render_labels(kp, pose, shape, 8, 7.0)
    a, b = decode(heat, paf, pose), decode(heat, paf, pose, stride=8, paf_stride=8)
    assert len(a) == len(b) == 3
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p.keypoints, q.keypoints)
        assert p.score == q.score


def test_paf_stride_validation(pose):
    heat = np.zeros((46, 54, 19), np.float32)
    paf = np.zeros((184, 216, 38), np.float32)
    validate_maps(heat, paf, pose, stride=8, paf_stride=2)
    validate_maps(heat, paf[:185, :217], pose, stride=8, paf_stride=2)  # a 370x434 input: 46x54 and 185x217 cells
    validate_maps(heat[:, :, :], np.zeros((92, 108, 38), np.float32), pose, stride=8, paf_stride=4)
    assert decode(heat, paf, pose, paf_stride=2) == []
    with pytest.raises(
        BpnetError,
        match=r"heatmaps grid \(46, 54\) at stride 8 and pafs grid \(180, 216\) at "
        r"stride 2 differ in input extent \(368×432 vs 360×432 px\)",
    ):
        decode(heat, paf[:180], pose, paf_stride=2)
    with pytest.raises(BpnetError, match=r"pafs grid \(184, 216\) at stride 8"):
        decode(heat, paf, pose, stride=2, paf_stride=8)  # strides swapped
    with pytest.raises(BpnetError, match=r"heatmaps grid \(46, 54\) and pafs grid \(184, 216\) differ"):
        decode(heat, paf, pose)  # paf_stride defaults to the heatmap stride
    with pytest.raises(BpnetError, match="paf_stride must be >= 1"):
        decode(heat, paf, pose, paf_stride=0)
    with pytest.raises(BpnetError, match="differ in input extent"):
        decode_debug(heat, paf[:, :200], pose, paf_stride=2)


@pytest.mark.parametrize("upsampling", [4, 8])
def test_a_lone_cell_just_above_the_candidate_floor_decodes_like_the_reference(upsampling):
    """One cell barely above the candidate floor, its neighbours 0: the ×2 map that picks the candidate cells never
    samples the cell's centre, so no candidate is left (a pruned network's maps did this); the patch method must
    then answer what the full reference answers, not crash on an empty patch stack."""
    from bpnet_core.decode.peaks import CANDIDATE_FRACTION

    params = DecodeParams(upsampling_factor=upsampling)
    heat = np.zeros((*GRID, 3), np.float32)
    heat[5, 7, 0] = params.heatmap_threshold * CANDIDATE_FRACTION * 1.01
    full = find_peaks(heat, params, STRIDE, method="full")
    patch = find_peaks(heat, params, STRIDE, method="patch")
    assert len(patch) == len(full) == 0
