"""Evaluation: COCO keypoint AP/AR (pycocotools) and the results writer."""

from bpnet_core.evaluate.coco_eval import (
    KPI_NAMES,
    STAT_KEYS,
    evaluate_coco,
    kpi_dict,
    oks,
    people_to_coco_results,
    per_image_table,
)

__all__ = ["KPI_NAMES", "STAT_KEYS", "evaluate_coco", "kpi_dict", "oks", "people_to_coco_results", "per_image_table"]
