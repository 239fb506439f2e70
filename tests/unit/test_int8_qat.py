"""Quantisation-aware training (:mod:`bpnet_core.int8`): the fake-quant arithmetic is ONNX Runtime's, the rebuilds
are exact, the QAT model saves and loads, and its QDQ file runs fully in INT8 on ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")


def _toy(seed: int = 0, elu: bool = False):
    """A small network with the shapes the real ones have: conv → ReLU layer, depthwise → 1×1 (no activation
    between), an outlier channel, ELU, a residual Add, a Concatenate, padding and max-pooling; two outputs."""
    rng = np.random.default_rng(seed)
    x = inp = keras.Input((None, None, 3), name="input_1")
    x = keras.layers.ZeroPadding2D(1, name="pad")(x)
    x = keras.layers.Conv2D(8, 3, strides=2, name="c0")(x)
    x = keras.layers.ReLU(name="c0_relu")(x)
    y = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw")(x)
    y = keras.layers.Conv2D(8, 1, activation="relu", name="pw")(y)
    z = keras.layers.Conv2D(8, 3, padding="same", activation="elu" if elu else "relu", name="c1")(y)
    z = keras.layers.Conv2D(8, 1, name="c2")(z)
    z = keras.layers.Add(name="add")([z, y])
    p = keras.layers.MaxPooling2D(1, name="pool")(x)
    c = keras.layers.Concatenate(name="cat")([z, p])
    h = keras.layers.Conv2D(4, 1, name="heat")(c)
    q = keras.layers.Conv2D(6, 1, name="paf")(c)
    model = keras.Model(inp, [h, q])
    for layer in model.layers:
        for v in layer.weights:
            v.assign(rng.normal(0, 0.3, v.shape).astype(np.float32))
    k = model.get_layer("c1").kernel.numpy()
    k[..., 3] *= 40.0  # an outlier output channel, as conv8_pw of human-pose-estimation-0001 has
    model.get_layer("c1").kernel.assign(k)
    return model


def _batches(n=3, hw=(32, 40), seed=1):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1, 1, (1, *hw, 3)).astype(np.float32) for _ in range(n)]


def _max_rel(a, b) -> float:
    return max(float(np.abs(np.asarray(x) - np.asarray(y)).max() / max(np.abs(np.asarray(x)).max(), 1e-9))
               for x, y in zip(a, b))  # fmt: skip


def test_activation_grid_is_onnx_runtimes():
    """Scale and zero point of a range are ONNX Runtime's ``compute_scale_zp`` for UINT8 (0 always representable),
    and the fake-quantised values lie on that grid, clipped to it."""
    from onnxruntime.quantization.quant_utils import compute_scale_zp

    from bpnet_core.int8.fakequant import activation_scale_zero_point, fake_quant_activation

    for lo, hi in [(0.0, 6.3), (-1.16, 1.31), (-11.4, 4.93), (0.5, 3.0), (-2.0, -0.25), (0.0, 1e-3)]:
        zp, scale = compute_scale_zp(
            np.array(lo, np.float32), np.array(hi, np.float32), np.array(0, np.uint8), np.array(255, np.uint8)
        )
        s, z = activation_scale_zero_point(lo, hi)
        assert z == int(zp) and s == pytest.approx(float(scale), rel=1e-6), (lo, hi)
        x = np.linspace(lo - 1, hi + 1, 997, dtype=np.float32)
        y = np.asarray(fake_quant_activation(x, np.array([lo, hi], np.float32)))
        q = y / s + z
        assert np.allclose(q, np.round(q), atol=1e-3) and q.min() >= -1e-3 and q.max() <= 255 + 1e-3
        inside = (x >= (0 - z) * s) & (x <= (255 - z) * s)
        assert np.abs(y - x)[inside].max() <= s / 2 + 1e-6


def test_weight_grid_is_onnx_runtimes_per_channel_symmetric():
    """Per-output-channel symmetric INT8 weights: the same values ONNX Runtime's quantiser writes."""
    from onnx import TensorProto
    from onnxruntime.quantization.quant_utils import quantize_data

    from bpnet_core.int8.fakequant import fake_quant_weight

    w = np.random.default_rng(2).normal(0, 0.2, (3, 3, 5, 7)).astype(np.float32)
    fq = np.asarray(fake_quant_weight(w, (0, 1, 2)))
    for c in range(7):
        out = quantize_data(w[..., c].ravel(), TensorProto.INT8, True)
        scale, q = float(np.asarray(out[-2])), np.asarray(out[-1]).astype(np.float32)
        assert np.allclose(fq[..., c].ravel(), q * scale, atol=1e-7)


def test_straight_through_gradient_is_zero_where_clipped():
    from bpnet_core.int8.fakequant import fake_quant_activation

    x = tf.constant(np.array([-3.0, -0.5, 0.2, 0.9, 5.0], np.float32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(fake_quant_activation(x, np.array([-1.0, 1.0], np.float32)))
    assert tape.gradient(y, x).numpy().tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_learned_range_moves_as_a_whole_toward_less_rounding_error():
    """``learn_range``: the range is trainable, its gradient (LSQ: rounding error and clipped values) keeps its
    direction, so a ReLU range's 0 stays 0 and a signed range keeps its zero point; a too-wide range shrinks and a
    too-narrow one grows under plain gradient descent on the quantisation error; saved and loaded with the flag."""
    from bpnet_core.int8.fakequant import QuantizeInput, activation_scale_zero_point

    rng = np.random.default_rng(0)
    x = rng.laplace(0.0, 1.0, (1, 32, 32, 4)).astype(np.float32)
    for start, shrinks in (([-40.0, 60.0], True), ([-0.3, 0.45], False)):
        layer = QuantizeInput(learn_range=True)
        layer(x)
        assert [v.name for v in layer.trainable_weights] == ["output_range"]
        layer.output_range.assign(np.array(start, np.float32))
        zero = activation_scale_zero_point(*start)[1]
        for _ in range(30):
            with tf.GradientTape() as tape:
                err = tf.reduce_mean(tf.square(layer(x, training=True) - x))
            g = tape.gradient(err, layer.output_range).numpy()
            parallel = abs(g[0] * start[1] - g[1] * start[0]) <= 1e-5 * np.linalg.norm(g) * np.linalg.norm(start)
            assert parallel
            layer.output_range.assign(layer.output_range.numpy() * (1.0 - 0.05 * np.sign(g @ np.array(start))))
        lo, hi = layer.output_range.numpy()
        assert (hi < start[1]) == shrinks and (lo < start[0]) != shrinks
        assert activation_scale_zero_point(lo, hi)[1] == zero
    relu = QuantizeInput(learn_range=True)
    relu(np.abs(x))
    relu.output_range.assign(np.array([0.0, 50.0], np.float32))
    with tf.GradientTape() as tape:
        err = tf.reduce_mean(tf.square(relu(np.abs(x), training=True) - np.abs(x)))
    assert tape.gradient(err, relu.output_range).numpy()[0] == 0.0
    assert QuantizeInput.from_config(relu.get_config()).learn_range
    assert not QuantizeInput().learn_range


def test_to_qat_places_quantisers_as_the_runtime_does_and_to_float_is_exact():
    """Names and weights survive; a convolution read by a ReLU layer leaves the quantiser to the ReLU; ELU is split
    off its convolution (the runtime runs it in float between two Q/DQ pairs); padding and pooling get none;
    :func:`to_float` gives the original function back bit for bit."""
    from bpnet_core.int8.fakequant import observers
    from bpnet_core.int8.qat import INPUT_QUANT, to_float, to_qat

    model = _toy(elu=True)
    qat = to_qat(model)
    assert set(observers(qat)) == {INPUT_QUANT, "c0_relu", "dw", "pw", "c1", "c1_act", "c2", "add", "cat", "heat",
                                   "paf"}  # fmt: skip
    assert [t._keras_history.operation.name for t in qat.outputs] == ["heat", "paf"]
    back = to_float(qat)
    x = _batches(1)[0]
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(model(x), back(x)))


def test_qat_model_saves_and_loads_in_safe_mode_with_its_ranges(tmp_path):
    from bpnet_core.int8.fakequant import is_qat_model, observers
    from bpnet_core.int8.qat import calibrate_ranges, to_qat
    from bpnet_core.model import load_bpnet_model

    qat = to_qat(_toy(elu=True))
    ranges = calibrate_ranges(qat, _batches())
    assert all(hi > lo for lo, hi in ranges.values())
    qat.save(tmp_path / "q.keras")
    again = load_bpnet_model(tmp_path / "q.keras")
    assert is_qat_model(again)
    assert {n: tuple(float(v) for v in layer.output_range.numpy()) for n, layer in observers(again).items()} == ranges
    x = _batches(1, seed=5)[0]
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(qat(x), again(x)))


def test_observers_follow_a_moving_min_max_in_training_only():
    from bpnet_core.int8.fakequant import QuantizeInput

    layer = QuantizeInput(momentum=0.75)
    x = np.linspace(-2.0, 3.0, 64, dtype=np.float32).reshape(1, 4, 4, 4)
    layer(x)
    layer.output_range.assign(np.array([-1.0, 1.0], np.float32))
    layer(4 * x, training=False)
    assert layer.output_range.numpy().tolist() == [-1.0, 1.0]
    y = np.asarray(layer(x, training=True))
    assert layer.output_range.numpy() == pytest.approx([0.75 * -1 + 0.25 * -2, 0.75 * 1 + 0.25 * 3])
    assert y.max() <= 1.5 + 1e-6  # quantised on the updated range


def test_fold_batch_norm_is_exact():
    from bpnet_core.int8.qat import fold_batch_norm
    from bpnet_core.model import build_model

    model = build_model({"stages": 2, "width_multiplier": 0.25})
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(size=layer.moving_mean.shape).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.5, 2, size=layer.moving_variance.shape).astype(np.float32))
            layer.gamma.assign(rng.normal(size=layer.gamma.shape).astype(np.float32))
    folded, names = fold_batch_norm(model)
    assert names and not any(isinstance(x, keras.layers.BatchNormalization) for x in folded.layers)
    x = rng.uniform(-0.5, 0.5, (2, 64, 64, 3)).astype(np.float32)
    assert _max_rel(model(x), folded(x)) < 1e-5


def test_channel_equalisation_is_exact_and_tames_the_outlier_channel():
    """Cross-layer equalisation changes no output (ReLU commutes with a positive scale) and shrinks the spread of
    the tensors it rescales: here ``c1``'s outlier channel, the depthwise output read by ``pw``, and ``c0``'s output,
    read by ``dw`` directly and by the output convolutions through max-pooling and a concatenation (at an offset);
    tensors read by an Add, and the outputs, are left alone."""
    from bpnet_core.int8.qat import equalize_channels

    model = _toy()
    x = _batches(1, seed=3)[0]
    before = [np.asarray(o) for o in model(x)]
    report = equalize_channels(model, _batches())
    assert set(report) == {"c0", "dw", "c1"}
    assert _max_rel(before, model(x)) < 1e-5
    assert report["c1"][1] < report["c1"][0] / 4
    # `cat` joins c0's channels (rescalable, via max-pooling) with `add` (not): one grid for both, so c0's peak is
    # brought down to add's instead of spending the concatenation's levels on itself
    probe = keras.Model(model.inputs[0], [model.get_layer("c0_relu").output, model.get_layer("add").output])
    peaks = np.max([[np.abs(np.asarray(o)).max() for o in probe(b)] for b in _batches()], axis=0)
    assert peaks[0] <= peaks[1] * (1 + 1e-5), peaks


def test_mse_calibration_clips_long_tails_and_minmax_keeps_the_extremes():
    """``mse`` picks, per tensor, the clip of its min/max with the least rounding + clipping error: a long-tailed
    (Laplace) tensor gets a range inside its extremes, a uniform one keeps them; ``minmax`` keeps them always; an
    unknown method is a one-line error."""
    from bpnet_core.errors import BpnetError
    from bpnet_core.int8.qat import _quantisation_error, calibrate_ranges, mse_clip_factor, to_qat

    rng = np.random.default_rng(0)
    tail = rng.laplace(0, 1, 200000)
    f = mse_clip_factor(tail, tail.min(), tail.max())
    assert f < 0.95
    assert _quantisation_error(tail, f * tail.min(), f * tail.max()) < _quantisation_error(tail, tail.min(), tail.max())
    flat = rng.uniform(-1, 1, 200000)
    assert mse_clip_factor(flat, flat.min(), flat.max()) == 1.0
    qat_mm, qat_mse = to_qat(_toy()), to_qat(_toy())
    mm = calibrate_ranges(qat_mm, _batches(), method="minmax")
    mse = calibrate_ranges(qat_mse, _batches())
    assert all(mse[k][0] >= mm[k][0] - 1e-6 and mse[k][1] <= mm[k][1] + 1e-6 for k in mm)
    with pytest.raises(BpnetError, match="calibration method must be one of mse, minmax"):
        calibrate_ranges(qat_mm, _batches(), method="percentile")


def test_qdq_file_runs_fully_int8_on_onnx_runtime(tmp_path):
    """The QDQ file of a QAT model: every Conv has INT8 weights, ONNX Runtime's optimiser fuses every one into
    QLinearConv (no float Conv, no DequantizeLinear feeding a Conv), each tensor's scale and zero point are the
    QAT model's, and the file computes what the QAT model computes (to within the runtime's rounding)."""
    import onnx
    import onnxruntime as ort

    from bpnet_core.export.onnx import keras_to_onnx
    from bpnet_core.int8.qat import calibrate_ranges, equalize_channels, to_float, to_qat
    from bpnet_core.int8.qdq import grid_mismatches, map_ranges, qdq_from_qat

    model = _toy()
    batches = _batches(6)
    equalize_channels(model, batches)
    qat = to_qat(model)
    calibrate_ranges(qat, batches, method="minmax")  # the extremes: no clipping, so the tolerance below is rounding
    float_model = to_float(qat)
    proto = keras_to_onnx(float_model, (32, 40))
    report = qdq_from_qat(qat, float_model, proto, batches[0], tmp_path / "q.onnx")
    assert report["float_convs"] == [] and report["grid_mismatches"] == []
    assert grid_mismatches(tmp_path / "q.onnx", map_ranges(proto, qat, float_model, batches[0])) == []
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    sess = ort.InferenceSession(str(tmp_path / "q.onnx"), so, providers=["CPUExecutionProvider"])
    opt = onnx.load(str(tmp_path / "opt.onnx"))
    ops = [n.op_type for n in opt.graph.node]
    dq_out = {o for n in opt.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    assert ops.count("QLinearConv") == 7 and "Conv" not in ops, sorted(set(ops))
    assert not [n for n in opt.graph.node if n.op_type in ("Conv", "FusedConv") and n.input[0] in dq_out]
    x = batches[1]
    got = sess.run(None, {sess.get_inputs()[0].name: x})
    want = [np.asarray(o) for o in qat(x)]
    names = [o.name for o in sess.get_outputs()]
    for name, w in zip(["heat", "paf"], want):
        g = got[names.index(name)]
        step = (w.max() - min(w.min(), 0)) / 255
        assert np.abs(g - w).max() <= 4 * step and np.mean(np.abs(g - w) > step / 2) < 0.05


def test_relative_adam_steps_scale_with_the_weights():
    """The same gradient moves a kernel slice 1000× larger by a 1000× larger step: the rate is a relative change,
    so rescaling channels (which changes nothing in the function) changes nothing in the training either."""
    from bpnet_core.train.optimizers import RelativeAdam

    small = keras.Variable(np.full((3, 3, 2, 2), 1e-3, np.float32))
    large = keras.Variable(np.full((3, 3, 2, 2), 1.0, np.float32))
    opt = RelativeAdam(learning_rate=1e-2)
    opt.build([small, large])
    g = np.ones((3, 3, 2, 2), np.float32)
    opt.apply_gradients([(g, small), (g, large)])
    step_small, step_large = 1e-3 - small.numpy(), 1.0 - large.numpy()
    assert np.allclose(step_small, 1e-5, rtol=1e-3) and np.allclose(step_large, 1e-2, rtol=1e-3)
    # a learned quantisation range moves range_rate times faster, still relative to its own size
    rng = keras.Variable(np.array([-2.0, 4.0], np.float32), name="output_range")
    opt = RelativeAdam(learning_rate=1e-4)
    opt.build([rng])
    opt.apply_gradients([(np.array([1.0, -1.0], np.float32), rng)])
    assert np.allclose(rng.numpy(), [-2.0 * (1 + 1e-4 * opt.range_rate), 4.0 * (1 + 1e-4 * opt.range_rate)], rtol=1e-4)


def test_bench_int8_table_names_the_cpu_and_the_ratios():
    from bpnet_core.benchmarks.int8 import markdown

    figures = [("FP32", 300.0, 0.496, 0.0, 1.0, 0.5), ("INT8 QAT", 110.0, 0.494, 0.002, 2.73, 1.27)]
    rows = [{"network": "hpe", "runtime": "ORT", "variant": v, "ms": ms, "AP": ap, "ap_drop": d, "speedup": s,
             "of_ptq_speedup": p} for v, ms, ap, d, s, p in figures]  # fmt: skip
    text = markdown({"cpu": "AMD EPYC", "cpu_flags": ["avx2", "avx512_vnni"], "rows": rows})
    assert "AMD EPYC (avx2, avx512_vnni)" in text and "| INT8 QAT" in text and "2.73×" in text and "+0.002" in text
