"""The quantisation-aware training (QAT) layers: Keras 3 layers that compute in float what the INT8 runtime will
compute in integers, so that fine-tuning can learn weights that survive the rounding.

What is simulated is exactly ONNX Runtime's static QDQ quantisation (``QuantFormat.QDQ``, ``QUInt8`` activations,
``QInt8`` per-channel weights), which OpenVINO reads as FakeQuantize and TensorRT as explicit Q/DQ:

* **weights**, per output channel, symmetric: ``s_c = max|w_c| / 127``, ``q = clip(round(w / s_c), −127, 127)``
  (:func:`fake_quant_weight`; ``round`` is round-half-to-even, as in ``QuantizeLinear``);
* **activations**, per tensor, asymmetric UINT8 from a range ``[r_min, r_max]`` widened to hold 0:
  ``s = (r_max − r_min) / 255``, zero point ``z = round(−r_min / s)``, ``q = clip(round(x / s) + z, 0, 255)``
  (:func:`activation_scale_zero_point`, :func:`fake_quant_activation`); after a ReLU ``r_min = 0`` so ``z = 0``,
  which is what lets ONNX Runtime fuse the ReLU into the convolution.

Gradients pass straight through the rounding (the straight-through estimator) and are zero where a value is
clipped. The ranges are the **observers**: a ``(2,)`` variable ``[r_min, r_max]`` (:data:`RANGE_NAME`) per
quantised tensor, set from calibration photos (:func:`bpnet_core.int8.qat.calibrate_ranges`); with ``momentum`` < 1
they then follow an exponential moving average of each batch's min and max during training (the default, 1, keeps
the calibrated ranges: see :data:`DEFAULT_MOMENTUM`); with ``learn_range`` they are trainable instead (LSQ gradients,
:func:`fake_quant_activation`; ``momentum`` is then unused).

Where the quantisers sit mirrors where ONNX Runtime puts Q/DQ pairs: on the network input, on every convolution's
output (after a fused ReLU; before and after any other activation, which runs in float), on ReLU, Add and
Concatenate outputs. Padding and max-pooling keep their input's grid, so they need none. Each layer here is the
Keras layer it replaces plus its quantisers: the same name, the same weights, the same config plus
``quantize_output`` / ``momentum`` / ``learn_range``; a QAT model saved as ``.keras`` loads in safe mode once this
module is imported (:func:`bpnet_core.model.load_bpnet_model` imports it).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

#: Registered package name of the QAT layers (``.keras`` files name it in each layer's ``registered_name``).
PACKAGE = "bpnet_int8"
#: Default momentum of the moving min/max observers: 1 keeps the calibrated ranges. Measured on
#: human-pose-estimation-0001 (10 QAT steps, learning rate ~0): a moving min/max at 0.99 pulls the ranges toward
#: each 256×256 batch's extremes and costs AP 0.017 (0.492 → 0.475); clipping the rare large values is what hurts
#: (ranges at the 99.99th percentile: AP 0.33).
DEFAULT_MOMENTUM = 1.0
#: Name of each quantiser's range variable (``RelativeAdam`` gives it its own rate).
RANGE_NAME = "output_range"
#: INT8 weight levels each side of zero (symmetric, narrow range: −127 … 127).
WEIGHT_LEVELS = 127
#: UINT8 activation levels (0 … 255).
ACTIVATION_LEVELS = 255


def activation_scale_zero_point(r_min: float, r_max: float) -> tuple[float, int]:
    """ONNX Runtime's UINT8 scale and zero point of the range ``[r_min, r_max]`` (NumPy, float32 arithmetic)."""
    lo = np.float32(min(float(r_min), 0.0))
    hi = np.float32(max(float(r_max), 0.0))
    scale = np.float32((hi - lo) / np.float32(ACTIVATION_LEVELS))
    if not scale > 0:
        return 1.0, 0
    return float(scale), int(np.clip(np.round(-lo / scale), 0, ACTIVATION_LEVELS))


def _common_scale(value_range):
    """``value_range`` itself, but its gradient projected on its own direction: a learned range can only grow or
    shrink as a whole, so its zero point (0 after a ReLU) never moves."""
    fixed = ops.stop_gradient(value_range)
    norm = ops.maximum(ops.sum(fixed * fixed), 1e-30)
    return fixed * (ops.sum(value_range * fixed) / norm)


def fake_quant_activation(x, value_range, learned: bool = False):
    """``x`` rounded to the UINT8 grid of ``value_range`` (``[r_min, r_max]``), straight-through gradient.

    ``learned``: the range gets a gradient too (LSQ, Esser et al. 2020: through the rounding error and the clipped
    values), along its own direction only (:func:`_common_scale`)."""
    value_range = _common_scale(value_range) if learned else ops.stop_gradient(value_range)
    lo = ops.minimum(value_range[0], 0.0)
    hi = ops.maximum(value_range[1], 0.0)
    scale = (hi - lo) / float(ACTIVATION_LEVELS)
    scale = ops.where(scale > 0, scale, ops.ones_like(scale))
    zero = ops.stop_gradient(ops.clip(ops.round(-lo / scale), 0.0, float(ACTIVATION_LEVELS)))
    q = ops.clip(x / scale, -zero, float(ACTIVATION_LEVELS) - zero)
    return (q + ops.stop_gradient(ops.round(q) - q)) * scale


def fake_quant_weight(w, axes):
    """``w`` rounded to its per-output-channel INT8 grid (reduced over ``axes``), straight-through gradient."""
    scale = ops.max(ops.abs(w), axis=axes, keepdims=True) / float(WEIGHT_LEVELS)
    scale = ops.stop_gradient(ops.where(scale > 0, scale, ops.ones_like(scale)))
    q = ops.clip(ops.round(w / scale), -float(WEIGHT_LEVELS), float(WEIGHT_LEVELS))
    return w + ops.stop_gradient(q * scale - w)


class _Observed:
    """Mixin: a Keras layer plus an output quantiser with a moving min/max or learned range (``output_range``); the
    config gains ``quantize_output``, ``momentum`` and ``learn_range``."""

    def __init__(self, *args, quantize_output: bool = True, momentum: float = DEFAULT_MOMENTUM,
                 learn_range: bool = False, **kwargs):  # fmt: skip
        super().__init__(*args, **kwargs)
        self.quantize_output = bool(quantize_output)
        self.momentum = float(momentum)
        self.learn_range = bool(learn_range)
        self.output_range = None

    def build(self, input_shape):
        super().build(input_shape)
        if self.quantize_output:
            self.output_range = self.add_weight(name=RANGE_NAME, shape=(2,), initializer="zeros",
                                                trainable=self.learn_range)  # fmt: skip

    def _observe_and_quantize(self, x, training=None):
        if not self.quantize_output:
            return x
        if training and self.momentum < 1.0 and not self.learn_range:
            batch = ops.stack([ops.min(x), ops.max(x)])
            m = self.momentum
            self.output_range.assign(m * self.output_range + (1.0 - m) * ops.stop_gradient(batch))
        return fake_quant_activation(x, self.output_range, learned=self.learn_range)

    def get_config(self):
        config = super().get_config()
        config.update({"quantize_output": self.quantize_output, "momentum": self.momentum,
                       "learn_range": self.learn_range})  # fmt: skip
        return config


class _ConvObserved(_Observed):
    """Mixin for ``Conv2D``, whose saving stores only its kernel and bias: the range goes after them."""

    def save_own_variables(self, store):
        super().save_own_variables(store)
        if self.built and self.quantize_output:
            store[str(1 + int(self.use_bias))] = self.output_range

    def load_own_variables(self, store):
        super().load_own_variables(store)
        if self.built and self.quantize_output:
            self.output_range.assign(store[str(1 + int(self.use_bias))])


def _bias(layer, outputs, channels):
    if not layer.use_bias:
        return outputs
    shape = (1, 1, 1, channels) if layer.data_format == "channels_last" else (1, channels, 1, 1)
    return ops.add(outputs, ops.reshape(layer.bias, shape))


@keras.saving.register_keras_serializable(package=PACKAGE)
class QuantizeInput(_Observed, keras.layers.Layer):
    """The network input's quantiser (the first Q/DQ pair of the exported file)."""

    def call(self, inputs, training=None):
        return self._observe_and_quantize(inputs, training)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package=PACKAGE)
class QConv2D(_ConvObserved, keras.layers.Conv2D):
    """``Conv2D`` with per-channel INT8 weights and (``quantize_output``) a UINT8 output after its activation."""

    def call(self, inputs, training=None):
        outputs = _bias(self, self.convolution_op(inputs, fake_quant_weight(self.kernel, (0, 1, 2))), self.filters)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return self._observe_and_quantize(outputs, training)


@keras.saving.register_keras_serializable(package=PACKAGE)
class QDepthwiseConv2D(_Observed, keras.layers.DepthwiseConv2D):
    """``DepthwiseConv2D`` with per-channel INT8 weights and (``quantize_output``) a UINT8 output."""

    def call(self, inputs, training=None):
        kernel = fake_quant_weight(self.kernel, (0, 1))
        outputs = ops.depthwise_conv(inputs, kernel, strides=self.strides, padding=self.padding,
                                     dilation_rate=self.dilation_rate, data_format=self.data_format)  # fmt: skip
        outputs = _bias(self, outputs, int(self.kernel.shape[2]) * self.depth_multiplier)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return self._observe_and_quantize(outputs, training)


def _quantised_output_layer(base):
    """A subclass of the Keras layer ``base`` whose output is quantised (ReLU, Activation, Add, Concatenate)."""

    class Quantised(_Observed, base):
        def call(self, inputs, training=None):
            return self._observe_and_quantize(super().call(inputs), training)

    Quantised.__name__ = Quantised.__qualname__ = f"Q{base.__name__}"
    Quantised.__doc__ = f"``{base.__name__}`` with a UINT8 output (a moving min/max observer)."
    return keras.saving.register_keras_serializable(package=PACKAGE)(Quantised)


QReLU = _quantised_output_layer(keras.layers.ReLU)
QActivation = _quantised_output_layer(keras.layers.Activation)
QAdd = _quantised_output_layer(keras.layers.Add)
QConcatenate = _quantised_output_layer(keras.layers.Concatenate)

#: Keras layer class → its QAT class.
QUANTISED = {keras.layers.Conv2D: QConv2D, keras.layers.DepthwiseConv2D: QDepthwiseConv2D,
             keras.layers.ReLU: QReLU, keras.layers.Activation: QActivation, keras.layers.Add: QAdd,
             keras.layers.Concatenate: QConcatenate}  # fmt: skip
#: QAT class → the Keras layer class it quantises.
FLOAT = {v: k for k, v in QUANTISED.items()}


def observers(model) -> dict:
    """``{layer name: layer}`` of the layers of ``model`` that quantise their output."""
    return {layer.name: layer for layer in model.layers if getattr(layer, "quantize_output", False)}


def is_qat_model(model) -> bool:
    """Whether ``model`` holds QAT layers."""
    return any(isinstance(layer, _Observed) for layer in model.layers)
