"""Agreement AP: one model's decoded people scored against another's, no labels (the INT8 parity gate's metric)."""

import numpy as np
import pytest

from bpnet_core.errors import BpnetError
from bpnet_core.evaluate.agreement import agreement_ap


def _people(pose, rng, n_images=6):
    """Plausible people: 18 joints spread over a 120 px tall figure at random places in 480×640 images."""
    out = []
    for _ in range(n_images):
        k = int(rng.integers(0, 4))
        kp = np.zeros((k, pose.num_joints, 3), np.float32)
        for p in range(k):
            x0, y0 = rng.uniform(50, 500), rng.uniform(50, 300)
            kp[p, :, 0] = x0 + rng.uniform(0, 60, pose.num_joints)
            kp[p, :, 1] = y0 + np.linspace(0, 120, pose.num_joints)
            kp[p, :, 2] = 1.0
        out.append(kp)
    return out


def test_identical_people_agree_perfectly_and_noise_lowers_it(pose):
    rng = np.random.default_rng(0)
    ref = _people(pose, rng)
    hw = [(480, 640)] * len(ref)
    same = agreement_ap(ref, [(k, [0.9] * len(k)) for k in ref], hw, pose)
    assert same["AP"] == pytest.approx(1.0) and same["reference_people"] == sum(len(k) for k in ref)
    noisy = [(k + np.concatenate([rng.normal(0, 6, k[..., :2].shape), np.zeros(k[..., 2:].shape)], -1), [0.9] * len(k))
             for k in ref]  # fmt: skip
    mid = agreement_ap(ref, noisy, hw, pose)["AP"]
    assert 0.1 < mid < 0.95
    gone = agreement_ap(ref, [(np.zeros((0, pose.num_joints, 3)), []) for _ in ref], hw, pose)
    assert gone["AP"] == 0.0 and gone["candidate_people"] == 0


def test_no_people_anywhere_is_full_agreement_and_bad_input_is_refused(pose):
    empty = np.zeros((0, pose.num_joints, 3))
    assert agreement_ap([empty], [(empty, [])], [(10, 10)], pose)["AP"] == 1.0
    assert agreement_ap([empty], [(np.ones((1, pose.num_joints, 3)), [0.5])], [(10, 10)], pose)["AP"] == 0.0
    with pytest.raises(BpnetError, match="same images"):
        agreement_ap([empty], [], [(10, 10)], pose)
