"""Runners: one small interface between bpnet and a network file, whatever runs it.

>>> runner = load_runner("thin.onnx")             # .keras, .onnx, .xml (OpenVINO IR) or .engine (TensorRT)
>>> heatmaps, pafs = runner.predict(batch)         # batch: float32 (N, H, W, 3), prepared by bpnet_core.preprocess

A runner has ``meta`` (the :class:`~bpnet_core.meta.ModelMeta` stored in the file: pose, strides, colour order,
normalisation, layout, outputs) and ``predict(batch, stage=None) -> (heatmaps, pafs)``: NHWC float32 maps of the
requested stage (1-based, ``None`` = the last), each at its own stride (``meta.heatmaps().stride``,
``meta.pafs().stride``). The batch is always NHWC; runners of NCHW files transpose it themselves.

=========================  ===============================  ==========================================
file                       runner                           runs on
=========================  ===============================  ==========================================
``.keras``                 :class:`KerasRunner`             TensorFlow (CPU or GPU)
``.onnx``                  :class:`OnnxRunner`              ONNX Runtime (CUDA when onnxruntime-gpu is
                                                            installed, else CPU)
``.xml`` + ``.bin``        :class:`OpenVinoRunner`          OpenVINO (CPU; FP32 by default)
``.engine/.trt/.plan``     :class:`TensorRTRunner`          TensorRT (NVIDIA GPU)
=========================  ===============================  ==========================================

:class:`RenderedMapsSource` is not a network: it renders label maps from ground-truth annotations (a perfect
"network" for testing the decoder, evaluation and explorer); the Predictor hands it each image's transform.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import numpy as np

from bpnet_core.errors import BpnetError
from bpnet_core.meta import ENGINE_SUFFIXES, ModelMeta, check_encrypted
from bpnet_core.runners.base import check_batch, run_chunked
from bpnet_core.runners.keras import KerasRunner
from bpnet_core.runners.onnx import OnnxRunner
from bpnet_core.runners.openvino import OpenVinoRunner
from bpnet_core.runners.rendered import RenderedMapsSource
from bpnet_core.runners.tensorrt import TensorRTRunner

__all__ = ["ENGINE_SUFFIXES", "KerasRunner", "OnnxRunner", "OpenVinoRunner", "RenderedMapsSource", "Runner",
           "TensorRTRunner", "check_batch", "load_runner", "run_chunked"]  # fmt: skip


class Runner(Protocol):
    meta: ModelMeta

    def predict(self, batch: np.ndarray, stage: int | None = None) -> tuple[np.ndarray, np.ndarray]: ...


def load_runner(path: str | os.PathLike, providers: list[str] | None = None, threads: int = 0,
                precision_hint: str = "f32", train_spec: str | os.PathLike | None = None):  # fmt: skip
    """The runner for a model file, picked by its suffix; the file's contract is read and checked.

    ``providers``: ONNX Runtime execution providers; ``threads``: intra-op threads (0 = the runtime's default);
    ``precision_hint``: OpenVINO's ``INFERENCE_PRECISION_HINT`` (``f32``; ``bf16``/``f16`` where the CPU has them).
    ``train_spec``: for a TAO 5 ``.hdf5`` only, the train spec it was trained with (architecture, pose config,
    normalisation; see :func:`bpnet_core.model.tao.load_tao_model`).
    """
    path = Path(path)
    check_encrypted(path)
    if not path.exists():
        raise BpnetError(f"{path}: model file not found")
    suffix = path.suffix.lower()
    if suffix in (".keras", ".hdf5", ".h5"):
        return KerasRunner.from_file(path, train_spec)
    if suffix == ".onnx":
        return OnnxRunner(path, providers=providers, threads=threads)
    if suffix == ".xml":
        return OpenVinoRunner(path, precision_hint=precision_hint, threads=threads)
    if suffix in ENGINE_SUFFIXES:
        return TensorRTRunner(path)
    raise BpnetError(f"{path}: unknown model type {suffix!r} (expected .keras, TAO's .hdf5, .onnx, .xml or .engine)")


def __getattr__(name: str):  # the runner classes import their runtimes lazily
    if name == "KerasRunner":
        return KerasRunner
    if name == "OnnxRunner":
        return OnnxRunner
    if name == "OpenVinoRunner":
        return OpenVinoRunner
    if name == "TensorRTRunner":
        return TensorRTRunner
    raise AttributeError(name)
