"""What notebook 04 measures, plots and tabulates: CPU latency, one model's figures (:func:`measure_model`), a
pruning-threshold sweep (:func:`threshold_sweep`, :func:`pick_threshold`), and their plots and tables.

Sits above :mod:`bpnet_core.prune.flops` (the cost figures) and :mod:`bpnet_core.prune.channel_prune` (the pruning).

>>> latency_ms(model, (128, 128))                   # median ms per image of a compiled forward pass
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import numpy as np

from bpnet_core.costs import time_calls
from bpnet_core.errors import BpnetError
from bpnet_core.fileio import make_dir
from bpnet_core.infer.evaluation import run_evaluation
from bpnet_core.meta import read_meta
from bpnet_core.prune.channel_prune import filter_norms, normalize_scores, prune_and_save
from bpnet_core.prune.flops import DEFAULT_FLOPS_SIZES, model_costs, parse_hw, size_key
from bpnet_core.prune.graph import layer_kind
from bpnet_core.runners.keras import KerasRunner
from bpnet_core.tables import format_table


def latency_ms(model, input_hw=(128, 128), runs: int = 9, warmup: int = 3, batch: int = 1, seed: int = 0) -> float:
    """Median wall time in milliseconds of one forward pass (``tf.function``-compiled, inference mode).

    The first ``warmup`` calls (tracing, memory allocation) are not timed. On a shared CPU the median of a few runs
    is the figure to trust; expect a few percent of noise.
    """
    import tensorflow as tf

    if int(runs) < 1 or int(warmup) < 0 or int(batch) < 1:
        raise BpnetError(f"latency_ms needs runs >= 1, warmup >= 0 and batch >= 1 (got {runs}, {warmup}, {batch})")
    h, w = parse_hw(input_hw)
    rng = np.random.default_rng(seed)
    x = tf.constant(rng.uniform(-0.5, 0.5, (int(batch), h, w, 3)).astype(np.float32))
    fn = tf.function(lambda t: model(t, training=False), reduce_retracing=True)
    times = time_calls({"model": lambda: [np.asarray(o) for o in tf.nest.flatten(fn(x))]}, max(1, int(warmup)), runs)
    return float(np.median(times["model"]) / int(batch))


def measure_model(
    model_or_path,
    latency_hw=(128, 128),
    flops_sizes: Sequence = DEFAULT_FLOPS_SIZES,
    infer_spec=None,
    dataset_spec=None,
    results_dir=None,
    pose=None,
    latency_runs: int = 9,
) -> dict:
    """Parameters, FLOPs, CPU latency and (with ``infer_spec`` + ``dataset_spec``) COCO AP of one model.

    Returns ``{"params", "conv_params", "flops" (first of ``flops_sizes``), "flops_by_size", "latency_ms"}`` plus
    ``AP``, ``AP50``, … from :func:`~bpnet_core.infer.evaluation.run_evaluation` (written to ``results_dir``).
    """
    from bpnet_core.model import load_bpnet_model

    model = load_bpnet_model(model_or_path, pose) if isinstance(model_or_path, (str, os.PathLike)) else model_or_path
    costs = model_costs(model, flops_sizes)
    out = {
        "params": costs["params"],
        "conv_params": costs["conv_params"],
        "flops": next(iter(costs["flops"].values())),
        "flops_by_size": costs["flops"],
        "latency_ms": round(latency_ms(model, latency_hw, runs=latency_runs), 3),
        "latency_input": size_key(latency_hw),
    }
    if infer_spec is not None and dataset_spec is not None:
        from bpnet_core.model import model_meta

        if results_dir is None:
            raise BpnetError("measure_model: results_dir is needed to evaluate AP")
        if isinstance(model_or_path, (str, os.PathLike)):
            meta = read_meta(model_or_path)
        elif pose is not None:
            meta = model_meta(model, pose)
        else:
            raise BpnetError("measure_model: evaluating an in-memory model needs its pose config (pose=...)")
        metrics = run_evaluation(infer_spec, KerasRunner(model, meta), dataset_spec, results_dir, progress=False)
        out.update({k: v for k, v in metrics.items() if k.startswith(("AP", "AR"))})
    return out


def threshold_sweep(
    model_path,
    thresholds: Sequence[float],
    out_dir,
    infer_spec=None,
    dataset_spec=None,
    pose=None,
    latency_hw=(128, 128),
    flops_sizes: Sequence = DEFAULT_FLOPS_SIZES,
    **prune_kwargs,
) -> list[dict]:
    """Prune ``model_path`` at each ``-pth`` in ``thresholds``; measure every pruned model (:func:`measure_model`).

    Each pruned model goes to ``out_dir/pth_<value>/bpnet_model.pruned.keras`` with its ``prune_report.json`` (and
    the evaluation files under ``eval/``). Returns one row per threshold: ``pruning_threshold``, ``model_file``,
    ``params_ratio``, ``flops_ratio``, ``clamped_layers`` and the measurements (AP before any retraining).
    """
    out_dir = make_dir(out_dir, "output folder")
    rows = []
    for pth in thresholds:
        sub = out_dir / f"pth_{float(pth):g}"
        sub.mkdir(exist_ok=True)
        model_file = sub / "bpnet_model.pruned.keras"
        report = prune_and_save(model_path, model_file, pruning_threshold=pth, pose=pose,
                                flops_input_sizes=flops_sizes, **prune_kwargs)  # fmt: skip
        measured = measure_model(model_file, latency_hw, flops_sizes, infer_spec, dataset_spec, sub / "eval", pose)
        rows.append({"pruning_threshold": float(pth), "model_file": str(model_file),
                     "params_ratio": report["params_ratio"], "flops_ratio": report["flops_ratio"],
                     "clamped_layers": len(report["clamped_to_min_num_filters"]), **measured})  # fmt: skip
    return rows


def pick_threshold(
    rows: list[dict],
    min_ratio: float = 2.0,
    key: str = "flops_ratio",
    metric: str | None = "AP",
    tolerance: float = 0.005,
) -> dict:
    """The sweep row to retrain, AP-aware: among the thresholds whose ``key`` ratio reaches ``min_ratio``, the one
    whose pruned model keeps the most ``metric`` (what the cut destroyed least, measured before retraining); rows
    within ``tolerance`` of that best go to the gentlest (smallest) threshold, which removes the fewest filters.
    Without ``metric`` in the rows (or ``metric=None``): the gentlest threshold that reaches the target. When no
    row reaches it: the row with the largest ratio."""
    if not rows:
        raise BpnetError("pick_threshold: the sweep is empty")
    ok = [r for r in rows if r[key] >= min_ratio]
    if not ok:
        return max(rows, key=lambda r: r[key])
    if metric and all(metric in r for r in ok):
        best = max(float(r[metric]) for r in ok)
        ok = [r for r in ok if float(r[metric]) >= best - tolerance]
    return min(ok, key=lambda r: r["pruning_threshold"])


def plot_prune_sweep(rows: list[dict], baseline: dict | None = None, metric: str = "AP"):
    """Four panels against ``-pth``: parameters, GFLOPs, ms per image and ``metric`` (dashed: the unpruned model).
    Returns the matplotlib Figure, not shown (a notebook cell shows it as its last expression)."""
    import matplotlib.pyplot as plt

    x = [r["pruning_threshold"] for r in rows]
    panels = [("params", "parameters (M)", 1e-6), ("flops", "GFLOPs", 1e-9), ("latency_ms", "ms per image", 1.0),
              (metric, f"COCO keypoint {metric} (before retraining)", 1.0)]  # fmt: skip
    panels = [p for p in panels if all(p[0] in r for r in rows)]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.8 * len(panels), 3.2), squeeze=False)
    for ax, (key, label, scale) in zip(axes[0], panels):
        ax.plot(x, [r[key] * scale for r in rows], "o-")
        if baseline is not None and key in baseline:
            ax.axhline(baseline[key] * scale, color="gray", linestyle="--", label="unpruned")
            ax.legend(fontsize=8)
        ax.set_xlabel("pruning threshold (-pth)")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    plt.close(fig)  # out of pyplot: shown once, by whoever displays the returned figure
    return fig


def comparison_table(rows: dict[str, dict], flops_label: str = "GFLOPs") -> str:
    """A text table of named measurements (params, FLOPs, ms per image, AP), e.g. unpruned / pruned / retrained."""
    cells = [[name, f"{m['params']:,d}", f"{m['flops'] / 1e9:.3f}", f"{m['latency_ms']:.2f}",
              f"{m['AP']:.3f}" if "AP" in m else "-", f"{m['AP50']:.3f}" if "AP50" in m else "-"]
             for name, m in rows.items()]  # fmt: skip
    return format_table(["", "params", flops_label, "ms/img", "AP", "AP50"], cells, style="text",
                        widths=[12, 12, 10, 9, 8, 8])  # fmt: skip


def plot_filter_scores(model, normalizer: str = "max", thresholds: Sequence[float] = ()):
    """Box plot of each prunable conv's normalised filter scores (what ``-pth`` is compared with), with ``thresholds``
    drawn as horizontal lines: it shows which threshold range actually removes filters from *this* model. Returns the
    matplotlib Figure, not shown."""
    import matplotlib.pyplot as plt

    from bpnet_core.model.stages import is_output_layer

    names, scores = [], []
    for layer in model.layers:
        if layer_kind(layer) == "conv" and not is_output_layer(layer.name):
            names.append(layer.name)
            scores.append(normalize_scores(filter_norms(np.asarray(layer.get_weights()[0])), normalizer))
    fig, ax = plt.subplots(figsize=(max(8.0, 0.32 * len(names)), 3.6))
    ax.boxplot(scores, whis=(0, 100))
    ax.set_xticks(range(1, len(names) + 1), names, rotation=90, fontsize=7)
    for t in thresholds:
        ax.axhline(float(t), color="tab:red", linewidth=0.6, alpha=0.6)
    ax.set_ylabel(f"filter L2 norm / layer {normalizer}")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    plt.close(fig)  # out of pyplot: shown once, by whoever displays the returned figure
    return fig


def flops_sweep(model_file, ratios: Sequence[float], out_dir, dataset_spec, calibration_count: int = 32,
                reconstruct: bool = True, min_num_filters: int = 8, progress: bool = False,
                calibration_images=None) -> list[dict]:  # fmt: skip
    """Prune ``model_file`` (a network whose batch norm is folded: the ``activation`` criterion) to each FLOPs ratio
    of ``ratios`` (``--flops_ratio``, refitted with ``reconstruct``; ``calibration_images``: a folder of photos,
    default the 80 shipped train photos), write ``out_dir/pruned_<R>.keras`` and its report, and score each on
    ``dataset_spec`` with the model's own inference settings, before any retrain.

    Returns one row per ratio: ``target``, ``flops_ratio``, ``params``, ``AP``, ``prune_seconds``, ``path``."""
    out_dir = make_dir(out_dir)
    rows = []
    for ratio in ratios:
        path = out_dir / f"pruned_{ratio:g}.keras"
        t0 = time.perf_counter()
        report = prune_and_save(model_file, path, out_dir / f"prune_report_{ratio:g}.json", flops_target=float(ratio),
                                reconstruct=reconstruct, criterion="activation", min_num_filters=min_num_filters,
                                calibration_count=calibration_count, calibration_images=calibration_images,
                                progress=progress)  # fmt: skip
        seconds = round(time.perf_counter() - t0, 1)
        ap = run_evaluation(None, path, dataset_spec, out_dir / f"eval_{ratio:g}", progress=False)["AP"]
        rows.append({"target": float(ratio), "flops_ratio": report["flops_ratio"], "params": report["params_after"],
                     "AP": float(ap), "prune_seconds": seconds, "path": path})  # fmt: skip
    return rows
