"""Geometry pinning for the label generator (heatmaps, PAFs) and the augmentation."""

import numpy as np
import pytest

from bpnet_core.data.augment import AugParams, augment, sample_transform, transform_keypoints, warp_image
from bpnet_core.data.targets import cell_centers, render_heatmaps, render_labels, render_pafs, resize_mask


def one_person(pose, joints):
    kp = np.zeros((1, pose.num_joints, 3), np.float32)
    for name, (x, y) in joints.items():
        kp[0, pose.joint_index(name)] = (x, y, 2)
    return kp


@pytest.mark.parametrize("stride", [4, 8])
@pytest.mark.parametrize("cell", [(0, 0), (3, 5), (7, 2)])
def test_heatmap_peak_at_expected_cell(pose, stride, cell):
    i, j = cell
    x, y = j * stride + (stride - 1) / 2, i * stride + (stride - 1) / 2
    heat = render_heatmaps(one_person(pose, {"nose": (x, y)}), pose, (10, 10), stride, sigma=3.0)
    assert np.unravel_index(np.argmax(heat[:, :, 0]), heat.shape[:2]) == (i, j)
    assert heat[i, j, 0] == pytest.approx(1.0)
    assert heat[i, j, -1] == pytest.approx(0.0)  # background = 1 - max
    assert heat[:, :, 1].max() == 0.0  # other joints empty


def test_heatmap_background_and_max_over_people(pose):
    kp = np.concatenate([one_person(pose, {"nose": (20, 20)}), one_person(pose, {"nose": (23.5, 20)})])
    heat = render_heatmaps(kp, pose, (8, 8), 8, sigma=7.0)
    assert heat.shape == (8, 8, 19) and heat.dtype == np.float32
    np.testing.assert_allclose(heat[:, :, -1], np.clip(1 - heat[:, :, :-1].max(2), 0, 1))
    assert heat[:, :, 0].max() <= 1.0
    far = render_heatmaps(one_person(pose, {"nose": (-500, -500)}), pose, (8, 8), 8, sigma=7.0)
    assert far[:, :, 0].max() == 0.0  # values < 0.001 zeroed


def test_paf_unit_vectors_along_limb_only(pose):
    # neck -> right_hip is limb 0, drawn horizontally between cell centres 1 and 5 of row 3 (stride 8)
    kp = one_person(pose, {"neck": (11.5, 27.5), "right_hip": (43.5, 27.5)})
    paf = render_pafs(kp, pose, (8, 8), 8, paf_ortho_dist_thresh=1.0)
    cx, cy = pose.paf_channels(0)
    np.testing.assert_allclose(paf[3, 0:7, cx], 1.0)  # the segment plus 8 px (one cell) beyond each end
    assert paf[3, 7, cx] == 0.0  # 16 px beyond the end
    assert np.all(paf[:, :, cy] == 0)
    assert paf[2, 3, cx] == 1.0 and paf[4, 3, cx] == 1.0 and paf[1, 3, cx] == 0.0  # ±1 cell band
    assert paf[2, 0, cx] == 0.0  # the corner is farther than 8 px from the segment
    others = np.delete(paf, [cx, cy], axis=2)
    assert np.all(others == 0)


def test_paf_direction_and_overlap_average(pose):
    a = one_person(pose, {"neck": (3.5, 3.5), "right_hip": (3.5, 59.5)})  # pointing down
    b = one_person(pose, {"neck": (3.5, 59.5), "right_hip": (3.5, 3.5)})  # pointing up, same place
    paf_a = render_pafs(a, pose, (8, 8), 8)
    assert paf_a[4, 0, 1] == pytest.approx(1.0)
    both = render_pafs(np.concatenate([a, a]), pose, (8, 8), 8)
    np.testing.assert_allclose(both, paf_a)  # averaged, not summed
    cancel = render_pafs(np.concatenate([a, b]), pose, (8, 8), 8)
    assert np.abs(cancel[:, :, :2]).max() == pytest.approx(0.0, abs=1e-6)


def test_missing_joints_give_no_labels(pose):
    kp = one_person(pose, {"neck": (20, 20)})
    heat, paf = render_labels(kp, pose, (64, 64), 8, 7.0)
    assert paf.max() == 0 and heat[:, :, 1].max() > 0.9
    heat0, paf0 = render_labels(np.zeros((0, 18, 3)), pose, (64, 64), 8, 7.0)
    assert heat0[:, :, -1].min() == 1.0 and paf0.max() == 0


def test_render_labels_rejects_bad_shapes(pose):
    from bpnet_core.errors import BpnetError

    with pytest.raises(BpnetError, match="multiples of the stride 8"):
        render_labels(np.zeros((0, 18, 3)), pose, (60, 64), 8, 7.0)
    with pytest.raises(BpnetError, match=r"expected \(people, 18, 3\)"):
        render_heatmaps(np.zeros((1, 17, 3)), pose, (8, 8), 8, 7.0)


def test_cell_centers():
    np.testing.assert_allclose(cell_centers(3, 8), [3.5, 11.5, 19.5])
    np.testing.assert_allclose(cell_centers(2, 4), [1.5, 5.5])


def test_resize_mask_to_grid():
    m = np.full((64, 64), 255, np.uint8)
    m[:32] = 0
    g = resize_mask(m, (8, 8))
    assert g.shape == (8, 8) and g[:4].max() == 0 and g[4:].min() == 1.0


# ------------------------------------------------------------------ augmentation
def test_flip_twice_is_identity(pose):
    rng = np.random.default_rng(0)
    kp = rng.uniform(10, 50, (2, 18, 3)).astype(np.float32)
    kp[:, :, 2] = 2
    params = AugParams(
        flip_lr_prob=1.0,
        rotate_deg_min=0,
        rotate_deg_max=0,
        translate_min_x=0,
        translate_max_x=0,
        translate_min_y=0,
        translate_max_y=0,
    )
    m, flipped = sample_transform(rng, params, "standard", (64, 64), (64, 64))
    assert flipped
    once = transform_keypoints(kp, m, True, pose, (64, 64))
    m3 = np.vstack([m, [0, 0, 1]])
    twice = transform_keypoints(once, (m3 @ m3)[:2] @ np.linalg.inv(m3), True, pose, (64, 64))
    np.testing.assert_allclose(twice, kp, atol=1e-4)
    # the left shoulder of the flipped person is the mirrored right shoulder
    ls, rs = pose.joint_index("left_shoulder"), pose.joint_index("right_shoulder")
    assert once[0, ls, 0] == pytest.approx(63 - kp[0, rs, 0], abs=1e-4)


@pytest.mark.parametrize("mode", ["person_centric", "standard", "standard_with_fixed_aspect_ratio"])
def test_augmented_image_and_keypoints_stay_aligned(pose, mode):
    """Draw bright dots at the keypoints, augment, and find the dots again at the transformed keypoints."""
    rng = np.random.default_rng(3)
    img = np.zeros((120, 160, 3), np.uint8)
    kp = np.zeros((1, 18, 3), np.float32)
    for j, (x, y) in enumerate([(20 + 7 * j, 30 + 3 * j) for j in range(18)]):
        kp[0, j] = (x, y, 2)
    for x, y, _ in kp[0]:
        img[int(y) - 1 : int(y) + 2, int(x) - 1 : int(x) + 2] = 255
    params = AugParams(flip_lr_prob=0.5, rotate_deg_min=-30, rotate_deg_max=30, zoom_prob=0.5, zoom_ratio_min=0.8,
                       zoom_ratio_max=1.2, translate_min_x=-10, translate_max_x=10, translate_min_y=-10,
                       translate_max_y=10)  # fmt: skip
    for _ in range(5):
        out, mask, kp_t, _ = augment(img, None, kp, pose, (96, 96), rng, params, mode, center=(80, 60),
                                     person_height=100)  # fmt: skip
        assert out.shape == (96, 96, 3) and mask.shape == (96, 96) and mask.min() == 255
        for x, y, v in kp_t[0]:
            if v > 0 and 2 <= x <= 93 and 2 <= y <= 93:
                patch = out[int(round(y)) - 1 : int(round(y)) + 2, int(round(x)) - 1 : int(round(x)) + 2]
                assert patch.max() > 100, (mode, x, y)


def test_keypoints_leaving_the_input_are_dropped(pose):
    kp = np.zeros((1, 18, 3), np.float32)
    kp[0, 0] = (10, 10, 2)
    kp[0, 1] = (500, 10, 2)
    out = transform_keypoints(kp, np.array([[1.0, 0, 0], [0, 1, 0]]), False, pose, (64, 64))
    assert out[0, 0, 2] == 2 and out[0, 1].tolist() == [0, 0, 0]


def test_warp_pads_with_grey():
    img = np.zeros((10, 10, 3), np.uint8)
    out = warp_image(img, np.array([[1.0, 0, 20], [0, 1, 0]]), (10, 40))
    assert out[0, 0, 0] == 128 and out[0, 25, 0] == 0
