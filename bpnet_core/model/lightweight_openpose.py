"""Lightweight OpenPose (Osokin 2018, ``model.head: lightweight_openpose``): the network of Intel's
``human-pose-estimation-0001``, readable in one sitting.

The backbone (:mod:`bpnet_core.model.mobilenet_v1`: width 1, cut after ``Conv2d_11``, dilated ``Conv2d_7``) gives
512 channels at stride 8. Then, all convolutions with a bias (batch norm folded):

1. **CPM** (channel reduction): ``cpm_align`` 1×1 → 128 × w, ELU; a trunk of ``cpm_reduce`` 1×1, ELU and three
   depthwise 3×3 + pointwise 1×1 pairs (``cpm_dw{i}`` / ``cpm_pw{i}``, ELU after each); ``cpm_add`` = align + trunk;
   ``cpm_conv`` 3×3, ReLU. These are the *features* every stage reads.
2. **Initial stage**, exactly TAO's (:func:`bpnet_core.model.stages.initial_stage`): a shared trunk of 3×3
   convolutions (``stage1_conv{i}``, 128 × w, ReLU), then per branch a 1×1-512 × w ReLU and the linear output.
3. **Refinement stages** t ≥ 2: ``stage{t}_concat`` = concat(PAFs, heatmaps, features) (the original's order), then
   ``refinement_blocks`` residual blocks — ``stage{t}_block{b}_conv1`` 1×1 (ReLU), ``…_conv2`` 3×3 (ReLU),
   ``…_conv3`` 3×3 dilated 2 (ReLU), ``…_add`` = conv1 + conv3 — then per branch 1×1-128 × w ReLU
   (``stage{t}_{paf,heat}_conv1``) and the linear output.

``human-pose-estimation-0001``: 2 stages, 5 residual blocks, width 1. Input: BGR, ``x / 255 − 128 / 255``.
"""

from __future__ import annotations

import keras

from bpnet_core.model.backbones import LayerFactory, scaled
from bpnet_core.model.stages import initial_stage, stage_output_names


def cpm(x, f: LayerFactory, width: float = 1.0):
    """The channel-reduction block between the backbone and the stages."""
    c = scaled(128, width)
    align = f.conv(c, 1, "cpm_align", activation="elu")(x)
    y = f.conv(c, 1, "cpm_reduce", activation="elu")(align)
    for i in range(1, 4):
        y = f.depthwise(f"cpm_dw{i}", use_bias=True, activation="elu")(y)
        y = f.conv(c, 1, f"cpm_pw{i}", activation="elu")(y)
    y = keras.layers.Add(name="cpm_add")([align, y])
    return f.conv(c, 3, "cpm_conv", activation="relu")(y)


def residual_block(x, f: LayerFactory, name: str, width: float = 1.0):
    """1×1 → 3×3 → dilated 3×3, the 1×1's output added to the last."""
    c = scaled(128, width)
    a = f.conv(c, 1, f"{name}_conv1", activation="relu")(x)
    y = f.conv(c, 3, f"{name}_conv2", activation="relu")(a)
    y = f.conv(c, 3, f"{name}_conv3", activation="relu", dilation_rate=2)(y)
    return keras.layers.Add(name=f"{name}_add")([a, y])


def refinement_stage(t: int, features, heat, paf, f: LayerFactory, cfg, heat_channels: int, paf_channels: int,
                     is_final: bool):  # fmt: skip
    width = float(cfg.width_multiplier)
    x = keras.layers.Concatenate(axis=-1, name=f"stage{t}_concat")([paf, heat, features])
    for b in range(1, int(cfg.refinement_blocks) + 1):
        x = residual_block(x, f, f"stage{t}_block{b}", width)
    heat_name, paf_name = stage_output_names(t, is_final)
    h = f.conv(scaled(128, width), 1, f"stage{t}_heat_conv1", activation="relu")(x)
    p = f.conv(scaled(128, width), 1, f"stage{t}_paf_conv1", activation="relu")(x)
    return f.conv(heat_channels, 1, heat_name)(h), f.conv(paf_channels, 1, paf_name)(p)


def lightweight_stages(backbone_features, f: LayerFactory, cfg, heat_channels: int, paf_channels: int):
    """CPM, the initial stage and ``cfg.stages − 1`` refinement stages. Returns ``(heatmaps, pafs)``, one per
    stage."""
    stages, width = int(cfg.stages), float(cfg.width_multiplier)
    features = cpm(backbone_features, f, width)
    heat, paf = initial_stage(features, f, heat_channels, paf_channels, tuple(cfg.stage1_kernel_sizes), width,
                              is_final=stages == 1)  # fmt: skip
    heats, pafs = [heat], [paf]
    for t in range(2, stages + 1):
        heat, paf = refinement_stage(t, features, heat, paf, f, cfg, heat_channels, paf_channels, t == stages)
        heats.append(heat)
        pafs.append(paf)
    return heats, pafs
