"""Fault tests: `bpnet train` killed with SIGKILL at random moments (several seeds), then the same command again;
and the verbs that start worker processes killed (SIGKILL, SIGTERM, Ctrl-C) while their workers run.

After each kill: every file under its final name is complete (status.json and params.yaml parse, a final model, if
any, is a valid .keras zip). After the re-run: training finished, the epoch history is complete and contiguous, and
it resumed from the newest checkpoint that existed at the kill, or the one before it if the kill interrupted its
writing (never silently from scratch).

A killed ``dataset_convert`` or ``synthetic_data`` leaves no process behind: not its spawn workers, not
multiprocessing's resource tracker, not the stderr filter of the console script (``bpnet_core.workers``,
``bpnet_core.verbosity``).
"""

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
EPOCHS = 12


def _checkpoint_epochs(results: Path) -> list[int]:
    return sorted(int(m.group(1)) for p in (results / "checkpoints").glob("ckpt-*.index")
                  if (m := re.match(r"ckpt-(\d+)\.index", p.name)))  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_train_sigkill_at_random_points(spec_file, tmp_path, seed):
    cmd = [sys.executable, "-m", "bpnet_core", "train", "-e", str(spec_file), "-r", str(tmp_path), "--no_progress",
           "--set", f"num_epoch={EPOCHS}"]  # fmt: skip
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    # wait for training to start (params.yaml is written first), then kill at a random moment
    deadline = time.time() + 120
    while not (tmp_path / "params.yaml").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    time.sleep(float(np.random.default_rng(seed).uniform(1.0, 8.0)))
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()

    # nothing truncated under a final name
    yaml.safe_load((tmp_path / "params.yaml").read_text())
    if (tmp_path / "status.json").exists():
        json.loads((tmp_path / "status.json").read_text())
    if (tmp_path / "bpnet_model.keras").exists():
        assert zipfile.is_zipfile(tmp_path / "bpnet_model.keras")
    before = _checkpoint_epochs(tmp_path) if (tmp_path / "checkpoints").exists() else []

    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["status"] == "finished" and status["epoch"] == EPOCHS
    assert [h["epoch"] for h in status["history"]] == list(range(1, EPOCHS + 1))
    if before:
        m = re.search(r"resumed from epoch (\d+)", done.stdout)
        assert m, f"checkpoints {before} existed but training did not resume: {done.stdout[-500:]}"
        # the newest checkpoint, or the one before it when the kill hit while the newest was being written
        assert int(m.group(1)) in before[-2:], (before, m.group(0))
    else:
        assert "resumed from epoch" not in done.stdout
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


# ------------------------------------------------------------------ no process outlives a killed verb
def _group(pgid: int) -> dict[int, str]:
    """pid → command line of the live (not zombie) processes of process group ``pgid``, from /proc."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state, _, group = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:3]
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, ValueError):  # ended meanwhile
            continue
        if int(group) == pgid and state != "Z":
            out[int(entry.name)] = cmdline
    return out


def _workers(group: dict[int, str]) -> list[int]:
    return [pid for pid, cmd in group.items() if "multiprocessing.spawn" in cmd]


@pytest.fixture(scope="module")
def pool_data(tmp_path_factory):
    """256 small synthetic training images: enough for the verbs to use their worker pools (32 images or more)."""
    from bpnet_core.data.synthetic import generate_synthetic_coco

    out = tmp_path_factory.mktemp("pool_data")
    generate_synthetic_coco(out, num_train=256, num_val=4, image_size=(96, 96), seed=0, workers=2, progress=False)
    return out


def _verb(verb: str, data: Path, out: Path) -> tuple[list[str], Path]:
    """The command line of a verb that works in worker processes, and the folder its workers write into."""
    if verb == "synthetic_data":
        return ["synthetic_data", "-o", str(out / "syn"), "--num_train", "256", "--num_val", "4", "--image_size",
                "96", "96", "--workers", "2"], out / "syn" / "train2017"  # fmt: skip
    return ["dataset_convert", "-d", str(data / "dataset_spec.json"), "-o", str(out / "train"), "-m", "train",
            "--generate_masks", "-j", "2", "--set", "data_filtering_params.min_acceptable_kpts=3",
            "--set", f"train_data.mask_root_dir_path={out / 'masks'}"], out / "masks"  # fmt: skip


@pytest.mark.slow  # 0.5-4 s each (the shared dataset: 2-7 s once)
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
@pytest.mark.parametrize("verb", ["dataset_convert", "synthetic_data"])
@pytest.mark.parametrize(
    "sig, moment, target",
    [
        ("SIGKILL", "start", "verb"),  # the workers are starting (importing), no task yet
        ("SIGKILL", "work", "verb"),  # the workers are writing images / masks
        ("SIGTERM", "work", "verb"),  # `kill PID`
        ("SIGTERM", "work", "group"),  # a job scheduler stopping the job
        ("SIGINT", "work", "group"),  # Ctrl-C in a terminal
        ("SIGINT", "work", "verb"),  # `kill -INT PID`, a notebook's interrupt
    ],
)
def test_killed_verb_leaves_no_process(pool_data, tmp_path, verb, sig, moment, target):
    cmd, written = _verb(verb, pool_data, tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "BPNET_LOG_LEVEL")}
    env["PYTHONPATH"] = str(ROOT)
    # output to files, not pipes: a process left behind would hold a pipe open and hang the test; a new session
    # makes the verb the leader of its own process group
    with open(tmp_path / "stdout", "wb") as stdout, open(tmp_path / "stderr", "wb") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "bpnet_core", *cmd], stdout=stdout, stderr=stderr, env=env,
                                cwd=tmp_path, start_new_session=True)  # fmt: skip
    pgid = proc.pid
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            group = _group(pgid)
            if _workers(group) and (moment == "start" or (written.is_dir() and any(written.iterdir()))):
                break
            time.sleep(0.005)
        assert proc.poll() is None, f"{verb} ended before the kill: {(tmp_path / 'stderr').read_text()[-2000:]}"
        assert _workers(group), f"no worker process at the kill: {group}"
        (os.killpg if target == "group" else os.kill)(pgid, getattr(signal, sig))
        code = proc.wait(timeout=30)
        deadline, left = time.time() + 5, _group(pgid)
        while left and time.time() < deadline:
            time.sleep(0.05)
            left = _group(pgid)
        assert not left, f"{sig} to the {target} while its workers {moment}: processes left behind: {left}"
    finally:
        with contextlib.suppress(ProcessLookupError):  # whatever is left of this test's own process group
            os.killpg(pgid, signal.SIGKILL)
        proc.wait()
    err = (tmp_path / "stderr").read_text(errors="replace")
    if sig == "SIGINT":  # Ctrl-C: bpnet's one line and exit code, no traceback from the workers
        assert code == 130 and "bpnet: interrupted" in err and "Traceback" not in err, (code, err[-2000:])
    else:
        assert code == -getattr(signal, sig), (code, err[-2000:])


_FILTER_SCRIPT = """
import os, signal, subprocess, sys, time
from bpnet_core.verbosity import filtered_stderr
with filtered_stderr("INFO"):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # inherits the filter's pipe
    print(f"holder {holder.pid}", flush=True)
    print("I0000 00:00:1796566489.227666   30602 port.cc:153] dropped", file=sys.stderr, flush=True)
    print("passed on", file=sys.stderr, flush=True)
    if sys.argv[1] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    t0 = time.perf_counter()
print(f"left the filter in {time.perf_counter() - t0:.2f} s", flush=True)
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
@pytest.mark.parametrize("end", ["exit", "kill"])
def test_stderr_filter_ends_with_bpnet_not_with_its_pipe(tmp_path, end):
    """The console script's stderr filter ends when bpnet leaves it (or dies), even while a process bpnet started
    still holds its input pipe: no 10-s wait at exit, no filter left behind (0.3 s)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(tmp_path / "stdout", "wb") as stdout, open(tmp_path / "stderr", "wb") as stderr:
        proc = subprocess.Popen([sys.executable, "-c", _FILTER_SCRIPT, end], stdout=stdout, stderr=stderr, env=env,
                                start_new_session=True)  # fmt: skip
    try:
        proc.wait(timeout=30)
        holder = int(re.search(r"holder (\d+)", (tmp_path / "stdout").read_text()).group(1))
        deadline, left = time.time() + 5, _group(proc.pid)
        while set(left) - {holder} and time.time() < deadline:
            time.sleep(0.02)
            left = _group(proc.pid)
        assert set(left) == {holder}, left  # only the process that holds the pipe is still there
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert (tmp_path / "stderr").read_text() == "passed on\n"
    if end == "exit":
        seconds = float(re.search(r"left the filter in ([\d.]+) s", (tmp_path / "stdout").read_text()).group(1))
        assert seconds < 5, seconds
