"""Inference and evaluation: runners (one ``predict`` interface), pre-processing, multi-scale, outputs."""

from bpnet_core.infer.inference import ImageResult, infer_image, preprocess, run_inference
from bpnet_core.infer.runners import KerasRunner, RenderedMapsRunner, load_runner

__all__ = ["ImageResult", "KerasRunner", "RenderedMapsRunner", "infer_image", "load_runner", "preprocess",
           "run_inference"]  # fmt: skip
