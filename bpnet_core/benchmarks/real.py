"""Real networks on real photos: accuracy and speed per backend and precision, and the decoder on real maps.

Networks: the two shipped COCO-trained networks (imported with their model cards). ``mobilenet_thin`` runs as
ONNX Runtime FP32 / INT8 and OpenVINO FP32 / INT8 (INT8 calibrated on 20 of the 80 real COCO train2017 images of
``tests/fixtures/coco_mini_train2017``, its decoded people checked on the other 60; all disjoint from the evaluation
photos; ``--quick`` calibrates and checks on 8, a smoke run only); ``human-pose-estimation-0001`` runs as
shipped (Intel's FP16-INT8 IR) on OpenVINO. For each: COCO keypoint AP on the 36 real val2017 photos (each card's
recommended settings, TAO's decoder defaults) and milliseconds per image at batch 1 (median after warm-up, all
variants of one network measured **interleaved** in one run at the card's input size). OpenVINO runs with
``INFERENCE_PRECISION_HINT = f32`` (its CPU plugin would otherwise run bf16 where the CPU has it).

Decoder on real maps: mobilenet_thin's FP32 maps of the 36 photos decoded with TAO's ×8 default and with the ×1
fast path (no smoothing, sub-pixel refinement): AP and decode ms per image.

    bpnet bench --only real
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

from bpnet_core.config import load_dataset_spec
from bpnet_core.costs import measure_latencies
from bpnet_core.evaluate import evaluate_coco
from bpnet_core.export import export_model
from bpnet_core.fileio import read_json
from bpnet_core.infer import Predictor
from bpnet_core.infer.evaluation import run_evaluation
from bpnet_core.infer.sweep import cached_predictions, decode_cached
from bpnet_core.runners import load_runner
from bpnet_core.tables import format_table
from bpnet_core.tutorial import REAL_SAMPLE_SPEC, REAL_TRAIN_IMAGES, real_networks

log = logging.getLogger(__name__)

CAL_IMAGES = 20  # of the 80 train photos; the INT8 check compares decoded people on the other 60
X1 = {"upsampling_factor": 1, "smooth_sigma": 0.0, "subpixel": True}


def _models(work: Path, quick: bool) -> dict:
    """name → (model file, backend, precision, network): imports and INT8 exports."""
    real = real_networks(work, ["human-pose-estimation-0001", "mobilenet_thin"])
    thin = real["mobilenet_thin"]
    n = 8 if quick else CAL_IMAGES
    out = {"thin ORT FP32": (thin, "ORT", "FP32", "mobilenet_thin")}
    t0 = time.perf_counter()
    r8 = export_model(thin, work / "thin_int8.onnx", data_type="int8", cal_image_dir=REAL_TRAIN_IMAGES, batches=n)
    out["thin ORT INT8"] = (work / "thin_int8.onnx", "ORT", "INT8", "mobilenet_thin")
    export_model(thin, work / "thin_fp32.xml", backend="openvino")
    out["thin OpenVINO FP32"] = (work / "thin_fp32.xml", "OpenVINO", "FP32", "mobilenet_thin")
    o8 = export_model(thin, work / "thin_int8.xml", backend="openvino", data_type="int8",
                      cal_image_dir=REAL_TRAIN_IMAGES, batches=n)  # fmt: skip
    out["thin OpenVINO INT8"] = (work / "thin_int8.xml", "OpenVINO", "INT8", "mobilenet_thin")
    out["hpe OpenVINO FP16-INT8"] = (real["human-pose-estimation-0001"], "OpenVINO", "FP16-INT8",
                                     "human-pose-estimation-0001")  # fmt: skip
    exports = {"ORT INT8": _summary(r8), "OpenVINO INT8": _summary(o8), "seconds": round(time.perf_counter() - t0, 1)}
    return {"models": out, "exports": exports}


def _summary(report: dict) -> dict:
    info = report.get("int8", {})
    return {"parity_snr_db": round(report["parity"]["snr_db"], 1), "kept_float": sorted(info.get("kept_float", {})),
            "seconds": report.get("seconds")}  # fmt: skip


def run(work: Path, report: dict | None = None, quick: bool = False) -> dict:
    """Measure every variant; returns rows, ratios and a Markdown table."""
    work = Path(work) / "real"
    work.mkdir(parents=True, exist_ok=True)
    made = _models(work, quick)
    ds = load_dataset_spec(REAL_SAMPLE_SPEC)
    runners = {name: load_runner(path) for name, (path, *_rest) in made["models"].items()}
    rows = []
    for net in ("mobilenet_thin", "human-pose-estimation-0001"):
        names = [n for n, m in made["models"].items() if m[3] == net]
        hw = tuple(Predictor(runners[names[0]]).spec.input_shape)
        if net == "human-pose-estimation-0001":
            hw = (368, 496)  # fixed_height on a 640×480 photo: width 490.7, padded to the stride
        lat = measure_latencies({n: runners[n] for n in names}, hw, warmup=2 if quick else 5,
                                repeats=5 if quick else 30)  # fmt: skip
        for n in names:
            m = run_evaluation(None, runners[n], ds, work / "eval" / n.replace(" ", "_"), progress=False)
            _, backend, precision, _ = made["models"][n]
            rows.append(
                {
                    "network": net,
                    "backend": backend,
                    "precision": precision,
                    "input": f"{hw[0]}x{hw[1]}",
                    "ms": round(lat[n]["median_ms"], 2),
                    "AP": round(m["AP"], 4),
                    "AP50": round(m["AP50"], 4),
                }
            )
            log.info("bench real: %s", rows[-1])
    by = {(r["backend"], r["precision"]): r for r in rows if r["network"] == "mobilenet_thin"}
    ratios = {
        b: {
            "speedup": round(by[(b, "FP32")]["ms"] / by[(b, "INT8")]["ms"], 2),
            "ap_drop": round(by[(b, "FP32")]["AP"] - by[(b, "INT8")]["AP"], 4),
        }
        for b in ("ORT", "OpenVINO")
    }
    out = {"rows": rows, "int8": ratios, "exports": made["exports"], "decoder": _decoder(runners["thin ORT FP32"], ds)}
    out["markdown"] = markdown(out)
    return out


def _decoder(runner, ds) -> dict:
    """TAO's ×8 default vs the ×1 fast path on the same cached real maps: AP and decode ms per image."""
    predictor = Predictor(runner)
    images_dir, _, ann = ds.split("test")
    cache = cached_predictions(predictor, ann, images_dir)
    gt = read_json(ann)
    names = list(ds.categories[0].keypoints)
    out = {}
    for label, params in (
        ("x8 (TAO default)", predictor.params),
        ("x1 (no smoothing, sub-pixel)", dataclasses.replace(predictor.params, **X1)),
    ):
        t0 = time.perf_counter()
        results = decode_cached(cache, predictor, params, names)
        ms = (time.perf_counter() - t0) * 1000 / len(cache)
        out[label] = {"AP": round(evaluate_coco(gt, results)["AP"], 4), "decode_ms": round(ms, 2)}
    return out


def markdown(res: dict) -> str:
    lines = [
        "**Real networks on the 36 real COCO photos** (AP with each card's recommended settings; ms per image, "
        "batch 1, median, variants of one network interleaved; OpenVINO with the f32 precision hint):",
        "",
    ]
    rows = [[r["network"], r["backend"], r["precision"], r["input"].replace("x", "×"), f"{r['ms']:.1f}",
             f"{r['AP']:.3f}", f"{r['AP50']:.3f}"] for r in res["rows"]]  # fmt: skip
    lines.append(format_table(["network", "backend", "precision", "input", "ms", "AP", "AP50"], rows, align="llllrrr"))
    rows = [[b, f"{v['speedup']:.2f}×", f"{v['ap_drop']:+.3f}"] for b, v in res["int8"].items()]
    lines += [
        "",
        format_table(["mobilenet_thin INT8", "speed-up vs FP32 (same backend)", "AP drop"], rows, align="lrr"),
    ]
    rows = [[label, f"{v['AP']:.3f}", f"{v['decode_ms']:.1f}"] for label, v in res["decoder"].items()]
    header = ["decoder on mobilenet_thin's real maps", "AP", "decode ms / image"]
    lines += ["", format_table(header, rows, align="lrr")]
    return "\n".join(lines)
