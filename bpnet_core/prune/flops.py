"""What a model costs: parameters, convolution FLOPs at a given input size, and CPU latency.

FLOPs follow the usual convention for these networks: convolution multiply-accumulates only (Conv2D, DepthwiseConv2D,
Conv2DTranspose; no BN, activations or concatenations), and FLOPs = 2 × MACs. The spatial size of every convolution's
output at the requested input size comes from Keras' symbolic shape inference (no arrays are computed), so the
figures are exact for any graph and input size, e.g. ≈ 60.7 GMAC for TAO's 3-stage network at 368×368.

>>> conv_flops(model, (368, 368))["flops"]          # 2 × Σ conv MACs
>>> latency_ms(model, (128, 128))                   # median ms per image of a compiled forward pass
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from bpnet_core.errors import BpnetError
from bpnet_core.fileio import make_dir

#: Input sizes the prune report gives FLOPs for when none are asked: OpenPose's 368×368 and TAO's training size.
DEFAULT_FLOPS_SIZES = ((368, 368), (256, 256))


def _conv_layers(model):
    import keras

    kinds = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Conv2DTranspose)
    return [layer for layer in model.layers if isinstance(layer, kinds)]


def parse_hw(value) -> tuple[int, int]:
    """``(H, W)`` from ``"368x368"``, ``"288,384"``, ``[288, 384]`` or ``256`` (square); positive multiples of 8."""
    if isinstance(value, str):
        parts = value.lower().replace("×", "x").replace(",", "x").split("x")
    elif isinstance(value, (int, np.integer)):
        parts = [value, value]
    else:
        parts = list(value)
    try:
        h, w = (int(p) for p in parts)
    except (TypeError, ValueError):
        raise BpnetError(f"input size {value!r} must be HxW, e.g. 368x368") from None
    if h <= 0 or w <= 0 or h % 8 or w % 8:
        raise BpnetError(f"input size {h}x{w} must be positive multiples of 8 (the network's stride)")
    return h, w


def size_key(hw) -> str:
    """``"368x368"``: the key of an input size in reports."""
    h, w = parse_hw(hw)
    return f"{h}x{w}"


def conv_flops(model, input_hw=(368, 368)) -> dict:
    """Convolution MACs and FLOPs of ``model`` for one ``(H, W, 3)`` image.

    Returns ``{"input": "HxW", "macs": int, "flops": int, "per_layer": {layer name: MACs}}``.
    """
    import keras

    h, w = parse_hw(input_hw)
    convs = _conv_layers(model)
    if not convs:
        return {"input": f"{h}x{w}", "macs": 0, "flops": 0, "per_layer": {}}
    probe = keras.Model(model.inputs, [layer.output for layer in convs])
    channels = model.inputs[0].shape[-1]
    specs = probe.compute_output_spec(keras.KerasTensor((1, h, w, channels), dtype="float32"))
    specs = specs if isinstance(specs, (list, tuple)) else [specs]
    per_layer = {}
    for layer, spec in zip(convs, specs):
        _, oh, ow, cout = (int(d) for d in spec.shape)
        kh, kw = (int(k) for k in layer.kernel_size)
        kernel = layer.kernel.shape
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            macs = oh * ow * kh * kw * int(kernel[2]) * int(kernel[3])
        elif isinstance(layer, keras.layers.Conv2DTranspose):
            ih, iw = int(layer.input.shape[1] or 0), int(layer.input.shape[2] or 0)
            ih, iw = (ih, iw) if ih and iw else (oh // max(1, layer.strides[0]), ow // max(1, layer.strides[1]))
            macs = ih * iw * kh * kw * int(kernel[2]) * int(kernel[3])
        else:
            macs = oh * ow * kh * kw * int(kernel[2]) * cout
        per_layer[layer.name] = int(macs)
    total = int(sum(per_layer.values()))
    return {"input": f"{h}x{w}", "macs": total, "flops": 2 * total, "per_layer": per_layer}


def count_params(model) -> int:
    """All parameters (trainable and BN moving statistics): what Keras' ``count_params`` and TAO's log report."""
    return int(sum(int(np.prod(v.shape)) for v in model.weights))


def model_costs(model, input_sizes: Sequence = DEFAULT_FLOPS_SIZES) -> dict:
    """``{"params", "conv_params", "flops": {"HxW": FLOPs}}`` of a model."""
    from bpnet_core.model import count_conv_params

    return {
        "params": count_params(model),
        "conv_params": int(count_conv_params(model)),
        "flops": {size_key(s): conv_flops(model, s)["flops"] for s in input_sizes},
    }


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
    for _ in range(max(1, int(warmup))):
        _ = [np.asarray(o) for o in tf.nest.flatten(fn(x))]
    times = []
    for _ in range(int(runs)):
        t0 = time.perf_counter()
        _ = [np.asarray(o) for o in tf.nest.flatten(fn(x))]
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000.0 / int(batch))


# ---------------------------------------------------------------------------------------------------- notebook 04


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
    import os

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
        from bpnet_core.infer.evaluation import run_evaluation
        from bpnet_core.meta import read_meta
        from bpnet_core.model import model_meta
        from bpnet_core.runners.keras import KerasRunner

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

    from bpnet_core.prune.channel_prune import prune_and_save

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


def pick_threshold(rows: list[dict], min_ratio: float = 2.0, key: str = "flops_ratio", metric: str | None = "AP",
                   tolerance: float = 0.005) -> dict:
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
    """Four panels against ``-pth``: parameters, GFLOPs, ms per image and ``metric`` (dashed: the unpruned model)."""
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
    plt.show()
    return fig


def comparison_table(rows: dict[str, dict], flops_label: str = "GFLOPs") -> str:
    """A text table of named measurements (params, FLOPs, ms per image, AP), e.g. unpruned / pruned / retrained."""
    head = f"{'':<12}{'params':>12}{flops_label:>10}{'ms/img':>9}{'AP':>8}{'AP50':>8}"
    lines = [head]
    for name, m in rows.items():
        ap = f"{m['AP']:>8.3f}" if "AP" in m else f"{'-':>8}"
        ap50 = f"{m['AP50']:>8.3f}" if "AP50" in m else f"{'-':>8}"
        lines.append(f"{name:<12}{m['params']:>12,d}{m['flops'] / 1e9:>10.3f}{m['latency_ms']:>9.2f}{ap}{ap50}")
    return "\n".join(lines)


def plot_filter_scores(model, normalizer: str = "max", thresholds: Sequence[float] = ()):
    """Box plot of each prunable conv's normalised filter scores (what ``-pth`` is compared with), with ``thresholds``
    drawn as horizontal lines: it shows which threshold range actually removes filters from *this* model."""
    import matplotlib.pyplot as plt

    from bpnet_core.model.stages import is_output_layer
    from bpnet_core.prune.channel_prune import _kind, filter_norms, normalize_scores

    names, scores = [], []
    for layer in model.layers:
        if _kind(layer) == "conv" and not is_output_layer(layer.name):
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
    plt.show()
    return fig
