"""Training end to end on a tiny synthetic dataset: outputs, exact resume, corrupt checkpoints, distribution, CLI."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from bpnet_core.errors import BpnetError  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _weights(path):
    import keras

    return keras.saving.load_model(path, compile=False, safe_mode=True).get_weights()


def _event_tags(folder: Path) -> set[str]:
    import tensorflow as tf

    tags = set()
    for f in folder.glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(f)):
            tags.update(v.tag for v in event.summary.value)
    return tags


@pytest.mark.slow
def test_training_writes_every_output(full_run):
    s = full_run
    results = Path(s["results_dir"])
    assert s["status"] == "finished" and s["epoch"] == 2 and s["step"] == 16 and s["steps_per_epoch"] == 8
    assert s["resumed_from_epoch"] is None and np.isfinite(s["loss"]) and s["images_per_second"] > 0
    assert set(s["loss_terms"]) == {"heatmap_stage1", "heatmap_stage2", "paf_stage1", "paf_stage2", "regularization"}
    # final model, loadable without bpnet's code
    final = results / "bpnet_model.keras"
    assert Path(s["final_model"]) == final and final.is_file()
    assert not list(results.glob(".*.tmp.keras"))
    import keras

    model = keras.saving.load_model(final, compile=False, safe_mode=True)
    outs = model(np.zeros((1, 64, 64, 3), np.float32))
    assert [tuple(o.shape) for o in outs] == [(1, 8, 8, 19)] * 2 + [(1, 8, 8, 38)] * 2
    # checkpoints (max_ckpt_to_keep default 5) and the resolved spec beside them
    assert sorted(p.name for p in (results / "checkpoints").glob("*.index")) == ["ckpt-1.index", "ckpt-2.index"]
    from bpnet_core.config import load_train_spec

    params = load_train_spec(results / "params.yaml")
    assert params.model.stages == 2 and params.dataloader.batch_size == 4
    # status.json
    status = json.loads((results / "status.json").read_text())
    assert status["status"] == "finished" and status["epoch"] == 2 and status["step"] == 16
    assert [h["epoch"] for h in status["history"]] == [1, 2]
    for key in ("loss", "lr", "seconds", "images_per_second"):
        assert key in status["history"][0]
    assert "val_loss" in status["history"][1] and "val_loss" not in status["history"][0]  # every 2nd epoch
    # TensorBoard: loss per stage and branch, learning rate, prediction images
    tags = _event_tags(results / "logs" / "train")
    assert {"loss/total", "loss/heatmap_stage1", "loss/paf_stage2", "loss/regularization", "learning_rate",
            "predictions"} <= tags  # fmt: skip
    assert "loss/total" in _event_tags(results / "logs" / "val")


@pytest.mark.slow  # 5-13 s on 2 idle cores: make test runs it, make test-fast does not
def test_resume_after_interruption_equals_uninterrupted(full_run, spec_file, tmp_path):
    """1 epoch, 'crash', same command again → identical weights, step and learning rate as 2 epochs in one go."""
    from bpnet_core.train import train

    first = train(spec_file, tmp_path, progress=False, max_steps=8)  # stops after epoch 1 (checkpointed)
    assert first["status"] == "stopped" and first["epoch"] == 1 and first["checkpoint"].endswith("ckpt-1")
    second = train(spec_file, tmp_path, progress=False)
    assert second["resumed_from_epoch"] == 1 and second["status"] == "finished"
    assert second["step"] == full_run["step"] and second["lr"] == pytest.approx(full_run["lr"], rel=1e-7)
    assert second["loss"] == pytest.approx(full_run["loss"], rel=1e-5)
    for a, b in zip(_weights(full_run["final_model"]), _weights(second["final_model"])):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    status = json.loads((tmp_path / "status.json").read_text())
    assert [h["epoch"] for h in status["history"]] == [1, 2]


@pytest.mark.slow  # 5-13 s on 2 idle cores: make test runs it, make test-fast does not
def test_corrupt_latest_checkpoint_falls_back_with_warning(full_run, spec_file, tmp_path, caplog):
    from bpnet_core.train import train

    results = tmp_path / "run"
    shutil.copytree(full_run["results_dir"], results)
    data = results / "checkpoints" / "ckpt-2.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])  # truncated, as after a disk error
    with caplog.at_level(logging.WARNING, logger="bpnet_core"):
        s = train(spec_file, results, progress=False)
    assert s["resumed_from_epoch"] == 1 and s["epoch"] == 2 and s["step"] == 16
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "ckpt-2 cannot be restored" in text and "falling back to the previous one" in text
    # every checkpoint unreadable: an error, never a silent fresh start
    for index in (results / "checkpoints").glob("*.index"):
        index.write_bytes(b"garbage" * 8)
    with pytest.raises(BpnetError, match=r"none of the 2 checkpoints can be restored"):
        train(spec_file, results, progress=False)


@pytest.mark.slow  # 5-13 s on 2 idle cores: make test runs it, make test-fast does not
def test_retrain_whole_graph(full_run, spec_file, tmp_path):
    """``load_graph: true`` loads the whole .keras model (the retrain-after-pruning path), whatever model.stages
    says; plain ``pretrained_weights`` is covered by tests/unit/test_model.py."""
    from bpnet_core.train import train

    final = full_run["final_model"]
    s = train(spec_file, tmp_path / "graph", progress=False, max_steps=2,
              overrides=[f"pretrained_weights={final}", "load_graph=true", "model.stages=5"])  # fmt: skip
    import keras

    assert len(keras.saving.load_model(s["final_model"], compile=False).outputs) == 4  # the file's 2 stages
    assert s["step"] == 2


def _inputs(path) -> tuple:
    """The input half of a model file's contract: colour, normalisation, preprocessing, inference settings."""
    from bpnet_core.meta import read_meta

    m = read_meta(path)
    return m.color, m.normalization, m.preprocessing, m.inference


def test_pipeline_feeds_the_training_contract(spec_file, imported_model, tmp_path):
    """Training, validation and label-free batches are in the contract's colour order and normalisation: here an
    imported network's (BGR, x/255 − 128/255), not the spec's default RGB 256 / 0.5."""
    from bpnet_core.config import load_train_spec
    from bpnet_core.data.pipeline import image_folder_loader, loader_from_spec
    from bpnet_core.meta import read_meta
    from bpnet_core.skeleton import PoseConfig

    model = imported_model("hpe")
    spec = load_train_spec(spec_file, [f"pretrained_weights={model}"])
    pose = PoseConfig.from_json(spec.dataloader.pose_config.pose_config_path)
    meta = read_meta(model)
    folder = tmp_path / "photos"
    folder.mkdir()
    import cv2

    cv2.imwrite(str(folder / "a.png"), np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8))
    for loader in (loader_from_spec(spec, pose, "train"), loader_from_spec(spec, pose, "val"),
                   image_folder_loader(spec, pose, folder)):  # fmt: skip
        assert loader.cfg.contract.color == "BGR" and loader.cfg.contract.normalization == meta.normalization
        s = loader.sample(0)
        np.testing.assert_allclose(s["image"], meta.normalize(s["image_uint8"]), rtol=1e-6)
    plain = loader_from_spec(load_train_spec(spec_file), pose, "val").sample(0)  # no contract: RGB / 256 − 0.5
    np.testing.assert_allclose(plain["image"], plain["image_uint8"][..., ::-1] / 256.0 - 0.5, rtol=1e-6)


@pytest.mark.slow  # four short runs and a pruning (20-40 s on 2 cores)
def test_contract_survives_training_pruning_and_retraining(spec_file, imported_model, tmp_path, caplog):
    """From an imported network's .keras (BGR, its own normalisation, the card's preprocessing and inference
    settings): fine-tuning (pretrained_weights), retraining the whole graph (load_graph), pruning, and retraining the
    pruned model with distillation from the unpruned one all write that contract, plus provenance."""
    from bpnet_core.config import load_train_spec
    from bpnet_core.meta import read_meta
    from bpnet_core.prune import prune_and_save
    from bpnet_core.train import train

    for kind, graph in (("hpe", "false"), ("thin", "true")):
        source = imported_model(kind)
        s = train(spec_file, tmp_path / kind, progress=False, max_steps=1,
                  overrides=[f"pretrained_weights={source}", f"load_graph={graph}"])  # fmt: skip
        assert _inputs(s["final_model"]) == _inputs(source), kind
        provenance = read_meta(s["final_model"]).provenance
        assert provenance["card"] == read_meta(source).provenance["card"]
        assert provenance["trained_from"] == str(Path(source).resolve())
        params = load_train_spec(s["params_file"]).dataloader.normalization_params  # what it trained with
        expect = ([255.0] * 3, [128.0 / 255.0] * 3) if kind == "hpe" else ([1.0] * 3, [0.0] * 3)
        assert (params.image_scale, pytest.approx(params.image_offset)) == expect
    trained = tmp_path / "hpe" / "bpnet_model.keras"
    pruned = tmp_path / "pruned" / "pruned.keras"
    prune_and_save(trained, pruned, pruning_threshold=0.5, min_num_filters=4)
    assert _inputs(pruned) == _inputs(imported_model("hpe"))
    assert read_meta(pruned).provenance["pruned_from"] == str(trained.resolve())
    caplog.set_level(logging.INFO, logger="bpnet_core.train.distill")
    r = train(spec_file, tmp_path / "retrain", progress=False, max_steps=1,
              overrides=[f"pretrained_weights={pruned}", "load_graph=true", "distillation.from_pruned=true",
                         "distillation.weight=0.5"])  # fmt: skip
    assert np.isfinite(r["loss"]) and _inputs(r["final_model"]) == _inputs(imported_model("hpe"))
    assert f"distilling from {trained.resolve()}" in caplog.text  # a BGR teacher for a BGR student
    provenance = read_meta(r["final_model"]).provenance
    assert provenance["trained_from"] == str(pruned.resolve()) and provenance["pruned_from"] == str(trained.resolve())


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.stages=11"], r"model\.stages must be <= 10"),
        (["model.stages=0"], r"model\.stages must be >= 1"),
        (["model.heat_channels=18"], r"model\.heat_channels is 18 but pose config .* needs 19"),
        (["model.paf_channels=36"], r"model\.paf_channels is 36 but pose config .* needs 38"),
        (["pretrained_weights=/nonexistent/model.keras"], r"pretrained_weights file not found"),
        (["model.width_multiplier=0.25"], None),  # another width than the file: filled in below
        (["dataloader.normalization_params.image_offset=[0.5,0.5,0.5]"], "contract"),  # the model's: 128/255
    ],
)
def test_bad_input(overrides, message, spec_file, untrained_model, imported_model, tmp_path):
    from bpnet_core.train import train

    if message is None:  # weights of another architecture: the error names the layers
        overrides = overrides + [f"pretrained_weights={untrained_model}"]
        message = r"weights of another architecture: .*layers have other shapes: block1_conv1"
    contract = message == "contract"  # a spec that contradicts the model's contract: refused before any output
    if contract:
        overrides = overrides + [f"pretrained_weights={imported_model('hpe')}"]
        message = (r"dataloader\.normalization_params\.image_offset is \[0\.5, 0\.5, 0\.5\] but pretrained_weights "
                   r".*hpe\.keras was trained on image_offset \[0\.501961, .*the model's contract wins")  # fmt: skip
    with pytest.raises(BpnetError, match=message):
        train(spec_file, tmp_path / "out", overrides=overrides, progress=False, max_steps=1)
    assert not (contract and (tmp_path / "out").exists())


def test_results_dir_not_writable(spec_file, tmp_path):
    from bpnet_core.train import train

    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(BpnetError, match="results directory cannot be created"):
        train(spec_file, blocker / "results", progress=False)
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(BpnetError, match="results directory is not writable"):
            train(spec_file, locked, progress=False)


@pytest.mark.slow  # needs the finished training run
def test_cli_train(spec_file, full_run, tmp_path, capsys):
    """``bpnet train`` in-process; on a finished run the same command only re-saves the final model."""
    from bpnet_core.cli import build_parser, main

    help_text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert "unencrypted" in help_text and "--experiment_spec_file" in help_text
    shutil.copytree(full_run["results_dir"], tmp_path, dirs_exist_ok=True)
    (tmp_path / "bpnet_model.keras").unlink()
    rc = main(["train", "-e", str(spec_file), "-r", str(tmp_path), "-k", "nvidia_tlt", "--no_progress"])
    assert rc == 0
    assert "finished: epoch 2/2, step 16, resumed from epoch 2" in capsys.readouterr().out
    assert (tmp_path / "bpnet_model.keras").is_file()
    assert main(["train", "-e", str(spec_file), "-r", str(tmp_path), "--set", "model.stages=11"]) == 2
    assert "model.stages must be <= 10" in capsys.readouterr().err


DISTRIBUTED = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from bpnet_core.train import train
    s = train(sys.argv[1], sys.argv[2], progress=False, scale_lr=True,
              overrides=["dataloader.batch_size=2", "num_epoch=1", "validation_every_n_epoch=0"])
    print("RESULT " + json.dumps({k: s[k] for k in ("replicas", "global_batch_size", "step", "loss", "lr")}))
    """
)


@pytest.mark.slow  # 5-13 s on 2 idle cores: make test runs it, make test-fast does not
def test_two_logical_devices_use_mirrored_strategy(spec_file, tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    env.pop("TF_CONFIG", None)
    proc = subprocess.run([sys.executable, "-c", DISTRIBUTED, str(spec_file), str(tmp_path)], capture_output=True,
                          text=True, env=env, timeout=300, cwd=ROOT)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    r = json.loads(line[len("RESULT ") :])
    assert r["replicas"] == 2 and r["global_batch_size"] == 4 and r["step"] == 8 and np.isfinite(r["loss"])
    assert r["lr"] == pytest.approx(2 * 1e-5, rel=1e-3)  # scale_lr: ×2 devices (min_learning_rate at the end)
    assert (tmp_path / "bpnet_model.keras").is_file()


@pytest.mark.slow
def test_sigkill_then_same_command_resumes(spec_file, tmp_path):
    """Kill -9 the CLI once a checkpoint exists; the same command resumes from it and finishes."""
    cmd = [sys.executable, "-m", "bpnet_core", "train", "-e", str(spec_file), "-r", str(tmp_path), "--no_progress",
           "--set", "num_epoch=30"]  # fmt: skip
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    try:
        deadline = time.time() + 240
        while not (tmp_path / "checkpoints" / "ckpt-3.index").exists():
            assert proc.poll() is None and time.time() < deadline, "training ended before a checkpoint appeared"
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "finished: epoch 30/30, step 240, resumed from epoch" in done.stdout
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["status"] == "finished" and [h["epoch"] for h in status["history"]] == list(range(1, 31))


@pytest.mark.slow
def test_mixed_precision_path(spec_file, tmp_path, monkeypatch):
    """The mixed_float16 + loss-scaling path (normally GPU-only) runs; forced here on the CPU."""
    import keras

    from bpnet_core.train import trainer

    monkeypatch.setattr(trainer, "gpu_available", lambda: True)
    s = trainer.train(spec_file, tmp_path, progress=False, max_steps=2, mixed_precision=True)
    assert s["step"] == 2 and np.isfinite(s["loss"])
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    model = keras.saving.load_model(s["final_model"], compile=False)
    assert model.get_layer("stage1_conv1").dtype_policy.name == "mixed_float16"
