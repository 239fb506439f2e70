"""Inference and evaluation: the :class:`Predictor` (preprocess → runner → merge → decode → photo pixels) and the
verbs built on it."""

from bpnet_core.infer.inference import list_inputs, run_inference
from bpnet_core.infer.predictor import ImageResult, Predictor, make_predictor, people_to_photo

__all__ = ["ImageResult", "Predictor", "list_inputs", "make_predictor", "people_to_photo", "run_inference"]
