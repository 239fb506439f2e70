"""Run every tutorial notebook in order with papermill (demo profile) and check what each one wrote."""

import json

import pytest

from bpnet_core.tutorial import run_tutorial, tutorial_notebooks

EXPECTED_METRICS = {
    "00_setup": {"train_images", "val_images"},
    "01_data_prep": {"train_records", "val_records", "masks_written", "pipeline_images_per_second"},
    "02_train": {"steps", "train_seconds", "images_per_second", "final_loss", "first_loss", "real_ap_before",
                 "real_ap_after", "real_label_loss_before", "real_label_loss_after", "real_finetuned_model"},
    "03_evaluate": {"AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl", "real_AP"},
    "04_prune_retrain": {"params_before", "params_after", "flops_before", "flops_after", "ap_unpruned", "ap_pruned",
                         "ap_retrained", "real_flops_ratio", "real_ap_unpruned", "real_ap_pruned", "real_ap_retrained",
                         "real_pruned_model", "real_retrained_model"},
    "05_deploy": {"onnx_max_abs_diff", "latency_ms", "ap", "real", "qat"},
    "06_explore": {"decoder_update_ms", "full_update_ms", "forward_passes", "model"},
    "07_video": {"synthetic_id_switches", "synthetic_mota", "real_id_switches", "real_id_switches_per_100_frames",
                 "real_mota", "real_idf1", "frames_per_second"},
}


@pytest.mark.slow
@pytest.mark.notebook
def test_tutorial_runs_end_to_end(tmp_path):
    results = run_tutorial(tmp_path / "work", profile="demo")
    stems = [nb.stem for nb in tutorial_notebooks()]
    assert list(results) == stems
    for stem in stems:
        out = tmp_path / "work" / stem
        assert (out / f"{stem}.ipynb").is_file(), f"{stem}: executed copy missing"
        metrics = json.loads((out / "metrics.json").read_text())
        missing = EXPECTED_METRICS.get(stem, set()) - set(metrics)
        assert not missing, f"{stem}: metrics.json lacks {missing}"
    m01 = results["01_data_prep"]["metrics"]
    assert m01["train_records"] > 0 and m01["masks_written"] > 0
    real = results["03_evaluate"]["metrics"]["real_AP"]  # the real networks on the 36 real photos (the notebook asserts
    assert real["human-pose-estimation-0001"] >= 0.45 and real["mobilenet_thin"] >= 0.27  # the same; pinned for CI)
    assert results["06_explore"]["metrics"]["model"] == "human-pose-estimation-0001"
