"""`pip install bpnet` outside a checkout: build the sdist, build the wheel from the unpacked sdist (so the sdist is
complete), install it into a fresh virtual environment and run the tutorial's verbs from an empty folder, with shipped
specs referenced by name.

The new environment reuses this environment's dependencies (a ``.pth`` line to its site-packages; nothing is
downloaded) and gets bpnet itself only from the wheel (``--no-deps --no-index``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SKIP = {".git", ".venv", "runs", "build", "dist", ".pytest_cache", "__pycache__", ".ipynb_checkpoints"}


def _run(cmd, cwd, env=None, timeout=600):
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))} -> {r.returncode}\n{r.stdout[-1500:]}\n{r.stderr[-3000:]}"
    return r


def _copy_source(dest: Path) -> Path:
    """The checkout's files without environments, results and build leftovers (the sdist is built from a copy, so the
    test writes nothing into the checkout)."""
    shutil.copytree(ROOT, dest, ignore=lambda d, names: [n for n in names if n in SKIP or n.endswith(".egg-info")])
    return dest


@pytest.mark.slow
def test_sdist_and_wheel_install_outside_the_checkout_and_run(tmp_path):
    pytest.importorskip("setuptools")
    src = _copy_source(tmp_path / "src")
    dist = tmp_path / "dist"
    dist.mkdir()
    # sdist, then the wheel built from the unpacked sdist (no build isolation: no download)
    code = "import sys, setuptools.build_meta as b; print(b.build_sdist(sys.argv[1]))"
    sdist = dist / _run([sys.executable, "-c", code, dist], src).stdout.strip().splitlines()[-1]
    assert sdist.name.startswith("bpnet-") and sdist.name.endswith(".tar.gz")
    with tarfile.open(sdist) as tar:
        names = tar.getnames()
        tar.extractall(tmp_path / "unpacked", filter="data")
    for shipped in ("specs/infer_spec_demo.yaml", "model_pose_config/bpnet_18joints.json", "notebooks/02_train.ipynb",
                    "model_cards/mobilenet_thin.yaml", "setup.py"):  # fmt: skip
        assert any(n.endswith("/" + shipped) for n in names), shipped
    unpacked = next((tmp_path / "unpacked").iterdir())
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", dist,
          unpacked], tmp_path)  # fmt: skip
    wheel = next(dist.glob("bpnet-*.whl"))

    # a fresh environment: this environment's dependencies, bpnet only from the wheel
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], tmp_path)
    py = venv / "bin" / "python"
    site = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path).stdout.strip())
    (site / "_bpnet_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([py, "-m", "pip", "install", "--no-deps", "--no-index", "-q", wheel], tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "BPNET_LOG_LEVEL")}
    where = _run([py, "-c", "import bpnet_core; print(bpnet_core.__file__)"], tmp_path, env).stdout.strip()
    assert Path(where).is_relative_to(site), where  # the wheel's copy, not the checkout's
    work = tmp_path / "user"
    work.mkdir()
    bpnet = venv / "bin" / "bpnet"

    assert _run([bpnet, "--version"], work, env).stdout.startswith("bpnet ")
    _run([bpnet, "synthetic_data", "-o", "data", "--num_train", "8", "--num_val", "4", "--image_size", "64", "64",
          "--workers", "1", "--no_progress"], work, env)  # fmt: skip
    relaxed = [
        "--set",
        "data_filtering_params.min_acceptable_height=8",
        "--set",
        "data_filtering_params.min_acceptable_width=8",
        "--set",
        "data_filtering_params.min_acceptable_kpts=3",
    ]
    _run([bpnet, "dataset_convert", "-d", "data/dataset_spec.json", "-o", "records/train", "-m", "train", "-j", "1",
          *relaxed], work, env)  # fmt: skip
    assert list((work / "records").glob("train-fold-*"))
    data = work / "records"
    tiny = {"num_epoch": 1, "checkpoint_n_epoch": 1, "validation_every_n_epoch": 0, "dataloader.batch_size": 4,
            "dataloader.pose_config.target_shape": "[8, 8]",
            "dataloader.image_config.image_dims.height": 64, "dataloader.image_config.image_dims.width": 64,
            "dataloader.dataset_config.train_records_folder_path": data,
            "dataloader.dataset_config.val_records_folder_path": data,
            "dataloader.dataset_config.train_records_path": "[train-fold-000-of-001]",
            "dataloader.dataset_config.dataset_specs.coco": work / "data" / "dataset_spec.json",
            "model.stages": 2, "model.width_multiplier": 0.125, "model.stageT_kernel_sizes": "[3, 3]"}  # fmt: skip
    sets = [a for k, v in tiny.items() for a in ("--set", f"{k}={v}")]
    _run([bpnet, "train", "-e", "bpnet_train_m1_demo.yaml", "-r", "results", "--no_progress", *sets], work, env)
    model = work / "results" / "bpnet_model.keras"
    assert model.is_file()
    photo = next((work / "data" / "val2017").glob("*.jpg"))
    _run([bpnet, "inference", "-i", "infer_spec_demo.yaml", "-m", model, "--input", photo, "-r", "inf", "--set",
          "input_shape=[64, 64]"], work, env)  # fmt: skip
    assert (work / "inf" / "detections.json").is_file()
    _run([bpnet, "evaluate", "-i", "infer_spec_demo.yaml", "-m", model, "-d", "data/dataset_spec.json", "-r", "ev",
          "--set", "input_shape=[64, 64]"], work, env)  # fmt: skip
    assert (work / "ev" / "metrics.json").is_file()
    _run([bpnet, "tutorial", "init", "tut"], work, env)
    assert (work / "tut" / "notebooks" / "02_train.ipynb").is_file()
    assert (work / "tut" / "specs" / "bpnet_train_m1_demo.yaml").is_file()
