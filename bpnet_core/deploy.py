"""Deployment: one runner API for every model file, the model to deploy, and backend comparisons.

>>> runner = load_runner("bpnet_model.onnx")       # or .keras, or .engine
>>> heatmaps, pafs = runner.predict(batch)          # batch: float32 (N, H, W, 3), normalised like training

Every runner has ``stride``, ``num_stages``, ``pose`` (the pose config stored with the model, or ``None``),
``fixed_input_shape`` (``None`` or (H, W): TensorRT engines and fixed-shape ONNX files; inference then forces
``pad_image_input`` as TAO does) and ``predict(batch, stage=None, context=None) -> (heatmaps, pafs)``.

=========================  ===================================  ===============================================
file                       runner                               runs on
=========================  ===================================  ===============================================
``.keras``                 :class:`~bpnet_core.infer.runners.KerasRunner`        TensorFlow (CPU or GPU)
``.onnx``                  :class:`~bpnet_core.infer.onnx_runner.OnnxRunner`     ONNX Runtime: CUDA when onnxruntime-gpu
                                                                                 is installed, else CPU
``.engine/.trt/.plan``     :class:`~bpnet_core.export.tensorrt.TensorRTRunner`   TensorRT (NVIDIA GPU)
=========================  ===================================  ===============================================
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from pathlib import Path

import numpy as np

from bpnet_core.errors import BpnetError

log = logging.getLogger(__name__)

ENGINE_SUFFIXES = (".engine", ".trt", ".plan")


def load_runner(path: str | os.PathLike, stride: int = 8, pose=None, providers: list[str] | None = None):
    """A runner for a model file: ``.keras`` (Keras), ``.onnx`` (ONNX Runtime) or ``.engine`` (TensorRT).

    ``pose`` (a :class:`PoseConfig`) is attached to runners whose file does not carry one (Keras files) and
    checked against the output widths; ``providers`` picks ONNX Runtime execution providers.
    """
    path = Path(path)
    if not path.exists():
        raise BpnetError(f"{path}: model file not found")
    suffix = path.suffix.lower()
    if suffix == ".keras":
        from bpnet_core.infer.runners import KerasRunner
        from bpnet_core.model import load_bpnet_model

        runner = KerasRunner(load_bpnet_model(path, pose), stride)
    elif suffix == ".onnx":
        from bpnet_core.infer.onnx_runner import OnnxRunner

        runner = OnnxRunner(path, stride, providers)
    elif suffix in ENGINE_SUFFIXES:
        from bpnet_core.export.tensorrt import TensorRTRunner

        runner = TensorRTRunner(path, stride)
    else:
        raise BpnetError(f"{path}: unknown model type {suffix!r} (expected .keras, .onnx or .engine)")
    if getattr(runner, "pose", None) is None:
        runner.pose = pose
    runner.path = path
    return runner


def model_for_deployment(work_dir: str | os.PathLike) -> Path:
    """The model the tutorial deploys: the retrained pruned model of notebook 04 when there is one, else the model
    notebook 02 trained.

    Notebook 04 writes ``WORK_DIR/04_prune_retrain/retrain/bpnet_model.keras``; failing that, the newest ``*.keras``
    under ``04_prune_retrain/`` whose path mentions ``retrain``, else the newest other ``*.keras`` there; the
    pruned, not yet retrained ``*pruned*.keras`` (``bpnet prune -o``) and checkpoints are never picked. Fallback:
    ``WORK_DIR/02_train/bpnet_model.keras``.
    """
    work = Path(work_dir).resolve()
    stage = work / "04_prune_retrain"
    exact = stage / "retrain" / "bpnet_model.keras"  # what notebook 04's retrain_pruned writes
    if exact.is_file():
        return exact
    if stage.is_dir():
        models = [p for p in stage.rglob("*.keras") if not p.name.startswith(".")
                  and not any("checkpoint" in part.lower() for part in p.relative_to(stage).parts)]  # fmt: skip
        retrained = [p for p in models if "retrain" in str(p.relative_to(stage)).lower()]
        others = [p for p in models if "pruned" not in p.name.lower()]
        for found in (retrained, others):
            if found:
                return max(found, key=lambda p: p.stat().st_mtime)
    trained = work / "02_train" / "bpnet_model.keras"
    if trained.is_file():
        return trained
    raise BpnetError(f"{work}: no model to deploy (neither 04_prune_retrain/*retrain*.keras nor "
                     "02_train/bpnet_model.keras): run notebook 02 (and 04) first")  # fmt: skip


def _random_batch(input_hw, batch_size: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((batch_size, input_hw[0], input_hw[1], 3), dtype=np.float32) - 0.5).astype(np.float32)


def measure_latency(runner, input_hw: tuple[int, int], batch_size: int = 1, warmup: int = 2, repeats: int = 10,
                    seed: int = 0) -> dict:  # fmt: skip
    """Median milliseconds per ``predict`` call (after ``warmup`` calls) on a random normalised batch."""
    return measure_latencies({"runner": runner}, input_hw, batch_size, warmup, repeats, seed)["runner"]


def measure_latencies(runners: dict, input_hw, batch_size: int = 1, warmup: int = 2, repeats: int = 10,
                      seed: int = 0) -> dict:  # fmt: skip
    """Latency of several runners, **interleaved**: each round calls every runner once, so a change of machine load
    during the measurement affects all of them alike and their ratios stay fair. ``input_hw`` is one (H, W) for all,
    or ``{name: (H, W)}``. Returns ``{name: {median_ms, min_ms, repeats, input_hw, batch_size}}``."""
    hws = {n: tuple(input_hw[n]) if isinstance(input_hw, dict) else tuple(input_hw) for n in runners}
    batches = {n: _random_batch(hws[n], batch_size, seed) for n in runners}
    for _ in range(max(0, warmup)):
        for n, r in runners.items():
            r.predict(batches[n])
    times: dict = {n: [] for n in runners}
    for _ in range(max(1, repeats)):
        for n, r in runners.items():
            t = time.perf_counter()
            r.predict(batches[n])
            times[n].append((time.perf_counter() - t) * 1000)
    return {n: {"median_ms": statistics.median(ts), "min_ms": min(ts), "repeats": len(ts), "input_hw": list(hws[n]),
                "batch_size": batch_size} for n, ts in times.items()}  # fmt: skip


def file_size(path: str | os.PathLike) -> int:
    """Bytes on disk (a folder: the sum of its files)."""
    p = Path(path)
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return p.stat().st_size


def compare_deployments(
    models: dict,
    spec,
    dataset_spec,
    results_dir: str | os.PathLike,
    input_hw: tuple[int, int],
    pose=None,
    warmup: int = 2,
    repeats: int = 10,
    evaluate: bool = True,
) -> list[dict]:
    """For each ``{name: model path}``: latency (batch 1, median after warm-up, measured interleaved in this call),
    size on disk and COCO AP on ``dataset_spec``'s test split (``run_evaluation`` with ``spec``; fixed-shape models
    run with ``pad_image_input`` at their size). Returns one row per model."""
    from bpnet_core.infer.evaluation import run_evaluation

    runners = {name: load_runner(path, pose=pose) for name, path in models.items()}
    hws = {name: r.fixed_input_shape or tuple(input_hw) for name, r in runners.items()}
    lat = measure_latencies(runners, hws, warmup=warmup, repeats=repeats)
    rows = []
    for name, path in models.items():
        runner, hw = runners[name], hws[name]
        row = {"model": name, "file": Path(path).name, "MB": round(file_size(path) / 1e6, 2),
               "ms": round(lat[name]["median_ms"], 2), "input": f"{hw[0]}x{hw[1]}",
               "mode": "pad_image_input" if runner.fixed_input_shape else spec.keep_aspect_ratio_mode}  # fmt: skip
        if evaluate:
            m = run_evaluation(spec, runner, dataset_spec, Path(results_dir) / name, pose=pose, progress=False)
            row.update({"AP": round(m["AP"], 4), "AP50": round(m["AP50"], 4)})
        rows.append(row)
        log.info("%s: %s", name, row)
    return rows


def markdown_rows(rows: list[dict], columns: list[str] | None = None) -> str:
    """A Markdown table of :func:`compare_deployments` rows."""
    if not rows:
        return ""
    columns = columns or list(rows[0].keys())
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(str(r.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)
