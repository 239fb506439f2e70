import json
from pathlib import Path

import pytest

from bpnet_core.errors import BpnetError
from bpnet_core.skeleton import PoseConfig

TAO_EDGES = [
    (1, 8),
    (8, 9),
    (9, 10),
    (1, 11),
    (11, 12),
    (12, 13),
    (1, 2),
    (2, 3),
    (3, 4),
    (2, 16),
    (1, 5),
    (5, 6),
    (6, 7),
    (5, 17),
    (1, 0),
    (0, 14),
    (0, 15),
    (14, 16),
    (15, 17),
]


def test_18_joint_config_matches_tao(pose):
    assert pose.num_joints == 18 and pose.joint_names[:2] == ["nose", "neck"] and pose.joint_names[-1] == "left_ear"
    assert pose.limbs == TAO_EDGES
    assert pose.num_heatmap_channels == 19 and pose.num_paf_channels == 38
    assert pose.paf_channels(3) == (6, 7)
    # 1-based skeleton in the file and the edge names agree with the 0-based limbs
    data = json.loads(Path(pose.source).read_text())
    assert [(a - 1, b - 1) for a, b in data["skeleton"]] == pose.limbs
    assert [tuple(pair) for pair in data["skeleton_edge_names"]] == [
        (pose.joint_names[a], pose.joint_names[b]) for a, b in pose.limbs
    ]


def test_flip_pairs_derived_from_names(pose):
    names = pose.joint_names
    pairs = {(names[a], names[b]) for a, b in pose.flip_pairs}
    assert ("left_shoulder", "right_shoulder") in pairs and ("left_ear", "right_ear") in pairs
    assert len(pose.flip_pairs) == 8
    perm = pose.flip_permutation
    assert sorted(perm) == list(range(18)) and [perm[p] for p in perm] == list(range(18))
    assert perm[0] == 0 and perm[1] == 1  # nose and neck stay


def test_custom_17_joint_config(pose17):
    assert pose17.num_joints == 17 and "neck" not in pose17.joint_names
    assert pose17.num_heatmap_channels == 18 and pose17.num_paf_channels == 2 * len(pose17.limbs)


def _write(tmp_path, data):
    p = tmp_path / "pose.json"
    p.write_text(json.dumps(data))
    return p


def test_unknown_joint_in_limbs_is_a_one_line_error(tmp_path):
    p = _write(tmp_path, {"keypoints": ["a", "b"], "skeleton_edge_names": [["a", "bb"]]})
    with pytest.raises(BpnetError, match=r"unknown joint 'bb' \(did you mean 'b'\?\)") as e:
        PoseConfig.from_json(p)
    assert str(p) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "data, match",
    [
        ({"keypoints": ["a", "b"], "skeleton": [[1, 3]]}, "outside joints"),
        ({"keypoints": ["a", "b"], "skeleton": [[1, 2]], "skeleton_edge_names": [["b", "a"]]}, "disagree"),
        ({"keypoints": ["a", "a"], "skeleton": [[1, 2]]}, "duplicate"),
        ({"keypoints": ["a", "b"]}, "needs 'skeleton'"),
        ({"keypoints": ["a", "b"], "skeleton": [[1, 2]], "skelton": []}, "did you mean 'skeleton'"),
    ],
)
def test_bad_pose_configs(tmp_path, data, match):
    with pytest.raises(BpnetError, match=match):
        PoseConfig.from_json(_write(tmp_path, data))


def test_malformed_pose_json(tmp_path):
    p = tmp_path / "pose.json"
    p.write_text('{"keypoints": [')
    with pytest.raises(BpnetError, match="malformed pose config"):
        PoseConfig.from_json(p)


@pytest.mark.parametrize("which", ["pose", "pose17"])
def test_flip_maps_read_a_mirrored_persons_labels_as_the_original(which, request):
    """Labels rendered for the mirrored person, mirrored back and re-ordered by flip_maps, equal the originals."""
    import numpy as np

    from bpnet_core.data.targets import render_heatmaps, render_pafs

    pose = request.getfixturevalue(which)
    rng = np.random.default_rng(3)
    kp = np.concatenate([rng.uniform(8, 120, (2, pose.num_joints, 2)), np.ones((2, pose.num_joints, 1))], axis=2)
    kp = kp.astype(np.float32)
    mirrored = kp[:, pose.flip_permutation].copy()
    mirrored[:, :, 0] = 128 - 1 - mirrored[:, :, 0]
    grid = (16, 16)
    heat_perm, paf_perm, paf_sign = pose.flip_maps()
    heat = render_heatmaps(kp, pose, grid, 8, 7.0)
    heat_m = render_heatmaps(mirrored, pose, grid, 8, 7.0)[:, ::-1]
    np.testing.assert_allclose(heat_m[..., heat_perm], heat, atol=1e-6)
    paf = render_pafs(kp, pose, grid, 8, 1.0)
    paf_m = render_pafs(mirrored, pose, grid, 8, 1.0)[:, ::-1]
    assert np.abs(paf).sum() > 10  # the limbs cover cells
    np.testing.assert_allclose(paf_m[..., paf_perm] * paf_sign, paf, atol=1e-5)


def test_flip_maps_need_a_mirror_for_every_limb():
    pose = PoseConfig(name="lopsided", joint_names=["nose", "left_eye", "right_eye"], limbs=[(0, 1)])
    with pytest.raises(BpnetError, match="limb 0 \\(nose-left_eye\\) has no left-right mirror limb"):
        pose.flip_maps()
