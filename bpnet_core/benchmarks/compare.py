"""Backends and decoders side by side (notebook 05): latency, size on disk and COCO AP of several model files
(:func:`compare_deployments`), AP of models × decoder settings (:func:`compare_decoders`), and their rows as a
Markdown table (:func:`markdown_rows`). Latency is :func:`bpnet_core.costs.measure_latencies`.

>>> rows = compare_deployments({"FP32": "m.onnx", "INT8": "m_int8.onnx"}, spec, dataset_spec, "runs/cmp", (368, 368))
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from bpnet_core.config import infer_spec_from_model, load_infer_spec
from bpnet_core.costs import measure_latencies
from bpnet_core.export.openvino import ir_bytes
from bpnet_core.infer.evaluation import run_evaluation
from bpnet_core.preprocess import effective_mode
from bpnet_core.runners import load_runner
from bpnet_core.tables import dict_table

log = logging.getLogger(__name__)


def compare_deployments(
    models: dict,
    spec,
    dataset_spec,
    results_dir: str | os.PathLike,
    input_hw: tuple[int, int] | None = None,
    warmup: int = 2,
    repeats: int = 10,
    evaluate: bool = True,
) -> list[dict]:
    """For each ``{name: model path}``: latency (batch 1, median after warm-up, measured interleaved in this call),
    size on disk and COCO AP on ``dataset_spec``'s test split (``run_evaluation`` with ``spec``, or with each
    model's recommended settings when ``spec`` is ``None``; fixed-shape models run with ``pad_image_input`` at their
    size). Latency is measured at ``input_hw``, else at the model's recommended input shape. One row per model."""
    runners = {name: load_runner(path) for name, path in models.items()}
    specs = {name: spec if spec is not None else infer_spec_from_model(r.meta) for name, r in runners.items()}
    hws = {name: r.meta.input_hw or tuple(input_hw or specs[name].input_shape) for name, r in runners.items()}
    lat = measure_latencies(runners, hws, warmup=warmup, repeats=repeats)
    rows = []
    for name, path in models.items():
        runner, hw = runners[name], hws[name]
        row = {"model": name, "file": Path(path).name, "MB": round(ir_bytes(path) / 1e6, 2),
               "ms": round(lat[name]["median_ms"], 2), "input": f"{hw[0]}x{hw[1]}",
               "mode": effective_mode(runner.meta, specs[name].keep_aspect_ratio_mode, hw)[0]}  # fmt: skip
        if evaluate:
            m = run_evaluation(spec, runner, dataset_spec, Path(results_dir) / name, progress=False)
            row.update({"AP": round(m["AP"], 4), "AP50": round(m["AP50"], 4)})
        rows.append(row)
        log.info("%s: %s", name, row)
    return rows


def compare_decoders(models: dict, specs: dict, dataset_spec, results_dir: str | os.PathLike) -> list[dict]:
    """COCO AP on ``dataset_spec``'s test split of each model (``{name: model path}``) decoded with each inference spec
    (``{name: spec file, or None for the model's recommended settings}``), every spec run at the model's own input
    size (its fixed size, else its card's ``input_shape``) so that rows differ only in resize mode and decoder
    constants — e.g. the model card's settings, TAO's defaults and the DeepStream app's preset side by side. One row per
    (model, spec): ``model``, ``decoder``, ``input``, ``mode``, ``AP``, ``AP50``, ``people`` (detections per image)."""
    rows = []
    for name, path in models.items():
        runner = load_runner(path)
        card = infer_spec_from_model(runner.meta)
        hw = tuple(runner.meta.input_hw or card.input_shape)
        for decoder, spec_file in specs.items():
            spec = card if spec_file is None else load_infer_spec(spec_file, {"input_shape": [int(hw[0]), int(hw[1])]})
            m = run_evaluation(spec, runner, dataset_spec, Path(results_dir) / f"{name}__{decoder}", progress=False)
            rows.append({"model": name, "decoder": decoder, "input": f"{hw[0]}x{hw[1]}",
                         "mode": effective_mode(runner.meta, spec.keep_aspect_ratio_mode, hw)[0],
                         "AP": round(m["AP"], 4), "AP50": round(m["AP50"], 4),
                         "people": round(m["people_found"] / max(1, m["images"]), 2)})  # fmt: skip
            log.info("%s: %s", name, rows[-1])
    return rows


def markdown_rows(rows: list[dict], columns: list[str] | None = None) -> str:
    """A Markdown table of :func:`compare_deployments` rows."""
    return dict_table(rows, columns)
