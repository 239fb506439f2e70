"""TensorRT: everything up to ``import tensorrt`` runs here without it; tests marked ``trt`` build and run engines
(auto-skipped when the ``tensorrt`` package is missing, see tests/conftest.py)."""

from __future__ import annotations

import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from bpnet_core.errors import BpnetError

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "fixtures" / "coco_sample"


@pytest.fixture
def no_tensorrt(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # ``import tensorrt`` raises ImportError


# -------------------------------------------------------------------------------------------- no TensorRT needed


def test_engine_plan_profiles():
    from bpnet_core.export.tensorrt import plan_engine

    p = plan_engine("int8", (288, 384), max_batch_size=8, opt_batch_size=4, batch_size=2)
    assert p.min_shape == (1, 288, 384, 3) and p.opt_shape == (4, 288, 384, 3) and p.max_shape == (8, 288, 384, 3)
    assert p.calibration_shape == (2, 288, 384, 3) and p.workspace == 2 << 30 and not p.strict
    s = plan_engine("fp16", (256, 256), layout="NCHW", static_batch_size=3, strict_type_constraints=True)
    assert s.min_shape == s.opt_shape == s.max_shape == (3, 3, 256, 256) and s.calibration_shape is None and s.strict


@pytest.mark.parametrize("kwargs, words", [
    ({"precision": "int4"}, "--data_type"),
    ({"opt_batch_size": 4, "max_batch_size": 2}, "larger than --max_batch_size"),
    ({"precision": "int8", "batch_size": 4}, "larger than the engine's max batch"),
    ({"max_batch_size": 0}, "--max_batch_size must be a positive integer"),
    ({"max_workspace_size": 1000}, "at least 1 MiB"),
])  # fmt: skip
def test_engine_plan_errors(kwargs, words):
    from bpnet_core.export.tensorrt import plan_engine

    with pytest.raises(BpnetError, match=words):
        plan_engine(**kwargs)


def test_engine_input_size_check():
    from bpnet_core.export.tensorrt import check_engine_input

    check_engine_input((2, 288, 384, 3), (288, 384))
    check_engine_input((2, 3, 288, 384), (288, 384), "NCHW")
    with pytest.raises(BpnetError, match="engine built for 288x384 \\(HxW\\) input, got 256x256"):
        check_engine_input((1, 256, 256, 3), (288, 384), path="m.engine")


def test_builder_and_runner_without_tensorrt_say_so_in_one_line(no_tensorrt, tmp_path):
    from bpnet_core.export.tensorrt import build_engine, plan_engine, tensorrt_status
    from bpnet_core.runners import TensorRTRunner, load_runner

    for call in (lambda: build_engine(tmp_path / "m.onnx", tmp_path / "m.engine", plan_engine()),
                 lambda: TensorRTRunner(tmp_path / "m.engine")):  # fmt: skip
        with pytest.raises(BpnetError) as e:
            call()
        assert "TensorRT is not installed" in str(e.value) and "\n" not in str(e.value)
    (tmp_path / "m.engine").write_bytes(b"engine")
    with pytest.raises(BpnetError, match="TensorRT is not installed"):
        load_runner(tmp_path / "m.engine")
    assert not (tmp_path / "m.onnx").exists()
    ok, line = tensorrt_status()
    assert not ok and "TensorRT is not installed" in line


def test_calibrator_feeds_the_batcher_and_keeps_the_cache(monkeypatch, tmp_path):
    """The IInt8EntropyCalibrator2 subclass with a stand-in ``tensorrt`` module and stand-in GPU buffers."""
    import bpnet_core.export.tensorrt as T
    from bpnet_core.int8.calibration import CalibrationBatcher

    class Base:
        def __init__(self):
            pass

    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(IInt8EntropyCalibrator2=Base))
    copies = []

    class FakeCuda:
        def malloc(self, n):
            copies.append(("malloc", n))
            return 1234

        def htod(self, ptr, host):
            copies.append(("htod", ptr, host.shape, host.dtype))

        def sync(self):
            pass

    monkeypatch.setattr(T, "_Cuda", FakeCuda)
    data = np.random.default_rng(0).uniform(-0.5, 0.5, (5, 16, 24, 3)).astype(np.float32)
    batcher = CalibrationBatcher(data, (16, 24), batch_size=2, batches=10)
    cache = tmp_path / "cal.bin"
    cal = T.make_calibrator(batcher, cache)
    assert cal.get_batch_size() == 2 and copies[0] == ("malloc", 2 * 16 * 24 * 3 * 4)
    assert cal.get_batch(["input_1"]) == [1234] and cal.get_batch(["input_1"]) == [1234]
    assert cal.get_batch(["input_1"]) is None  # 5 rows → 2 full batches
    assert [c[2] for c in copies[1:]] == [(2, 16, 24, 3)] * 2
    assert cal.read_calibration_cache() is None
    cal.write_calibration_cache(b"TRT-1-EntropyCalibration2\ninput_1: 3c010a14\n")
    assert cal.read_calibration_cache() == cache.read_bytes()
    assert T.make_calibrator(batcher, cache, read_cache=False).read_calibration_cache() is None  # --force_ptq
    cache_only = T.make_calibrator(T._NoBatches((2, 16, 24, 3)), cache)
    assert cache_only.get_batch(["input_1"]) is None and cache_only.read_calibration_cache() is not None


# ---------------------------------------------------------------------------------------------------- with TensorRT


@pytest.fixture(scope="module")
def trt_model(tmp_path_factory, pose):
    from bpnet_core.model import build_model, save_bpnet_model

    path = tmp_path_factory.mktemp("trt") / "bpnet_model.keras"
    model = build_model({"stages": 2, "width_multiplier": 0.25, "kernel_initializer": "he_normal"}, pose)
    return save_bpnet_model(model, path, pose)


@pytest.mark.trt
@pytest.mark.parametrize("data_type", ["fp32", "fp16", "int8"])
def test_engine_export_and_runner(data_type, trt_model, tmp_path):
    from bpnet_core.export import export_model
    from bpnet_core.runners import load_runner

    cal = tmp_path / "cal"
    cal.mkdir()
    for p in sorted(SAMPLE.glob("*.jpg"))[:4]:
        shutil.copy(p, cal / p.name)
    engine = tmp_path / f"m_{data_type}.engine"
    r = export_model(trt_model, tmp_path / "m.onnx", input_dims="64,64,3", data_type=data_type, engine_file=engine,
                     cal_image_dir=cal, batches=2, max_batch_size=2)  # fmt: skip
    assert engine.is_file() and r["engine"]["precision"] == data_type
    if data_type == "int8":
        assert Path(r["engine"]["calibration_cache"]).is_file()
    trt_runner, ort_runner = load_runner(engine), load_runner(tmp_path / "m.onnx")
    assert trt_runner.meta.input_hw == (64, 64) and trt_runner.meta.num_stages == 2
    x = np.random.default_rng(0).uniform(-0.5, 0.5, (3, 64, 64, 3)).astype(np.float32)  # 3 > max batch: chunks
    h, p = trt_runner.predict(x)
    h_ref, p_ref = ort_runner.predict(x)
    tol = {"fp32": 1e-3, "fp16": 2e-2, "int8": 0.2}[data_type] * max(1.0, float(np.abs(h_ref).max()))
    assert h.shape == h_ref.shape and float(np.abs(h - h_ref).max()) < tol
    with pytest.raises(BpnetError, match="built for 64x64"):
        trt_runner.predict(np.zeros((1, 96, 64, 3), np.float32))
