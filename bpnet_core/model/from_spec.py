"""The model a train spec asks for (:func:`model_from_spec`): a whole ``.keras`` graph, TAO 5 ``.hdf5`` weights through
the name map, or :func:`~bpnet_core.model.bpnet.build_model` plus pretrained or ImageNet weights.

Sits above :mod:`bpnet_core.model.bpnet` and :mod:`bpnet_core.model.tao` (which builds on ``bpnet``).
"""

from __future__ import annotations

import logging

import keras

from bpnet_core.errors import BpnetError
from bpnet_core.meta import check_encrypted
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
    goes through :func:`bpnet_core.model.tao.load_tao_hdf5` (with ``load_graph``: its filter counts, all layers)."""
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
        log.info("loaded model graph and weights from %s (%d stages)", weights, num_stages(model))
        return model
    model = build_model(spec, pose)
    if weights:
        if is_imagenet(weights):
            load_imagenet_weights(model, spec.model.backbone_attributes.architecture, spec.model.width_multiplier)
        else:
            load_pretrained_weights(model, weights)
    return model
