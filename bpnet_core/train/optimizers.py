"""Optimisers and TAO's per-layer gradient weights.

``optimizer.__class_name__``:

* ``WeightedMomentumOptimizer`` (TAO): SGD with momentum (``momentum``, ``use_nesterov``) where each variable's
  gradient is multiplied by a weight before the update. Keras' SGD keeps the velocity in units of lr·gradient
  (``v ← m·v − lr·g``) where TF1's MomentumOptimizer kept it in gradient units; the two agree while the rate is
  constant.
* ``Adam`` (bpnet extension; the demo profile): ``keras.optimizers.Adam`` on the same schedule.
* ``RelativeAdam`` (bpnet extension; fine-tuning real networks, QAT): Adam whose step for each weight is the
  learning rate times the size of its kernel slice (:class:`RelativeAdam`), so the rate is a relative change.

Gradient weights are applied in the train step (:func:`scale_gradients`), not by a custom optimiser class:

* every variable starts at ``weight_default_value``;
* ``use_stagewise_lr_multipliers: true`` (TAO ``get_lr_multipiers``) sets conv kernels / biases of the backbone and
  stage 1 to ×1 / ×2, and of stages ≥ 2 and the final ``heatmap_out``/``paf_out`` layers to ×4 / ×8;
* ``grad_weights_dict`` entries override single variables; keys are variable paths (``stage2_conv1/kernel``, TAO's
  ``stage2/conv1/kernel:0`` spelling is accepted) or layer names (all variables of that layer).
"""

from __future__ import annotations

import logging

import keras

from bpnet_core.errors import BpnetError
from bpnet_core.int8.fakequant import RANGE_NAME
from bpnet_core.model.stages import FINAL_HEATMAP, FINAL_PAF, layer_stage

log = logging.getLogger(__name__)

OPTIMIZERS = ("WeightedMomentumOptimizer", "Adam", "RelativeAdam")


class RelativeAdam(keras.optimizers.Adam):
    """Adam with steps relative to the weights' own size: each weight's step is ``learning_rate`` times the RMS of
    its kernel slice (the spatial taps of one input→output channel pair; a bias: its magnitude, at least a tenth
    of the layer's RMS bias), times Adam's normalised direction.

    Why: Adam moves every weight by about ``learning_rate`` per step whatever its size. A network with batch norm
    folded into its convolutions, or whose channels were rescaled for INT8 (cross-layer equalisation), holds
    weights of very different sizes, so one rate is too small for some layers and destroys others (measured on
    human-pose-estimation-0001: 10 QAT steps of Adam at 1e-5 took AP 0.475 → 0.430). Rescaling a channel changes
    nothing here, as it changes nothing in the function."""

    #: Learning-rate multiplier of a learned quantisation range (a QAT layer's ``output_range``): a range has to
    #: move by tens of percent to find its clipping point, the weights by a fraction of a percent.
    range_rate = 100.0

    def update_step(self, gradient, variable, learning_rate):
        ops = keras.ops
        name = str(getattr(variable, "path", getattr(variable, "name", "")))
        if name.split(":")[0].endswith(RANGE_NAME):  # TF hands over its own variable: "…/output_range:0"
            learning_rate = ops.multiply(ops.cast(learning_rate, variable.dtype), self.range_rate)
        v = ops.convert_to_tensor(variable)
        if len(variable.shape) >= 3:
            scale = ops.sqrt(ops.mean(ops.square(v), axis=tuple(range(len(variable.shape) - 2)), keepdims=True))
            scale = ops.maximum(scale, 1e-3 * ops.sqrt(ops.mean(ops.square(v))) + 1e-12)
        else:
            scale = ops.maximum(ops.abs(v), 0.1 * ops.sqrt(ops.mean(ops.square(v))) + 1e-12)
        super().update_step(gradient, variable, ops.multiply(ops.cast(learning_rate, variable.dtype), scale))


def build_optimizer(opt_spec, learning_rate, mixed_precision: bool = False):
    """The Keras optimiser of ``optimizer`` (``__class_name__``) on ``learning_rate`` (a float or a schedule).

    ``opt_spec`` ``None`` means TAO's default: momentum SGD (0.9, no Nesterov)."""
    kind = getattr(opt_spec, "class_name", None) or "WeightedMomentumOptimizer"
    if kind == "WeightedMomentumOptimizer":
        opt = keras.optimizers.SGD(learning_rate=learning_rate, momentum=float(getattr(opt_spec, "momentum", 0.9)),
                                   nesterov=bool(getattr(opt_spec, "use_nesterov", False)))  # fmt: skip
    elif kind == "Adam":
        opt = keras.optimizers.Adam(learning_rate=learning_rate)
    elif kind == "RelativeAdam":
        opt = RelativeAdam(learning_rate=learning_rate)
    else:
        raise BpnetError(f"optimizer.__class_name__ must be one of {', '.join(OPTIMIZERS)} (got {kind!r})")
    if mixed_precision:
        opt = keras.optimizers.LossScaleOptimizer(opt)
    return opt


def _conv_layers(model: keras.Model):
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
            yield layer


def stagewise_multipliers(model: keras.Model) -> dict[str, float]:
    """TAO's stage-wise weights by variable path: backbone and stage 1 ×1 (kernels) / ×2 (biases); stages ≥ 2 and
    the final output layers ×4 / ×8. Only convolution variables are listed."""
    stages = max(1, len(model.outputs) // 2)
    out: dict[str, float] = {}
    for layer in _conv_layers(model):
        late = layer.name in (FINAL_HEATMAP, FINAL_PAF) or layer_stage(layer.name, stages) >= 2
        for var in layer.trainable_weights:
            is_bias = var.path.endswith("/bias")
            out[var.path] = (8.0 if is_bias else 4.0) if late else (2.0 if is_bias else 1.0)
    return out


def _normalise_key(key: str) -> str:
    key = str(key)
    if key.endswith(":0"):
        key = key[:-2]
    parts = key.split("/")
    if len(parts) > 2:  # TAO's "stage2/conv1/kernel" → our "stage2_conv1/kernel"
        key = "_".join(parts[:-1]) + "/" + parts[-1]
    return key


def gradient_multipliers(
    model: keras.Model,
    use_stagewise: bool = False,
    grad_weights_dict: dict | None = None,
    default: float = 1.0,
    variables=None,
) -> list[float]:
    """One weight per variable of ``variables`` (default ``model.trainable_variables``), in that order."""
    variables = list(model.trainable_variables if variables is None else variables)
    weights = {v.path: float(default) for v in variables}
    if use_stagewise:
        weights.update({k: v for k, v in stagewise_multipliers(model).items() if k in weights})
    if grad_weights_dict:
        by_layer: dict[str, list[str]] = {}
        for v in variables:
            by_layer.setdefault(v.path.rsplit("/", 1)[0], []).append(v.path)
        for key, value in grad_weights_dict.items():
            k = _normalise_key(key)
            if k in weights:
                weights[k] = float(value)
            elif k in by_layer:
                for path in by_layer[k]:
                    weights[path] = float(value)
            else:
                raise BpnetError(f"optimizer.grad_weights_dict: {key!r} names no variable or layer of the model")
    return [weights[v.path] for v in variables]


def scale_gradients(grads, multipliers):
    """``g · m`` per variable (``None`` gradients stay ``None``; weights of 1 are skipped)."""
    return [g if (g is None or m == 1.0) else g * m for g, m in zip(grads, multipliers)]
