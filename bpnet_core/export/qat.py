"""Export of a quantisation-aware (QAT) model: one QDQ INT8 ONNX file, or the OpenVINO IR made from it.

``bpnet export -m runs/hpe_qat/bpnet_model.keras -o hpe_qat.onnx --data_type int8 --cal_image_dir PHOTOS``

No calibration run: the ranges are the QAT model's own (:mod:`bpnet_core.int8.qdq`). The graph is traced at the
contract's input size and released to any size afterwards (:func:`release_spatial_dims`), unless ``-d`` fixes one.
Checks before anything is written: the released float graph computes the same at another size; no Conv left in
float; every tensor on the grid the QAT model trained with; and the INT8 file's decoded people on ``--cal_image_dir``
photos agree with those of the model's own float weights (agreement AP ≥ ``AGREEMENT_AP_MIN``, the gate of
post-training INT8); the report's ``parity`` is the output SNR against the same float weights. The QAT model's
simulation rounds as the runtime does, but the runtime's int32 biases and accumulation order flip a few values by one
step, and over 60–140 stacked convolutions those flips spread, so file and simulation agree in decoded people, not
bit for bit. A QAT model exports as INT8 only: its float weights were fine-tuned for the rounding, so FP32/FP16
exports are refused (export the float model it came from, named in its contract, for those). ``--engine_file``
builds a TensorRT engine from the QDQ file by explicit quantisation.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from bpnet_core.errors import BpnetError
from bpnet_core.export.imported import (
    MIN_CHECK_PHOTOS,
    calibration_batches,
    decoded_agreement,
    parity_on,
)
from bpnet_core.export.onnx import export_meta, keras_to_onnx, parse_input_dims, set_meta
from bpnet_core.export.openvino import ir_bytes, onnx_to_openvino, write_ir
from bpnet_core.fileio import list_images, make_dir, read_image
from bpnet_core.int8.qat import to_float
from bpnet_core.int8.qdq import qdq_from_qat
from bpnet_core.preprocess import prepare
from bpnet_core.runners import load_runner
from bpnet_core.runners.keras import KerasRunner

#: Photos the decoded-people check uses at most.
CHECK_PHOTOS = 20
#: Largest relative output difference of the float graph released to another input size.
RELEASE_TOLERANCE = 1e-3


def refuse_float_export(path, meta, data_type: str) -> None:
    """A QAT model exported as FP32/FP16: the one-line error that says what to do instead."""
    parent = meta.provenance.get("quantization", {}).get("float_model")
    hint = f"; export its float model ({parent}) for {data_type.upper()}" if parent else ""
    raise BpnetError(f"{path}: a quantisation-aware (INT8 QAT) model exports with --data_type int8 only (its weights "
                     f"were fine-tuned for INT8 rounding){hint}")  # fmt: skip


def release_spatial_dims(proto) -> None:
    """Make the input height and width (and the outputs') of an ONNX graph traced at one size symbolic, in place.

    tf2onnx writes a dilated convolution as one ``Conv`` with ``dilations`` when the size is known, but as
    SpaceToBatch arithmetic around it when it is not, which no INT8 runtime fuses; every op of a bpnet network is
    size-agnostic otherwise, so the graph is traced at the contract's size and released afterwards (checked at a
    second size by :func:`export_qat`)."""
    del proto.graph.value_info[:]
    for i, value in enumerate([*proto.graph.input, *proto.graph.output]):
        dims = value.type.tensor_type.shape.dim
        if len(dims) == 4:
            for axis, name in ((1, "height"), (2, "width")):
                tag = name if i == 0 else f"{name}_out"
                dims[axis].Clear()
                dims[axis].dim_param = tag


def _check_released(proto, float_model, batch: np.ndarray) -> float:
    """Relative max difference of the float graph, released to any size, from Keras at ``batch``'s size."""
    import onnx
    import onnxruntime as ort

    free = onnx.ModelProto()
    free.CopyFrom(proto)
    release_spatial_dims(free)
    sess = ort.InferenceSession(free.SerializeToString(), providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {sess.get_inputs()[0].name: batch})))
    ref = float_model(batch, training=False)
    names = [t._keras_history.operation.name for t in float_model.outputs]  # noqa: SLF001 - output layer names
    worst = 0.0
    for name, r in zip(names, ref if isinstance(ref, (list, tuple)) else [ref]):
        if name in got:
            r = np.asarray(r)
            worst = max(worst, float(np.abs(got[name] - r).max() / max(float(np.abs(r).max()), 1e-6)))
    return worst


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
    if not cal_image_dir:
        raise BpnetError("--data_type int8 of a QAT model needs photos to check it against its float weights "
                         "(--cal_image_dir)")  # fmt: skip
    photos = list_images(cal_image_dir)
    make_dir(out.parent, "output folder")
    fixed = parse_input_dims(input_dims)
    hw = tuple(fixed or meta.inference.get("input_shape") or (368, 368))
    probe = calibration_batches(meta.with_changes(input_hw=hw), cal_image_dir, max(1, int(batches)), "channels_last")
    float_model = to_float(qat_model)
    proto = keras_to_onnx(float_model, hw)  # traced at one size (see release_spatial_dims)
    report: dict = {"output_file": str(out), "backend": backend, "data_type": "int8", "source": str(source),
                    "quantization": "qat"}  # fmt: skip
    if not fixed:
        size = (hw[0], hw[1] + 64)
        other = prepare(read_image(photos[0]), meta, size, "stretch").batch
        report["released_size_difference"] = diff = _check_released(proto, float_model, other)
        if diff > RELEASE_TOLERANCE:
            raise BpnetError(
                f"{out}: the graph traced at {hw[0]}x{hw[1]} computes another function at "
                f"{size[0]}x{size[1]} (relative difference {diff:.2g}); give a fixed size with -d"
            )
    wanted = [o.name for o in proto.graph.output]
    out_meta = export_meta(meta, wanted, "channels_last", fixed, len(qat_model.outputs) // 2, out.stem)
    quant = {**meta.provenance.get("quantization", {}), "method": "qat", "kept_float": []}
    out_meta = out_meta.with_changes(precision="int8", provenance={**out_meta.provenance, "quantization": quant})
    reference = KerasRunner(float_model, meta.with_changes(input_hw=tuple(fixed)) if fixed else meta)  # same input
    with tempfile.TemporaryDirectory(prefix=f".{out.stem}.", dir=out.parent) as tmp:
        qdq = Path(tmp) / f"{out.stem}.onnx"
        report["qdq"] = qdq_from_qat(qat_model, float_model, proto, probe[0], qdq)
        final = onnx.load(str(qdq))
        if not fixed:
            release_spatial_dims(final)
        set_meta(final, out_meta)
        onnx.save(final, str(qdq))
        staged = qdq
        if backend == "openvino":
            staged = Path(tmp) / out.name
            write_ir(onnx_to_openvino(qdq), staged, out_meta)
        runner = load_runner(staged)
        report["parity"] = parity_on(probe, reference, runner, meta.pose.num_heatmap_channels)
        check = photos[batches:] if len(photos) >= batches + MIN_CHECK_PHOTOS else photos
        report["agreement"] = g = decoded_agreement(reference, runner, check[:CHECK_PHOTOS])
        if not g["passed"]:
            raise BpnetError(
                f"{out}: INT8 parity check failed: its people agree with its float weights' at AP "
                f"{g['AP']:.2f} < {g['threshold']:.2f} on {g['images']} photo(s); nothing written"
            )
        if staged.suffix == ".xml":
            os.replace(staged.with_suffix(".bin"), out.with_suffix(".bin"))
        os.replace(staged, out)
    report["bytes"] = ir_bytes(out)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return report
