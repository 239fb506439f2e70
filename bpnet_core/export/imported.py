"""Export of a model that is already ONNX or OpenVINO IR (an imported real network, or a bpnet ONNX export):
FP32 / FP16 / INT8 for ONNX Runtime (``.onnx``) or OpenVINO (``.xml``), with the contract carried over.

Calibration images are prepared from the model's contract exactly as inference prepares them: its colour order and
normalisation, and its recommended size and resize mode (a fixed-size mode such as ``stretch`` as it is; otherwise
``pad_image_input`` at the recommended ``input_shape``, so every calibration batch has one size).

INT8 (:mod:`bpnet_core.int8.ptq_real`): depthwise→pointwise equalisation (exact in FP32), ONNX Runtime static QDQ
quantisation or NNCF, then accuracy control: layer groups go back to float, output side first, until the INT8
model's decoded people agree with the FP32 model's on calibration photos the quantisation did not use (COCO
keypoint AP of INT8 people against FP32 people ≥ ``AGREEMENT_AP_MIN``; :mod:`bpnet_core.evaluate.agreement`). The
result must pass that check or nothing is written: a broken quantisation is never reported as a success. The report
lists what was kept in float, the search steps and the measured agreement and output SNR. Pose configs without COCO
joint names fall back to the output SNR check (``PARITY_SNR_DB_MIN``).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from bpnet_core.data.coco import COCO_KEYPOINTS
from bpnet_core.errors import BpnetError
from bpnet_core.evaluate.agreement import agreement_ap
from bpnet_core.export.onnx import convert_fp16, parity_image, set_meta
from bpnet_core.export.openvino import ir_bytes, onnx_to_openvino, write_ir
from bpnet_core.fileio import make_dir, read_image
from bpnet_core.infer import Predictor
from bpnet_core.int8.calibration import CalibrationBatcher, list_images
from bpnet_core.int8.ptq_real import (
    AGREEMENT_AP_MIN,
    int8_parity,
    quantize_onnx_int8,
    quantize_openvino_int8,
)
from bpnet_core.int8.search import accuracy_controlled_int8
from bpnet_core.meta import ModelMeta, read_ir, read_meta
from bpnet_core.preprocess import FIXED_SIZE_MODES, prepare
from bpnet_core.runners import load_runner

log = logging.getLogger(__name__)

MIN_CHECK_PHOTOS = 20  # fewer calibration photos beyond --batches: the check reuses the calibration photos


def calibration_batches(meta: ModelMeta, cal_image_dir, count: int, data_format: str | None = None) -> list:
    """Up to ``count`` calibration batches of one image each, prepared from ``meta`` (NHWC, or NCHW when the
    model's input is NCHW and ``data_format`` is not given)."""
    mode = meta.inference.get("keep_aspect_ratio_mode") or "pad_image_input"
    mode = mode if mode in FIXED_SIZE_MODES else "pad_image_input"
    hw = tuple(meta.input_hw or meta.inference.get("input_shape") or (368, 368))
    layout = data_format or ("channels_first" if meta.layout == "NCHW" else "channels_last")
    batcher = CalibrationBatcher(list_images(cal_image_dir), hw, 1, count, meta, layout, mode)
    return list(batcher)


def parity_on(batches_nhwc: list, fp32_runner, runner, num_heatmaps: int) -> dict:
    """Raw output agreement of two runners on the same NHWC batches (:func:`int8_parity`: SNRs, abs errors)."""

    def on_heat_grid(p: np.ndarray, h: np.ndarray) -> np.ndarray:  # PAFs at a finer stride: area-averaged down
        if p.shape[1:3] == h.shape[1:3]:
            return p
        size = (h.shape[2], h.shape[1])
        return np.stack([cv2.resize(x, size, interpolation=cv2.INTER_AREA).reshape(h.shape[1:3] + (-1,)) for x in p])

    ref, got = [], []
    for b in batches_nhwc:
        h0, p0 = fp32_runner.predict(b)
        h1, p1 = runner.predict(b)
        ref.append(np.concatenate([h0, on_heat_grid(p0, h0)], axis=-1))
        got.append(np.concatenate([h1, on_heat_grid(p1, h1)], axis=-1))
    return int8_parity(ref, got, num_heatmaps)


def reference_people(fp32_runner, image_paths: list) -> dict:
    """The FP32 model's decoded people on ``image_paths`` (its recommended settings), with each photo's size and the
    pose config: what :func:`decoded_agreement` scores candidates against, computed once per search."""
    a = Predictor(fp32_runner)
    people, hw = [], []
    for path in image_paths:
        image = read_image(path)
        people.append(a(image).keypoints)
        hw.append(image.shape[:2])
    return {"images": list(image_paths), "people": people, "hw": hw, "pose": a.pose}


def decoded_agreement(fp32_runner, runner, image_paths: list, reference: dict | None = None) -> dict:
    """How well ``runner``'s decoded people agree with ``fp32_runner``'s on real photos (each model's recommended
    settings): :func:`bpnet_core.evaluate.agreement.agreement_ap` plus ``passed`` (≥ :data:`AGREEMENT_AP_MIN`).
    ``reference``: :func:`reference_people` of the same runner and photos, so that checking many candidates runs
    and decodes the FP32 model once."""
    ref = reference_people(fp32_runner, image_paths) if reference is None else reference
    if ref["images"] != list(image_paths):
        raise BpnetError("decoded_agreement: the reference people are of other photos")
    b = Predictor(runner)
    cand = []
    for path in image_paths:
        r = b(read_image(path))
        cand.append((r.keypoints, r.scores))
    out = agreement_ap(ref["people"], cand, ref["hw"], ref["pose"])
    return {**out, "images": len(image_paths), "threshold": AGREEMENT_AP_MIN, "passed": out["AP"] >= AGREEMENT_AP_MIN}


def export_imported(
    model,
    output_file,
    backend: str = "onnx",
    data_type: str = "fp32",
    cal_image_dir=None,
    batches: int = 10,
    calibration_method: str = "minmax",
    parity_tolerance: float = 1e-3,
) -> dict:
    """Export ``model`` (an ``.onnx`` or ``.xml`` file carrying a bpnet contract) to ``output_file``.

    Returns a report: ``output_file``, ``bytes``, ``data_type``, ``backend``, ``parity`` (the written model vs the
    source on calibration or probe images: SNRs and absolute errors), ``int8`` (kept in float, equalisation,
    sensitivity search) for INT8, ``seconds``."""
    t0 = time.perf_counter()
    src, out = Path(model), Path(output_file)
    meta = read_meta(src)
    want = ".xml" if backend == "openvino" else ".onnx"
    if out.suffix.lower() != want:
        raise BpnetError(f"{out}: --backend {backend} writes a {want} file")
    if src.suffix.lower() == ".xml" and backend != "openvino":
        raise BpnetError(f"{src}: an OpenVINO IR exports with --backend openvino only")
    if data_type == "int8" and not cal_image_dir:
        raise BpnetError("--data_type int8 needs calibration images (--cal_image_dir)")
    make_dir(out.parent, "output folder")
    probe = calibration_batches(meta, cal_image_dir, batches, "channels_last") if cal_image_dir else None
    if probe is None:
        hw = tuple(meta.input_hw or meta.inference.get("input_shape") or (368, 368))
        probe = [prepare(parity_image(hw), meta, hw, "pad_image_input").batch]
    to_model = [b.transpose(0, 3, 1, 2).copy() if meta.layout == "NCHW" else b for b in probe]
    out_meta = meta.with_changes(precision=data_type, name=out.stem,
                                 provenance={**meta.provenance, "exported_from": src.name})  # fmt: skip
    report: dict = {"output_file": str(out), "backend": backend, "data_type": data_type, "source": str(src)}
    fp32 = load_runner(src)
    with tempfile.TemporaryDirectory(prefix=f".{out.stem}.", dir=out.parent) as tmp:
        staged = Path(tmp) / out.name

        photos = list_images(cal_image_dir) if cal_image_dir else []
        # decoded people are compared on photos that did not calibrate (when there are enough of them)
        check_photos = photos[batches:] if len(photos) >= batches + MIN_CHECK_PHOTOS else photos
        use_people = bool(photos) and any(n in COCO_KEYPOINTS for n in meta.pose.joint_names)

        if data_type == "int8" and use_people:
            reference = reference_people(fp32, check_photos)  # FP32's people: decoded once, for every candidate

            def agreement(path) -> dict:
                return decoded_agreement(fp32, load_runner(path), check_photos, reference)

            kwargs = {"method": calibration_method} if backend == "onnx" else {}
            search = accuracy_controlled_int8(src, to_model, lambda path: agreement(path)["AP"], staged,
                                              backend=backend, max_drop=1.0 - AGREEMENT_AP_MIN, reference_score=1.0,
                                              meta=out_meta, **kwargs)  # fmt: skip
            result = {"int8": {"kept_float": {n: "its layer group is kept in float by the accuracy search"
                                              for n in search["nodes_float"]}, "search": search}}  # fmt: skip
            result["agreement"] = agreement(staged)
        elif data_type == "int8":
            result = (_openvino(src, out_meta, staged, data_type, to_model) if backend == "openvino" else
                      _onnx(src, out_meta, staged, data_type, to_model, calibration_method))  # fmt: skip
        elif backend == "openvino":
            result = _openvino(src, out_meta, staged, data_type, to_model)
        else:
            result = _onnx(src, out_meta, staged, data_type, to_model, calibration_method)
        result["parity"] = parity = parity_on(probe, fp32, load_runner(staged), meta.pose.num_heatmap_channels)
        report.update(result)
        ok = result["agreement"]["passed"] if "agreement" in result else parity["passed"]
        if data_type == "int8" and not ok:
            if "agreement" in result:
                g = result["agreement"]
                why = (f"its people agree with FP32's at AP {g['AP']:.2f} < {g['threshold']:.2f} on {g['images']} "
                       "calibration photo(s)")  # fmt: skip
            else:
                why = f"SNR {parity['snr_db']:.1f} dB < {parity['threshold_db']:.0f} dB against FP32"
            raise BpnetError(f"{out}: INT8 parity check failed: {why} (a broken quantisation); nothing written")
        if data_type == "fp32" and parity["max_abs"] > parity_tolerance:
            raise BpnetError(f"{out}: differs from {src.name} by {parity['max_abs']:.3g} (> {parity_tolerance:g}); "
                             "nothing written")  # fmt: skip
        if staged.suffix == ".xml":
            os.replace(staged.with_suffix(".bin"), out.with_suffix(".bin"))
        os.replace(staged, out)
    report["bytes"] = ir_bytes(out)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    log.info("exported %s → %s (%s, %s)", src, out, backend, data_type)
    return report


def _onnx(src: Path, meta: ModelMeta, staged: Path, data_type: str, batches: list, method: str) -> dict:
    import onnx

    info = {}
    if data_type == "int8":
        info = {"int8": quantize_onnx_int8(src, staged, batches, method=method)}
        proto = onnx.load(str(staged))
    else:
        proto = onnx.load(str(src))
        proto = convert_fp16(proto) if data_type == "fp16" else proto
    set_meta(proto, meta)
    onnx.save(proto, str(staged))
    return info


def _openvino(src: Path, meta: ModelMeta, staged: Path, data_type: str, batches: list) -> dict:
    if data_type != "int8":
        model = read_ir(src) if src.suffix.lower() == ".xml" else onnx_to_openvino(src)
        write_ir(model, staged, meta, compress_to_fp16=data_type == "fp16")
        return {}

    if src.suffix.lower() == ".xml":
        raise BpnetError(f"{src}: INT8 for OpenVINO starts from the FP32 ONNX model (an IR may be quantised already)")
    model, info = quantize_openvino_int8(str(src), batches)
    write_ir(model, staged, meta)
    return {"int8": info}


#: Calibration photos of :func:`full_int8`.
FULL_INT8_PHOTOS = 20


def full_int8(fp32_model, output_file, cal_image_dir, photos: int = FULL_INT8_PHOTOS) -> dict:
    """Post-training INT8 of an FP32 ``.onnx`` with **nothing** kept in float and no accuracy check: depthwise
    rescaling, MinMax ranges on ``photos`` photos of ``cal_image_dir``, ONNX Runtime (``.onnx``) or NNCF
    (``.xml``) by the suffix of ``output_file``. The speed limit of INT8 on a CPU, and what post-training
    quantisation alone does to a real network's accuracy (human-pose-estimation-0001: AP 0.496 → ~0.25); the
    baseline the QAT file is measured against. Returns ``output_file`` and ``calibration_photos``."""
    src, out = Path(fp32_model), Path(output_file)
    if src.suffix.lower() != ".onnx":
        raise BpnetError(f"{src}: full_int8 quantises an FP32 .onnx file")
    if out.suffix.lower() not in (".onnx", ".xml"):
        raise BpnetError(f"{out}: write .onnx (ONNX Runtime) or .xml (OpenVINO)")
    meta = read_meta(src)
    batches = calibration_batches(meta, cal_image_dir, int(photos))
    if not batches:
        raise BpnetError(f"{cal_image_dir}: no readable calibration photo")
    make_dir(out.parent, "output folder")
    info = meta.with_changes(precision="int8", name=out.stem, provenance={
        **meta.provenance, "calibration": "minmax (depthwise rescaling, nothing kept in float)"})  # fmt: skip
    with tempfile.TemporaryDirectory(prefix=f".{out.stem}.", dir=out.parent) as tmp:
        staged = Path(tmp) / out.name
        if out.suffix.lower() == ".onnx":
            _onnx(src, info, staged, "int8", batches, "minmax")
        else:
            _openvino(src, info, staged, "int8", batches)
            os.replace(staged.with_suffix(".bin"), out.with_suffix(".bin"))
        os.replace(staged, out)
    return {"output_file": str(out), "calibration_photos": len(batches)}
