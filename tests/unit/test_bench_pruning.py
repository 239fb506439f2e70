"""``bpnet bench --only pruning``: the table and the seeds-meeting-target count (the chain itself is a benchmark)."""

from bpnet_core.benchmarks import PARTS
from bpnet_core.benchmarks.pruning import markdown


def test_pruning_part_is_registered_but_only_on_request():
    assert "pruning" in PARTS


def test_table_has_a_row_per_seed_and_the_spread():
    rows = [
        {
            "seed": s,
            "ap_unpruned": 0.46 + s / 100,
            "pruning_threshold": 0.76,
            "params_ratio": 3.9,
            "flops_ratio": 2.2,
            "ap_retrained_labels_only": 0.40,
            "ap_retrained": 0.45 + s / 100,
            "ap_drop": 0.01,
            "retrain_seconds": 200.0,
            "retrain_seconds_labels_only": 150.0,
        }
        for s in range(3)
    ]
    rows.append({"seed": 3, "error": "notebook failed"})
    text = markdown({"rows": rows, "target_flops_ratio": 2.0, "max_ap_drop": 0.02, "seeds_meeting_target": 3})
    lines = text.splitlines()
    assert "3 of 4 seeds" in lines[0]
    assert sum(line.startswith("| 3 |") for line in lines) == 1 and "| – |" in lines[-2]
    assert lines[-1].startswith("| median (min–max) | 0.470 (0.460–0.480)")


def test_real_pruning_table_has_the_curve_and_the_seeds():
    from bpnet_core.benchmarks.real_pruning import markdown

    seeds = [{"seed": s, "ap_retrained": ap, "drop": 0.496 - ap, "retrain_seconds": 1700.0 + s, "steps": 2000}
             for s, ap in ((0, 0.30), (1, 0.32), (2, 0.31))]  # fmt: skip
    row = {"network": "human-pose-estimation-0001", "ap_unpruned": 0.496, "target": 1.5, "flops_ratio": 1.5,
           "params": 2716162, "ap_pruned": 0.226, "seeds": seeds, "meets_target": 0,
           "curve": [{"target": 1.2, "flops_ratio": 1.2, "params": 3390394, "ap_pruned": 0.415, "prune_seconds": 78.0},
                     {"target": 1.5, "flops_ratio": 1.5, "params": 2716162, "ap_pruned": 0.226,
                      "prune_seconds": 80.0}]}  # fmt: skip
    md = markdown({"epochs": 12, "photo_count": 635, "target_flops_ratio": 1.5, "max_ap_drop": 0.02, "rows": [row]})
    assert "| human-pose-estimation-0001 | 1.5 | 1.50 | 2,716,162 | 0.496 | 0.226 | 0.310 (0.300–0.320)" in md
    assert "0 of 3" in md and "| human-pose-estimation-0001 | 1.2 | 1.20 | 3,390,394 | 0.415 | 78 |" in md
