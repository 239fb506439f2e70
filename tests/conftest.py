"""Shared fixtures: the pose configs, the real COCO sample (committed under tests/fixtures/)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
COCO_SAMPLE = FIXTURES / "coco_sample"


@pytest.fixture(scope="session")
def pose():
    from bpnet_core.skeleton import PoseConfig

    return PoseConfig.from_json(ROOT / "model_pose_config" / "bpnet_18joints.json")


@pytest.fixture(scope="session")
def pose17():
    from bpnet_core.skeleton import PoseConfig

    return PoseConfig.from_json(ROOT / "model_pose_config" / "coco_17joints.json")


@pytest.fixture(scope="session")
def coco_sample_json():
    return COCO_SAMPLE / "person_keypoints_val2017_sample.json"


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def pytest_collection_modifyitems(config, items):
    skip_trt = pytest.mark.skip(reason="TensorRT (the 'tensorrt' package) is not installed")
    for item in items:
        if "trt" in item.keywords and not _has("tensorrt"):
            item.add_marker(skip_trt)
