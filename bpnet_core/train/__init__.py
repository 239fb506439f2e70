"""Training: the loop (:func:`train`), TAO's learning-rate schedules and optimisers with per-layer gradient weights.

>>> from bpnet_core.train import train
>>> summary = train("specs/bpnet_train_m1_demo.yaml", "runs/demo/exp_m1_unpruned")
>>> run = fine_tune("hpe.keras", "runs/hpe_finetune")     # a real network on labelled real photos (.finetune)

Importing this package does not import TensorFlow; :mod:`.schedules` and :mod:`.optimizers` do.
"""

from __future__ import annotations

from bpnet_core.fileio import save_model_atomic  # re-exported: the atomic .keras writer
from bpnet_core.train.finetune import fine_tune
from bpnet_core.train.trainer import (
    CHECKPOINT_SUBDIR,
    PARAMS_FILE,
    STATUS_FILE,
    checkpoint_prefixes,
    choose_strategy,
    load_spec,
    prepare_results_dir,
    restore_latest,
    train,
)

__all__ = [
    "fine_tune",
    "CHECKPOINT_SUBDIR",
    "PARAMS_FILE",
    "STATUS_FILE",
    "checkpoint_prefixes",
    "choose_strategy",
    "load_spec",
    "prepare_results_dir",
    "restore_latest",
    "save_model_atomic",
    "train",
]
