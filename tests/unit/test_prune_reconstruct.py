"""``bpnet prune --selection least_squares --reconstruct --flops_ratio R``: channels chosen and readers refitted by
least squares on calibration photos, and the ``-pth`` that reaches a FLOPs ratio."""

from __future__ import annotations

import numpy as np
import pytest

from bpnet_core.model import build_model, model_meta
from bpnet_core.prune import prune_model
from bpnet_core.prune.activations import energy_order, threshold_for_flops
from bpnet_core.prune.graph import channel_groups
from bpnet_core.prune.reconstruct import refit_layer

from .test_prune_activation import FOLDED

#: Layers whose output channel 1 is made a copy of channel 0: stage 1's trunk (read by 1x1 convs) and the backbone's
#: last layer (the features, read by the 3x3 convs of both stages through their concatenations).
DUPLICATED = ("stage1_conv1", "conv6_pw")


@pytest.fixture(scope="module")
def redundant(pose):
    import keras

    keras.utils.set_random_seed(1)
    model = build_model(FOLDED, pose)
    for name in DUPLICATED:
        layer = model.get_layer(name)
        w = layer.get_weights()
        w[0][..., 1] = w[0][..., 0]
        w[1][1] = w[1][0]
        w[1] += 0.5 + np.abs(w[0]).sum(axis=(0, 1, 2))  # no channel is dead (a dead one would go for free too)
        layer.set_weights(w)
    meta = model_meta(model, pose).with_changes(inference={"input_shape": [64, 64]})
    return model, meta


def _worst(model, pruned, x):
    outs = [(np.asarray(a), np.asarray(b)) for a, b in zip(model(x), pruned(x), strict=True)]
    return max(float(np.max(np.abs(a - b)) / (np.max(np.abs(a)) + 1e-9)) for a, b in outs)


def _group(graph, producer):
    return next(g for g in graph.groups.values() if producer in g.producers)


def test_refit_layer_recovers_the_weights_of_an_unpruned_layer():
    """The receptive fields (kernel taps, stride, dilation, padding) line up with the kernel's layout: refitting a
    layer on its own input gives its weights back."""
    import keras

    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 13, 11, 5)).astype(np.float32)
    for kwargs in ({"kernel_size": 3, "dilation_rate": 2, "padding": "same"},
                   {"kernel_size": 3, "strides": 2, "padding": "valid"}, {"kernel_size": 1}):  # fmt: skip
        a = keras.layers.Conv2D(4, **kwargs)
        b = keras.layers.Conv2D(4, **kwargs)
        a.build(x.shape), b.build(x.shape)
        err = refit_layer(a, b, np.split(x, 3), np.split(x, 3), np.arange(4), ridge=0.0)
        assert err < 1e-4
        np.testing.assert_allclose(b.get_weights()[0], a.get_weights()[0], atol=1e-4)
        np.testing.assert_allclose(b.get_weights()[1], a.get_weights()[1], atol=1e-4)


def _twins_model():
    """conv ``a`` (6 channels, 3x3, ReLU on a positive level: no channel is dead) read by a 1x1 conv and a dilated
    3x3 conv; channel 1 of ``a`` copies channel 0 and channel 3 is twice channel 2."""
    import keras

    keras.utils.set_random_seed(3)
    inp = keras.Input((12, 12, 3))
    a = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="a")(inp)
    b = keras.layers.Conv2D(4, 1, name="b")(a)
    c = keras.layers.Conv2D(5, 3, padding="same", dilation_rate=2, name="c")(a)
    model = keras.Model(inp, [b, c])
    w = model.get_layer("a").get_weights()
    w[0][..., 1] = w[0][..., 0]
    w[0][..., 3] = 2 * w[0][..., 2]
    w[1][:] = 20.0
    w[1][3] = 40.0
    model.get_layer("a").set_weights(w)
    return model


def test_least_squares_order_removes_a_channel_its_twin_stands_in_for_first():
    from bpnet_core.prune.reconstruct import reader_grams, removal_order

    model = _twins_model()
    graph = channel_groups(model, [])
    batches = [np.random.default_rng(i).normal(size=(1, 12, 12, 3)).astype(np.float32) for i in range(4)]
    orders = removal_order(graph, model, reader_grams(model, ["b", "c"], batches))
    order, curve = orders[_group(graph, "a").id]
    first_two = {int(c) for c in order[:2]}
    assert len(first_two & {0, 1}) == 1 and len(first_two & {2, 3}) == 1, order  # one of each pair of twins
    assert curve[1] < 0.01  # nearly free: the twin stands in (the ridge costs a little)
    assert curve[2] > 20 * curve[1], curve  # the next one is not
    assert np.all(np.diff(curve[:-1]) >= 0)


@pytest.mark.slow
def test_readers_refitted_by_least_squares_make_up_for_the_removed_channels(redundant, pose):
    model, meta = redundant
    x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype(np.float32)
    kwargs = dict(pruning_threshold=0.02, pruning_granularity=1, min_num_filters=1, criterion="activation",
                  selection="least_squares", meta=meta, calibration_count=4, pose=pose)  # fmt: skip
    pruned, report = prune_model(model, reconstruct=True, **kwargs)
    for name in DUPLICATED:
        assert report["layers"][name]["after"] < report["layers"][name]["before"], name
    assert set(report["reconstruction"]["relative_error"]) >= {"stage1_paf_conv2", "stage1_conv1", "stage2_conv1"}
    refitted = _worst(model, pruned, x)
    assert refitted < 0.05
    # the same channels without the refit: only their mean comes back, the outputs move
    plain, _ = prune_model(model, reconstruct=False, **kwargs)
    assert _worst(model, plain, x) > 3 * refitted


@pytest.mark.slow
def test_flops_ratio_is_reached(redundant, pose):
    model, meta = redundant
    pruned, report = prune_model(model, pruning_granularity=1, min_num_filters=1, criterion="activation",
                                 flops_target=1.5, meta=meta, calibration_count=2, pose=pose)  # fmt: skip
    assert report["flops_ratio"] >= 1.5  # (above it where dead channels of this random network go for free)
    assert all(report["layers"][n]["after"] == report["layers"][n]["before"] for n in ("heatmap_stage1", "paf_stage1"))
    assert report["settings"]["flops_target"] == 1.5 and 0 < report["settings"]["pruning_threshold"] <= 1


def test_threshold_for_flops_is_the_smallest_bound_that_reaches_the_ratio():
    from bpnet_core.prune.activations import _layer_macs
    from bpnet_core.prune.channel_prune import retained_count
    from bpnet_core.prune.graph import ChannelGraph, ChannelGroup

    groups = {0: ChannelGroup(0, 8, ["a"]), 1: ChannelGroup(1, 8, ["b"]), 2: ChannelGroup(2, 4, ["c"])}
    groups[2].fixed.append("output")
    graph = ChannelGraph(groups=groups, inputs={"a": [], "b": [(0, 8)], "c": [(1, 8)]},
                         outputs={"a": [(0, 8)], "b": [(1, 8)], "c": [(2, 4)]},
                         layer_types={"a": "conv", "b": "conv", "c": "conv"})  # fmt: skip
    macs = {"a": 800, "b": 640, "c": 32000}
    errors = {0: np.sqrt(np.linspace(0.05, 1.0, 8)), 1: np.sqrt(np.linspace(0.01, 1.0, 8))}
    pth, counts = threshold_for_flops(graph, macs, errors, 1.5, lambda e, t: retained_count(e, t, 1, 1)[0])
    total = _layer_macs(graph, macs, {})
    assert total / _layer_macs(graph, macs, counts) >= 1.5
    assert counts == {g: retained_count(e, pth, 1, 1)[0] for g, e in errors.items()}
    below = {g: retained_count(e, pth - 1e-6, 1, 1)[0] for g, e in errors.items()}
    assert total / _layer_macs(graph, macs, below) < 1.5  # the smallest such bound
    assert _layer_macs(graph, macs, {0: 8, 1: 4}) == 800 + 320 + 16000  # readers scale with their kept inputs


def test_energy_order_puts_the_weakest_first():
    order, curve = energy_order({3: np.array([2.0, 0.5, 1.0])})[3]
    assert list(order) == [1, 2, 0]
    np.testing.assert_allclose(curve, np.cumsum([0.25, 1.0, 4.0]) / 5.25)
