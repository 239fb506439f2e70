"""Data benchmarks: synthetic images/s, dataset_convert records/s, input-pipeline images/s (demo and full sizes)."""

from __future__ import annotations

import time
from pathlib import Path

from bpnet_core.config import load_dataset_spec, load_train_spec
from bpnet_core.data.convert import convert_dataset
from bpnet_core.data.pipeline import loader_from_spec, pipeline_throughput
from bpnet_core.data.synthetic import generate_synthetic_coco
from bpnet_core.paths import PROJECT_ROOT
from bpnet_core.skeleton import PoseConfig


def bench_synthetic(work: Path, num: int = 200, size: int = 256, workers: int | None = None) -> dict:
    s = generate_synthetic_coco(work / "synthetic", num_train=num, num_val=max(8, num // 10), image_size=(size, size),
                                seed=0, workers=workers, progress=False)  # fmt: skip
    return {"images": s["images"], "size": size, "seconds": s["seconds"], "images_per_second": s["images_per_second"]}


def bench_convert(work: Path, workers: int | None = None) -> dict:
    import tensorflow  # noqa: F401  (imported before timing: the figure is conversion work, not TF start-up)

    spec = load_dataset_spec(work / "synthetic" / "dataset_spec.json")
    out = work / "records"
    out.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    s = convert_dataset(spec, out / "train", mode="train", generate_masks=True, workers=workers, progress=False)
    dt = time.perf_counter() - t0
    convert_dataset(spec, out / "val", mode="test", generate_masks=True, workers=workers, progress=False)
    return {"images": s["images"], "records": s["records"], "seconds": round(dt, 3),
            "records_per_second": round(s["records"] / dt, 1),
            "images_per_second": round(s["images"] / dt, 1)}  # fmt: skip


def pipeline_overrides(work: Path) -> dict:
    records = work / "records"
    return {
        "dataloader.dataset_config.train_records_folder_path": str(records),
        "dataloader.dataset_config.train_records_path": ["train-fold-000-of-001"],
        "dataloader.dataset_config.val_records_folder_path": str(records),
        "dataloader.dataset_config.val_records_path": ["val-fold-000-of-001"],
        "dataloader.dataset_config.dataset_specs.coco": str(work / "synthetic" / "dataset_spec.json"),
        "dataloader.pose_config.pose_config_path": str(PROJECT_ROOT / "model_pose_config" / "bpnet_18joints.json"),
    }


def profile_specs() -> dict[str, Path]:
    return {"demo": PROJECT_ROOT / "specs" / "bpnet_train_m1_demo.yaml",
            "full": PROJECT_ROOT / "specs" / "bpnet_train_m1_coco.yaml"}  # fmt: skip


def bench_pipeline(work: Path, batches: int = 10) -> dict:
    out = {}
    for profile, spec_path in profile_specs().items():
        spec = load_train_spec(spec_path, pipeline_overrides(work))
        pose = PoseConfig.from_json(spec.dataloader.pose_config.pose_config_path)
        loader = loader_from_spec(spec, pose, "train")
        r = pipeline_throughput(loader, batch_size=spec.dataloader.batch_size, batches=batches)
        out[profile] = {"input_hw": r["input_hw"], "batch_size": r["batch_size"],
                        "images_per_second": round(r["images_per_second"], 1)}  # fmt: skip
    return out
