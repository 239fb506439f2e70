"""Training-side steps on the real networks (#26): fine-tuning on labelled real photos, pruning with the activation
criterion and the label-free distillation retrain. Short budgets here; ``bpnet bench --only real_pruning`` and the
README carry the long runs."""

from __future__ import annotations

import pytest

from bpnet_core.meta import read_meta
from bpnet_core.paths import project_file


@pytest.mark.slow
def test_fine_tune_a_real_network_on_labelled_photos(hpe_keras, tmp_path):
    """``fine_tune``: records of the 80 shipped train photos (masks beside the records, not beside the photos), the
    original network as teacher stage by stage, the contract kept, the loss on the new data measured before/after."""
    from bpnet_core.train import fine_tune

    fixtures = project_file("tests", "fixtures")
    before = sorted(p.name for p in fixtures.iterdir())
    run = fine_tune(hpe_keras["path"], tmp_path / "ft", epochs=1, max_steps=2, progress=False)
    assert run["step"] == 2 and run["final_model"]
    assert (tmp_path / "ft" / "records" / "train-fold-000-of-001").is_file()
    assert any((tmp_path / "ft" / "records" / "masks").iterdir())
    assert sorted(p.name for p in fixtures.iterdir()) == before, "nothing may be written beside the photos"
    assert run["label_loss_before"] > 0 and run["label_loss_after"] > 0
    src, out = read_meta(hpe_keras["path"]), read_meta(run["final_model"])
    assert (out.color, out.normalization, out.inference) == (src.color, src.normalization, src.inference)
    assert out.provenance["trained_from"] == str(hpe_keras["path"].resolve())


@pytest.mark.slow
def test_prune_refit_then_distil_a_real_network(hpe_keras, tmp_path):
    """``bpnet prune`` picks the activation criterion for a folded network; on human-pose-estimation-0001 at 1.35x
    fewer FLOPs (``--flops_ratio``) the least-squares refit gives back AP that mean compensation alone loses (36
    real photos, no retrain); ``distil_pruned`` retrains the pruned graph from the network it was pruned from on the
    shipped unlabelled photos."""
    from bpnet_core.infer.evaluation import run_evaluation
    from bpnet_core.prune import distil_pruned, prune_and_save
    from bpnet_core.tutorial import REAL_SAMPLE_SPEC, REAL_UNLABELLED_IMAGES

    ap = {}
    for refit in (False, True):
        pruned = tmp_path / f"hpe.{refit}.keras"
        report = prune_and_save(hpe_keras["path"], pruned, flops_target=1.35, reconstruct=refit, min_num_filters=8,
                                calibration_count=8)  # fmt: skip
        assert report["settings"]["criterion"] == "activation" and 1.35 <= report["flops_ratio"] < 1.45
        ap[refit] = run_evaluation(None, pruned, REAL_SAMPLE_SPEC, tmp_path / f"eval_{refit}", progress=False)["AP"]
    assert report["settings"]["reconstruct"] is True and len(report["reconstruction"]["relative_error"]) > 30
    assert ap[True] > ap[False] + 0.05, ap
    assert read_meta(pruned).provenance["pruned_from"] == str(hpe_keras["path"].resolve())
    run = distil_pruned(pruned, tmp_path / "retrain", REAL_UNLABELLED_IMAGES, epochs=1, max_steps=2, progress=False)
    assert run["step"] == 2 and run["num_params"] == report["params_after"]
    meta = read_meta(run["final_model"])
    assert meta.color == "BGR" and meta.normalization == read_meta(hpe_keras["path"]).normalization
