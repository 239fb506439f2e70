"""``bpnet evaluate``: inference over a dataset's test split, then COCO keypoint AP (pycocotools)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from bpnet_core.config import load_dataset_spec
from bpnet_core.errors import BpnetError
from bpnet_core.evaluate import KPI_NAMES, evaluate_coco, per_image_table
from bpnet_core.fileio import read_json, write_json_atomic, write_text_atomic
from bpnet_core.infer.inference import run_inference

METRIC_KEYS = ["AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"]


def run_evaluation(
    spec,
    model,
    dataset_spec,
    results_dir: str | Path,
    dump_visualizations: bool = False,
    progress: bool = True,
) -> dict:
    """Evaluate ``model`` (path, runner or Predictor; ``spec`` ``None`` = the model's recommended inference settings)
    on ``dataset_spec``'s test split; returns the metrics dict.

    Writes ``detections.json``, ``detections_coco_format.json``, ``results.csv`` (the 10 stats with TAO's KPI names),
    ``metrics.json`` (AP, AP50, … ARl plus counts) and ``per_image.csv`` (people annotated vs found, OKS of matches).
    """
    if isinstance(dataset_spec, (str, Path)):
        dataset_spec = load_dataset_spec(dataset_spec)
    images_dir, _, ann_file = dataset_spec.split("test")
    if not Path(ann_file).is_file():
        raise BpnetError(f"{ann_file}: test annotation file not found")
    names = list(dataset_spec.categories[0].keypoints)
    results_dir = Path(results_dir)
    summary = run_inference(spec, model, "json", ann_file, results_dir, image_root_path=images_dir,
                            dump_visualizations=dump_visualizations, dataset_keypoints=names,
                            progress=progress)  # fmt: skip
    dets = read_json(results_dir / "detections_coco_format.json")
    gt = read_json(ann_file, "annotation file")
    metrics = evaluate_coco(gt, dets)
    rows = per_image_table(gt, dets)

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["metric", "value"])
    for kpi, key in zip(KPI_NAMES, METRIC_KEYS):
        writer.writerow([kpi, f"{metrics[key]:.4f}"])
    write_text_atomic(results_dir / "results.csv", buf.getvalue())
    if rows:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0].keys()))
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(results_dir / "per_image.csv", buf.getvalue())
    out = {k: float(metrics[k]) for k in METRIC_KEYS}
    out.update({"images": summary["processed"], "people_found": summary["people"],
                "skipped": len(summary["skipped"]), "network_ms_median": summary["network_ms_median"],
                "decode_ms_median": summary["decode_ms_median"]})  # fmt: skip
    write_json_atomic(results_dir / "metrics.json", out)
    return out
