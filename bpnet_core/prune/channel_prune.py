"""Structured channel pruning of a Keras functional model (TAO's ``bpnet prune``, ``min_weight`` method, L2).

TAO's pruner (``PruneMinWeight``, Molchanov et al. 2016) is re-done here for Keras 3 graphs. Three steps:

1. **Channel groups** (:func:`channel_groups`). The graph is walked once in topological order and every tensor's
   channels are described as segments of *groups*: a convolution's output starts a new group; BN, activations,
   pooling and depthwise convolutions carry their input's groups through; ``Concatenate`` lays its inputs' segments
   side by side (so the next layer's input channels come from several producers at per-input offsets); an
   element-wise ``Add``/``Multiply`` … merges the groups of its inputs into one (union–find). Channels that reach a
   model output, the network input, an ``-el`` excluded layer or a layer the pruner does not understand are
   *fixed*: they keep every channel.
2. **Which channels stay** (:func:`prune_model`). Each producer convolution scores its filters by the L2 norm of
   the kernel (biases ignored, as in TAO), normalised per layer (``max``: ÷ the layer's largest norm; ``L2``: ÷ the
   L2 norm of the layer's norms); a depthwise convolution scores its channels the same way. A group's members are
   combined by the equalisation criterion (``union`` = max, ``intersection`` = min, ``arithmetic_mean``,
   ``geometric_mean``). Channels scoring above ``pruning_threshold`` stay, at least ``min_num_filters`` (TAO clamps:
   a threshold that would leave fewer keeps the best ``min_num_filters`` and the report lists those layers), rounded
   *up* to a multiple of ``pruning_granularity``, never more than the layer has; the best-scoring channels win.
3. **Surgery**. The graph is rebuilt with ``keras.models.clone_model`` from every layer's ``get_config`` (only
   ``filters`` changes; no Lambda layers), then the surviving slices are copied: conv kernels on both channel axes
   and biases, BN gamma/beta/moving mean/variance, depthwise kernels, and the next layer's input channels through
   concatenations (offset per input).

The output layers (``heatmap_stage{t}``/``paf_stage{t}``/``heatmap_out``/``paf_out``) are never pruned: their
width is the pose's. The pruned model has the same input, the same output names and shapes and loads like any other
``.keras`` model (``load_graph: true`` retrains it).

>>> pruned, report = prune_model("runs/demo/02_train/bpnet_model.keras", pruning_threshold=0.1)
>>> report["params_ratio"], report["layers"]["stage1_conv1"]     # e.g. 3.1, {"before": 32, "after": 16}
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bpnet_core.errors import BpnetError
from bpnet_core.fileio import make_dir, save_model_atomic, write_json_atomic
from bpnet_core.meta import ModelMeta, keras_members, read_meta
from bpnet_core.prune.activations import (
    DEFAULT_CALIBRATION_COUNT,
    activation_statistics,
    calibration_batches,
    channel_errors,
    channel_scores,
    compensate,
    default_image_dir,
    energy_order,
    threshold_for_flops,
)
from bpnet_core.prune.flops import DEFAULT_FLOPS_SIZES, conv_flops, count_params, parse_hw, size_key
from bpnet_core.prune.graph import channel_groups, layer_kind
from bpnet_core.prune.reconstruct import reader_grams, removal_order
from bpnet_core.prune.reconstruct import reconstruct as reconstruct_pruned
from bpnet_core.train import train
from bpnet_core.train.trainer import CHECKPOINT_SUBDIR, STATUS_FILE

log = logging.getLogger(__name__)

NORMALIZERS = ("max", "L2")
#: ``weight``: TAO's filter-norm criterion; ``activation``: what each channel delivers to its readers on calibration
#: photos, with mean compensation (:mod:`bpnet_core.prune.activations`); ``auto``: ``activation`` for a network
#: without batch-norm layers (batch norm folded: the real networks), ``weight`` otherwise.
CRITERIA = ("auto", "weight", "activation")
#: How the activation criterion orders a group's channels: ``energy`` (what each delivers to its readers, alone) or
#: ``least_squares`` (greedy elimination with the readers refitted: a channel its twins can stand in for goes first).
SELECTIONS = ("energy", "least_squares")
EQUALIZATION_CRITERIA = ("union", "intersection", "arithmetic_mean", "geometric_mean")
REPORT_NAME = "prune_report.json"


# ---------------------------------------------------------------------------------------------------- scores


def filter_norms(kernel: np.ndarray, depthwise: bool = False) -> np.ndarray:
    """L2 norm of each output filter of a conv kernel (kh, kw, cin, cout), or of each channel of a depthwise one."""
    k = np.asarray(kernel, np.float64)
    axes = (0, 1, 3) if depthwise else tuple(range(k.ndim - 1))
    return np.sqrt(np.sum(k * k, axis=axes))


def normalize_scores(norms: np.ndarray, normalizer: str = "max") -> np.ndarray:
    """TAO's layer-wise normalisation: ``max`` divides by the largest norm, ``L2`` by the L2 norm of all norms."""
    norms = np.asarray(norms, np.float64)
    denom = float(np.max(norms)) if normalizer == "max" else float(np.sqrt(np.sum(norms * norms)))
    return norms / denom if denom > 0 else np.zeros_like(norms)


def equalize(stats: Sequence[np.ndarray], criterion: str = "union") -> np.ndarray:
    """Combine the normalised scores of a group's members (TAO's equalisation criteria)."""
    s = np.stack([np.asarray(x, np.float64) for x in stats])
    if criterion == "union":
        return s.max(axis=0)
    if criterion == "intersection":
        return s.min(axis=0)
    if criterion == "arithmetic_mean":
        return s.mean(axis=0)
    with np.errstate(divide="ignore"):
        return np.exp(np.log(s).mean(axis=0))


def retained_count(scores: np.ndarray, threshold: float, granularity: int, min_filters: int) -> tuple[int, bool]:
    """How many channels stay: above ``threshold``, at least ``min_filters``, rounded up to ``granularity``.

    Returns ``(count, clamped)``; ``clamped`` is True when ``min_filters`` kept more than the threshold alone would.
    """
    total = len(scores)
    above = int(np.sum(scores > threshold))
    floor = min(int(min_filters), total)
    n = max(floor, above)
    if n % granularity:
        n += granularity - n % granularity
    return min(n, total), above < floor


# ---------------------------------------------------------------------------------------------------- pruning


def _check_settings(pruning_threshold, normalizer, equalization_criterion, pruning_granularity, min_num_filters):
    try:
        pth = float(pruning_threshold)
    except (TypeError, ValueError):
        raise BpnetError(f"-pth/--pruning_threshold must be a number (got {pruning_threshold!r})") from None
    if not math.isfinite(pth) or pth < 0:
        raise BpnetError(f"-pth/--pruning_threshold must be a number >= 0 (got {pruning_threshold!r})")
    norm = {n.lower(): n for n in NORMALIZERS}.get(str(normalizer).lower())
    if norm is None:
        raise BpnetError(f"-n/--normalizer must be one of {', '.join(NORMALIZERS)} (got {normalizer!r})")
    if equalization_criterion not in EQUALIZATION_CRITERIA:
        raise BpnetError(f"-eq/--equalization_criterion must be one of {', '.join(EQUALIZATION_CRITERIA)} "
                         f"(got {equalization_criterion!r})")  # fmt: skip
    for flag, value in (("-pg/--pruning_granularity", pruning_granularity), ("-nf/--min_num_filters", min_num_filters)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < 1:
            raise BpnetError(f"{flag} must be an integer >= 1 (got {value!r})")
    return pth, norm


def _load(model_or_path, pose=None):
    """A bpnet Keras model from a model object or a ``.keras`` file; anything else is a one-line error."""
    import keras

    from bpnet_core.model import check_model_channels, load_bpnet_model, num_stages, output_layer_names, output_names

    if isinstance(model_or_path, (str, os.PathLike)):
        from bpnet_core.model.tao import TAO_SUFFIXES, load_model_file

        source = str(model_or_path)
        suffix = Path(source).suffix.lower()
        if suffix not in (".keras", *TAO_SUFFIXES) and Path(source).is_file():
            raise BpnetError(f"{source}: bpnet prune reads bpnet .keras or TAO 5 .hdf5 models (got "
                             f"{suffix or 'no suffix'}; TAO's encrypted .tlt/.etlt files cannot be read)")  # fmt: skip
        if not Path(source).is_file():
            raise BpnetError(f"{source}: model file not found")
        if suffix in TAO_SUFFIXES:
            model = load_model_file(model_or_path)[0]
            if pose is not None:
                check_model_channels(model, pose, source)
        else:
            model = load_bpnet_model(model_or_path, pose)
    elif isinstance(model_or_path, keras.Model):
        source, model = model_or_path.name, model_or_path
    else:
        raise BpnetError(f"prune needs a Keras model or a .keras file (got {type(model_or_path).__name__})")
    if not hasattr(model, "_nodes_by_depth"):
        raise BpnetError(f"{source}: not a functional Keras model ({type(model).__name__}); cannot be pruned")
    names = output_names(model)
    want = output_layer_names(num_stages(model))
    if names != want or len(model.inputs) != 1 or len(model.inputs[0].shape) != 4:
        raise BpnetError(f"{source}: not a BodyPoseNet model (outputs {', '.join(names)[:120]}; expected "
                         f"{', '.join(want)} from one image input)")  # fmt: skip
    return model, source


def _criterion(criterion: str, model) -> str:
    import keras

    if criterion not in CRITERIA:
        raise BpnetError(f"-c/--criterion must be one of {', '.join(CRITERIA)} (got {criterion!r})")
    if criterion != "auto":
        return criterion
    has_bn = any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)
    return "weight" if has_bn else "activation"


def _check_activation_options(criterion, selection, reconstruct, flops_target):
    if selection not in SELECTIONS:
        raise BpnetError(f"--selection must be one of {', '.join(SELECTIONS)} (got {selection!r})")
    bad_target = isinstance(flops_target, bool) or not isinstance(flops_target, (int, float)) or not flops_target > 1
    if flops_target is not None and bad_target:
        raise BpnetError(f"--flops_ratio must be a number above 1 (got {flops_target!r})")
    if criterion != "activation" and (reconstruct or flops_target is not None or selection != "energy"):
        raise BpnetError(
            "--reconstruct, --flops_ratio and --selection need the activation criterion (-c activation); "
            "the weight criterion is TAO's -pth alone"
        )


def _prunable_layer_names(model) -> list[str]:
    from bpnet_core.model.stages import is_output_layer

    return [n for n, k in ((layer.name, layer_kind(layer)) for layer in model.layers) if k == "conv" and
            not is_output_layer(n)]  # fmt: skip


def _check_excluded(model, excluded_layers) -> list[str]:
    if isinstance(excluded_layers, str):
        excluded_layers = [excluded_layers]
    excluded = [str(x) for x in (excluded_layers or ())]
    known = {layer.name for layer in model.layers}
    unknown = [x for x in excluded if x not in known]
    if unknown:
        valid = _prunable_layer_names(model)
        hints = []
        for x in unknown:
            close = difflib.get_close_matches(x, valid, n=1)
            hints.append(f"{x!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise BpnetError(f"-el/--excluded_layers: no layer named {', '.join(hints)} in the model; prunable layers: "
                         f"{', '.join(valid)}")  # fmt: skip
    return excluded


def _indices(segs, keep: dict[int, np.ndarray]) -> np.ndarray:
    out, offset = [], 0
    for g, n in segs:
        idx = keep.get(g)
        out.append(offset + (np.arange(n) if idx is None else idx))
        offset += n
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def _sliced_weights(layer, kind: str, in_idx: np.ndarray, out_idx: np.ndarray) -> list[np.ndarray]:
    w = [np.asarray(v) for v in layer.get_weights()]
    if kind == "conv":
        w[0] = w[0][:, :, in_idx, :][:, :, :, out_idx]
        if len(w) > 1:
            w[1] = w[1][out_idx]
    elif kind == "depthwise":
        w[0] = w[0][:, :, in_idx, :]
        if len(w) > 1:
            w[1] = w[1][in_idx]
    elif kind == "bn":
        w = [a[in_idx] for a in w]
    return w


def prune_model(
    model_or_path,
    pruning_threshold: float = 0.1,
    normalizer: str = "max",
    equalization_criterion: str = "union",
    pruning_granularity: int = 8,
    min_num_filters: int = 16,
    excluded_layers: Sequence[str] = (),
    *,
    pose=None,
    flops_input_sizes: Sequence = DEFAULT_FLOPS_SIZES,
    criterion: str = "auto",
    calibration_images: str | os.PathLike | None = None,
    calibration_count: int = DEFAULT_CALIBRATION_COUNT,
    meta: ModelMeta | None = None,
    reconstruct: bool = False,
    flops_target: float | None = None,
    selection: str = "energy",
    progress: bool = False,
):
    """Prune a BodyPoseNet model's convolution filters (TAO's ``bpnet prune`` flags; see the module docstring).

    Args:
        model_or_path: a functional ``keras.Model`` or a ``.keras`` file (loaded with ``load_bpnet_model``).
        pruning_threshold: ``-pth``; channels whose normalised score is above it stay (>= 0).
        normalizer: ``-n``: ``max`` or ``L2``.
        equalization_criterion: ``-eq``: ``union``, ``intersection``, ``arithmetic_mean`` or ``geometric_mean``.
        pruning_granularity: ``-pg``; kept channel counts are multiples of it (unless a layer has fewer).
        min_num_filters: ``-nf``; never fewer channels per layer (nor more than the layer has).
        excluded_layers: ``-el``; layers whose output channels are kept (output layers always are).
        pose: optional :class:`PoseConfig` the model's output widths are checked against.
        flops_input_sizes: input sizes (H, W) the report gives FLOPs for; the first is the headline figure.
        criterion: ``-c``: ``weight`` (TAO's), ``activation`` (measured on ``calibration_images``, removed channels'
            means compensated) or ``auto`` (see :data:`CRITERIA`).
        calibration_images: ``activation`` only: a folder of photos (default: the 80 COCO train photos shipped).
        calibration_count: ``activation`` only: how many of them.
        meta: the model's contract (colour order, normalisation) for the calibration photos (default: the file's).

    Returns:
        ``(pruned keras.Model, report dict)``. The report has ``params_before/after``, ``params_ratio``,
        ``flops_before/after``, ``flops_ratio`` (first input size), ``flops`` per input size, ``layers``
        (``{name: {"before", "after"}}`` for every conv), ``groups``, ``clamped_to_min_num_filters`` and ``notes``.
    """
    import keras

    pth, norm = _check_settings(pruning_threshold, normalizer, equalization_criterion, pruning_granularity,
                                min_num_filters)  # fmt: skip
    sizes = [parse_hw(s) for s in (flops_input_sizes or DEFAULT_FLOPS_SIZES)]
    model, source = _load(model_or_path, pose)
    excluded = _check_excluded(model, excluded_layers)
    graph = channel_groups(model, excluded)
    layers = {layer.name: layer for layer in model.layers}
    criterion = _criterion(criterion, model)
    _check_activation_options(criterion, selection, reconstruct, flops_target)
    act_stats, orders, errors, targets = {}, {}, {}, {}
    if criterion == "activation":
        meta = meta or _source_meta(model_or_path, pose)
        size = tuple(meta.inference.get("input_shape") or (368, 368))[:2]
        batches = calibration_batches(meta, calibration_images or default_image_dir(), int(calibration_count), size)
        act_stats = activation_statistics(model, graph, batches)
        if selection == "least_squares":
            orders = removal_order(graph, model, reader_grams(model, list(act_stats), batches))
        else:
            orders = energy_order(channel_scores(graph, layers, act_stats))
        # a prunable group no convolution reads carries no error: it goes down to -nf
        orders = {g.id: orders.get(g.id, (np.arange(g.size), np.zeros(g.size))) for g in graph.groups.values()
                  if g.prunable}  # fmt: skip
        errors = {gid: channel_errors(order, curve) for gid, (order, curve) in orders.items()}
        if flops_target:
            macs = conv_flops(model, sizes[0])["per_layer"]  # the report's headline FLOPs figure
            pth, targets = threshold_for_flops(graph, macs, errors, float(flops_target),
                lambda e, t: retained_count(e, t, int(pruning_granularity), int(min_num_filters))[0])  # fmt: skip
            log.info("-pth %.4f cuts the FLOPs %.2fx", pth, float(flops_target))

    # per-layer normalised scores
    conv_stats = {}
    for name, kind in graph.layer_types.items():
        if kind in ("conv", "depthwise"):
            norms = filter_norms(np.asarray(layers[name].get_weights()[0]), depthwise=kind == "depthwise")
            conv_stats[name] = normalize_scores(norms, norm)

    keep: dict[int, np.ndarray] = {}
    group_rows, clamped_layers = [], []
    for grp in sorted(graph.groups.values(), key=lambda g: g.id):
        if not grp.producers:
            continue
        row = {"id": grp.id, "producers": grp.producers, "carriers": grp.carriers, "channels_before": grp.size}
        if not grp.prunable:
            row.update(channels_after=grp.size, kept_because=grp.fixed)
            group_rows.append(row)
            continue
        if criterion == "activation":
            order, error = orders[grp.id][0], errors[grp.id]
            n, clamped = retained_count(error, pth, int(pruning_granularity), int(min_num_filters))
            if grp.id in targets:
                n, clamped = targets[grp.id], False
            keep[grp.id] = np.sort(order[grp.size - n :])
            row.update(channels_after=n, above_threshold=int(np.sum(error > pth)), clamped_to_min_num_filters=clamped)
            clamped_layers += grp.producers if clamped else []
            group_rows.append(row)
            continue
        stats = [conv_stats[p] for p in grp.producers]
        for c in grp.carriers:  # depthwise convs score the channels they carry (segment of their input)
            if graph.layer_types[c] == "depthwise":
                offset = 0
                for g, n in graph.inputs[c]:
                    if g == grp.id:
                        stats.append(conv_stats[c][offset : offset + n])
                    offset += n
        score = equalize(stats, equalization_criterion)
        n, clamped = retained_count(score, pth, int(pruning_granularity), int(min_num_filters))
        keep[grp.id] = np.sort(np.argsort(-score, kind="stable")[:n])
        row.update(channels_after=n, above_threshold=int(np.sum(score > pth)), clamped_to_min_num_filters=clamped)
        if clamped:
            clamped_layers += grp.producers
        group_rows.append(row)

    def clone(layer):
        config = layer.get_config()
        if graph.layer_types.get(layer.name) == "conv":
            config["filters"] = int(len(_indices(graph.outputs[layer.name], keep)))
        return layer.__class__.from_config(config)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruned = keras.models.clone_model(model, clone_function=clone)
    for layer in pruned.layers:
        old = layers[layer.name]
        if not old.weights:
            continue
        kind = graph.layer_types[layer.name]
        new_w = _sliced_weights(old, kind, _indices(graph.inputs[layer.name], keep),
                                _indices(graph.outputs[layer.name], keep))  # fmt: skip
        want = [tuple(v.shape) for v in layer.weights]
        if [a.shape for a in new_w] != want:  # pragma: no cover - a bug in the surgery, never a user error
            raise RuntimeError(f"prune: weights of {layer.name} sliced to {[a.shape for a in new_w]}, need {want}")
        layer.set_weights(new_w)
    uncompensated = []
    if criterion == "activation":
        uncompensated = compensate(pruned, model, act_stats, lambda n: _indices(graph.inputs[n], keep),
                                   lambda n: _indices(graph.outputs[n], keep))  # fmt: skip
    fit_errors = {}
    if reconstruct:
        fit_errors = reconstruct_pruned(pruned, model, lambda n: _indices(graph.outputs[n], keep), batches,
                                        progress=progress)  # fmt: skip

    report = _report(model, pruned, source, sizes, graph, group_rows, clamped_layers,
                     dict(pruning_threshold=pth, normalizer=norm, equalization_criterion=equalization_criterion,
                          pruning_granularity=int(pruning_granularity), min_num_filters=int(min_num_filters),
                          excluded_layers=excluded, criterion=criterion,
                          **({"selection": selection, "reconstruct": bool(reconstruct),
                              "flops_target": flops_target} if criterion == "activation" else {})))  # fmt: skip
    if reconstruct:
        report["reconstruction"] = {"relative_error": {k: round(v, 4) for k, v in fit_errors.items()}}
    if criterion == "activation":
        report["calibration"] = {"images": str(calibration_images or default_image_dir()),
                                 "count": int(calibration_count), "uncompensated_layers": uncompensated}  # fmt: skip
    log.info("pruned %s: %d -> %d parameters (%.2fx), %.3g -> %.3g GFLOPs at %s (%.2fx)", source,
             report["params_before"], report["params_after"], report["params_ratio"], report["flops_before"] / 1e9,
             report["flops_after"] / 1e9, report["flops_input"], report["flops_ratio"])  # fmt: skip
    return pruned, report


def _ratio(a: float, b: float) -> float:
    return round(float(a) / float(b), 4) if b else float("inf")


def _report(model, pruned, source, sizes, graph, group_rows, clamped_layers, settings) -> dict:
    from bpnet_core.model import count_conv_params

    flops = {}
    for s in sizes:
        before, after = conv_flops(model, s)["flops"], conv_flops(pruned, s)["flops"]
        flops[size_key(s)] = {"before": before, "after": after, "ratio": _ratio(before, after)}
    first = flops[size_key(sizes[0])]
    p_before, p_after = count_params(model), count_params(pruned)
    layers = {}
    for layer in pruned.layers:
        kind = graph.layer_types.get(layer.name)
        if kind in ("conv", "depthwise"):
            old = model.get_layer(layer.name)
            layers[layer.name] = {"before": int(old.output.shape[-1]), "after": int(layer.output.shape[-1])}
    notes = []
    if clamped_layers:
        notes.append(
            f"{len(clamped_layers)} layer(s) would keep fewer than min_num_filters={settings['min_num_filters']} "
            f"filters at pruning_threshold={settings['pruning_threshold']}; as in TAO they keep "
            f"min_num_filters (rounded up to pruning_granularity): {', '.join(clamped_layers)}"
        )
    if p_after == p_before:
        notes.append("nothing was pruned (every channel scores above the threshold or is fixed)")
    return {
        "source": source,
        "settings": settings,
        "params_before": p_before,
        "params_after": p_after,
        "params_ratio": _ratio(p_before, p_after),
        "conv_params_before": int(count_conv_params(model)),
        "conv_params_after": int(count_conv_params(pruned)),
        "flops_input": size_key(sizes[0]),
        "flops_before": first["before"],
        "flops_after": first["after"],
        "flops_ratio": first["ratio"],
        "flops": flops,
        "layers": layers,
        "groups": group_rows,
        "clamped_to_min_num_filters": clamped_layers,
        "notes": notes,
    }


# ---------------------------------------------------------------------------------------------------- files


def _check_output(output_file) -> Path:
    out = Path(output_file)
    if out.suffix.lower() != ".keras":
        raise BpnetError(f"{out}: the pruned model is written as a .keras file (bpnet retrains .keras models with "
                         "load_graph); give an output name ending in .keras")  # fmt: skip
    if out.parent.exists() and not out.parent.is_dir():
        raise BpnetError(f"{out.parent}: exists and is not a directory")
    if out.is_dir():
        raise BpnetError(f"{out}: is a directory; give a file name ending in .keras")
    return out


def _source_meta(model_or_path, pose) -> ModelMeta:
    """The contract the pruned model inherits: the source file's, or built for an in-memory model and ``pose``."""
    if isinstance(model_or_path, (str, os.PathLike)):
        from bpnet_core.model.tao import TAO_SUFFIXES, load_model_file

        if Path(model_or_path).suffix.lower() in TAO_SUFFIXES:  # no contract inside: the one the loader derives
            return load_model_file(model_or_path)[1]
        return read_meta(model_or_path)
    if pose is None:
        raise BpnetError("pruning an in-memory model needs its pose config (pose=...) to write the model contract")
    from bpnet_core.model import model_meta

    return model_meta(model_or_path, pose)


def prune_and_save(
    model_or_path,
    output_file: str | os.PathLike,
    report_file: str | os.PathLike | None = None,
    **prune_kwargs: Any,
) -> dict:
    """:func:`prune_model`, then write the pruned ``.keras`` model and its report atomically.

    ``report_file`` defaults to ``prune_report.json`` beside ``output_file`` (its folder is created if needed). Every
    check (flags, input model, output folder, ``.keras`` suffix) runs before anything is written, so a failure
    leaves no file behind. Returns the report (with ``output_file`` and ``report_file`` added).
    """
    out = _check_output(output_file)
    report_path = Path(report_file) if report_file is not None else out.parent / REPORT_NAME
    if report_path.parent.exists() and not report_path.parent.is_dir():
        raise BpnetError(f"{report_path.parent}: is a file, not a folder for {report_path.name}")
    pruned, report = prune_model(model_or_path, **prune_kwargs)
    meta = _source_meta(model_or_path, prune_kwargs.get("pose"))
    report = {**report, "output_file": str(out), "report_file": str(report_path)}
    make_dir(report_path.parent, "report folder")
    provenance = dict(meta.provenance)
    if isinstance(model_or_path, (str, os.PathLike)):  # the retrain's default teacher (distillation.from_pruned)
        provenance["pruned_from"] = str(Path(model_or_path).resolve())
    save_model_atomic(pruned, out, keras_members(meta.with_changes(name=out.stem, provenance=provenance)))
    write_json_atomic(report_path, report)
    log.info("wrote %s and %s", out, report_path)
    return report


def retrain_pruned(
    spec,
    pruned_model: str | os.PathLike,
    results_dir: str | os.PathLike,
    overrides: dict | None = None,
    fresh: bool = True,
    **train_kwargs: Any,
) -> dict:
    """Retrain a pruned model: :func:`bpnet_core.train.train` with ``load_graph: true`` and
    ``pretrained_weights`` = ``pruned_model`` (TAO's retrain step, ``bpnet_retrain_m1_*.yaml``).

    ``fresh`` removes the checkpoints and ``status.json`` a previous retrain left in ``results_dir`` first: the
    trainer resumes from them otherwise, and they may belong to another pruned model. Returns train's summary.
    """
    import shutil

    pruned_model = Path(pruned_model)
    if not pruned_model.is_file():
        raise BpnetError(f"{pruned_model}: pruned model not found")
    results = Path(results_dir)
    if fresh and results.is_dir():
        shutil.rmtree(results / CHECKPOINT_SUBDIR, ignore_errors=True)
        (results / STATUS_FILE).unlink(missing_ok=True)
    over = {**(overrides or {}), "load_graph": True, "pretrained_weights": str(pruned_model.resolve())}
    return train(spec, results, over, **train_kwargs)
