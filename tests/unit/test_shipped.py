"""Shipped files: found by name, copied by `bpnet tutorial init`; quiet-output filter patterns."""

from __future__ import annotations

import re

import pytest

from bpnet_core.cli import main
from bpnet_core.config import load_infer_spec
from bpnet_core.errors import BpnetError
from bpnet_core.paths import SHIPPED_ROOT, SHIPPED_TREES, find_shipped
from bpnet_core.verbosity import NOISE


def test_bare_name_finds_the_shipped_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert find_shipped("infer_spec.yaml") == SHIPPED_ROOT / "specs" / "infer_spec.yaml"
    assert find_shipped("bpnet_18joints.json") == SHIPPED_ROOT / "model_pose_config" / "bpnet_18joints.json"
    (tmp_path / "infer_spec.yaml").write_text("heatmap_threshold: 0.3\n")  # a local file wins
    assert find_shipped("infer_spec.yaml").resolve() == tmp_path / "infer_spec.yaml"
    assert load_infer_spec("infer_spec.yaml").heatmap_threshold == 0.3
    with pytest.raises(BpnetError, match=r"nope.yaml: inference spec not found \(nor a shipped specs/ file: "):
        load_infer_spec("nope.yaml")


def test_tutorial_init_copies_and_refuses_to_overwrite(tmp_path, capsys):
    dest = tmp_path / "new" / "tut"
    assert main(["tutorial", "init", str(dest)]) == 0
    for tree in SHIPPED_TREES:
        assert sorted(p.name for p in (dest / tree).iterdir()) == sorted(
            p.name for p in (SHIPPED_ROOT / tree).iterdir() if p.name not in ("__pycache__", ".ipynb_checkpoints")
        )
    capsys.readouterr()
    assert main(["tutorial", "init", str(dest)]) == 2
    assert "give --force" in capsys.readouterr().err
    (dest / "specs" / "infer_spec.yaml").write_text("edited")
    assert main(["tutorial", "init", str(dest), "--force"]) == 0
    assert (dest / "specs" / "infer_spec.yaml").read_text() == (SHIPPED_ROOT / "specs" / "infer_spec.yaml").read_text()
    assert not [p for p in dest.iterdir() if p.name.startswith(".bpnet-tutorial-")]


def test_noise_pattern_keeps_errors():
    noise = re.compile(NOISE)
    assert noise.match("I0000 00:00:1796566489.227666   30602 port.cc:153] oneDNN custom operations are on.")
    assert noise.match("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR")
    assert noise.match("2025-09-17 14:44:05.157831: W tensorflow/core/kernels/data/x.cc:32] buffer_size")
    assert not noise.match("E0000 00:00:1.2   30602 cuda_dnn.cc:8579] Unable to register cuDNN factory")
    assert not noise.match("2025-09-17 14:44:05.157831: E external/x.cc:3] an error")
    assert not noise.match("INFO bpnet_core.train.trainer: epoch 1/1")
    # ipykernel's control task, destroyed pending when a kernel shuts down on a busy machine (tutorial runner)
    assert noise.match("Task was destroyed but it is pending!")
    assert noise.match("task: <Task pending name='Task-33' coro=<Kernel.dispatch_control() running at k.py:372>>")
    assert not noise.match("Task was destroyed but it is pending! task=<Task pending coro=<bpnet()>>")
