"""INT8 in one place: calibrate → quantise → check → search or fine-tune.

Calibrate:

* :mod:`~bpnet_core.int8.calibration`: calibration photos sampled and batched exactly as inference prepares them,
  the tensor file (``--cal_data_file``) and the TensorRT calibration cache.

Quantise after training (post-training, PTQ — no training):

* :mod:`~bpnet_core.int8.ptq`: ONNX Runtime's static quantisation (``bpnet export --data_type int8``);
* :mod:`~bpnet_core.int8.ptq_real`: why real OpenPose networks break under it, the depthwise rescaling that helps,
  NNCF for OpenVINO, and the checks (people agreement with FP32, output SNR);
* :mod:`~bpnet_core.int8.search`: accuracy control — quantise everything, then keep layer groups in float until
  the people agree with FP32's.

Quantise while training (quantisation-aware, QAT — everything INT8, accuracy from a short fine-tune):

* :mod:`~bpnet_core.int8.fakequant`: the QAT layers (per-channel INT8 weights, UINT8 activations with range
  observers), exactly the arithmetic of ONNX Runtime's QDQ format;
* :mod:`~bpnet_core.int8.qat`: batch norm folded, channels equalised, a bpnet Keras model rebuilt with those layers,
  its ranges calibrated on photos, and back to plain layers;
* :mod:`~bpnet_core.int8.finetune`: ``bpnet qat`` — the fine-tune itself (label-free distillation from the float
  model);
* :mod:`~bpnet_core.int8.qdq`: the one quantised file (QDQ ONNX, which OpenVINO and TensorRT read too) written
  from a QAT model with the ranges it was trained with, checked against it (``bpnet export`` of a QAT model,
  :mod:`bpnet_core.export.qat`).
"""
