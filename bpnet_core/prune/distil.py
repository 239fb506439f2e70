"""Retrain a pruned real network without labels: distillation from the network it was pruned from, on photos.

>>> summary = distil_pruned("hpe.pruned.keras", "runs/hpe_retrain", "photos/", epochs=8)

The real networks bpnet imports (``bpnet import_model -o X.keras``) were trained on COCO by other projects; pruning
one costs accuracy that the labels of a few dozen photos cannot give back without over-fitting them. Their unpruned
self can: on any photos with people, its heatmaps and PAFs are the target (``distillation.weight: 1``,
``distillation.image_folder``), so the pruned network learns to predict what the original predicted. The spec is
``specs/bpnet_retrain_real.yaml`` (256×256 crops, Adam at 2e-4, no weight penalty); the model's contract (colour
order, normalisation) comes from the pruned file, and so does the teacher (``provenance.pruned_from``) unless
``teacher_model`` is given.
"""

from __future__ import annotations

import os
from pathlib import Path

from bpnet_core.errors import BpnetError
from bpnet_core.fileio import list_images
from bpnet_core.paths import project_file
from bpnet_core.prune.channel_prune import retrain_pruned

#: The retrain spec of a pruned real network.
REAL_RETRAIN_SPEC = "specs/bpnet_retrain_real.yaml"


def distil_pruned(pruned_model: str | os.PathLike, results_dir: str | os.PathLike, image_folder: str | os.PathLike,
                  teacher_model: str | os.PathLike | None = None, epochs: int = 8, seed: int = 42,
                  overrides: dict | None = None, **train_kwargs) -> dict:  # fmt: skip
    """Retrain ``pruned_model`` by label-free distillation on the photos of ``image_folder`` for ``epochs`` epochs
    (one epoch = one pass over the folder) into ``results_dir``; returns :func:`bpnet_core.train.train`'s summary.
    ``train_kwargs`` go to ``train`` (``max_steps``, ``progress`` …)."""
    list_images(image_folder, "image folder not found", "no images ({suffixes}) for label-free distillation")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise BpnetError(f"epochs must be a positive integer (got {epochs!r})")
    over = {"distillation.image_folder": str(Path(image_folder).resolve()), "num_epoch": int(epochs),
            "random_seed": int(seed), **(overrides or {})}  # fmt: skip
    if teacher_model is not None:
        over["distillation.teacher_model"] = str(Path(teacher_model).resolve())
    return retrain_pruned(project_file(*REAL_RETRAIN_SPEC.split("/")), pruned_model, results_dir, over, **train_kwargs)
