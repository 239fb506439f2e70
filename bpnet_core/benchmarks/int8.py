"""INT8 side by side, per real network and runtime: FP32; fully-INT8 post-training (depthwise rescaling, MinMax);
the accuracy-controlled mix (``bpnet export --data_type int8`` of the imported network: layer groups kept in float
until its people agree with FP32's); and quantisation-aware INT8 (``bpnet qat``, then ``bpnet export``: cross-layer
channel equalisation, ranges calibrated on photos, one QDQ file), both its start (before any fine-tune) and after
the distillation fine-tune.

For ``mobilenet_thin`` and ``human-pose-estimation-0001`` (trainable imports), on ONNX Runtime and OpenVINO (f32
precision hint for its FP32 rows): COCO keypoint AP on the 36 real val2017 photos (each card's recommended
settings), milliseconds per image at batch 1 at the card's size (median, all variants of one network and runtime
**interleaved** in one run), the AP drop and speed-up against FP32, and QAT's speed-up as a fraction of the fully
INT8 post-training file's. Post-training calibration: 20 of the 80 labelled train2017 photos; QAT: calibration on
32 and the fine-tune on the unlabelled photos (``../shared``'s 635 when there, else the 48 shipped ones), none of
them evaluation photos. The CPU's name and ISA flags head the table: INT8 speed depends on VNNI/AMX.

    bpnet bench --only int8
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from bpnet_core.benchmarks.real_pruning import unlabelled_photos
from bpnet_core.costs import measure_latencies
from bpnet_core.env import cpu_flags, cpu_name
from bpnet_core.errors import BpnetError
from bpnet_core.export import export_model
from bpnet_core.export.imported import full_int8
from bpnet_core.infer.evaluation import run_evaluation
from bpnet_core.int8.finetune import qat_finetune
from bpnet_core.runners import load_runner
from bpnet_core.tables import format_table
from bpnet_core.tutorial import REAL_SAMPLE_SPEC, REAL_TRAIN_IMAGES, trainable_networks

log = logging.getLogger(__name__)

NETWORKS = ("human-pose-estimation-0001", "mobilenet_thin")
#: Post-training calibration photos (of the 80 labelled train2017 ones; the accuracy check uses the rest).
PTQ_PHOTOS = 20
#: QAT fine-tune epochs over the unlabelled photos (batch 4 at 256×256: 158 steps per epoch over the 635 photos of
#: ``../shared``); ``--quick``: 2 steps.
QAT_EPOCHS = {"human-pose-estimation-0001": 1, "mobilenet_thin": 4}
#: QAT learning rate (RelativeAdam: a relative change per step). mobilenet_thin, one epoch (112 steps) from the same
#: start (Keras simulation, 36 photos): 3e-6 → 0.143, 1e-5 → 0.199, 3e-5 → 0.218 (start 0.112, FP32 0.296).
QAT_LEARNING_RATE = {"human-pose-estimation-0001": 1e-5, "mobilenet_thin": 3e-5}
#: The size each network is timed at: the card's (fixed_height on a 640×480 photo: 368 high, 496 wide).
TIMING_HW = {"human-pose-estimation-0001": (368, 496), "mobilenet_thin": (368, 432)}


def _ptq_full(fp32_onnx: Path, out_dir: Path, stem: str) -> dict[str, Path]:
    """Fully-INT8 post-training files (depthwise rescaling, MinMax, nothing kept in float) for both runtimes."""
    files = {"ORT": out_dir / f"{stem}_ptq_int8.onnx", "OpenVINO": out_dir / f"{stem}_ptq_int8.xml"}
    for path in files.values():
        full_int8(fp32_onnx, path, REAL_TRAIN_IMAGES, PTQ_PHOTOS)
    return files


def _variants(work: Path, net: str, quick: bool) -> tuple[dict, dict]:
    """{(runtime, variant): model file} and what making them cost / reported."""
    keras_file = trainable_networks(work, [net])[net]
    stem = net.split("-")[0] if net.startswith("human") else "thin"
    files: dict[tuple[str, str], Path] = {}
    info: dict = {}
    t = time.perf_counter()
    files[("ORT", "FP32")] = fp32 = work / f"{stem}_fp32.onnx"
    export_model(keras_file, fp32)
    files[("OpenVINO", "FP32")] = work / f"{stem}_fp32.xml"
    export_model(fp32, files[("OpenVINO", "FP32")], backend="openvino")
    for runtime, path in _ptq_full(fp32, work, stem).items():
        files[(runtime, "INT8 post-training")] = path
    for runtime, suffix in (("ORT", ".onnx"), ("OpenVINO", ".xml")):
        path = work / f"{stem}_mixed_int8{suffix}"
        r = export_model(fp32, path, backend="openvino" if runtime == "OpenVINO" else "onnx", data_type="int8",
                         cal_image_dir=REAL_TRAIN_IMAGES, batches=8 if quick else PTQ_PHOTOS)  # fmt: skip
        files[(runtime, "INT8 accuracy-controlled")] = path
        info[f"mixed {runtime}"] = {"groups_float": r["int8"]["search"]["groups_float"],
                                    "groups_total": r["int8"]["search"]["groups_total"]}  # fmt: skip
    info["exports_seconds"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    run = qat_finetune(keras_file, work / f"{stem}_qat", unlabelled_photos(work), epochs=QAT_EPOCHS[net],
                       learning_rate=QAT_LEARNING_RATE[net], max_steps=2 if quick else None,
                       progress=False)  # fmt: skip
    info["qat"] = {"steps": run["step"], "seconds": round(time.perf_counter() - t, 1), "prepare": run["prepare"]}
    for label, model, tag in (("INT8 QAT start (calibrated, no fine-tune)", run["start_model"], "start"),
                              (f"INT8 QAT ({run['step']} steps)", run["model"], "qat")):  # fmt: skip
        sim = run_evaluation(None, model, REAL_SAMPLE_SPEC, work / f"sim_{stem}_{tag}", progress=False)
        info[f"{tag} simulated AP"] = round(float(sim["AP"]), 4)
        for runtime, suffix in (("ORT", ".onnx"), ("OpenVINO", ".xml")):
            path = work / f"{stem}_{tag}_int8{suffix}"
            try:
                r = export_model(model, path, backend="openvino" if runtime == "OpenVINO" else "onnx",
                                 data_type="int8", cal_image_dir=REAL_TRAIN_IMAGES)  # fmt: skip
            except BpnetError as exc:  # the parity gate refused it: a row of the table says so
                info[f"{tag} {runtime} refused"] = str(exc)
                continue
            files[(runtime, label)] = path
            info[f"{tag} {runtime} agreement"] = round(r["agreement"]["AP"], 3)
    return files, info


def run(work: Path, report: dict | None = None, quick: bool = False) -> dict:
    """Make, time and evaluate every variant; returns rows, per-network ratios and a Markdown table."""
    work = Path(work) / "int8"
    work.mkdir(parents=True, exist_ok=True)
    rows, details = [], {}
    for net in NETWORKS:
        files, details[net] = _variants(work, net, quick)
        for runtime in ("ORT", "OpenVINO"):
            mine = {v: p for (r, v), p in files.items() if r == runtime}
            runners = {v: load_runner(p) for v, p in mine.items()}
            lat = measure_latencies(runners, TIMING_HW[net], warmup=2 if quick else 5, repeats=5 if quick else 30)
            for variant, path in mine.items():
                folder = work / "eval" / f"{net}_{runtime}_{variant}".replace(" ", "_")
                ap = run_evaluation(None, runners[variant], REAL_SAMPLE_SPEC, folder, progress=False)["AP"]
                ms = round(lat[variant]["median_ms"], 2)
                rows.append({"network": net, "runtime": runtime, "variant": variant, "ms": ms,
                             "AP": round(float(ap), 4), "file": str(path)})  # fmt: skip
                log.info("bench int8: %s", rows[-1])
    for r in rows:
        same = {x["variant"]: x for x in rows if x["network"] == r["network"] and x["runtime"] == r["runtime"]}
        base, ptq = same["FP32"], same["INT8 post-training"]
        r["ap_drop"] = round(base["AP"] - r["AP"], 4)
        r["speedup"] = round(base["ms"] / r["ms"], 2)
        r["of_ptq_speedup"] = round(ptq["ms"] / r["ms"], 2)
    refused = [f"{net}: {k.split(' refused')[0]} export on {k.split()[1]} refused ({v.split(': ', 1)[-1][:120]})"
               for net, d in details.items() for k, v in d.items() if k.endswith("refused")]  # fmt: skip
    out = {"cpu": cpu_name(), "cpu_flags": cpu_flags(), "rows": rows, "details": details, "refused": refused}
    out["markdown"] = markdown(out)
    return out


def markdown(res: dict) -> str:
    lines = [
        f"**INT8 of the real networks** on {res['cpu']} ({', '.join(res['cpu_flags']) or 'no AVX2'}): AP on the "
        "36 real COCO photos (card settings), ms per image at batch 1 at the card's size (median, the variants "
        "of one network and runtime interleaved); speed-up vs FP32, and vs the fully-INT8 post-training file:",
        "",
    ]
    table = [[r["network"], r["runtime"], r["variant"], f"{r['ms']:.1f}", f"{r['AP']:.3f}", f"{r['ap_drop']:+.3f}",
              f"{r['speedup']:.2f}×", f"{r['of_ptq_speedup']:.2f}×"] for r in res["rows"]]  # fmt: skip
    lines.append(format_table(["network", "runtime", "variant", "ms", "AP", "AP drop", "speed-up", "vs PTQ speed"],
                              table, align="lllrrrrr"))  # fmt: skip
    lines += [f"- {r}" for r in res.get("refused", [])]
    sims = [f"{net} {k.split()[0]}: {v:.3f}" for net, d in res.get("details", {}).items() for k, v in d.items()
            if k.endswith("simulated AP")]  # fmt: skip
    if sims:
        lines.append(f"- AP of the QAT models in Keras (the simulation): {'; '.join(sims)}")
    return "\n".join(lines)
