"""INT8 in one place: calibrate → quantise → check → search or fine-tune.

* :mod:`~bpnet_core.int8.fakequant`: the quantisation-aware training (QAT) layers (per-channel INT8 weights,
  UINT8 activations with moving min/max observers), exactly the arithmetic of ONNX Runtime's QDQ format;
* :mod:`~bpnet_core.int8.qat`: a bpnet Keras model rebuilt with those layers, its ranges calibrated on photos, and
  back to plain layers; the fine-tune itself (label-free distillation from the float model);
* :mod:`~bpnet_core.int8.qdq`: the one quantised file (QDQ ONNX, which OpenVINO and TensorRT read too) written
  from a QAT model with the ranges it was trained with, checked against it.

Post-training quantisation (no training) lives in :mod:`bpnet_core.export.quantize` (ONNX Runtime,
``bpnet export --data_type int8``), :mod:`bpnet_core.export.int8_real` (the depthwise rescaling and NNCF) and
:mod:`bpnet_core.export.int8_search` (accuracy control: what to keep in float).
"""
