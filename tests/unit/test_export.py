"""Export: Keras → ONNX parity, FP16, INT8 (ONNX Runtime), calibration data, one runner API, bad input.

A tiny 2-stage model (width 0.25, He initialisation so that outputs are O(1) and differences mean something)
is exported at 64×64; every conversion takes a second or two.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bpnet_core.errors import BpnetError

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "fixtures" / "coco_sample"
SAMPLE_JSON = SAMPLE / "person_keypoints_val2017_sample.json"
HW = (64, 64)


@pytest.fixture(scope="module")
def cal_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cal")
    for p in sorted(SAMPLE.glob("*.jpg"))[:6]:
        shutil.copy(p, d / p.name)
    return d


@pytest.fixture(scope="module")
def fp32_export(model_file, pose, tmp_path_factory):
    from bpnet_core.export import export_model

    out = tmp_path_factory.mktemp("fp32") / "model.onnx"
    return out, export_model(model_file, out, input_dims="64,64,3", pose=pose)


def no_onnx_left(folder: Path) -> bool:
    return not any(p.suffix in (".onnx", ".tmp", ".engine") or p.name.endswith(".tmp") for p in folder.iterdir())


# ---------------------------------------------------------------------------------------------------- arguments


@pytest.mark.parametrize("value, expect", [(None, None), ("", None), ("dynamic", None), ("288,384,3", (288, 384)),
                                           ("256,256", (256, 256)), ([64, 96, 3], (64, 96))])  # fmt: skip
def test_parse_input_dims(value, expect):
    from bpnet_core.export.onnx import parse_input_dims

    assert parse_input_dims(value) == expect


@pytest.mark.parametrize("value, words", [("290,384,3", "multiples of the stride"), ("288,384,1", "3 channels"),
                                          ("a,b,c", "integers"), ("288", "H,W,C"), ("0,8,3", "multiples")])  # fmt: skip
def test_parse_input_dims_errors(value, words):
    from bpnet_core.export.onnx import parse_input_dims

    with pytest.raises(BpnetError, match=words):
        parse_input_dims(value)


# ---------------------------------------------------------------------------------------------------- calibration


def test_batcher_preprocesses_exactly_like_inference(cal_dir):
    from bpnet_core.fileio import read_image
    from bpnet_core.int8.calibration import CalibrationBatcher, list_images
    from bpnet_core.preprocess import prepare

    files = list_images(cal_dir)
    b = CalibrationBatcher(files, (64, 96), batch_size=2, batches=2)
    batches = list(b)
    assert b.num_batches == 2 and len(batches) == 2 and batches[0].shape == (2, 64, 96, 3)
    want = prepare(read_image(files[1]), b.meta, (64, 96), "pad_image_input").batch[0]
    np.testing.assert_array_equal(batches[0][1], want)
    assert batches[0].dtype == np.float32 and batches[0].flags["C_CONTIGUOUS"]
    assert len(list(b)) == 2  # iterating again starts over
    nchw = CalibrationBatcher(files, (64, 96), batch_size=2, batches=1, data_format="channels_first")
    np.testing.assert_array_equal(next(iter(nchw)), batches[0].transpose(0, 3, 1, 2))


def test_batcher_skips_broken_images_and_drops_the_last_partial_batch(cal_dir, tmp_path):
    from bpnet_core.int8.calibration import CalibrationBatcher, list_images

    for p in list_images(cal_dir)[:3]:
        shutil.copy(p, tmp_path / p.name)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    (tmp_path / "empty.png").write_bytes(b"")
    b = CalibrationBatcher(list_images(tmp_path), HW, batch_size=2, batches=10)
    assert len(list(b)) == 1  # 3 good images → one full batch of 2
    assert {Path(s["file"]).name for s in b.skipped} == {"broken.jpg", "empty.png"}
    only_broken = CalibrationBatcher([tmp_path / "broken.jpg"], HW)
    with pytest.raises(BpnetError, match="no usable calibration batch.*1 unreadable"):
        list(only_broken)


def test_calibration_dir_errors(tmp_path):
    from bpnet_core.int8.calibration import CalibrationBatcher, list_images

    with pytest.raises(BpnetError, match="not found"):
        list_images(tmp_path / "nope")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(BpnetError, match="no calibration images"):
        list_images(tmp_path)
    with pytest.raises(BpnetError, match="--batch_size must be a positive integer"):
        CalibrationBatcher([tmp_path / "a.jpg"], HW, batch_size=0)
    with pytest.raises(BpnetError, match="export size is 64x64"):
        CalibrationBatcher(np.zeros((2, 32, 32, 3), np.float32), HW)


def test_calibration_data_file_roundtrip(cal_dir, tmp_path):
    from bpnet_core.int8.calibration import CalibrationBatcher, list_images, load_calibration_data, make_batcher

    data = tmp_path / "cal.npy"
    b = make_batcher(HW, cal_dir, data, batch_size=2, batches=2)
    arr = load_calibration_data(data)
    assert arr.shape == (4, 64, 64, 3) and arr.dtype == np.float32
    ref = list(CalibrationBatcher(list_images(cal_dir), HW, 2, 2))
    np.testing.assert_array_equal(np.concatenate(list(b)), np.concatenate(ref))
    again = make_batcher(HW, None, data, batch_size=1, batches=3)  # the file alone is enough now
    assert len(list(again)) == 3
    with pytest.raises(BpnetError, match="export size is 32x32"):
        make_batcher((32, 32), None, data)
    (tmp_path / "bad.npy").write_bytes(b"garbage")
    with pytest.raises(BpnetError, match="not a calibration data file"):
        load_calibration_data(tmp_path / "bad.npy")


def test_calibration_cache_path_logic(tmp_path):
    from bpnet_core.int8.calibration import calibration_cache_path

    assert calibration_cache_path("my.bin", "m.engine", "m.onnx", (288, 384)) == Path("my.bin")
    assert calibration_cache_path(None, tmp_path / "m.engine", "x.onnx", (288, 384)) == tmp_path / "m.cal.288.384.bin"
    assert calibration_cache_path(None, None, tmp_path / "x.onnx", None) == tmp_path / "x.cal.bin"


def _trt_cache(path: Path, names: list[str]) -> Path:
    import struct

    lines = ["TRT-100300-EntropyCalibration2"] + [f"{n}: {struct.pack('>f', 0.01 * (i + 1)).hex()}"
                                                   for i, n in enumerate(names)]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


def test_tensorrt_cache_of_another_model_is_refused(tmp_path):
    from bpnet_core.int8.calibration import check_calibration_cache, read_calibration_cache

    graph = {"input_1", "conv1:0", "conv2:0", "heatmap_out", "paf_out"}
    good = _trt_cache(tmp_path / "good.bin", ["input_1", "conv1:0", "conv2:0", "heatmap_out"])
    scales = check_calibration_cache(good, graph)
    assert scales["input_1"] == pytest.approx(0.01)
    other = _trt_cache(tmp_path / "other.bin", ["input_1", "resnet/a", "resnet/b", "resnet/c"])
    with pytest.raises(BpnetError, match="calibration cache of another model"):
        check_calibration_cache(other, graph)
    (tmp_path / "junk.bin").write_bytes(b"\x00\x01binary")
    with pytest.raises(BpnetError, match="not a TensorRT calibration cache"):
        read_calibration_cache(tmp_path / "junk.bin")


def test_sample_calibration_images(tmp_path):
    from bpnet_core.int8.calibration import sample_calibration_images

    data = json.loads(SAMPLE_JSON.read_text())
    counts = {}
    for a in data["annotations"]:
        if not a.get("iscrowd") and a["num_keypoints"] > 0:
            counts[a["image_id"]] = counts.get(a["image_id"], 0) + 1
    want = sum(1 for im in data["images"] if counts.get(im["id"], 0) >= 2)
    s = sample_calibration_images(SAMPLE_JSON, SAMPLE, tmp_path / "a", num_images=1000, min_persons=2)
    assert s["images"] == s["candidates"] == want > 0
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(s["files"])
    r1 = sample_calibration_images(SAMPLE_JSON, SAMPLE, tmp_path / "b", 3, 1, randomize=True, seed=1)
    r2 = sample_calibration_images(SAMPLE_JSON, SAMPLE, tmp_path / "c", 3, 1, randomize=True, seed=1)
    assert r1["files"] == r2["files"] and r1["images"] == 3
    with pytest.raises(BpnetError, match="no image has at least 99"):
        sample_calibration_images(SAMPLE_JSON, SAMPLE, tmp_path / "d", 3, 99)


def test_calibration_images_cli(tmp_path, capsys):
    from bpnet_core.cli import main

    assert main(["calibration_images", "-a", str(SAMPLE_JSON), "-i", str(SAMPLE), "-o", str(tmp_path / "o"),
                 "-n", "4", "-pth", "1", "--randomize"]) == 0  # fmt: skip
    assert len(list((tmp_path / "o").iterdir())) == 4 and "4 images" in capsys.readouterr().out
    assert main(["calibration_images", "-a", str(tmp_path / "none.json"), "-i", str(SAMPLE), "-o",
                 str(tmp_path / "p")]) == 2  # fmt: skip
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------------------------- ONNX export


@pytest.mark.slow  # tf2onnx conversion (and calibration): seconds each on 2 cores
def test_fp32_export_parity_metadata_and_runner(fp32_export, keras_model, pose):
    from bpnet_core.runners import load_runner

    out, r = fp32_export
    assert out.is_file() and r["bytes"] == out.stat().st_size and r["input_dims"] == [64, 64]
    assert r["outputs"] == ["heatmap_stage1", "heatmap_out", "paf_stage1", "paf_out"]
    assert r["parity"]["max_abs_value"] > 0.05, "the test model must have outputs of a real magnitude"
    assert r["parity"]["max_abs_diff"] <= 1e-4
    runner = load_runner(out)
    m = runner.meta
    assert m.input_hw == HW and m.num_stages == 2 and m.stride == 8 and m.normalization.scale == (256.0,) * 3
    assert m.pose.joint_names == pose.joint_names and m.pose.limbs == pose.limbs
    x = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 64, 64, 3)).astype(np.float32)
    ref = [np.asarray(o) for o in keras_model(x)]
    for stage in (1, 2, None):
        h, p = runner.predict(x, stage=stage)
        s = 2 if stage is None else stage
        np.testing.assert_allclose(h, ref[s - 1], atol=1e-4)
        np.testing.assert_allclose(p, ref[2 + s - 1], atol=1e-4)
    with pytest.raises(BpnetError, match="built for 64x64"):
        runner.predict(np.zeros((1, 64, 96, 3), np.float32))
    with pytest.raises(BpnetError, match="stage"):
        runner.predict(x, stage=3)


@pytest.mark.slow  # tf2onnx conversion (and calibration): seconds each on 2 cores
def test_dynamic_channels_first_and_last_stage_only(model_file, keras_model, tmp_path):
    from bpnet_core.export import export_model
    from bpnet_core.runners import load_runner

    r = export_model(model_file, tmp_path / "nchw.onnx", data_format="channels_first", output_stages="last")
    assert r["input_dims"] is None and r["outputs"] == ["heatmap_out", "paf_out"]
    runner = load_runner(tmp_path / "nchw.onnx")
    assert runner.meta.input_hw is None and runner.meta.layout == "NCHW"
    assert runner.meta.num_stages == 2 and runner.meta.available_stages == [2]
    for shape in ((1, 64, 96, 3), (3, 48, 40, 3)):  # any stride multiple, any batch
        x = np.random.default_rng(1).uniform(-0.5, 0.5, shape).astype(np.float32)
        h, p = runner.predict(x)
        ref = [np.asarray(o) for o in keras_model(x)]
        np.testing.assert_allclose(h, ref[1], atol=1e-4)
        np.testing.assert_allclose(p, ref[3], atol=1e-4)
    with pytest.raises(BpnetError, match=r"provides stage\(s\) \[2\]"):
        runner.predict(x, stage=1)


@pytest.mark.slow  # tf2onnx conversion (and calibration): seconds each on 2 cores
def test_fp16_export_keeps_float32_io(model_file, fp32_export, tmp_path):
    from bpnet_core.export import export_model
    from bpnet_core.runners import load_runner

    r = export_model(model_file, tmp_path / "m16.onnx", input_dims="64,64,3", data_type="fp16")
    runner = load_runner(tmp_path / "m16.onnx")
    assert runner.session.get_inputs()[0].type == "tensor(float)" and runner.meta.precision == "fp16"
    assert all(o.type == "tensor(float)" for o in runner.session.get_outputs())
    assert r["deployed_vs_keras"]["relative_diff"] < 0.01
    assert r["bytes"] < 0.6 * fp32_export[1]["bytes"]


@pytest.mark.slow  # tf2onnx conversion (and calibration): seconds each on 2 cores
def test_int8_export_calibrates_and_reuses_its_cache(model_file, cal_dir, tmp_path):
    from bpnet_core.export import export_model
    from bpnet_core.runners import load_runner

    cache = tmp_path / "cal.json"
    r = export_model(model_file, tmp_path / "m8.onnx", input_dims="64,64,3", data_type="int8", cal_image_dir=cal_dir,
                     batches=4, cal_cache_file=cache)  # fmt: skip
    cal = r["calibration"]
    assert cal["calibration_batches"] == 4 and cal["format"] == "QDQ" and cal["per_channel"]
    assert r["deployed_vs_keras"]["relative_diff"] < 0.2
    runner = load_runner(tmp_path / "m8.onnx")
    ops = {n.op_type for n in __import__("onnx").load(str(tmp_path / "m8.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops and runner.meta.precision == "int8"
    if cal.get("calibration_cache"):
        assert cache.is_file()
        again = export_model(model_file, tmp_path / "m8b.onnx", input_dims="64,64,3", data_type="int8",
                             cal_cache_file=cache)  # fmt: skip
        assert again["calibration"]["calibration_cache"]["reused"]


@pytest.mark.slow  # tf2onnx conversion (and calibration): seconds each on 2 cores
def test_int8_cache_from_another_model_is_refused(model_file, cal_dir, pose, tmp_path, capsys):
    from bpnet_core.cli import main
    from bpnet_core.export import export_model
    from bpnet_core.int8.ptq import supports_ort_cache
    from bpnet_core.model import build_model

    if not supports_ort_cache():
        pytest.skip("this ONNX Runtime has no calibration cache")
    other = build_model({"stages": 1, "width_multiplier": 0.25}, pose)  # a prefix of the 2-stage graph
    cache = tmp_path / "other.json"
    export_model(other, tmp_path / "other.onnx", input_dims="64,64,3", data_type="int8", cal_image_dir=cal_dir,
                 batches=1, cal_cache_file=cache, pose=pose)  # fmt: skip
    out = tmp_path / "out"
    out.mkdir()
    code = main(["export", "-m", str(model_file), "-o", str(out / "m.onnx"), "-d", "64,64,3", "--data_type", "int8",
                 "--cal_image_dir", str(cal_dir), "--batches", "1", "--cal_cache_file", str(cache)])  # fmt: skip
    err = _err(capsys)
    assert code == 2 and len(err) == 1 and "calibration cache of another model" in err[0], err
    assert no_onnx_left(out)
    assert main(["export", "-m", str(model_file), "-o", str(out / "m.onnx"), "-d", "64,64,3", "--data_type", "int8",
                 "--cal_image_dir", str(cal_dir), "--batches", "1", "--cal_cache_file", str(cache),
                 "--force_ptq"]) == 0  # fmt: skip


@pytest.mark.slow  # tf2onnx conversion (and calibration): seconds each on 2 cores
def test_parity_failure_writes_nothing(model_file, tmp_path):
    from bpnet_core.export import export_model

    with pytest.raises(BpnetError, match="differs from Keras.*nothing written"):
        export_model(model_file, tmp_path / "m.onnx", input_dims="64,64,3", parity_tolerance=1e-15)
    assert no_onnx_left(tmp_path)


def test_fp16_conversion_of_a_graph_with_constants():
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from bpnet_core.export.onnx import convert_fp16, onnx_session

    w = numpy_helper.from_array(np.full((2,), 0.5, np.float32), "w")
    c = helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.float32(2.0), "cv"))
    nodes = [c, helper.make_node("Mul", ["x", "w"], ["y"]), helper.make_node("Add", ["y", "c"], ["out"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, [2])], [w])  # fmt: skip
    m = convert_fp16(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    onnx.checker.check_model(m)
    out = onnx_session(m).run(None, {"x": np.array([1.0, 3.0], np.float32)})[0]
    assert out.dtype == np.float32 and out.tolist() == [2.5, 3.5]


# ---------------------------------------------------------------------------------------------------- runners


def _identity_onnx(path: Path, shape=(1, 64, 64, 3)):
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))])  # fmt: skip
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_onnx_that_is_not_a_bpnet_model(tmp_path, capsys):
    from bpnet_core.cli import main
    from bpnet_core.runners import load_runner

    bad = _identity_onnx(tmp_path / "identity.onnx")
    with pytest.raises(BpnetError, match="no bpnet model contract"):
        load_runner(bad)
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    with pytest.raises(BpnetError, match="not a loadable ONNX model"):
        load_runner(tmp_path / "junk.onnx")
    img = sorted(SAMPLE.glob("*.jpg"))[0]
    code = main(["inference", "-i", str(ROOT / "specs" / "infer_spec.yaml"), "-m", str(bad), "--input", str(img),
                 "-r", str(tmp_path / "out")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "no bpnet model contract" in err[0] and "import_model" in err[0]


@pytest.mark.slow  # tf2onnx conversion (and calibration): seconds each on 2 cores
def test_inference_with_a_fixed_shape_onnx_forces_pad_image_input(fp32_export, pose):
    from bpnet_core.config.schema import InferSpec
    from bpnet_core.fileio import read_image
    from bpnet_core.infer import Predictor
    from bpnet_core.runners import load_runner

    runner = load_runner(fp32_export[0])
    img = read_image(sorted(SAMPLE.glob("*.jpg"))[0])
    spec = InferSpec.from_dict({"input_shape": [368, 368], "keep_aspect_ratio_mode": "adjust_network_input"})
    res = Predictor(runner, spec)(img)
    assert res.input_hw == HW and res.heatmaps.shape[:2] == (8, 8)


def test_load_runner_is_one_function(model_file, tmp_path):
    from bpnet_core.runners import load_runner

    r = load_runner(model_file)
    assert type(r).__name__ == "KerasRunner" and r.meta.num_stages == 2 and r.meta.pose.num_joints == 18
    with pytest.raises(BpnetError, match="unknown model type"):
        load_runner(_identity_onnx(tmp_path / "x.onnx").rename(tmp_path / "x.pb"))
    with pytest.raises(BpnetError, match="not found"):
        load_runner(tmp_path / "missing.onnx")


def test_model_for_deployment(tmp_path):
    from bpnet_core.tutorial import model_for_deployment

    with pytest.raises(BpnetError, match="no model to deploy"):
        model_for_deployment(tmp_path)
    (tmp_path / "02_train").mkdir()
    trained = tmp_path / "02_train" / "bpnet_model.keras"
    trained.write_bytes(b"x")
    assert model_for_deployment(tmp_path) == trained
    prune = tmp_path / "04_prune_retrain"
    prune.mkdir()
    (prune / "bpnet_model.pruned-0.2.keras").write_bytes(b"x")
    assert model_for_deployment(tmp_path) == trained
    (prune / "checkpoints").mkdir()
    (prune / "checkpoints" / "epoch_1.keras").write_bytes(b"x")
    assert model_for_deployment(tmp_path) == trained
    (prune / "bpnet_model.keras").write_bytes(b"x")
    assert model_for_deployment(tmp_path) == prune / "bpnet_model.keras"
    (prune / "retrain").mkdir()
    (prune / "retrain" / "bpnet_model.keras").write_bytes(b"x")
    assert model_for_deployment(tmp_path) == prune / "retrain" / "bpnet_model.keras"


def test_measure_latency_and_table(pose):
    from bpnet_core.benchmarks.compare import markdown_rows
    from bpnet_core.costs import measure_latency
    from bpnet_core.meta import bpnet_meta

    class Fake:
        calls = 0
        meta = bpnet_meta(pose, 1, ["heatmap_out", "paf_out"])

        def predict(self, batch, stage=None):
            Fake.calls += 1
            assert batch.shape == (1, 16, 24, 3)

    r = measure_latency(Fake(), (16, 24), warmup=2, repeats=3)
    assert Fake.calls == 5 and r["repeats"] == 3 and r["median_ms"] >= 0
    assert markdown_rows([{"a": 1, "b": 2}]).splitlines()[2] == "| 1 | 2 |"


# ---------------------------------------------------------------------------------------------------- CLI, bad input


def _err(capsys) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("extra, words", [
    (["-d", "60,64,3"], "multiples of the stride"),
    (["--data_type", "int8"], "needs calibration data"),
    (["-t", "uff"], "uff"),
    (["--data_type", "int8", "--cal_image_dir", "EMPTY"], "no calibration images"),
    (["--engine_file", "ENGINE"], "TensorRT is not installed"),
])  # fmt: skip
def test_export_cli_bad_input(extra, words, model_file, tmp_path, capsys, monkeypatch):
    from bpnet_core.cli import main

    (tmp_path / "empty").mkdir()
    out = tmp_path / "out"
    out.mkdir()
    if "ENGINE" in extra:
        monkeypatch.setitem(__import__("sys").modules, "tensorrt", None)  # behave as if TensorRT were missing
    extra = [str(tmp_path / "empty") if e == "EMPTY" else str(out / "m.engine") if e == "ENGINE" else e for e in extra]
    code = main(["export", "-m", str(model_file), "-o", str(out / "m.onnx")] + extra)
    err = _err(capsys)
    assert code == 2 and len(err) == 1 and words in err[0], err
    assert no_onnx_left(out)


@pytest.mark.slow  # tf2onnx conversion (and calibration): seconds each on 2 cores
def test_export_cli_int8_with_broken_calibration_images(model_file, cal_dir, tmp_path, capsys):
    from bpnet_core.cli import main

    cal = tmp_path / "cal"
    shutil.copytree(cal_dir, cal)
    (cal / "zz_broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    code = main(
        [
            "export",
            "-m",
            str(model_file),
            "-o",
            str(tmp_path / "m8.onnx"),
            "-d",
            "64,64,3",
            "--data_type",
            "int8",
            "--cal_image_dir",
            str(cal),
            "--batches",
            "10",
            "--cal_data_file",
            str(tmp_path / "c.npy"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and (tmp_path / "m8.onnx").is_file() and "1 broken calibration image(s) skipped" in out
    assert np.load(tmp_path / "c.npy").shape == (6, 64, 64, 3)


@pytest.mark.slow  # tf2onnx conversion (and calibration): seconds each on 2 cores
def test_export_of_an_onnx_model_and_to_openvino(fp32_export, model_file, keras_model, tmp_path):
    """A bpnet .onnx file exports again (here to FP16); a .keras model exports to an OpenVINO IR that matches its
    ONNX export within 1e-3; other inputs and output suffixes are refused."""
    pytest.importorskip("openvino")
    from bpnet_core.export import export_model
    from bpnet_core.runners import load_runner

    r = export_model(fp32_export[0], tmp_path / "again16.onnx", data_type="fp16")
    assert r["parity"]["snr_db"] > 30 and load_runner(tmp_path / "again16.onnx").meta.precision == "fp16"
    ov = export_model(model_file, tmp_path / "m.xml", backend="openvino", input_dims="64,64,3")
    assert ov["parity"]["max_abs"] <= 1e-3 and ov["onnx_vs_keras"]["max_abs_diff"] <= 1e-3
    ir, ref = load_runner(tmp_path / "m.xml"), load_runner(fp32_export[0])
    assert ir.meta.input_hw == (64, 64) and ir.meta.num_stages == 2 and ir.meta.name == "m"
    x = np.random.default_rng(3).uniform(-0.5, 0.5, (2, 64, 64, 3)).astype(np.float32)
    for stage in (1, 2):
        for a, b in zip(ir.predict(x, stage), ref.predict(x, stage)):
            assert float(np.abs(a - b).max()) <= 1e-3
    with pytest.raises(BpnetError, match="export takes a .keras model, a TAO 5 .hdf5 or a bpnet .onnx"):
        export_model(_identity_onnx(tmp_path / "x.onnx").rename(tmp_path / "x.pb"), tmp_path / "again.onnx")
    with pytest.raises(BpnetError, match="must end in .onnx"):
        export_model(fp32_export[0], tmp_path / "again.pb")
    with pytest.raises(BpnetError, match="--backend openvino must end in .xml"):
        export_model(model_file, tmp_path / "m2.onnx", backend="openvino")
    assert not (tmp_path / "m2.onnx").exists()


@pytest.mark.slow  # tf2onnx conversion (and calibration): seconds each on 2 cores
def test_static_batch_size_runs_any_batch_in_chunks(model_file, keras_model, tmp_path):
    from bpnet_core.export import export_model
    from bpnet_core.runners import load_runner

    export_model(model_file, tmp_path / "b2.onnx", input_dims="64,64,3", static_batch_size=2)
    runner = load_runner(tmp_path / "b2.onnx")
    assert runner.fixed_batch == 2
    x = np.random.default_rng(2).uniform(-0.5, 0.5, (3, 64, 64, 3)).astype(np.float32)
    h, p = runner.predict(x)
    assert h.shape[0] == 3 and np.allclose(p, np.asarray(keras_model(x)[3]), atol=1e-4)


@pytest.mark.slow  # tf2onnx conversion (and calibration): seconds each on 2 cores
@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_other_calibration_methods(method, model_file, cal_dir, tmp_path):
    import onnx
    from onnx import numpy_helper

    from bpnet_core.export import export_model

    r = export_model(model_file, tmp_path / "m.onnx", input_dims="64,64,3", data_type="int8", cal_image_dir=cal_dir,
                     batches=3, calibration_method=method)  # fmt: skip
    assert r["calibration"]["method"] == method and r["calibration"]["calibration_batches"] == 3
    m = onnx.load(str(tmp_path / "m.onnx"))
    assert sum(n.op_type == "QuantizeLinear" for n in m.graph.node) > 10
    assert all(np.isfinite(numpy_helper.to_array(i)).all() for i in m.graph.initializer if i.name.endswith("_scale"))
    with pytest.raises(BpnetError, match="--calibration_method"):
        export_model(model_file, tmp_path / "x.onnx", data_type="int8", cal_image_dir=cal_dir, calibration_method="kl")


def test_export_options_keywords_override_and_unknown_keys_fail():
    from bpnet_core.export import ExportOptions, export_model, export_options

    base = ExportOptions(data_type="fp16", batches=3)
    assert export_options(base, batches=5) == ExportOptions(data_type="fp16", batches=5)
    assert export_options() == ExportOptions() and export_options(base) is base
    with pytest.raises(BpnetError, match="unknown option 'input_dim'"):
        export_model("m.keras", "m.onnx", input_dim="64,64,3")
    with pytest.raises(BpnetError, match="must be an ExportOptions"):
        export_model("m.keras", "m.onnx", "onnx")
