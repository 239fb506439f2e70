"""Several machines, simulated on one: two ``bpnet train`` worker processes with a ``TF_CONFIG`` on 127.0.0.1
(``MultiWorkerMirroredStrategy`` on the CPU), stopped after epoch 1 and then resumed, as after a crash.

Checked: both workers finish; the chief (worker 0) alone writes params.yaml, checkpoints, TensorBoard logs,
status.json and the final model, the other worker never creates its results directory (and removes its temporary
checkpoints); the resumed worker takes the chief's checkpoint without reading any file; and the final weights equal
a single-process run of the same global batch:

* over two logical CPU devices (``MirroredStrategy``, 2 images per device): the same computation, so the weights
  must agree to float rounding (measured: identical, max |Δ| = 0);
* on one device with the global batch of 4: batch normalisation then normalises over 4 images instead of 2 per
  replica (TAO's per-GPU batch norm), so the weights differ a little: measured max |Δ| 0.0144 after 16 steps, where
  the same run with the wrong global batch (2) differs by 0.145; the check allows 0.05, ~3× from either.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

ROOT = Path(__file__).resolve().parents[2]
PER_WORKER_BATCH = 2
SETTINGS = [f"dataloader.batch_size={PER_WORKER_BATCH}", "validation_every_n_epoch=0",
            # TAO's default optimiser and rates (momentum SGD, 2e-5): updates proportional to the gradients
            "optimizer.__class_name__=WeightedMomentumOptimizer",
            "optimizer.learning_rate_schedule.base_learning_rate=2e-5",
            "optimizer.learning_rate_schedule.min_learning_rate=8e-8"]  # fmt: skip
STEPS_PER_EPOCH = 8  # 32 samples / (2 workers x 2 images)
MIRRORED_TOLERANCE = 1e-6  # same computation in one process; measured 0
BATCH_NORM_TOLERANCE = 0.05  # one device, global batch: measured 0.0144 (wrong global batch: 0.145)
TIMEOUT = 240


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    return {**env, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT), **extra}


def _run_workers(spec, results: list[Path], tmp: Path, extra=()) -> list[str]:
    """Both workers with the same command (each its own -r, as on machines without a shared disk); their stdout."""
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index, out in enumerate(results):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        cmd = [sys.executable, "-m", "bpnet_core", "train", "-e", str(spec), "-r", str(out), "--no_progress",
               *[a for s in SETTINGS for a in ("--set", s)], *extra]  # fmt: skip
        worker_tmp = tmp / f"tmp{index}"
        worker_tmp.mkdir(exist_ok=True)
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                                      env=_env(TF_CONFIG=tf_config, TMPDIR=str(worker_tmp))))  # fmt: skip
    deadline = time.monotonic() + TIMEOUT
    outputs = []
    try:
        for p in procs:
            outputs.append(p.communicate(timeout=max(1.0, deadline - time.monotonic())))
    except subprocess.TimeoutExpired:
        pass
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    if len(outputs) < len(procs) or any(p.returncode for p in procs):
        tails = []
        for i, p in enumerate(procs):
            out, err = outputs[i] if i < len(outputs) else p.communicate()
            tails.append(f"--- worker {i}: exit {p.returncode}\n{out[-1500:]}\n{err[-3000:]}")
        pytest.fail(f"two-worker training failed or hung (timeout {TIMEOUT} s)\n" + "\n".join(tails))
    return [out for out, _ in outputs]


def _weights(path) -> list[np.ndarray]:
    import keras

    return keras.saving.load_model(path, compile=False, safe_mode=True).get_weights()


def _max_abs_diff(a, b) -> float:
    assert len(a) == len(b) and all(x.shape == y.shape for x, y in zip(a, b))
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


MIRRORED = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from bpnet_core.train import train
    s = train(sys.argv[1], sys.argv[2], progress=False, overrides=sys.argv[3:])
    print("RESULT " + json.dumps({k: s[k] for k in ("replicas", "global_batch_size", "step")}))
    """
)


@pytest.mark.slow
def test_two_workers_train_like_one_process(spec_file, tmp_path):
    chief, worker = tmp_path / "chief", tmp_path / "worker"

    # 1. both workers stop after epoch 1 (checkpointed), as if the cluster went down
    out = _run_workers(spec_file, [chief, worker], tmp_path, ["--max_steps", str(STEPS_PER_EPOCH)])
    assert all(f"stopped: epoch 1/2, step {STEPS_PER_EPOCH}," in o for o in out), out
    assert "2 device(s) of 2 workers" in out[0] and "the chief writes the outputs" in out[1]
    assert sorted(p.name for p in (chief / "checkpoints").glob("*.index")) == ["ckpt-1.index"]
    assert not worker.exists()

    # 2. the same commands again: the chief resumes from its checkpoint, the worker (no files) from the chief's
    out = _run_workers(spec_file, [chief, worker], tmp_path)
    assert all(f"finished: epoch 2/2, step {2 * STEPS_PER_EPOCH}, resumed from epoch 1," in o for o in out), out
    assert sorted(p.name for p in (chief / "checkpoints").glob("*.index")) == ["ckpt-1.index", "ckpt-2.index"]
    for name in ("params.yaml", "bpnet_model.keras", "logs/train"):
        assert (chief / name).exists(), name
    status = json.loads((chief / "status.json").read_text())
    assert status["status"] == "finished" and status["replicas"] == 2 and status["step"] == 2 * STEPS_PER_EPOCH
    assert [h["epoch"] for h in status["history"]] == [1, 2]
    assert not worker.exists()
    assert not list((tmp_path / "tmp1").glob("bpnet-worker-ckpt-*")), "the worker kept its temporary checkpoints"
    two_workers = _weights(chief / "bpnet_model.keras")

    # 3. one process, two logical CPU devices, the same global batch: the same numbers
    proc = subprocess.run([sys.executable, "-c", MIRRORED, str(spec_file), str(tmp_path / "mirrored"), *SETTINGS],
                          capture_output=True, text=True, env=_env(), timeout=TIMEOUT, cwd=ROOT)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))[len("RESULT ") :])
    assert r == {"replicas": 2, "global_batch_size": 2 * PER_WORKER_BATCH, "step": 2 * STEPS_PER_EPOCH}
    diff_mirrored = _max_abs_diff(two_workers, _weights(tmp_path / "mirrored" / "bpnet_model.keras"))

    # 4. one process, one device, the global batch: equal up to per-replica batch normalisation
    from bpnet_core.train import train

    single = train(spec_file, tmp_path / "single", progress=False,
                   overrides=[*SETTINGS, f"dataloader.batch_size={2 * PER_WORKER_BATCH}"])  # fmt: skip
    assert single["replicas"] == 1 and single["step"] == 2 * STEPS_PER_EPOCH
    diff_single = _max_abs_diff(two_workers, _weights(single["final_model"]))
    print(f"max |weight difference|: two workers vs one process on 2 devices {diff_mirrored:.3g}, "
          f"vs one device {diff_single:.3g}")  # fmt: skip
    assert diff_mirrored <= MIRRORED_TOLERANCE
    assert diff_single <= BATCH_NORM_TOLERANCE
