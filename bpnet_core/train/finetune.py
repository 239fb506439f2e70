"""Fine-tune a real network on labelled photos, the original network as a regulariser.

>>> run = fine_tune("hpe.keras", "runs/hpe_finetune", "data_pose_config/coco_real_sample_spec.json", epochs=2)

The starting point for a user's own data: a network imported as a trainable model (``bpnet import_model -o X.keras``)
trained on the train split of a COCO-format dataset (the 80 shipped COCO train2017 photos by default). A few dozen
labelled people cannot teach a network everything COCO did; trained on their labels alone it drifts towards them and
forgets the rest. So the original network is also the teacher (``distillation.weight: 0.5``): the target is half its
own maps, half the labels. The spec is ``specs/bpnet_finetune_real.yaml`` (256×256 person-centred crops, Adam at
5e-5, no weight penalty); colour order and normalisation come from the model's contract.

The train split is converted to records (with loss masks) under ``records_dir`` first, unless they are there; the
dataset spec is copied there with its paths made absolute and its masks written there too, so nothing is written
beside the photos.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bpnet_core.config import load_dataset_spec
from bpnet_core.data.convert import convert_dataset
from bpnet_core.data.pipeline import loader_from_spec, make_dataset
from bpnet_core.errors import BpnetError
from bpnet_core.fileio import read_json, write_json_atomic
from bpnet_core.paths import project_file
from bpnet_core.skeleton import PoseConfig
from bpnet_core.train.trainer import load_spec, train

#: The fine-tune spec of a real network.
FINETUNE_SPEC = "specs/bpnet_finetune_real.yaml"
RECORDS = "train-fold-000-of-001"


def training_records(dataset_spec: str | os.PathLike, records_dir: str | os.PathLike, progress: bool = False) -> Path:
    """Records of ``dataset_spec``'s train split in ``records_dir`` (converted once, masks included); returns the
    dataset spec copy they were made with (paths absolute, masks in ``records_dir/masks``)."""
    records_dir = Path(records_dir)
    copy = records_dir / "dataset_spec.json"
    if (records_dir / RECORDS).is_file() and copy.is_file():
        return copy
    spec = load_dataset_spec(dataset_spec)
    data = read_json(dataset_spec, "dataset spec")
    data["root_directory_path"] = str(spec.root)
    data["train_data"]["mask_root_dir_path"] = str((records_dir / "masks").resolve())
    write_json_atomic(copy, data)
    convert_dataset(copy, records_dir / "train", mode="train", generate_masks=True, workers=1, progress=progress)
    return copy


def fine_tune(model: str | os.PathLike, results_dir: str | os.PathLike,
              dataset_spec: str | os.PathLike | None = None, epochs: int = 4, distillation_weight: float = 0.9,
              seed: int = 42, records_dir: str | os.PathLike | None = None, overrides: dict | None = None,
              **train_kwargs) -> dict:  # fmt: skip
    """Fine-tune ``model`` (a bpnet ``.keras`` with a contract) on ``dataset_spec``'s train split (default: the 80
    shipped COCO train2017 photos) for ``epochs`` epochs, distilling from ``model`` itself with weight
    ``distillation_weight`` (0: labels only). Records go to ``records_dir`` (default ``results_dir/records``).
    Returns :func:`~bpnet_core.train.train`'s summary, with ``label_loss_before`` / ``label_loss_after``
    (:func:`label_loss`: the labels-only loss on the new data, without augmentation)."""
    model = Path(model)
    if not model.is_file():
        raise BpnetError(f"{model}: model file not found")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise BpnetError(f"epochs must be a positive integer (got {epochs!r})")
    results_dir = Path(results_dir)
    dataset_spec = dataset_spec or project_file("data_pose_config", "coco_real_sample_spec.json")
    records = Path(records_dir) if records_dir else results_dir / "records"
    spec_copy = training_records(dataset_spec, records, progress=bool(train_kwargs.get("progress", False)))
    over = {
        "pretrained_weights": str(model.resolve()),
        "load_graph": True,
        "distillation.teacher_model": str(model.resolve()) if distillation_weight > 0 else None,
        "distillation.weight": float(distillation_weight),
        "num_epoch": int(epochs),
        "random_seed": int(seed),
        "dataloader.dataset_config.root_data_path": str(records.resolve()),
        "dataloader.dataset_config.train_records_folder_path": str(records.resolve()),
        "dataloader.dataset_config.dataset_specs.coco": str(spec_copy.resolve()),
        **(overrides or {}),
    }
    spec_file = project_file(*FINETUNE_SPEC.split("/"))
    before = label_loss(model, spec_file, over)
    run = train(spec_file, results_dir, over, **train_kwargs)
    run["label_loss_before"] = before
    if run.get("final_model"):
        run["label_loss_after"] = label_loss(run["final_model"], spec_file, over)
    return run


def label_loss(model: str | os.PathLike, spec, overrides: dict | None = None, batch_size: int = 4) -> float:
    """The labels-only loss of ``model``'s last stage per image on the spec's train records, without augmentation
    (each person centred as in training, no flip, zoom or rotation): the fine-tune's "loss on the new data"."""
    from bpnet_core.model import load_bpnet_model, loss_terms

    spec = load_spec(spec, {k: v for k, v in (overrides or {}).items() if v is not None})
    pose = PoseConfig.from_json(spec.dataloader.pose_config.pose_config_path)
    net = load_bpnet_model(model, pose)
    loader = loader_from_spec(spec, pose, "train", augment=False)
    total, count = 0.0, 0
    for images, labels in make_dataset(loader, batch_size, shuffle=False, drop_remainder=False):
        terms = loss_terms(net(images, training=False), labels["heatmaps"], labels["pafs"], labels["mask"])
        n = len(net.outputs) // 2
        total += float(np.asarray(terms[f"heatmap_stage{n}"])) + float(np.asarray(terms[f"paf_stage{n}"]))
        count += int(images.shape[0])
    return total / max(count, 1)
