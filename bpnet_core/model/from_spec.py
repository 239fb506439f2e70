"""The model a train spec asks for (:func:`model_from_spec`): a whole ``.keras`` graph, TAO 5 ``.hdf5`` weights through
the name map, or :func:`~bpnet_core.model.bpnet.build_model` plus pretrained or ImageNet weights.

The spec's weight regularisers (``model.regularization_type``, ``kernel_regularization_factor``,
``bias_regularization_factor``) hold for every model it trains: a loaded ``.keras`` graph (``load_graph``) has its
convolutions' regularisers replaced by the spec's (:func:`apply_regularizers`), whatever the file was saved with.

Sits above :mod:`bpnet_core.model.bpnet` and :mod:`bpnet_core.model.tao` (which builds on ``bpnet``).
"""

from __future__ import annotations

import logging

import keras

from bpnet_core.errors import BpnetError
from bpnet_core.meta import check_encrypted
from bpnet_core.model.backbones import LayerFactory
from bpnet_core.model.bpnet import (
    _default_pose,
    build_model,
    is_imagenet,
    load_bpnet_model,
    load_imagenet_weights,
    load_pretrained_weights,
    num_stages,
)
from bpnet_core.model.tao import is_tao_hdf5, load_tao_hdf5
from bpnet_core.skeleton import PoseConfig

log = logging.getLogger(__name__)


def model_from_spec(spec, pose: PoseConfig | None = None) -> keras.Model:
    """The model a train spec asks for: ``load_graph`` → the whole ``.keras`` file; else :func:`build_model`, then
    ``pretrained_weights`` (a file, matched by layer name, or ``imagenet``). A TAO 5 ``.hdf5`` (Keras 2 layer names)
    goes through :func:`bpnet_core.model.tao.load_tao_hdf5` (with ``load_graph``: its filter counts, all layers).
    Every path regularises the convolutions as the spec's ``model:`` block says (a loaded graph through
    :func:`apply_regularizers`)."""
    pose = pose or _default_pose()
    weights = getattr(spec, "pretrained_weights", None)
    if weights:
        check_encrypted(weights)
        if is_tao_hdf5(weights):  # a TAO 5 .hdf5: weights through the name map; load_graph takes its widths
            graph = bool(getattr(spec, "load_graph", False))
            model = load_tao_hdf5(weights, spec, pose, widths_from_file=graph, strict=graph)
            log.info("loaded TAO model %s (%d stages)", weights, num_stages(model))
            return model
    if getattr(spec, "load_graph", False):
        if not weights:
            raise BpnetError(f"{spec.source}: load_graph is true but pretrained_weights is not set")
        model = load_bpnet_model(weights, pose)
        apply_regularizers(model, spec.model)
        log.info("loaded model graph and weights from %s (%d stages)", weights, num_stages(model))
        return model
    model = build_model(spec, pose)
    if weights:
        if is_imagenet(weights):
            load_imagenet_weights(model, spec.model.backbone_attributes.architecture, spec.model.width_multiplier)
        else:
            load_pretrained_weights(model, weights)
    return model


def _conv_layers(model: keras.Model):
    """Every ``Conv2D`` / ``DepthwiseConv2D`` of ``model``, nested models included."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _conv_layers(layer)
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
            yield layer


def apply_regularizers(model: keras.Model, model_config) -> int:
    """Give every ``Conv2D`` / ``DepthwiseConv2D`` of a built ``model`` the regularisers a ``model:`` block asks for
    (kernel: ``kernel_regularization_factor``, bias: ``bias_regularization_factor``, of ``regularization_type``; a
    factor of 0 removes the term), replacing whatever the layers carried, so ``model.losses`` (the L1/L2 term of the
    training loss) follows the spec — the same regularisers :func:`build_model` gives a new model. The layers' configs
    change too, so a model saved afterwards records them. Returns the number of layers set."""
    factory = LayerFactory(
        regularization_type=model_config.regularization_type,
        kernel_regularization_factor=model_config.kernel_regularization_factor,
        bias_regularization_factor=model_config.bias_regularization_factor,
    )
    probe = factory.conv(1, 1, "regularizer_probe", use_bias=True)  # the regularisers build_model's layers get
    kernel_reg, bias_reg = probe.kernel_regularizer, probe.bias_regularizer
    count = 0
    for layer in _conv_layers(model):
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            layer.depthwise_regularizer = kernel_reg
        else:
            layer.kernel_regularizer = kernel_reg
        layer.kernel.regularizer = kernel_reg
        if layer.use_bias and layer.bias is not None:
            layer.bias_regularizer = bias_reg
            layer.bias.regularizer = bias_reg
        count += 1
    return count
