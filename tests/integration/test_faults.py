"""Fault tests: `bpnet train` killed with SIGKILL at random moments (several seeds), then the same command again.

After each kill: every file under its final name is complete (status.json and params.yaml parse, a final model, if
any, is a valid .keras zip). After the re-run: training finished, the epoch history is complete and contiguous, and
it resumed from the newest checkpoint that existed at the kill, or the one before it if the kill interrupted its
writing (never silently from scratch).
"""

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
