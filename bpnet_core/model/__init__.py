"""The BodyPoseNet network (Keras 3 functional) and its loss.

* :func:`build_model` — backbone (``vgg`` or ``mobilenet_v2``) + initial stage + refinement stages.
* :func:`model_from_spec` — the model a train spec asks for (``load_graph``, ``pretrained_weights``, ``imagenet``).
* :func:`load_tao_hdf5` — a TAO 5 ``.hdf5`` (Keras 2 layer names) into bpnet's model through a name map.
* :func:`bpnet_loss` / :func:`loss_terms` — TAO's masked L2 loss per stage and branch (optional focal weighting).

See :mod:`bpnet_core.model.bpnet` for the tensor contract and :mod:`bpnet_core.model.stages` for layer names.
"""

from bpnet_core.config.train_spec import ARCHITECTURES, MAX_STAGES  # defined once, by the model: block's schema
from bpnet_core.model.backbones import FEATURE_CHANNELS, OUTPUT_STRIDE, scaled
from bpnet_core.model.bpnet import (
    IMAGENET,
    build_model,
    check_model_channels,
    count_conv_params,
    count_params,
    load_bpnet_model,
    load_imagenet_weights,
    load_pretrained_weights,
    model_config,
    model_meta,
    num_stages,
    output_names,
    read_weights_by_layer,
    save_bpnet_model,
    spec_normalization,
)
from bpnet_core.model.from_spec import apply_regularizers, model_from_spec
from bpnet_core.model.losses import FocalParams, bpnet_loss, focal_factor, loss_terms, masked_l2, weighted_sum
from bpnet_core.model.stages import FINAL_HEATMAP, FINAL_PAF, is_output_layer, layer_stage, output_layer_names
from bpnet_core.model.tao import bpnet_to_tao, is_tao_hdf5, load_tao_hdf5, load_tao_weights, tao_to_bpnet

__all__ = [
    "ARCHITECTURES",
    "FEATURE_CHANNELS",
    "FINAL_HEATMAP",
    "FINAL_PAF",
    "IMAGENET",
    "MAX_STAGES",
    "OUTPUT_STRIDE",
    "FocalParams",
    "apply_regularizers",
    "bpnet_loss",
    "bpnet_to_tao",
    "build_model",
    "check_model_channels",
    "count_conv_params",
    "count_params",
    "focal_factor",
    "is_output_layer",
    "is_tao_hdf5",
    "layer_stage",
    "load_bpnet_model",
    "load_imagenet_weights",
    "load_pretrained_weights",
    "load_tao_hdf5",
    "load_tao_weights",
    "loss_terms",
    "masked_l2",
    "model_from_spec",
    "model_meta",
    "model_config",
    "num_stages",
    "output_layer_names",
    "output_names",
    "read_weights_by_layer",
    "save_bpnet_model",
    "scaled",
    "spec_normalization",
    "tao_to_bpnet",
    "weighted_sum",
]
