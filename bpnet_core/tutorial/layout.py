"""The tutorial's ``WORK_DIR`` layout: one folder per notebook (``WORK_DIR/<stem>/``) holding its artefacts and
``metrics.json``; notebooks pass data to each other only through these folders.

>>> stage_dir(WORK_DIR, TRAIN)                      # WORK_DIR/02_train/, created
"""

from __future__ import annotations

import os
from pathlib import Path

from bpnet_core.errors import BpnetError
from bpnet_core.fileio import write_json_atomic

#: the notebook stems whose folders other notebooks read
SETUP, DATA_PREP, TRAIN, EVALUATE, PRUNE_RETRAIN, DEPLOY = (
    "00_setup", "01_data_prep", "02_train", "03_evaluate", "04_prune_retrain", "05_deploy",
)  # fmt: skip
#: the file a training notebook writes its model to
MODEL_FILE = "bpnet_model.keras"


def stage_dir(work_dir: str | Path, stem: str) -> Path:
    """``WORK_DIR/<stem>/``, created: where a notebook keeps its artefacts and ``metrics.json``."""
    path = Path(work_dir).resolve() / stem
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_metrics(work_dir: str | Path, stem: str, metrics: dict) -> Path:
    """Write ``WORK_DIR/<stem>/metrics.json`` atomically; returns its path."""
    return write_json_atomic(stage_dir(work_dir, stem) / "metrics.json", metrics)


def dataset_spec_for(work_dir: str | Path, profile: str, full_spec: str | Path) -> Path:
    """The dataset spec a notebook uses: the synthetic one written by notebook 00 (demo) or ``full_spec`` (COCO)."""
    if profile == "demo":
        path = Path(work_dir).resolve() / SETUP / "synthetic" / "dataset_spec.json"
        if not path.is_file():
            raise BpnetError(f"{path}: not found; run notebook 00_setup first (it builds the synthetic dataset)")
        return path
    return Path(full_spec).resolve()


def data_overrides(work_dir: str | Path, profile: str, full_spec: str | Path) -> dict:
    """Train-spec overrides pointing at the records notebook 01 wrote to ``WORK_DIR/01_data_prep``."""
    records = Path(work_dir).resolve() / DATA_PREP
    return {
        "dataloader.dataset_config.root_data_path": str(records),
        "dataloader.dataset_config.train_records_folder_path": str(records),
        "dataloader.dataset_config.train_records_path": ["train-fold-000-of-001"],
        "dataloader.dataset_config.val_records_folder_path": str(records),
        "dataloader.dataset_config.val_records_path": ["val-fold-000-of-001"],
        "dataloader.dataset_config.dataset_specs.coco": str(dataset_spec_for(work_dir, profile, full_spec)),
    }


def trained_model_path(work_dir: str | Path) -> Path | None:
    """The model notebook 02 trained (``WORK_DIR/02_train/bpnet_model.keras``), if it exists."""
    path = Path(work_dir).resolve() / TRAIN / MODEL_FILE
    return path if path.is_file() else None


def model_for_deployment(work_dir: str | os.PathLike) -> Path:
    """The model the tutorial deploys: the retrained pruned model of notebook 04 when there is one, else the model
    notebook 02 trained.

    Notebook 04 writes ``WORK_DIR/04_prune_retrain/retrain/bpnet_model.keras``; failing that, the newest ``*.keras``
    under ``04_prune_retrain/`` whose path mentions ``retrain``, else the newest other ``*.keras`` there; the
    pruned, not yet retrained ``*pruned*.keras`` (``bpnet prune -o``) and checkpoints are never picked. Fallback:
    ``WORK_DIR/02_train/bpnet_model.keras``.
    """
    work = Path(work_dir).resolve()
    stage = work / PRUNE_RETRAIN
    exact = stage / "retrain" / MODEL_FILE  # what notebook 04's retrain_pruned writes
    if exact.is_file():
        return exact
    if stage.is_dir():
        models = [p for p in stage.rglob("*.keras") if not p.name.startswith(".")
                  and not any("checkpoint" in part.lower() for part in p.relative_to(stage).parts)]  # fmt: skip
        retrained = [p for p in models if "retrain" in str(p.relative_to(stage)).lower()]
        others = [p for p in models if "pruned" not in p.name.lower()]
        for found in (retrained, others):
            if found:
                return max(found, key=lambda p: p.stat().st_mtime)
    trained = work / TRAIN / MODEL_FILE
    if trained.is_file():
        return trained
    raise BpnetError(f"{work}: no model to deploy (neither 04_prune_retrain/*retrain*.keras nor "
                     "02_train/bpnet_model.keras): run notebook 02 (and 04) first")  # fmt: skip
