"""``bpnet prune --criterion activation``: scores measured on photos, removed channels' means compensated."""

from __future__ import annotations

import numpy as np
import pytest

from bpnet_core.errors import BpnetError
from bpnet_core.model import build_model, model_meta
from bpnet_core.prune import prune_model
from bpnet_core.prune.activations import relative_error_scores

#: A MobileNetV1 + TAO-stage network with batch norm folded (no BN layers), small enough for a unit test.
FOLDED = {
    "stages": 2,
    "width_multiplier": 0.125,
    "stage1_kernel_sizes": [3],
    "stageT_kernel_sizes": [3],
    "backbone_attributes": {"architecture": "mobilenet_v1", "width_multiplier": 0.25, "last_layer": 6,
                            "batch_norm": False},
}  # fmt: skip


@pytest.fixture(scope="module")
def folded(pose):
    import keras

    keras.utils.set_random_seed(0)
    model = build_model(FOLDED, pose)
    # channel 0 of stage 1's PAF branch becomes a constant 1.5 (zero kernel, bias 1.5, ReLU): no variation, so the
    # activation criterion removes it, and the output layer's bias must absorb its contribution exactly (1x1 reader)
    layer = model.get_layer("stage1_paf_conv2")
    w = layer.get_weights()
    w[0][..., 0] = 0.0
    w[1][0] = 1.5
    layer.set_weights(w)
    meta = model_meta(model, pose).with_changes(inference={"input_shape": [64, 64]})
    return model, meta


def _outputs(model, x):
    return [np.asarray(o) for o in model(x, training=False)]


def test_relative_error_scores_bound_the_removed_energy():
    s = np.array([3.0, 0.1, 4.0, 0.2, 0.0])
    r = relative_error_scores(s)
    total = float(np.sum(s**2))
    for pth in (0.01, 0.05, 0.2):
        removed = s[r <= pth]
        assert np.sqrt(np.sum(removed**2) / total) <= pth + 1e-12
    assert r[2] == pytest.approx(1.0) and r[4] == 0.0
    assert np.all(relative_error_scores(np.zeros(3)) == 0)


@pytest.mark.slow
def test_auto_picks_activation_without_bn_and_compensates_a_constant_channel(folded, pose):
    model, meta = folded
    x = np.random.default_rng(0).normal(size=(1, 64, 64, 3)).astype(np.float32)
    pruned, report = prune_model(model, pruning_threshold=0.0, pruning_granularity=1, min_num_filters=1,
                                 criterion="auto", meta=meta, calibration_count=2, pose=pose)  # fmt: skip
    assert report["settings"]["criterion"] == "activation"
    assert report["layers"]["stage1_paf_conv2"]["after"] < report["layers"]["stage1_paf_conv2"]["before"]
    for a, b in zip(_outputs(model, x), _outputs(pruned, x), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)
    assert report["calibration"]["count"] == 2


def test_without_compensation_the_constant_channel_would_be_missed(folded, pose, monkeypatch):
    import bpnet_core.prune.channel_prune as cp

    model, meta = folded
    x = np.random.default_rng(0).normal(size=(1, 64, 64, 3)).astype(np.float32)
    monkeypatch.setattr(cp, "compensate", lambda *a, **k: [])
    pruned, _ = prune_model(model, pruning_threshold=0.0, pruning_granularity=1, min_num_filters=1,
                            criterion="activation", meta=meta, calibration_count=2, pose=pose)  # fmt: skip
    worst = max(float(np.max(np.abs(a - b))) for a, b in zip(_outputs(model, x), _outputs(pruned, x), strict=True))
    assert worst > 1e-3  # the check above can fail: compensation is what keeps the outputs


@pytest.mark.slow
def test_weight_criterion_stays_tao_default_for_bn_models(pose):
    model = build_model({"stages": 1, "width_multiplier": 0.125}, pose)
    _, report = prune_model(model, pruning_threshold=0.1, pose=pose)
    assert report["settings"]["criterion"] == "weight"


def test_unknown_criterion_is_one_line(folded, pose):
    model, _ = folded
    with pytest.raises(BpnetError, match=r"^-c/--criterion must be one of auto, weight, activation \(got 'taylor'\)$"):
        prune_model(model, criterion="taylor", pose=pose)
