"""``bpnet bench``: the figures users care about, measured on this machine in one run.

Parts (``--only``): ``decode`` (ms per image vs people, with and without upsampling), ``data`` (synthetic images/s,
dataset_convert records/s, input pipeline images/s at the demo and full sizes), and — when their modules are
installed — ``train`` (training images/s, demo and full, and the pipeline/training ratio) and ``inference`` (ms per
image per backend and precision), and ``real`` (the shipped real networks on real photos: AP and ms per backend and
precision, INT8 drops and speed-ups, the decoder on real maps), ``video`` (pipelined vs serial frames/s, ID switches
of the real networks on pan/zoom clips of two real photos, with and without camera-motion compensation) and, only on
request, ``pruning`` (the demo chain for 3 seeds: AP after retraining with labels only vs distillation) and
``real_pruning`` (the real networks: FLOPs vs AP right after pruning, and after a label-free distillation retrain
per seed). Timings are
medians after warm-up; ratios come from the same run.

Writes ``bench.json``, ``bench.md`` (Markdown tables) and ``decode_ms.png`` to the output folder.
"""

from __future__ import annotations

import datetime
import importlib
import logging
import tempfile
import time
from pathlib import Path

from bpnet_core.benchmarks import data as data_bench
from bpnet_core.benchmarks.decode import bench_decode, markdown_table
from bpnet_core.env import environment_report
from bpnet_core.errors import BpnetError
from bpnet_core.fileio import write_json_atomic, write_text_atomic
from bpnet_core.tables import format_table

log = logging.getLogger(__name__)

PARTS = ["decode", "data", "train", "inference", "real", "video", "pruning", "real_pruning", "int8"]
#: Parts that train for a long time: run only when asked for by name.
ON_REQUEST = ("pruning", "real_pruning", "int8")


def machine_info() -> dict:
    r = environment_report(probe_gpu=True)
    return {"cpu": r["cpu"], "cpu_flags": r.get("cpu_flags", []), "cpu_count": r["cpu_count"], "gpus": r["gpus"],
            "python": r["python"],
            "platform": r["platform"], "packages": r["packages"],
            "date": datetime.date.today().isoformat()}  # fmt: skip


def _optional(module: str):
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("bpnet_core"):
            return None
        raise


def run_bench(out_dir: str | Path, only: list[str] | None = None, quick: bool = False) -> dict:
    """Run the benchmark parts (all, or ``only``); write bench.json / bench.md / plots; return the report."""
    parts = only or [p for p in PARTS if p not in ON_REQUEST]  # they train for an hour or more: only on request
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise BpnetError(f"--only: unknown benchmark part(s) {unknown}; choose from {PARTS}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report: dict = {"machine": machine_info(), "quick": quick, "parts": {}}
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bpnet_bench_") as tmp:
        work = Path(tmp)
        if "decode" in parts:
            log.info("bench: decode")
            report["parts"]["decode"] = bench_decode(repeats=5 if quick else 30)
        if any(p in parts for p in ("data", "train", "inference")):
            log.info("bench: data")
            data = {"synthetic": data_bench.bench_synthetic(work, num=40 if quick else 200)}
            data["convert"] = data_bench.bench_convert(work)
            data["pipeline"] = data_bench.bench_pipeline(work, batches=3 if quick else 10)
            report["parts"]["data"] = data
        for part, module in (
            ("train", "bpnet_core.benchmarks.train"),
            ("inference", "bpnet_core.benchmarks.inference"),
            ("real", "bpnet_core.benchmarks.real"),
            ("video", "bpnet_core.benchmarks.video"),
            ("pruning", "bpnet_core.benchmarks.pruning"),
            ("real_pruning", "bpnet_core.benchmarks.real_pruning"),
            ("int8", "bpnet_core.benchmarks.int8"),
        ):
            if part in parts:
                mod = _optional(module)
                if mod is None:
                    report["parts"][part] = {"skipped": f"{module} is not available yet"}
                    continue
                log.info("bench: %s", part)
                report["parts"][part] = mod.run(work, report, quick=quick)
    report["seconds"] = round(time.perf_counter() - t_all, 1)
    write_json_atomic(out_dir / "bench.json", report)
    write_text_atomic(out_dir / "bench.md", markdown(report))
    if "decode" in report["parts"]:
        plot_decode(report["parts"]["decode"], out_dir / "decode_ms.png")
    return report


def markdown(report: dict) -> str:
    m = report["machine"]
    isa = ", ".join(m.get("cpu_flags", [])) or "no AVX2"
    gpus = ", ".join(m["gpus"]) or "none"
    lines = [f"Measured {m['date']} on {m['cpu']} ({m['cpu_count']} cores; {isa}), GPUs: {gpus}, "
             f"Python {m['python']}, TensorFlow {m['packages'].get('tensorflow')}, "
             f"ONNX Runtime {m['packages'].get('onnxruntime')}.", ""]  # fmt: skip
    p = report["parts"]
    if "decode" in p:
        d = p["decode"]
        lines += [f"**Decoder** ({d['map_shape'][0]}×{d['map_shape'][1]} maps = {d['input_shape'][0]}×"
                  f"{d['input_shape'][1]} input, ms per image):", "", markdown_table(d), ""]  # fmt: skip
    if "data" in p:
        s, c, pl = p["data"]["synthetic"], p["data"]["convert"], p["data"]["pipeline"]
        rows = [[f"synthetic_data ({s['size']}×{s['size']})", f"{s['images_per_second']:.1f} images/s"],
                ["dataset_convert (train, masks)", f"{c['records_per_second']:.1f} records/s"]]  # fmt: skip
        rows += [[f"input pipeline, {prof} ({r['input_hw'][0]}×{r['input_hw'][1]}, batch {r['batch_size']})",
                  f"{r['images_per_second']:.1f} images/s"] for prof, r in pl.items()]  # fmt: skip
        lines += ["**Data**:", "", format_table(["step", "figure"], rows), ""]
    for part in ("train", "inference", "real", "video", "pruning", "real_pruning", "int8"):
        if part in p and "markdown" in p[part]:
            lines += [p[part]["markdown"], ""]
        elif part in p and "skipped" in p[part]:
            lines += [f"*{part}: skipped ({p[part]['skipped']})*", ""]
    return "\n".join(lines)


def plot_decode(d: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for f in sorted({r["upsampling"] for r in d["results"]}, reverse=True):
        pts = sorted((r["people"], r["median_ms"]) for r in d["results"] if r["upsampling"] == f)
        ax.plot([x for x, _ in pts], [y for _, y in pts], "o-", label=f"upsampling ×{f}")
    ax.set_xlabel("people in the image")
    ax.set_ylabel("decode ms (median)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
