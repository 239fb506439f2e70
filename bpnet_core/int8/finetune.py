"""Quantisation-aware fine-tuning (QAT) of a bpnet Keras model, label-free, by distillation from its float self.

>>> summary = qat_finetune("hpe.keras", "runs/hpe_qat", "photos/", max_steps=300)
>>> summary["model"]          # runs/hpe_qat/bpnet_model.keras: the QAT model; `bpnet export --data_type int8`

Steps: batch norm folded and convolution channels rescaled (exact in float, :func:`bpnet_core.int8.qat.fold_batch_norm`,
:func:`~bpnet_core.int8.qat.equalize_channels`); fake-quant layers in (:func:`~bpnet_core.int8.qat.to_qat`); their
ranges calibrated on the first ``calibration_count`` photos (:func:`~bpnet_core.int8.qat.calibrate_ranges`); the QAT
start model written as ``qat_start.keras``; then its graph is trained (:func:`bpnet_core.prune.retrain_pruned`, as a
pruned graph is) with ``specs/bpnet_qat_real.yaml``: the float model is the teacher, the photos are the data (no
labels), the calibrated ranges are kept (:data:`~bpnet_core.int8.fakequant.DEFAULT_MOMENTUM`), or trained too with
``learn_range=True`` (``bpnet qat --learn_ranges``: LSQ gradients, each range scaled as a whole at
:attr:`bpnet_core.train.optimizers.RelativeAdam.range_rate` times the weights' rate).
"""

from __future__ import annotations

import os
from pathlib import Path

from bpnet_core.config.io import load_train_spec
from bpnet_core.errors import BpnetError
from bpnet_core.export.imported import calibration_batches
from bpnet_core.fileio import list_images, make_dir
from bpnet_core.int8.fakequant import DEFAULT_MOMENTUM, is_qat_model
from bpnet_core.int8.qat import calibrate_ranges, equalize_channels, fold_batch_norm, to_qat
from bpnet_core.meta import read_meta
from bpnet_core.model import load_bpnet_model
from bpnet_core.model.bpnet import keras_members, save_model_atomic
from bpnet_core.paths import project_file
from bpnet_core.prune.channel_prune import retrain_pruned

#: The QAT fine-tune spec.
QAT_SPEC = "specs/bpnet_qat_real.yaml"
#: The QAT start model (fake-quant layers in, ranges calibrated, not trained yet) in the results folder.
START_NAME = "qat_start.keras"
#: Fewest readable calibration photos QAT accepts.
MIN_CALIBRATION_PHOTOS = 8
#: Calibration photos by default.
DEFAULT_CALIBRATION_COUNT = 32


def calibration_photos(meta, image_folder, count: int) -> list:
    """``count`` photos of ``image_folder`` prepared as the model's contract says (one batch each); fewer than
    :data:`MIN_CALIBRATION_PHOTOS` readable ones is a one-line error."""
    list_images(image_folder, "calibration image folder not found", "no images ({suffixes}) to calibrate QAT with")
    batches = calibration_batches(meta, image_folder, int(count), "channels_last")
    if len(batches) < MIN_CALIBRATION_PHOTOS:
        raise BpnetError(f"{image_folder}: {len(batches)} readable photo(s); QAT needs at least "
                         f"{MIN_CALIBRATION_PHOTOS} to calibrate its ranges")  # fmt: skip
    return batches


def prepare_qat(model_file: str | os.PathLike, image_folder: str | os.PathLike,
                calibration_count: int = DEFAULT_CALIBRATION_COUNT, momentum: float = DEFAULT_MOMENTUM,
                learn_range: bool = False):  # fmt: skip
    """``(qat_model, meta, report)``: the float model of ``model_file`` folded, rescaled, rebuilt with fake-quant
    layers and calibrated on photos of ``image_folder`` (see the module docstring); nothing written."""
    model = load_bpnet_model(model_file)
    if is_qat_model(model):
        raise BpnetError(f"{model_file}: already a quantisation-aware model (give the float model it came from)")
    meta = read_meta(model_file)
    if isinstance(calibration_count, bool) or not isinstance(calibration_count, int) or calibration_count < 1:
        raise BpnetError(f"calibration_count must be a positive integer (got {calibration_count!r})")
    batches = calibration_photos(meta, image_folder, max(calibration_count, MIN_CALIBRATION_PHOTOS))
    folded, bn = fold_batch_norm(model)
    spread = equalize_channels(folded, batches)
    qat = to_qat(folded, momentum=momentum, learn_range=learn_range)
    ranges = calibrate_ranges(qat, batches)
    report = {"batch_norm_folded": len(bn), "channels_rescaled": len(spread), "quantisers": len(ranges),
              "calibration_photos": len(batches),
              "channel_spread": {k: [round(a, 1), round(b, 1)] for k, (a, b) in spread.items()}}  # fmt: skip
    return qat, meta, report


def qat_finetune(model_file: str | os.PathLike, results_dir: str | os.PathLike, image_folder: str | os.PathLike,
                 epochs: int = 1, calibration_count: int = DEFAULT_CALIBRATION_COUNT, learning_rate: float = 1e-5,
                 seed: int = 42, overrides: dict | None = None, learn_range: bool = False,
                 **train_kwargs) -> dict:  # fmt: skip
    """Quantisation-aware fine-tune of the float ``model_file`` on the photos of ``image_folder`` into
    ``results_dir`` (see the module docstring). ``train_kwargs`` go to :func:`bpnet_core.train.train`
    (``max_steps``, ``progress`` …). Returns train's summary plus ``model`` (the QAT model), ``start_model`` and
    ``prepare`` (what was folded, rescaled, quantised)."""
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise BpnetError(f"epochs must be a positive integer (got {epochs!r})")
    if not float(learning_rate) > 0:
        raise BpnetError(f"learning_rate must be positive (got {learning_rate!r})")
    start = Path(results_dir) / START_NAME
    over = {"distillation.image_folder": str(Path(image_folder).resolve()), "num_epoch": int(epochs),
            "random_seed": int(seed), "distillation.teacher_model": str(Path(model_file).resolve()),
            "optimizer.learning_rate_schedule.base_learning_rate": float(learning_rate),
            **(overrides or {})}  # fmt: skip
    spec = project_file(*QAT_SPEC.split("/"))
    # a bad --set key or value fails here, before any file is written (the float model stands in for the start model)
    load_train_spec(spec, {**over, "load_graph": True, "pretrained_weights": str(Path(model_file).resolve())})
    qat, meta, report = prepare_qat(model_file, image_folder, calibration_count, learn_range=learn_range)
    make_dir(results_dir, "results folder")
    provenance = {**meta.provenance, "quantization": {"method": "qat", "float_model": str(Path(model_file).resolve()),
                                                      "weights": "int8 per channel, symmetric",
                                                      "activations": "uint8 per tensor"}}  # fmt: skip
    save_model_atomic(qat, start, keras_members(meta.with_changes(name=start.stem, provenance=provenance)))
    # the start model's graph, trained fresh (a previous run's checkpoints in results_dir would be resumed)
    summary = retrain_pruned(spec, start, results_dir, over, **train_kwargs)
    return {**summary, "model": str(Path(results_dir) / "bpnet_model.keras"), "start_model": str(start),
            "prepare": report}  # fmt: skip
