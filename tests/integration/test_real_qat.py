"""Quantisation-aware INT8 of a real network (human-pose-estimation-0001), end to end on real photos: `bpnet qat`
then `bpnet export --data_type int8` (ONNX Runtime, OpenVINO, DeepStream's SDK layout), and what is refused."""

from __future__ import annotations

import numpy as np
import pytest

from bpnet_core.errors import BpnetError
from bpnet_core.meta import read_meta

pytestmark = pytest.mark.slow


def test_qat_int8_of_a_real_network_runs_fully_int8_and_keeps_its_ap(hpe_keras, tmp_path):
    """A short QAT fine-tune, then the QDQ file: ONNX Runtime fuses every convolution into QLinearConv, the contract
    says INT8 QAT, and the file's AP on the 36 real photos is within 0.02 of the float network's (measured here:
    0.492 vs 0.496 before any fine-tune)."""
    import onnx
    import onnxruntime as ort

    from bpnet_core.export import export_model
    from bpnet_core.export.deepstream import deepstream_config
    from bpnet_core.infer.evaluation import run_evaluation
    from bpnet_core.int8.finetune import qat_finetune
    from bpnet_core.tutorial import REAL_SAMPLE_SPEC, REAL_UNLABELLED_IMAGES

    run = qat_finetune(hpe_keras["path"], tmp_path / "qat", REAL_UNLABELLED_IMAGES, calibration_count=16,
                       max_steps=2, progress=False)  # fmt: skip
    assert run["step"] == 2 and run["prepare"]["channels_rescaled"] > 30 and run["prepare"]["quantisers"] == 74
    meta = read_meta(run["model"])
    assert meta.provenance["quantization"]["method"] == "qat" and meta.color == "BGR"
    onnx_file = tmp_path / "hpe_int8.onnx"
    report = export_model(run["model"], onnx_file, data_type="int8", cal_image_dir=REAL_UNLABELLED_IMAGES)
    assert report["qdq"]["float_convs"] == [] and report["agreement"]["passed"]
    assert read_meta(onnx_file).precision == "int8"
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.optimized_model_filepath = str(tmp_path / "optimised.onnx")
    ort.InferenceSession(str(onnx_file), so, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(str(tmp_path / "optimised.onnx")).graph.node]
    assert ops.count("QLinearConv") == 58 and "Conv" not in ops and "FusedConv" not in ops, sorted(set(ops))
    float_ap = run_evaluation(None, hpe_keras["path"], REAL_SAMPLE_SPEC, tmp_path / "e_fp32", progress=False)["AP"]
    int8_ap = run_evaluation(None, onnx_file, REAL_SAMPLE_SPEC, tmp_path / "e_int8", progress=False)["AP"]
    assert int8_ap >= float_ap - 0.02, (int8_ap, float_ap)

    xml = tmp_path / "hpe_int8.xml"
    ov = export_model(run["model"], xml, backend="openvino", data_type="int8", cal_image_dir=REAL_UNLABELLED_IMAGES)
    assert ov["agreement"]["passed"] and xml.with_suffix(".bin").is_file()

    ds_file = tmp_path / "deepstream" / "hpe_ds_int8.onnx"  # DeepStream's layout around the same QDQ graph
    ds = export_model(run["model"], ds_file, data_type="int8", cal_image_dir=REAL_UNLABELLED_IMAGES,
                      sdk_compatible_model=True, input_dims="368,432,3")  # fmt: skip
    assert ds["sdk"]["max_abs_diff"] == 0.0 and ds["agreement"]["passed"]
    ds_meta = read_meta(ds_file)
    assert ds_meta.precision == "int8" and ds_meta.provenance["quantization"]["method"] == "qat"
    assert ds_meta.input_name == "input_1:0" and ds_meta.pafs().stride == 2 and ds_meta.input_hw == (368, 432)
    ds_ops = [n.op_type for n in onnx.load(str(ds_file)).graph.node]
    assert ds_ops.count("Conv") == 58 and ds_ops.count("DequantizeLinear") > 58  # every Conv reads INT8 weights
    pgie = deepstream_config(ds_file, tmp_path / "deepstream")["values"]
    assert pgie["network-mode"] == 1 and "int8-calib-file" not in pgie  # TensorRT reads the ranges from the graph

    with pytest.raises(BpnetError, match="exports with --data_type int8 only"):
        export_model(run["model"], tmp_path / "hpe_fp16.onnx", data_type="fp16")
    assert not (tmp_path / "hpe_fp16.onnx").exists()


def test_a_qat_export_whose_people_disagree_is_refused(hpe_keras, tmp_path):
    """A QAT model with a broken range (one tensor's grid 1000× too coarse) fails the INT8 parity check: one-line
    error, nothing written."""
    from bpnet_core.export import export_model
    from bpnet_core.int8.fakequant import observers
    from bpnet_core.int8.finetune import prepare_qat
    from bpnet_core.model.bpnet import keras_members, save_model_atomic
    from bpnet_core.tutorial import REAL_UNLABELLED_IMAGES

    qat, meta, _ = prepare_qat(hpe_keras["path"], REAL_UNLABELLED_IMAGES, calibration_count=8)
    layer = observers(qat)["conv9_pw"] if "conv9_pw" in observers(qat) else observers(qat)["conv9_pw_relu"]
    layer.output_range.assign(np.asarray(layer.output_range) * 1000.0)
    path = tmp_path / "broken.keras"
    prov = {**meta.provenance, "quantization": {"method": "qat"}}
    save_model_atomic(qat, path, keras_members(meta.with_changes(name="broken", provenance=prov)))
    out = tmp_path / "broken_int8.onnx"
    with pytest.raises(BpnetError, match="INT8 parity check failed") as err:
        export_model(path, out, data_type="int8", cal_image_dir=REAL_UNLABELLED_IMAGES)
    assert "\n" not in str(err.value) and not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".broken_int8")]


def test_qat_refuses_too_few_photos_and_a_qat_model(hpe_keras, tmp_path):
    from bpnet_core.int8.finetune import MIN_CALIBRATION_PHOTOS, qat_finetune
    from bpnet_core.tutorial import REAL_UNLABELLED_IMAGES

    few = tmp_path / "few"
    few.mkdir()
    for p in sorted(REAL_UNLABELLED_IMAGES.iterdir())[: MIN_CALIBRATION_PHOTOS - 1]:
        (few / p.name).write_bytes(p.read_bytes())
    with pytest.raises(BpnetError, match=f"QAT needs at least {MIN_CALIBRATION_PHOTOS}"):
        qat_finetune(hpe_keras["path"], tmp_path / "run", few, max_steps=1, progress=False)
    assert not (tmp_path / "run").exists()
