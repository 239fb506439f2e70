"""Inference speed per backend and precision: Keras, ONNX Runtime FP32 / INT8 (CPU) and TensorRT where present.

Models (random weights: speed does not depend on them; OpenVINO IRs are converted from the FP32 ONNX file, INT8
by NNCF on the same calibration scenes): the **full** TAO model (``specs/bpnet_train_m1_coco.yaml``'s
model block: VGG, 3 stages) at 288×384 (TAO's deployment size) and 368×368 (TAO's inference spec), and the
**demo** model (``specs/bpnet_train_m1_demo.yaml``: 2 stages, width 0.25) at 256×256. Each model is converted once
(dynamic H, W), checked against Keras, and quantised with ONNX Runtime (static, QDQ, per-channel, MinMax) on a few
synthetic scenes pre-processed like inference. Milliseconds per image at batch 1: the median of ``repeats`` calls
after warm-up, all backends of one model and size measured in the same run, **interleaved** (each round calls every
backend once), so that a change of machine load does not favour one of them.

    bpnet bench --only inference          (or: python -m bpnet_core.benchmarks.inference --quick)
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from bpnet_core.config import load_train_spec
from bpnet_core.costs import measure_latencies
from bpnet_core.export import export_model
from bpnet_core.export import onnx as ox
from bpnet_core.export.onnx import parity_image
from bpnet_core.export.tensorrt import tensorrt_status
from bpnet_core.int8.calibration import make_batcher
from bpnet_core.int8.ptq import quantize_int8
from bpnet_core.paths import project_file
from bpnet_core.runners import load_runner
from bpnet_core.runners.keras import KerasRunner
from bpnet_core.skeleton import PoseConfig
from bpnet_core.tables import format_table

log = logging.getLogger(__name__)

CASES = [("full", (288, 384)), ("full", (368, 368)), ("demo", (256, 256))]
SPECS = {"full": "specs/bpnet_train_m1_coco.yaml", "demo": "specs/bpnet_train_m1_demo.yaml"}


def _calibration_images(folder: Path, count: int, hw=(368, 368)) -> Path:
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        cv2.imwrite(str(folder / f"scene_{i:03d}.png"), parity_image(hw, seed=i))
    return folder


def _convert(name: str, work: Path, cal_dir: Path, batches: int) -> dict:
    """Keras model + FP32 and INT8 ONNX files for one model; returns paths, sizes and the parity figure."""
    import keras
    import onnx

    from bpnet_core.model import build_model, model_meta, spec_normalization

    keras.utils.set_random_seed(0)
    spec = load_train_spec(project_file(*SPECS[name].split("/")))
    pose = PoseConfig.from_json(spec.dataloader.pose_config.pose_config_path)
    model = build_model(spec, pose)
    meta = model_meta(model, pose, spec_normalization(spec), name=name)
    t0 = time.perf_counter()
    proto = ox.keras_to_onnx(model)
    meta = ox.export_meta(meta, [o.name for o in proto.graph.output], "channels_last", None, meta.num_stages, name)
    ox.set_meta(proto, meta)
    convert_s = time.perf_counter() - t0
    parity = ox.compare_with_keras(model, ox.onnx_session(proto), ox.parity_batch((256, 256), meta))
    fp32, int8 = work / f"{name}_fp32.onnx", work / f"{name}_int8.onnx"
    onnx.save(proto, str(fp32))
    t0 = time.perf_counter()
    cal = quantize_int8(proto, int8, make_batcher(ox.DEFAULT_CAL_HW, cal_dir, batches=batches, meta=meta))
    quant_s = time.perf_counter() - t0
    q = onnx.load(str(int8))
    ox.set_meta(q, meta.with_changes(precision="int8"))
    onnx.save(q, str(int8))
    return {"keras": model, "meta": meta, "fp32": fp32, "int8": int8, "parity_max_abs_diff": parity["max_abs_diff"],
            "convert_s": round(convert_s, 1), "quantize_s": round(quant_s, 1), "calibration": cal["method"],
            "mb": {"fp32": round(fp32.stat().st_size / 1e6, 1),
                   "int8": round(int8.stat().st_size / 1e6, 1)}}  # fmt: skip


def _openvino(name: str, fp32: Path, work: Path, cal_dir: Path, batches: int) -> dict:
    """OpenVINO FP32 and INT8 (NNCF) IRs of the FP32 ONNX file; a precision whose export fails is left out (logged)."""
    out = {}
    for prec in ("fp32", "int8"):
        path = work / f"{name}_{prec}.xml"
        try:
            export_model(fp32, path, backend="openvino", data_type=prec, cal_image_dir=cal_dir, batches=batches)
            out[prec] = path
        except Exception as exc:  # noqa: BLE001 - reported, not fatal: the other columns still get measured
            log.warning("OpenVINO %s %s: %s", name, prec, exc)
    return out


def _engine(model_path: Path, keras_model, pose, hw, work: Path, precision: str, cal_dir: Path):
    engine = work / f"{model_path.stem}_{hw[0]}x{hw[1]}_{precision}.engine"
    export_model(keras_model, work / f"{engine.stem}.onnx", input_dims=f"{hw[0]},{hw[1]},3", data_type=precision,
                 engine_file=engine, cal_image_dir=cal_dir, batches=4, pose=pose)  # fmt: skip
    return engine


def run(work: Path, report: dict | None = None, quick: bool = False) -> dict:
    """Measure every backend × precision on the full and demo models; returns numbers and a Markdown table."""
    work = Path(work) / "inference"
    work.mkdir(parents=True, exist_ok=True)
    warmup, repeats = (1, 3) if quick else (2, 7)
    cal_dir = _calibration_images(work / "calibration", 2 if quick else 8)
    use_trt, trt = tensorrt_status()
    rows, models = [], {}
    for name in dict.fromkeys(n for n, _ in CASES):
        log.info("bench inference: converting the %s model", name)
        models[name] = _convert(name, work, cal_dir, batches=2 if quick else 8)
        models[name]["openvino"] = _openvino(name, models[name]["fp32"], work, cal_dir, batches=2 if quick else 8)
    for name, hw in CASES:
        m = models[name]
        runners = {("Keras", "FP32"): KerasRunner(m["keras"], m["meta"]),
                   ("ORT", "FP32"): load_runner(m["fp32"], providers=["CPUExecutionProvider"]),
                   ("ORT", "INT8"): load_runner(m["int8"], providers=["CPUExecutionProvider"])}  # fmt: skip
        for prec, ir in m.get("openvino", {}).items():
            runners[("OpenVINO", prec.upper())] = load_runner(ir)
        if use_trt:
            for prec in ("fp16", "int8"):
                try:
                    engine = _engine(Path(name), m["keras"], m["meta"].pose, hw, work, prec, cal_dir)
                    runners[("TensorRT", prec.upper())] = load_runner(engine)
                except Exception as exc:  # noqa: BLE001 - a failed engine build is reported, not fatal
                    log.warning("TensorRT %s %s: %s", name, prec, exc)
        lat = measure_latencies(runners, hw, warmup=warmup, repeats=repeats)
        for (backend, prec), r in lat.items():
            rows.append({"model": name, "input": f"{hw[0]}x{hw[1]}", "backend": backend, "precision": prec,
                         "ms": round(r["median_ms"], 2), "min_ms": round(r["min_ms"], 2)})  # fmt: skip
            log.info("bench inference: %s", rows[-1])
    ratios = {}
    for name, hw in CASES:
        key = f"{name}_{hw[0]}x{hw[1]}"
        ms = {(r["backend"], r["precision"]): r["ms"] for r in rows if r["model"] == name and
              r["input"] == f"{hw[0]}x{hw[1]}"}  # fmt: skip
        ratios[key] = round(ms[("ORT", "FP32")] / ms[("ORT", "INT8")], 2)
        if ("OpenVINO", "INT8") in ms and ("OpenVINO", "FP32") in ms:
            ratios[f"openvino_{key}"] = round(ms[("OpenVINO", "FP32")] / ms[("OpenVINO", "INT8")], 2)
    out = {"rows": rows, "int8_speedup_vs_fp32": ratios, "tensorrt": trt, "tensorrt_used": use_trt,
           "warmup": warmup, "repeats": repeats,
           "models": {k: {kk: (str(vv) if isinstance(vv, Path) else vv) for kk, vv in v.items()
                          if kk not in ("keras", "meta", "openvino")} | {"openvino": {p: str(f) for p, f in
                                                                              v["openvino"].items()}}
                      for k, v in models.items()}}  # fmt: skip
    out["markdown"] = markdown(out)
    return out


def markdown(res: dict) -> str:
    cols = list(dict.fromkeys((r["backend"], r["precision"]) for r in res["rows"]))
    lines = ["**Inference** (ms per image, batch 1, median after warm-up; ONNX Runtime and OpenVINO (f32 hint) "
             f"on the CPU; {res['tensorrt'] if res['tensorrt_used'] else 'no TensorRT here'}):", ""]  # fmt: skip
    rows = []
    for name, hw in CASES:
        key = f"{hw[0]}x{hw[1]}"
        ms = {(r["backend"], r["precision"]): r["ms"] for r in res["rows"] if r["model"] == name and r["input"] == key}
        label = {"full": "full (VGG, 3 stages)", "demo": "demo (2 stages, width 0.25)"}[name]
        cells = [f"{ms[c]:.1f}" if c in ms else "—" for c in cols]
        rows.append([label, f"{hw[0]}×{hw[1]}", *cells, f"{res['int8_speedup_vs_fp32'][f'{name}_{key}']:.2f}×"])
    header = ["model", "input", *(f"{b} {p}" for b, p in cols), "ORT INT8 speed-up"]
    lines.append(format_table(header, rows, align="ll" + "r" * (len(cols) + 1)))
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse
    import json
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=None, help="write the result JSON here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        result = run(Path(tmp), {}, quick=args.quick)
    print(result["markdown"])
    if args.out:
        Path(args.out).write_text(json.dumps({k: v for k, v in result.items()}, indent=2, default=str))
