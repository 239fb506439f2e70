"""Structured channel pruning (TAO's ``bpnet prune``) and what a model costs (parameters, FLOPs, latency).

* :func:`prune_model` — ``(pruned keras.Model, report)`` with TAO's flags (``-pth``, ``-n``, ``-eq``, ``-pg``,
  ``-nf``, ``-el``); :func:`prune_and_save` also writes the ``.keras`` model and ``prune_report.json`` atomically;
  :func:`retrain_pruned` retrains it (``load_graph: true``) in a fresh results folder; :func:`distil_pruned`
  (:mod:`.distil`) retrains a pruned real network without labels, by distillation from its unpruned self on photos.
* :mod:`.activations` (the ``activation`` criterion for folded batch norm, the ``-pth`` that reaches
  ``flops_target``) and :mod:`.reconstruct` (least-squares channel selection and the layer-by-layer refit of
  ``reconstruct=True``) — what :func:`prune_model` uses on the real networks.
* :func:`channel_groups` (:mod:`.graph`) — the channel groups that must be pruned together (element-wise adds,
  concatenations, BN and depthwise convs follow their producers).
* :func:`conv_flops`, :func:`count_params`, :func:`model_costs` (:mod:`.flops`), :func:`latency_ms` — cost figures.
* :func:`measure_model`, :func:`threshold_sweep`, :func:`pick_threshold`, :func:`plot_prune_sweep`,
  :func:`plot_filter_scores`, :func:`comparison_table`, :func:`flops_sweep` (:mod:`.sweep`, above :mod:`.flops` and
  :mod:`.channel_prune`) — what notebook 04 measures, plots and tabulates.
"""

from bpnet_core.fileio import save_model_atomic  # re-exported: the atomic .keras writer
from bpnet_core.prune.channel_prune import (
    EQUALIZATION_CRITERIA,
    NORMALIZERS,
    REPORT_NAME,
    equalize,
    filter_norms,
    normalize_scores,
    prune_and_save,
    prune_model,
    retained_count,
    retrain_pruned,
)
from bpnet_core.prune.distil import distil_pruned
from bpnet_core.prune.flops import DEFAULT_FLOPS_SIZES, conv_flops, count_params, model_costs, parse_hw
from bpnet_core.prune.graph import ChannelGraph, ChannelGroup, channel_groups
from bpnet_core.prune.sweep import (
    comparison_table,
    flops_sweep,
    latency_ms,
    measure_model,
    pick_threshold,
    plot_filter_scores,
    plot_prune_sweep,
    threshold_sweep,
)

__all__ = [
    "distil_pruned",
    "DEFAULT_FLOPS_SIZES",
    "EQUALIZATION_CRITERIA",
    "NORMALIZERS",
    "REPORT_NAME",
    "ChannelGraph",
    "ChannelGroup",
    "channel_groups",
    "comparison_table",
    "conv_flops",
    "count_params",
    "equalize",
    "filter_norms",
    "flops_sweep",
    "latency_ms",
    "measure_model",
    "model_costs",
    "normalize_scores",
    "parse_hw",
    "pick_threshold",
    "plot_filter_scores",
    "plot_prune_sweep",
    "prune_and_save",
    "prune_model",
    "retrain_pruned",
    "retained_count",
    "save_model_atomic",
    "threshold_sweep",
]
