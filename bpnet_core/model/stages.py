"""The prediction stages: an initial stage and refinement stages, each predicting heatmaps and PAFs.

Layer names (``t`` = stage, 1-based; TAO's ``stage{t}/...`` names with ``_`` because Keras 3 forbids ``/``):

====================================  =========================================================================
layer                                 what
====================================  =========================================================================
``stage1_conv{i}``                    stage 1 shared trunk: len(stage1_kernel_sizes) × (conv k×k, 128, ReLU)
``stage1_paf_conv{n+1}``              PAF branch: conv 1×1, 512, ReLU  (n = number of trunk convs)
``stage1_heat_conv{n+1}``             heatmap branch: conv 1×1, 512, ReLU
``stage{t}_concat``                   t ≥ 2: concat(backbone features, heatmaps_{t-1}, PAFs_{t-1})
``stage{t}_conv{i}``                  t ≥ 2 shared trunk: len(stageT_kernel_sizes) × (conv k×k, 128, ReLU)
``stage{t}_paf_conv{n+1}``            conv 1×1, 128, ReLU (same for ``heat``)
``stage{t}_paf_attention``            optional self-attention: conv 3×3, 128, tanh (heat: sigmoid) …
``stage{t}_paf_attention_mul``        … multiplied element-wise with the branch features
``heatmap_stage{t}``, ``paf_stage{t}``  output convs 1×1, linear (J + 1 and 2L channels)
``heatmap_out``, ``paf_out``          the output convs of the LAST stage (TAO's names, kept for deployment tools)
====================================  =========================================================================

All filter counts except the outputs are multiplied by ``width_multiplier`` (minimum 8).
"""

from __future__ import annotations

import re

import keras

from bpnet_core.model.backbones import LayerFactory, scaled

#: Names of the last stage's output layers (TAO's; DeepStream and TAO's exporter look for them).
FINAL_HEATMAP = "heatmap_out"
FINAL_PAF = "paf_out"

_STAGE_PREFIX = re.compile(r"^stage(\d+)_")
_STAGE_OUTPUT = re.compile(r"^(heatmap|paf)_stage(\d+)$")


def output_layer_names(stages: int) -> list[str]:
    """Output names in model order: ``[heatmap_stage1 … heatmap_out, paf_stage1 … paf_out]``."""
    heat = [f"heatmap_stage{t}" for t in range(1, stages)] + [FINAL_HEATMAP]
    paf = [f"paf_stage{t}" for t in range(1, stages)] + [FINAL_PAF]
    return heat + paf


def layer_stage(name: str, num_stages: int | None = None) -> int:
    """The stage a layer belongs to by its name: 0 for the backbone, ``t`` for stage ``t``.

    ``heatmap_out``/``paf_out`` belong to the last stage (``num_stages``; -1 when it is not given).
    """
    m = _STAGE_PREFIX.match(name)
    if m:
        return int(m.group(1))
    m = _STAGE_OUTPUT.match(name)
    if m:
        return int(m.group(2))
    if name in (FINAL_HEATMAP, FINAL_PAF):
        return num_stages if num_stages is not None else -1
    return 0


def is_output_layer(name: str) -> bool:
    """True for the heatmap/PAF output convs of every stage (never pruned; their width is the pose's)."""
    return name in (FINAL_HEATMAP, FINAL_PAF) or bool(_STAGE_OUTPUT.match(name))


def stage_output_names(stage: int, is_final: bool) -> tuple[str, str]:
    """The (heatmap, PAF) output layer names of ``stage`` (TAO's ``heatmap_out`` / ``paf_out`` for the last)."""
    if is_final:
        return FINAL_HEATMAP, FINAL_PAF
    return f"heatmap_stage{stage}", f"paf_stage{stage}"


def initial_stage(
    features,
    f: LayerFactory,
    heat_channels: int,
    paf_channels: int,
    kernel_sizes=(3, 3, 3),
    width: float = 1.0,
    is_final: bool = False,
):
    """Stage 1: shared trunk → separate 1×1-512 ReLU per branch → linear 1×1 outputs. Returns (heat, paf)."""
    x = features
    for i, k in enumerate(kernel_sizes, start=1):
        x = f.conv(scaled(128, width), int(k), f"stage1_conv{i}", activation="relu")(x)
    n = len(kernel_sizes) + 1
    paf = f.conv(scaled(512, width), 1, f"stage1_paf_conv{n}", activation="relu")(x)
    heat = f.conv(scaled(512, width), 1, f"stage1_heat_conv{n}", activation="relu")(x)
    heat_name, paf_name = stage_output_names(1, is_final)
    heat = f.conv(heat_channels, 1, heat_name)(heat)
    paf = f.conv(paf_channels, 1, paf_name)(paf)
    return heat, paf


def refinement_stage(
    stage: int,
    features,
    heat,
    paf,
    f: LayerFactory,
    heat_channels: int,
    paf_channels: int,
    kernel_sizes=(7, 7, 7, 7, 7),
    width: float = 1.0,
    use_self_attention: bool = False,
    is_final: bool = False,
):
    """Stage t ≥ 2: concat(features, heat, paf) → shared trunk → 1×1-128 ReLU per branch → (attention) → 1×1
    outputs. Returns (heat, paf)."""
    x = keras.layers.Concatenate(axis=-1, name=f"stage{stage}_concat")([features, heat, paf])
    for i, k in enumerate(kernel_sizes, start=1):
        x = f.conv(scaled(128, width), int(k), f"stage{stage}_conv{i}", activation="relu")(x)
    n = len(kernel_sizes) + 1
    paf_x = f.conv(scaled(128, width), 1, f"stage{stage}_paf_conv{n}", activation="relu")(x)
    heat_x = f.conv(scaled(128, width), 1, f"stage{stage}_heat_conv{n}", activation="relu")(x)
    if use_self_attention:
        paf_att = f.conv(scaled(128, width), 3, f"stage{stage}_paf_attention", activation="tanh")(paf_x)
        heat_att = f.conv(scaled(128, width), 3, f"stage{stage}_heat_attention", activation="sigmoid")(heat_x)
        paf_x = keras.layers.Multiply(name=f"stage{stage}_paf_attention_mul")([paf_x, paf_att])
        heat_x = keras.layers.Multiply(name=f"stage{stage}_heat_attention_mul")([heat_x, heat_att])
    heat_name, paf_name = stage_output_names(stage, is_final)
    heat = f.conv(heat_channels, 1, heat_name)(heat_x)
    paf = f.conv(paf_channels, 1, paf_name)(paf_x)
    return heat, paf


def openpose_stages(features, f: LayerFactory, cfg, heat_channels: int, paf_channels: int):
    """TAO's stages (``model.head: openpose``) as ``cfg`` (the validated ``model:`` block) asks. Returns
    ``(heatmaps, pafs)``, one per stage."""
    stages, width = int(cfg.stages), float(cfg.width_multiplier)
    heat, paf = initial_stage(features, f, heat_channels, paf_channels, tuple(cfg.stage1_kernel_sizes), width,
                              is_final=stages == 1)  # fmt: skip
    heats, pafs = [heat], [paf]
    for t in range(2, stages + 1):
        heat, paf = refinement_stage(
            t, features, heat, paf, f, heat_channels, paf_channels, tuple(cfg.stageT_kernel_sizes), width,
            cfg.use_self_attention, is_final=t == stages,
        )  # fmt: skip
        heats.append(heat)
        pafs.append(paf)
    return heats, pafs
