"""Feature extractors at output stride 8: TAO's modified VGG19 and a light MobileNetV2 (MobileNetV1, the backbone of
the real networks, lives in :mod:`bpnet_core.model.mobilenet_v1`).

Both end with TAO's ``channel_reduction_conv`` (3×3, 128 × width, ReLU), so every backbone hands the stages the same
tensor: (N, H/8, W/8, C) with C = ``scaled(128, width)``.

``vgg`` (TAO ``VggNet(19, use_batch_norm=True, use_pooling=False, use_modified_vgg=True)``):

=========  ====================================  ===========================================================
block      layers (3×3 conv → BN → ReLU each)    notes
=========  ====================================  ===========================================================
block1     2 × 64                                stride 1
block2     2 × 128                               first conv has stride 2 (replaces VGG's max-pool)
block3     4 × 256                               first conv stride 2
block4     2 × 512                               first conv stride 2 → output stride 8
interface  ``interface_conv4_3`` 3×3-256         conv → BN → ReLU (OpenPose's conv4_3_CPM)
reduce     ``channel_reduction_conv`` 3×3-128    conv (+bias) → ReLU, no BN (TAO adds it after every backbone)
=========  ====================================  ===========================================================

Convolutions of the VGG blocks have no bias (BN follows). The conv layer names are Keras' ``VGG19`` names
(``block1_conv1`` …), so ImageNet kernels copy over by name when the widths match.

``mobilenet_v2``: MobileNetV2 (Sandler et al. 2018) cut at stride 8 the way DeepLabV3 does it: the stride-16 blocks
(64 and 96 channels, blocks 6–12) keep stride 1 and use dilation 2 instead, which keeps the receptive field of the
full network at stride 8. Layer names are those of ``keras.applications.MobileNetV2``, so its ImageNet weights copy
over by name. ReLU6 activations, BN after every conv, bias-free convs; 96 × width channels before the reduction conv.

``width_multiplier`` scales every filter count: ``max(8, round(c × width))`` for VGG and the stages, and
MobileNetV2's own rounding to a multiple of 8 for its blocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import keras

#: Channels that leave every backbone before the width multiplier is applied (TAO: 128).
FEATURE_CHANNELS = 128
#: Input pixels per output cell of every backbone.
OUTPUT_STRIDE = 8

#: VGG19 as TAO builds it: (block, number of convs, filters); each block after the first starts with stride 2.
VGG19_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 2, 512))
#: The conv after block 4 (OpenPose's conv4_3_CPM).
VGG_INTERFACE = ("interface_conv4_3", 256)

#: MobileNetV2 inverted residual blocks up to stride 8: (expansion t, output channels c, stride s, dilation d).
#: Blocks 6–12 are the stride-16 blocks of the classifier, run at stride 8 with dilation 2 (DeepLabV3 style).
MOBILENET_V2_BLOCKS = (
    (1, 16, 1, 1),
    (6, 24, 2, 1), (6, 24, 1, 1),
    (6, 32, 2, 1), (6, 32, 1, 1), (6, 32, 1, 1),
    (6, 64, 1, 2), (6, 64, 1, 2), (6, 64, 1, 2), (6, 64, 1, 2),
    (6, 96, 1, 2), (6, 96, 1, 2), (6, 96, 1, 2),
)  # fmt: skip


def scaled(channels: int, width: float) -> int:
    """Filter count after the width multiplier: ``max(8, round(channels × width))``."""
    return max(8, int(round(channels * float(width))))


def make_divisible(value: float, divisor: int = 8) -> int:
    """MobileNet's channel rounding: nearest multiple of ``divisor``, never below 90 % of ``value``."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


@dataclass
class LayerFactory:
    """Creates the convolutions of one model with the spec's initializer, regularisers and bias setting.

    ``kernel_initializer``: ``random_normal`` (N(0, 0.01), TAO's default), ``xavier`` (Glorot uniform) or
    ``he_normal``. ``regularization_type``: ``l1``, ``l2`` or ``l1_l2`` (both terms with the same factor); a factor of
    0 adds no regulariser. Biases start at 0.
    """

    kernel_initializer: str = "random_normal"
    regularization_type: str = "l1"
    kernel_regularization_factor: float = 0.0
    bias_regularization_factor: float = 0.0
    use_bias: bool = True
    _kernel_reg: Any = field(default=None, init=False, repr=False)
    _bias_reg: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:  # values checked once, by the model: block's schema (ModelConfig)
        self._kernel_reg = self._regularizer(self.kernel_regularization_factor)
        self._bias_reg = self._regularizer(self.bias_regularization_factor)

    def _regularizer(self, factor: float):
        factor = float(factor)
        if factor <= 0.0:
            return None
        if self.regularization_type == "l1":
            return keras.regularizers.L1(factor)
        if self.regularization_type == "l2":
            return keras.regularizers.L2(factor)
        return keras.regularizers.L1L2(l1=factor, l2=factor)

    def initializer(self):
        if self.kernel_initializer == "xavier":
            return keras.initializers.GlorotUniform()
        if self.kernel_initializer == "he_normal":
            return keras.initializers.HeNormal()
        return keras.initializers.RandomNormal(mean=0.0, stddev=0.01)

    def conv(
        self,
        filters: int,
        kernel_size: int,
        name: str,
        strides: int = 1,
        activation: str | None = None,
        use_bias: bool | None = None,
        dilation_rate: int = 1,
        padding: str = "same",
    ) -> keras.layers.Conv2D:
        bias = self.use_bias if use_bias is None else use_bias
        return keras.layers.Conv2D(
            filters,
            kernel_size,
            strides=strides,
            padding=padding,
            dilation_rate=dilation_rate,
            activation=activation,
            use_bias=bias,
            kernel_initializer=self.initializer(),
            bias_initializer="zeros",
            kernel_regularizer=self._kernel_reg,
            bias_regularizer=self._bias_reg if bias else None,
            name=name,
        )

    def depthwise(
        self,
        name: str,
        strides: int = 1,
        dilation_rate: int = 1,
        kernel_size: int = 3,
        use_bias: bool = False,
        activation: str | None = None,
        padding: str = "same",
    ) -> keras.layers.DepthwiseConv2D:
        return keras.layers.DepthwiseConv2D(
            kernel_size,
            strides=strides,
            padding=padding,
            dilation_rate=dilation_rate,
            activation=activation,
            use_bias=use_bias,
            depthwise_initializer=self.initializer(),
            bias_initializer="zeros",
            depthwise_regularizer=self._kernel_reg,
            bias_regularizer=self._bias_reg if use_bias else None,
            name=name,
        )


def _conv_bn_relu(x, f: LayerFactory, filters: int, name: str, strides: int = 1, use_bias: bool = False):
    x = f.conv(filters, 3, name, strides=strides, use_bias=use_bias)(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def vgg_backbone(x, f: LayerFactory, width: float = 1.0, use_bias: bool = False):
    """TAO's modified VGG19 (see the module docstring) + ``channel_reduction_conv``; stride 8."""
    for block, n, filters in VGG19_BLOCKS:
        for i in range(1, n + 1):
            strides = 2 if block > 1 and i == 1 else 1
            x = _conv_bn_relu(x, f, scaled(filters, width), f"block{block}_conv{i}", strides, use_bias)
    name, filters = VGG_INTERFACE
    x = _conv_bn_relu(x, f, scaled(filters, width), name, 1, use_bias)
    return f.conv(scaled(FEATURE_CHANNELS, width), 3, "channel_reduction_conv", activation="relu")(x)


def _inverted_residual(x, f: LayerFactory, block: int, expansion: int, out_ch: int, strides: int, dilation: int):
    """One MobileNetV2 block with ``keras.applications.MobileNetV2`` layer names (``block_{n}_…``)."""
    in_ch = x.shape[-1]
    prefix = f"block_{block}_" if block else "expanded_conv_"
    inputs = x
    if expansion != 1:
        x = f.conv(expansion * in_ch, 1, prefix + "expand", use_bias=False)(x)
        x = keras.layers.BatchNormalization(epsilon=1e-3, momentum=0.999, name=prefix + "expand_BN")(x)
        x = keras.layers.ReLU(6.0, name=prefix + "expand_relu")(x)
    x = f.depthwise(prefix + "depthwise", strides=strides, dilation_rate=dilation)(x)
    x = keras.layers.BatchNormalization(epsilon=1e-3, momentum=0.999, name=prefix + "depthwise_BN")(x)
    x = keras.layers.ReLU(6.0, name=prefix + "depthwise_relu")(x)
    x = f.conv(out_ch, 1, prefix + "project", use_bias=False)(x)
    x = keras.layers.BatchNormalization(epsilon=1e-3, momentum=0.999, name=prefix + "project_BN")(x)
    if strides == 1 and in_ch == out_ch:
        x = keras.layers.Add(name=prefix + "add")([inputs, x])
    return x


def mobilenet_v2_backbone(x, f: LayerFactory, width: float = 1.0):
    """MobileNetV2 at output stride 8 (dilated blocks 6–12) + ``channel_reduction_conv``."""
    x = f.conv(make_divisible(32 * width), 3, "Conv1", strides=2, use_bias=False)(x)
    x = keras.layers.BatchNormalization(epsilon=1e-3, momentum=0.999, name="bn_Conv1")(x)
    x = keras.layers.ReLU(6.0, name="Conv1_relu")(x)
    for block, (t, c, s, d) in enumerate(MOBILENET_V2_BLOCKS):
        x = _inverted_residual(x, f, block, t, make_divisible(c * width), s, d)
    return f.conv(scaled(FEATURE_CHANNELS, width), 3, "channel_reduction_conv", activation="relu")(x)


def build_backbone(x, f: LayerFactory, backbone, width: float = 1.0):
    """VGG or MobileNetV2 features by ``model.backbone_attributes`` (``backbone``, the validated block; MobileNetV1
    is built by :func:`bpnet_core.model.mobilenet_v1.mobilenet_v1_backbone`)."""
    if backbone.architecture == "vgg":
        return vgg_backbone(x, f, width, backbone.use_bias)
    return mobilenet_v2_backbone(x, f, width)
