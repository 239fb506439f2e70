"""Loss (NumPy reference, masks, focal weights), learning-rate schedules, optimisers and gradient weights."""

from __future__ import annotations

import math

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from bpnet_core.errors import BpnetError  # noqa: E402
from bpnet_core.model import FocalParams, bpnet_loss, build_model, focal_factor, loss_terms  # noqa: E402
from bpnet_core.train.optimizers import (  # noqa: E402
    build_optimizer,
    gradient_multipliers,
    scale_gradients,
    stagewise_multipliers,
)
from bpnet_core.train.schedules import (  # noqa: E402
    BpNetExponentialDecayLRSchedule,
    SoftstartAnnealingLearningRateSchedule,
    schedule_from_spec,
)


def random_batch(rng, n=3, h=5, w=6, heat=4, paf=6, stages=2):
    labels = {
        "heatmaps": rng.uniform(0, 1, (n, h, w, heat)).astype(np.float32),
        "pafs": rng.uniform(-1, 1, (n, h, w, paf)).astype(np.float32),
        "mask": (rng.uniform(0, 1, (n, h, w, 1)) > 0.3).astype(np.float32),
    }
    outputs = [rng.normal(size=(n, h, w, heat)).astype(np.float32) for _ in range(stages)]
    outputs += [rng.normal(size=(n, h, w, paf)).astype(np.float32) for _ in range(stages)]
    return outputs, labels


def numpy_loss(outputs, labels, batch_size, weights=None):
    s = len(outputs) // 2
    total = 0.0
    for i, pred in enumerate(outputs):
        label = labels["heatmaps"] if i < s else labels["pafs"]
        d = (pred - label) * labels["mask"] * (1.0 if weights is None else weights[i])
        total += 0.5 * np.sum(d.astype(np.float64) ** 2)
    return total / batch_size


def test_loss_matches_numpy_reference():
    rng = np.random.default_rng(0)
    outputs, labels = random_batch(rng)
    total, terms = bpnet_loss(outputs, labels, batch_size=3, regularization=tf.constant(0.25))
    assert list(terms) == ["heatmap_stage1", "heatmap_stage2", "paf_stage1", "paf_stage2"]
    assert float(total) == pytest.approx(numpy_loss(outputs, labels, 3) + 0.25, rel=1e-5)
    d = (outputs[3] - labels["pafs"]) * labels["mask"]
    assert float(terms["paf_stage2"]) == pytest.approx(0.5 * np.sum(d.astype(np.float64) ** 2) / 3, rel=1e-5)
    raw = loss_terms(outputs, labels["heatmaps"], labels["pafs"], labels["mask"])
    assert float(raw["heatmap_stage1"]) == pytest.approx(float(tf.nn.l2_loss((outputs[0] - labels["heatmaps"])
                                                                              * labels["mask"])), rel=1e-6)  # fmt: skip


def test_per_stage_targets_in_bpnet_loss():
    """The training step calls :func:`bpnet_loss` with one target per stage (distillation): the labels repeated give
    exactly the plain loss; another target for the last stage changes only the last stage's terms."""
    rng = np.random.default_rng(5)
    outputs, labels = random_batch(rng)
    total, terms = bpnet_loss(outputs, labels, batch_size=3, heatmap_weight=3.0, paf_weight=0.5)
    staged = {**labels, "heatmaps": [labels["heatmaps"]] * 2, "pafs": [labels["pafs"]] * 2}
    total_s, terms_s = bpnet_loss(outputs, staged, batch_size=3, heatmap_weight=3.0, paf_weight=0.5)
    assert list(terms_s) == list(terms)
    assert float(total_s) == float(total)
    assert {k: float(v) for k, v in terms_s.items()} == {k: float(v) for k, v in terms.items()}
    other = {**labels, "heatmaps": [labels["heatmaps"], labels["heatmaps"] * 0.5], "pafs": [labels["pafs"]] * 2}
    _, terms_o = bpnet_loss(outputs, other, batch_size=3)
    changed = {k for k in terms if float(terms_o[k]) != pytest.approx(float(terms[k]), rel=1e-6)}
    assert changed == {"heatmap_stage2"}
    with pytest.raises(ValueError, match="3 heatmap targets for 2 stages"):
        bpnet_loss(outputs, {**labels, "heatmaps": [labels["heatmaps"]] * 3}, batch_size=3)


def test_branch_weights_scale_heatmap_and_paf_terms():
    rng = np.random.default_rng(4)
    outputs, labels = random_batch(rng)
    plain, terms = bpnet_loss(outputs, labels, batch_size=3)
    weighted, terms_w = bpnet_loss(outputs, labels, batch_size=3, heatmap_weight=3.0, paf_weight=0.5)
    heat = sum(float(v) for k, v in terms.items() if k.startswith("heatmap"))
    paf = sum(float(v) for k, v in terms.items() if k.startswith("paf"))
    assert float(weighted) == pytest.approx(3.0 * heat + 0.5 * paf, rel=1e-5)
    assert float(weighted) != pytest.approx(float(plain), rel=1e-3)
    assert {k: float(v) for k, v in terms_w.items()} == pytest.approx({k: float(v) for k, v in terms.items()})


def test_mask_zero_means_zero_loss_there():
    rng = np.random.default_rng(1)
    outputs, labels = random_batch(rng)
    labels["mask"][:, :2] = 0.0
    base, _ = bpnet_loss(outputs, labels, 3)
    changed = [o.copy() for o in outputs]
    for o in changed:
        o[:, :2] += 100.0  # huge errors where the mask is zero
    after, _ = bpnet_loss(changed, labels, 3)
    assert float(after) == pytest.approx(float(base), rel=1e-6)
    labels["mask"][:] = 0.0
    zero, terms = bpnet_loss(outputs, labels, 3)
    assert float(zero) == 0.0 and all(float(v) == 0.0 for v in terms.values())


def test_focal_factor_matches_tao_formula():
    p = FocalParams(alpha=0.1, beta=0.02, bkg_thresh=0.01, gamma=2.0)
    label = np.array([0.0, 0.005, 0.5, 1.0], np.float32)
    pred = np.array([0.3, -0.1, 0.4, 0.9], np.float32)
    fg = label > 0.01
    adjusted = np.where(fg, pred - 0.1, 1 - pred - 0.02)
    np.testing.assert_allclose(np.asarray(focal_factor(pred, label, p)), np.abs(1 - adjusted) ** 2, rtol=1e-6)
    # PAFs: a negative component is foreground, compared along the label's sign
    paf_label = np.array([-0.8, 0.8, 0.0], np.float32)
    paf_pred = np.array([-0.7, 0.7, -0.3], np.float32)
    got = np.asarray(focal_factor(paf_pred, paf_label, p, signed=True))
    np.testing.assert_allclose(got, [abs(1 - (0.7 - 0.1)) ** 2] * 2 + [abs(0.3 + 0.02) ** 2], rtol=1e-6)


def test_focal_loss_weights_inside_the_square_and_gamma_zero_is_plain_l2():
    rng = np.random.default_rng(2)
    outputs, labels = random_batch(rng)
    plain, _ = bpnet_loss(outputs, labels, 3)
    same, _ = bpnet_loss(outputs, labels, 3, focal=FocalParams(gamma=0.0))
    assert float(same) == pytest.approx(float(plain), rel=1e-6)
    fp = FocalParams(gamma=1.0)
    weights = [np.asarray(focal_factor(o, labels["heatmaps"], fp)) for o in outputs[:2]]
    weights += [np.asarray(focal_factor(o, labels["pafs"], fp, signed=True)) for o in outputs[2:]]
    focal, _ = bpnet_loss(outputs, labels, 3, focal=fp)
    assert float(focal) == pytest.approx(numpy_loss(outputs, labels, 3, weights), rel=1e-5)


def test_focal_params_from_spec():
    from bpnet_core.config import TrainSpec

    assert FocalParams.from_spec(TrainSpec.from_dict({})) is None
    spec = TrainSpec.from_dict({"loss": {"focal_loss_params": {"use_focal_loss": True, "gamma": 2}}})
    assert FocalParams.from_spec(spec) == FocalParams(0.1, 0.02, 0.01, 2.0)


# ---------------------------------------------------------------------------------------------------- schedules


def test_softstart_annealing_values_at_key_steps():
    s = SoftstartAnnealingLearningRateSchedule(base_lr=1e-3, min_lr=1e-5, soft_start=0.1, annealing=0.7, last_step=1000)
    assert s.value(0) == pytest.approx(1e-5, rel=1e-5)  # start: min_lr
    assert s.value(50) == pytest.approx(math.sqrt(1e-5 * 1e-3), rel=1e-4)  # log-linear ramp: geometric mean
    assert s.value(100) == pytest.approx(1e-3, rel=1e-5)  # end of soft start
    assert s.value(400) == pytest.approx(1e-3, rel=1e-5)  # plateau
    assert s.value(700) == pytest.approx(1e-3, rel=1e-5)  # annealing starts
    assert s.value(850) == pytest.approx(math.sqrt(1e-5 * 1e-3), rel=1e-4)
    assert s.value(1000) == pytest.approx(1e-5, rel=1e-5)  # end
    assert s.value(5000) == pytest.approx(1e-5, rel=1e-5)  # clipped
    values = [s.value(i) for i in range(0, 1001, 10)]
    assert max(values) == pytest.approx(1e-3, rel=1e-5) and min(values) == pytest.approx(1e-5, rel=1e-5)
    flat = SoftstartAnnealingLearningRateSchedule(1e-3, 1e-5, 0.0, 1.0, 10)
    assert flat.value(0) == pytest.approx(1e-3, rel=1e-5) and flat.value(10) == pytest.approx(1e-3, rel=1e-5)


def test_schedules_serialise():
    for sched in (
        SoftstartAnnealingLearningRateSchedule(2e-5, 8e-8, 0.05, 0.5, 1234),
        BpNetExponentialDecayLRSchedule(1e-3, 100, 0.5, 1e-5, staircase=True),
    ):
        again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(sched))
        assert type(again) is type(sched) and again.get_config() == sched.get_config()
        for step in (0, 61, 617, 1234):
            assert again.value(step) == pytest.approx(sched.value(step), rel=1e-7)
    opt = keras.optimizers.Adam(learning_rate=SoftstartAnnealingLearningRateSchedule(1e-3, 1e-5, 0.1, 0.7, 10))
    restored = keras.optimizers.Adam.from_config(opt.get_config())
    assert isinstance(restored._learning_rate, SoftstartAnnealingLearningRateSchedule)  # registered: round-trips


def test_exponential_decay():
    s = BpNetExponentialDecayLRSchedule(1e-3, decay_steps=100, decay_rate=0.5, min_lr=1e-4)
    assert s.value(0) == pytest.approx(1e-3) and s.value(100) == pytest.approx(5e-4, rel=1e-5)
    assert s.value(150) == pytest.approx(1e-3 * 0.5**1.5, rel=1e-5)
    assert s.value(10_000) == pytest.approx(1e-4, rel=1e-5)  # floor
    stairs = BpNetExponentialDecayLRSchedule(1e-3, 100, 0.5, staircase=True)
    assert stairs.value(199) == pytest.approx(5e-4, rel=1e-5)


def test_schedule_from_spec_defaults_last_step_and_scales():
    from bpnet_core.config import TrainSpec

    spec = TrainSpec.from_dict({"optimizer": {"learning_rate_schedule": {"base_learning_rate": 1e-3,
                                                                         "min_learning_rate": 1e-6}}})  # fmt: skip
    s = schedule_from_spec(spec.optimizer.learning_rate_schedule, steps_per_epoch=50, num_epoch=4, lr_scale=2.0)
    assert s.last_step == 200 and s.base_lr == pytest.approx(2e-3) and s.min_lr == pytest.approx(2e-6)
    exp = TrainSpec.from_dict({"optimizer": {"learning_rate_schedule": {
        "__class_name__": "BpNetExponentialDecayLRSchedule", "learning_rate": 1e-3, "min_learning_rate": 1e-6,
        "decay_epochs": 2, "decay_rate": 0.1}}})  # fmt: skip
    e = schedule_from_spec(exp.optimizer.learning_rate_schedule, steps_per_epoch=50, num_epoch=4)
    assert isinstance(e, BpNetExponentialDecayLRSchedule) and e.decay_steps == 100
    with pytest.raises(BpnetError):
        SoftstartAnnealingLearningRateSchedule(1e-3, 1e-2, 0.1, 0.5, 10)


# ---------------------------------------------------------------------------------------------------- optimisers


def test_build_optimizer():
    from bpnet_core.config import TrainSpec

    sgd = build_optimizer(TrainSpec.from_dict({"optimizer": {"momentum": 0.8, "use_nesterov": True}}).optimizer, 0.1)
    assert isinstance(sgd, keras.optimizers.SGD) and sgd.momentum == 0.8 and sgd.nesterov
    adam = build_optimizer(TrainSpec.from_dict({"optimizer": {"__class_name__": "Adam"}}).optimizer, 1e-3)
    assert isinstance(adam, keras.optimizers.Adam)
    assert isinstance(build_optimizer(None, 0.1, mixed_precision=True), keras.optimizers.LossScaleOptimizer)


@pytest.fixture(scope="module")
def model3(pose):
    return build_model({"stages": 3, "width_multiplier": 0.125, "stageT_kernel_sizes": [3]}, pose)


def test_stagewise_multipliers_follow_tao(model3):
    m = stagewise_multipliers(model3)
    assert m["block1_conv1/kernel"] == 1.0 and m["channel_reduction_conv/bias"] == 2.0
    assert m["stage1_conv1/kernel"] == 1.0 and m["stage1_paf_conv4/bias"] == 2.0
    assert m["heatmap_stage1/kernel"] == 1.0 and m["paf_stage1/bias"] == 2.0
    assert m["stage2_conv1/kernel"] == 4.0 and m["stage2_conv1/bias"] == 8.0
    assert m["heatmap_stage2/kernel"] == 4.0 and m["stage3_heat_conv2/bias"] == 8.0
    assert m["heatmap_out/kernel"] == 4.0 and m["paf_out/bias"] == 8.0
    assert "block1_conv1_bn/gamma" not in m  # only convolutions are weighted


def test_gradient_multipliers_per_variable(model3, pose):
    variables = model3.trainable_variables
    paths = [v.path for v in variables]
    plain = gradient_multipliers(model3, use_stagewise=False)
    assert plain == [1.0] * len(variables)
    w = dict(zip(paths, gradient_multipliers(model3, use_stagewise=True, default=0.5)))
    assert w["block1_conv1_bn/gamma"] == 0.5 and w["stage3_conv1/kernel"] == 4.0 and w["stage1_conv1/bias"] == 2.0
    w = dict(zip(paths, gradient_multipliers(
        model3, True, {"stage2_conv1": 0.0, "stage3/conv1/kernel:0": 3.0, "paf_out/bias": 9.0})))  # fmt: skip
    assert w["stage2_conv1/kernel"] == 0.0 and w["stage2_conv1/bias"] == 0.0
    assert w["stage3_conv1/kernel"] == 3.0 and w["paf_out/bias"] == 9.0 and w["stage3_conv1/bias"] == 8.0
    with pytest.raises(BpnetError, match="names no variable or layer"):
        gradient_multipliers(model3, True, {"no_such_layer": 1.0})
    one = build_model({"stages": 1, "width_multiplier": 0.125}, pose)
    w1 = dict(zip([v.path for v in one.trainable_variables], gradient_multipliers(one, True)))
    assert w1["heatmap_out/kernel"] == 4.0 and w1["stage1_conv1/kernel"] == 1.0  # TAO: ".*out" layers ×4


def test_multipliers_scale_the_update(model3):
    """SGD (lr 1, no momentum) moves each variable by −multiplier × gradient."""
    variables = model3.trainable_variables
    x = np.random.default_rng(0).normal(size=(1, 16, 16, 3)).astype(np.float32)
    with tf.GradientTape() as tape:
        loss = tf.add_n([tf.reduce_sum(tf.square(o)) for o in model3(x, training=False)])
    grads = tape.gradient(loss, variables)
    mult = gradient_multipliers(model3, use_stagewise=True)
    before = [np.asarray(v).copy() for v in variables]
    opt = keras.optimizers.SGD(learning_rate=1.0)
    opt.apply_gradients(zip(scale_gradients(grads, mult), variables))
    for v, b, g, m in zip(variables, before, grads, mult):
        np.testing.assert_allclose(np.asarray(v), b - m * np.asarray(g), rtol=1e-5, atol=1e-7)
    assert sorted(set(mult)) == [1.0, 2.0, 4.0, 8.0]
