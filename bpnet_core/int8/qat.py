"""Quantisation-aware models: a bpnet Keras model rebuilt with the fake-quant layers of
:mod:`bpnet_core.int8.fakequant` (:func:`to_qat`), its ranges calibrated on photos (:func:`calibrate_ranges`), and
back to plain Keras layers with the fine-tuned weights (:func:`to_float`; the ranges go to the exported file).

>>> qat = to_qat(model)                      # same layer names, same weights, quantisers everywhere
>>> calibrate_ranges(qat, batches)           # each quantised tensor's range on calibration photos
>>> plain = to_float(qat)                    # Conv2D & co. again, for tf2onnx; ranges: observed_ranges(qat)

Before the quantisers go in, two exact float rewrites make the network easier to quantise
(:func:`bpnet_core.int8.finetune.prepare_qat` runs both):
batch normalisation after a convolution is folded into it (the runtime folds it too, so the weights it rounds are
the folded ones), and each convolution read only by convolutions gets its channels rescaled
(:func:`equalize_channels`: without it, per-tensor UINT8 spends its levels on a few outlier channels; see
:mod:`bpnet_core.int8.ptq_real`).
"""

from __future__ import annotations

import numpy as np

from bpnet_core.errors import BpnetError
from bpnet_core.int8.fakequant import (
    ACTIVATION_LEVELS,
    DEFAULT_MOMENTUM,
    FLOAT,
    QUANTISED,
    QActivation,
    QuantizeInput,
    activation_scale_zero_point,
    observers,
)

#: Layers that pass their input's grid on unchanged (no quantiser of their own).
PASS_THROUGH = ("ZeroPadding2D", "MaxPooling2D", "Dropout")
#: Name suffix of the activation split off a convolution whose activation is not ReLU (ELU …).
ACTIVATION_SUFFIX = "_act"
#: Name of the input quantiser layer.
INPUT_QUANT = "input_quant"


def _nodes(model) -> list:
    """The model's layer calls in graph order (inputs first), input layers left out."""
    depths = model._nodes_by_depth  # noqa: SLF001 - Keras 3 functional internals, as in prune.graph
    nodes = [n for d in sorted(depths, reverse=True) for n in depths[d]]
    return [n for n in nodes if n.operation is not None and not n.is_input]


def _readers(nodes) -> dict[int, list]:
    out: dict[int, list] = {}
    for node in nodes:
        for t in node.input_tensors:
            out.setdefault(id(t), []).append(node.operation)
    return out


def _activation_name(layer) -> str:
    act = getattr(layer, "activation", None)
    return getattr(act, "__name__", str(act)) if act is not None else "linear"


def _rebuild(model, convert, copy_weights: bool = True) -> keras.Model:  # noqa: F821
    """A new functional model: ``convert(layer, node)`` returns the layers (one, or a chain) replacing each call;
    the first of each chain takes the replaced layer's weights (``copy_weights``), in order."""
    import keras

    src = model.inputs[0]
    inp = keras.Input(batch_shape=tuple(src.shape), name=model.layers[0].name, dtype=src.dtype)
    tensors = {id(src): inp}
    start = convert(None, None)
    if start:
        tensors[id(src)] = start[0](inp)
    made = []
    for node in _nodes(model):
        args, kwargs = node.arguments.fill_in(tensors)
        chain = convert(node.operation, node)
        y = chain[0](*args, **kwargs)
        for extra in chain[1:]:
            y = extra(y)
        made.append((node.operation, chain))
        tensors[id(node.outputs[0])] = y
    new = keras.Model(inp, [tensors[id(o)] for o in model.outputs], name=model.name)
    for old, chain in made if copy_weights else ():
        for var_old, var_new in zip(old.weights, chain[0].weights):
            var_new.assign(var_old)
    return new


def fold_batch_norm(model) -> tuple[keras.Model, list[str]]:  # noqa: F821
    """``model`` with every BatchNormalization that directly follows a linear convolution (its only reader)
    folded into that convolution's weights and bias (exact in inference mode). Returns (model, folded BN names)."""
    import keras

    nodes = _nodes(model)
    readers = _readers(nodes)
    producer = {id(n.outputs[0]): n.operation for n in nodes}
    folds: dict[str, object] = {}  # conv name -> its BN
    for node in nodes:
        bn = node.operation
        if type(bn) is not keras.layers.BatchNormalization:
            continue
        conv = producer.get(id(node.input_tensors[0]))
        convolution = type(conv) in (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)
        if (convolution and _activation_name(conv) == "linear" and len(readers.get(id(node.input_tensors[0]), [])) == 1
                and bn.axis in (-1, [-1], [3], 3)):  # fmt: skip
            folds[conv.name] = bn
    if not folds:
        return model, []
    skipped = {bn.name for bn in folds.values()}

    def convert(layer, node):
        if layer is None:
            return []
        if layer.name in skipped:
            return [_Identity()]
        cfg = layer.get_config()
        if layer.name in folds:
            cfg["use_bias"] = True
        return [type(layer).from_config(cfg)]

    new = _rebuild(model, convert, copy_weights=False)
    for layer in model.layers:
        if layer.name in skipped or not layer.weights or type(layer) is keras.layers.InputLayer:
            continue
        target = new.get_layer(layer.name)
        if layer.name not in folds:
            target.set_weights(layer.get_weights())
            continue
        bn = folds[layer.name]
        gamma = np.asarray(bn.gamma) if bn.scale else 1.0
        beta = np.asarray(bn.beta) if bn.center else 0.0
        factor = gamma / np.sqrt(np.asarray(bn.moving_variance) + bn.epsilon)
        kernel = np.asarray(layer.kernel)
        bias = np.asarray(layer.bias) if layer.use_bias else np.zeros(kernel.shape[-1] * (
            kernel.shape[-2] if type(layer) is keras.layers.DepthwiseConv2D else 1), np.float32)  # fmt: skip
        if type(layer) is keras.layers.DepthwiseConv2D:
            k = kernel * factor.reshape(kernel.shape[2], kernel.shape[3])
        else:
            k = kernel * factor
        target.set_weights(
            [k.astype(np.float32), ((bias - np.asarray(bn.moving_mean)) * factor + beta).astype(np.float32)]
        )
    return new, sorted(skipped)


#: Layers between a convolution and its readers that a positive per-channel scale passes through unchanged.
SCALE_TRANSPARENT = ("ReLU", "ZeroPadding2D", "MaxPooling2D")


def _scalable_pairs(model) -> list[tuple[object, list, bool]]:
    """``(producer, [(reader, channel offset)], rectified)``: each convolution whose output is read, through ReLU,
    zero padding, max-pooling and channel concatenations only, by convolutions only (never a model output or an
    Add): scaling its output channel ``c`` by ``1 / s_c`` and each reader's input channel ``offset + c`` by ``s_c``
    leaves the network's function unchanged. ``rectified``: a ReLU (fused, or its only reader) comes first."""
    import keras

    conv_types = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)
    nodes = _nodes(model)
    readers = _readers(nodes)
    outputs = {id(t) for t in model.outputs}
    by_layer = {id(n.operation): n for n in nodes}
    pairs = []
    for node in nodes:
        conv = node.operation
        if type(conv) not in conv_types or _activation_name(conv) not in ("linear", "relu"):
            continue
        if type(conv) is keras.layers.DepthwiseConv2D and conv.depth_multiplier != 1:
            continue
        direct = readers.get(id(node.outputs[0]), [])
        via_relu = bool(direct) and all(type(u).__name__ == "ReLU" for u in direct)
        rectified = _activation_name(conv) == "relu" or via_relu
        frontier, users, ok = [(node.outputs[0], 0)], [], True
        while frontier and ok:
            t, offset = frontier.pop()
            if id(t) in outputs or not readers.get(id(t)):
                ok = False
                break
            for user in readers[id(t)]:
                kind = type(user).__name__
                if kind in SCALE_TRANSPARENT:
                    frontier.append((by_layer[id(user)].outputs[0], offset))
                elif kind == "Concatenate" and user.axis in (-1, 3):
                    ins = by_layer[id(user)].input_tensors
                    at = next(k for k, x in enumerate(ins) if x is t)
                    frontier.append((by_layer[id(user)].outputs[0], offset + sum(int(x.shape[-1]) for x in ins[:at])))
                elif type(user) in conv_types and getattr(user, "groups", 1) == 1 and (
                        type(user) is keras.layers.Conv2D or user.depth_multiplier == 1):  # fmt: skip
                    users.append((user, offset))
                else:
                    ok = False
        if ok and users:
            pairs.append((conv, users, rectified))
    return pairs


def _reader_absmax(layer) -> np.ndarray:
    """Absolute maximum of ``layer``'s weights per input channel."""
    k = np.abs(np.asarray(layer.kernel))
    return k.max(axis=(0, 1, 3))


def equalize_channels(model, batches, alpha: float = 0.5) -> dict:
    """Rescale, in place and exactly in float, the output channels of every convolution whose readers are
    convolutions (through ReLU, padding, max-pooling or concatenations, :func:`_scalable_pairs`): channel ``c`` of
    the producer's weights and bias is divided by ``s_c`` and input channel ``c`` of every reader's weights (at its
    offset) multiplied by it, with
    ``s_c = r_act^α / r_w^(1−α)`` normalised to a geometric mean of 1 (``r_act``: the channel's absolute maximum on
    ``batches``; ``r_w``: the readers' weights' for that channel). Per-tensor UINT8 then no longer spends its 255
    levels on one outlier channel: human-pose-estimation-0001's ``conv8_pw`` has a channel 1,180 high, 50× its
    neighbours; ``mobilenet_thin``'s depthwise outputs reach 540× their median channel. (Cross-layer equalisation,
    Nagel et al. 2019; ReLU commutes with a positive scale.) Producers that share a concatenation with tensors no
    rescaling reaches are scaled down further to those tensors' size (:func:`_concat_balance`). Returns
    ``{producer: (spread before, after)}``, the spread being the largest channel range over the median one."""
    import keras

    if not 0.0 < alpha <= 1.0:
        raise BpnetError(f"alpha must be in (0, 1] (got {alpha})")
    pairs = _scalable_pairs(model)
    if not pairs:
        return {}
    probe = keras.Model(model.inputs[0], [conv.output for conv, _, _ in pairs])
    r_act: list = [None] * len(pairs)
    for b in batches:
        outs = probe(np.asarray(b, np.float32), training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for i, o in enumerate(outs):
            o = np.asarray(o)
            m = (np.maximum(o, 0) if pairs[i][2] else np.abs(o)).max(axis=(0, 1, 2))  # a ReLU keeps the positive part
            r_act[i] = m if r_act[i] is None else np.maximum(r_act[i], m)
    report, scales = {}, {}
    for (conv, users, _), act in zip(pairs, r_act):
        act = np.maximum(act.astype(np.float64), 1e-8)
        n = len(act)
        r_w = np.maximum(np.max([_reader_absmax(u)[o : o + n] for u, o in users], axis=0).astype(np.float64), 1e-8)
        scale = act**alpha / r_w ** (1.0 - alpha)
        scales[conv.name] = (scale / np.exp(np.mean(np.log(scale))), act)
    peaks = {k: float((a / s).max()) for k, (s, a) in scales.items()}
    for name, factor in _concat_balance(model, pairs, peaks, batches).items():
        scales[name] = (scales[name][0] * factor, scales[name][1])
    for conv, users, _ in pairs:
        scale, act = scales[conv.name]
        n = len(act)
        k = np.asarray(conv.kernel)
        shape = (1, 1, -1, 1) if type(conv) is keras.layers.DepthwiseConv2D else (1, 1, 1, -1)
        conv.kernel.assign((k / scale.reshape(shape)).astype(np.float32))
        if conv.use_bias:
            conv.bias.assign((np.asarray(conv.bias) / scale).astype(np.float32))
        for u, o in users:
            k = np.asarray(u.kernel).copy()
            k[:, :, o : o + n, :] *= scale[None, None, :, None]
            u.kernel.assign(k.astype(np.float32))
        after = act / scale
        report[conv.name] = (float(act.max() / np.median(act)), float(after.max() / np.median(after)))
    return report


def _concat_balance(model, pairs, peak_after: dict, batches) -> dict[str, float]:
    """``{producer: factor}``: an extra scale for the producers of :func:`_scalable_pairs` that meet, in a
    concatenation, tensors no rescaling can reach (a stage's maps, which are model outputs): a concatenation is
    quantised on one grid, so the rescaled producers' peak (``peak_after``) is brought down to the others' absolute
    maximum on ``batches``. ``mobilenet_thin``: its 864 feature channels (peak 35) shared each refinement stage's
    input with the previous stage's maps (±1.2), which got 8 levels each; balanced, the maps get ~210 and the features
    keep half of theirs (Keras simulation on the 36 photos: AP 0.122 → 0.189 before any training)."""
    import keras

    nodes = _nodes(model)
    by_layer = {id(n.operation): n for n in nodes}
    producers = {conv.name for conv, _, _ in pairs}

    def sources(t) -> list:
        op = t._keras_history.operation
        node = by_layer.get(id(op))
        if node is None:
            return [op]
        if type(op).__name__ in SCALE_TRANSPARENT:
            return sources(node.input_tensors[0])
        if type(op).__name__ == "Concatenate":
            return [s for x in node.input_tensors for s in sources(x)]
        return [op]

    mixed = []
    for node in nodes:
        if type(node.operation).__name__ != "Concatenate":
            continue
        groups = [sources(t) for t in node.input_tensors]
        scalable = [all(s.name in producers for s in g) for g in groups]
        if any(scalable) and not all(scalable):
            fixed = [t for t, ok in zip(node.input_tensors, scalable) if not ok]
            mixed.append(({s.name for g, ok in zip(groups, scalable) if ok for s in g}, fixed))
    if not mixed:
        return {}
    probe = keras.Model(model.inputs[0], [t for _, fixed in mixed for t in fixed])
    peaks = np.zeros(len(probe.outputs))
    for b in batches:
        outs = probe(np.asarray(b, np.float32), training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        peaks = np.maximum(peaks, [float(np.abs(np.asarray(o)).max()) for o in outs])
    factors: dict[str, float] = {}
    at = 0
    for names, fixed in mixed:
        other = max(float(peaks[at : at + len(fixed)].max()), 1e-8)
        at += len(fixed)
        top = max(peak_after[n] for n in names)
        for n in names:
            factors[n] = max(factors.get(n, 1.0), top / other)
    return {n: f for n, f in factors.items() if f > 1.0}


def _config(layer, drop=("quantize_output", "momentum", "learn_range")) -> dict:
    return {k: v for k, v in layer.get_config().items() if k not in drop}


def to_qat(model, momentum: float = DEFAULT_MOMENTUM, learn_range: bool = False) -> keras.Model:  # noqa: F821
    """``model`` rebuilt with fake-quant layers (see :mod:`bpnet_core.int8.fakequant` for where they sit).

    Layers keep their names and weights; a convolution whose activation is not ReLU becomes the linear convolution
    plus a ``QActivation`` named ``<name>_act``. Layers other than convolutions, ReLU/Activation, Add, Concatenate,
    padding and max-pooling are refused (fold batch norm first: :func:`fold_batch_norm`)."""
    import keras

    nodes = _nodes(model)
    readers = _readers(nodes)

    def convert(layer, node):
        if layer is None:
            return [QuantizeInput(momentum=momentum, learn_range=learn_range, name=INPUT_QUANT)]
        kind = type(layer).__name__
        if kind in PASS_THROUGH:
            return [type(layer).from_config(layer.get_config())]
        cls = QUANTISED.get(type(layer))
        if cls is None:
            raise BpnetError(
                f"QAT: layer {layer.name!r} ({kind}) cannot be quantised (supported: convolutions, "
                f"ReLU, Activation, Add, Concatenate, padding, max-pooling; fold batch norm first)"
            )
        cfg = _config(layer)
        act = _activation_name(layer) if kind in ("Conv2D", "DepthwiseConv2D") else None
        if act not in (None, "linear", "relu"):  # the runtime fuses only ReLU: other activations run in float
            cfg["activation"] = "linear"
            return [cls(**cfg, quantize_output=True, momentum=momentum, learn_range=learn_range),
                    QActivation(act, name=layer.name + ACTIVATION_SUFFIX, momentum=momentum,
                                learn_range=learn_range)]  # fmt: skip
        users = readers.get(id(node.outputs[0]), [])
        feeds_relu = act == "linear" and len(users) == 1 and type(users[0]) is keras.layers.ReLU
        return [cls(**cfg, quantize_output=not feeds_relu, momentum=momentum, learn_range=learn_range)]

    return _rebuild(model, convert)


def to_float(qat_model) -> keras.Model:  # noqa: F821
    """The QAT model with plain Keras layers again (same names and weights, no quantisers): what is exported to
    ONNX before the quantisation of :mod:`bpnet_core.int8.qdq` puts the ranges back."""

    def convert(layer, node):
        if layer is None:
            return []
        if isinstance(layer, QuantizeInput):
            return [_Identity()]
        base = FLOAT.get(type(layer))
        if base is None:
            return [type(layer).from_config(layer.get_config())]
        return [base.from_config(_config(layer))]

    return _rebuild(qat_model, convert)


class _Identity:
    """Stand-in for a removed layer (the input quantiser, a folded batch norm) while rebuilding: returns its input."""

    weights: list = []

    def __call__(self, x, *args, **kwargs):
        return x


def observed_ranges(qat_model) -> dict[str, tuple[float, float]]:
    """``{layer name: (r_min, r_max)}`` of every quantiser of ``qat_model``."""
    return {
        name: tuple(float(v) for v in np.asarray(layer.output_range)) for name, layer in observers(qat_model).items()
    }


def quantised_tensors(qat_model, float_model):
    """``(names, probe)``: the quantised layers' names and a model of ``float_model`` that outputs, for each, the
    float tensor its quantiser sees (the input itself for the input quantiser)."""
    import keras

    names = list(observers(qat_model))
    outs = [float_model.inputs[0] if n == INPUT_QUANT else float_model.get_layer(n).output for n in names]
    return names, keras.Model(float_model.inputs[0], outs)


#: Range calibration methods: ``mse`` (default) clips each tensor's min/max by the factor that minimises its
#: rounding + clipping error on the calibration photos; ``minmax`` keeps the extremes. Measured (Keras simulation,
#: 36 photos, before any training): ``mobilenet_thin`` 0.189 → 0.227, human-pose-estimation-0001 0.495 → 0.498.
CALIBRATION_METHODS = ("mse", "minmax")
#: Clip factors ``mse`` tries (of the observed min and max, both ends together).
MSE_CLIP_FACTORS = np.linspace(0.2, 1.0, 33)
#: Values sampled per tensor and photo for the ``mse`` search.
MSE_SAMPLES = 20000


def _quantisation_error(values: np.ndarray, r_min: float, r_max: float) -> float:
    """Mean squared error of ``values`` rounded to the UINT8 grid of ``[r_min, r_max]`` (clipped outside it)."""
    scale, zero = activation_scale_zero_point(r_min, r_max)
    q = np.clip(np.round(values / scale) + zero, 0, ACTIVATION_LEVELS)
    return float(np.mean(((q - zero) * scale - values) ** 2))


def mse_clip_factor(values: np.ndarray, r_min: float, r_max: float) -> float:
    """The factor of :data:`MSE_CLIP_FACTORS` whose range ``[f·r_min, f·r_max]`` rounds ``values`` with the least
    squared error (clipped values included)."""
    values = np.asarray(values, np.float64).ravel()
    errors = [_quantisation_error(values, r_min * f, r_max * f) for f in MSE_CLIP_FACTORS]
    return float(MSE_CLIP_FACTORS[int(np.argmin(errors))])


def calibrate_ranges(qat_model, batches, method: str = "mse", seed: int = 0) -> dict[str, tuple[float, float]]:
    """Set every quantiser's range from its tensor over ``batches`` (float model, so each range is what the
    unquantised network produces): min and max, clipped by ``method`` (:data:`CALIBRATION_METHODS`). Returns the
    ranges."""
    if method not in CALIBRATION_METHODS:
        raise BpnetError(f"calibration method must be one of {', '.join(CALIBRATION_METHODS)} (got {method!r})")
    if not batches:
        raise BpnetError("QAT needs calibration photos: none given")
    names, probe = quantised_tensors(qat_model, to_float(qat_model))
    lo = np.full(len(names), np.inf)
    hi = np.full(len(names), -np.inf)
    rng = np.random.default_rng(seed)
    samples: list[list] = [[] for _ in names]
    for b in batches:
        outs = probe(np.asarray(b, np.float32), training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for i, o in enumerate(outs):
            o = np.asarray(o)
            lo[i], hi[i] = min(lo[i], float(o.min())), max(hi[i], float(o.max()))
            if method == "mse":
                flat = o.ravel()
                samples[i].append(rng.choice(flat, min(flat.size, MSE_SAMPLES), replace=False))
    if method == "mse":
        for i in range(len(names)):
            best = mse_clip_factor(np.concatenate(samples[i]), lo[i], hi[i])
            lo[i], hi[i] = lo[i] * best, hi[i] * best
    layers = observers(qat_model)
    for i, n in enumerate(names):
        layers[n].output_range.assign(np.array([lo[i], hi[i]], np.float32))
    return observed_ranges(qat_model)
