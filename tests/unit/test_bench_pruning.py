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
