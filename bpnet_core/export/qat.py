"""Export of a quantisation-aware (QAT) model: one QDQ INT8 ONNX file, or the OpenVINO IR made from it.

``bpnet export -m runs/hpe_qat/bpnet_model.keras -o hpe_qat.onnx --data_type int8 [--cal_image_dir PHOTOS]``

No calibration run: the ranges are the QAT model's own (:mod:`bpnet_core.int8.qdq`). Checks before anything is
written: no Conv left in float, every tensor on the grid the QAT model trained with, and the file agrees with the
QAT Keras model it came from — its decoded people on ``--cal_image_dir`` photos (agreement AP ≥
``AGREEMENT_AP_MIN``, as for post-training INT8), or the output SNR on a probe image without photos. A QAT model
exports at a fixed size (``-d``, default the contract's recommended input size) and as INT8 only: its float weights were fine-tuned for the rounding, so FP32/FP16 exports are refused (export
the float model it came from, named in its contract, for those).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from bpnet_core.errors import BpnetError
from bpnet_core.export.onnx import export_meta, keras_to_onnx, parity_image, parse_input_dims, set_meta
from bpnet_core.export.imported import (
    MIN_CHECK_PHOTOS,
    calibration_batches,
    decoded_agreement,
    parity_on,
)
from bpnet_core.export.openvino import ir_bytes, onnx_to_openvino, write_ir
from bpnet_core.fileio import list_images, make_dir
from bpnet_core.int8.qat import to_float
from bpnet_core.int8.qdq import qdq_from_qat
from bpnet_core.preprocess import prepare
from bpnet_core.runners import load_runner
from bpnet_core.runners.keras import KerasRunner

#: Photos the decoded-people check uses at most.
CHECK_PHOTOS = 20


def refuse_float_export(path, meta, data_type: str) -> None:
    """A QAT model exported as FP32/FP16: the one-line error that says what to do instead."""
    parent = meta.provenance.get("quantization", {}).get("float_model")
    hint = f"; export its float model ({parent}) for {data_type.upper()}" if parent else ""
    raise BpnetError(f"{path}: a quantisation-aware (INT8 QAT) model exports with --data_type int8 only (its weights "
                     f"were fine-tuned for INT8 rounding){hint}")  # fmt: skip


def export_qat(qat_model, meta, source: Path, output_file, backend: str = "onnx", input_dims=None,
               cal_image_dir=None, batches: int = 10) -> dict:  # fmt: skip
    """Write the QAT Keras model ``qat_model`` (contract ``meta``, from file ``source``) as QDQ INT8 ONNX
    (``backend="onnx"``) or OpenVINO IR (``"openvino"``) to ``output_file``; see the module docstring."""
    import onnx

    t0 = time.perf_counter()
    out = Path(output_file)
    want = ".xml" if backend == "openvino" else ".onnx"
    if out.suffix.lower() != want:
        raise BpnetError(f"{out}: --backend {backend} writes a {want} file")
    make_dir(out.parent, "output folder")
    hw = tuple(parse_input_dims(input_dims) or meta.inference.get("input_shape") or (368, 368))
    input_hw = hw  # a fixed size: tf2onnx's dynamic-size graph adds shape arithmetic around some convolutions
    photos = list_images(cal_image_dir) if cal_image_dir else []
    if photos:
        probe = calibration_batches(meta.with_changes(input_hw=hw), cal_image_dir, max(1, int(batches)),
                                    "channels_last")  # fmt: skip
    else:
        probe = [prepare(parity_image(hw), meta, hw, "pad_image_input").batch]
    float_model = to_float(qat_model)
    proto = keras_to_onnx(float_model, input_hw)
    wanted = [o.name for o in proto.graph.output]
    out_meta = export_meta(meta, wanted, "channels_last", input_hw, len(qat_model.outputs) // 2, out.stem)
    quant = {**meta.provenance.get("quantization", {}), "method": "qat", "kept_float": []}
    out_meta = out_meta.with_changes(precision="int8", provenance={**out_meta.provenance, "quantization": quant})
    reference = KerasRunner(qat_model, meta)
    report: dict = {"output_file": str(out), "backend": backend, "data_type": "int8", "source": str(source),
                    "quantization": "qat"}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix=f".{out.stem}.", dir=out.parent) as tmp:
        qdq = Path(tmp) / f"{out.stem}.onnx"
        report["qdq"] = qdq_from_qat(qat_model, float_model, proto, probe[0], qdq)
        final = onnx.load(str(qdq))
        set_meta(final, out_meta)
        onnx.save(final, str(qdq))
        staged = qdq
        if backend == "openvino":
            staged = Path(tmp) / out.name
            write_ir(onnx_to_openvino(qdq), staged, out_meta)
        runner = load_runner(staged)
        report["parity"] = parity = parity_on(probe, reference, runner, meta.pose.num_heatmap_channels)
        check = photos[batches:] if len(photos) >= batches + MIN_CHECK_PHOTOS else photos
        if check:
            report["agreement"] = g = decoded_agreement(reference, runner, check[:CHECK_PHOTOS])
            if not g["passed"]:
                raise BpnetError(f"{out}: QAT parity check failed: its people agree with the QAT model's at AP "
                                 f"{g['AP']:.2f} < {g['threshold']:.2f} on {g['images']} photo(s); nothing written")
        elif not parity["passed"]:
            raise BpnetError(f"{out}: QAT parity check failed: SNR {parity['snr_db']:.1f} dB < "
                             f"{parity['threshold_db']:.0f} dB against the QAT model; nothing written")  # fmt: skip
        if staged.suffix == ".xml":
            os.replace(staged.with_suffix(".bin"), out.with_suffix(".bin"))
        os.replace(staged, out)
    report["bytes"] = ir_bytes(out)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return report
