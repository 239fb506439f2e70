"""COCO keypoint evaluation and the results writer, on the real COCO val2017 sample."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from bpnet_core.data.coco import COCO_KEYPOINTS, dataset_to_pose
from bpnet_core.errors import BpnetError
from bpnet_core.evaluate import KPI_NAMES, STAT_KEYS, kpi_dict, per_image_table
from bpnet_core.evaluate.coco_eval import evaluate_coco, oks, people_to_coco_results


@pytest.fixture(scope="module")
def gt(coco_sample_json):
    return json.loads(coco_sample_json.read_text())


def annotated(gt):
    return [a for a in gt["annotations"] if a["num_keypoints"] > 0 and not a["iscrowd"]]


def gt_as_results(gt, jitter=0.0, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for a in annotated(gt):
        kp = np.array(a["keypoints"], np.float64).reshape(-1, 3)
        vis = kp[:, 2] > 0
        kp[vis, :2] += rng.normal(0, jitter, (vis.sum(), 2))
        kp[:, 2] = vis
        out.append({"image_id": a["image_id"], "category_id": 1, "keypoints": kp.ravel().tolist(), "score": 1.0})
    return out


def test_ground_truth_as_detections_scores_one(gt, coco_sample_json, tmp_path, capsys):
    stats = evaluate_coco(gt, gt_as_results(gt))
    assert list(stats) == STAT_KEYS
    for key, value in stats.items():
        assert isinstance(value, float) and value == pytest.approx(1.0, abs=1e-6), key
    # paths work too, and pycocotools' prints are swallowed
    res_path = tmp_path / "results.json"
    res_path.write_text(json.dumps(gt_as_results(gt)))
    assert evaluate_coco(coco_sample_json, res_path) == stats
    assert capsys.readouterr().out == ""


def test_perturbed_copy_scores_lower(gt):
    base = evaluate_coco(gt, gt_as_results(gt))
    small = evaluate_coco(gt, gt_as_results(gt, jitter=2.0))
    big = evaluate_coco(gt, gt_as_results(gt, jitter=8.0))
    assert 0 < big["AP"] < small["AP"] < base["AP"]
    # dropping half of the detections halves recall
    half = gt_as_results(gt)[::2]
    assert evaluate_coco(gt, half)["AR"] == pytest.approx(len(half) / len(annotated(gt)), abs=0.02)


def test_empty_results_give_zeros(gt):
    assert evaluate_coco(gt, []) == {k: 0.0 for k in STAT_KEYS}
    assert evaluate_coco(gt, {"annotations": []})["AP"] == 0.0


def test_bad_inputs_raise_bpnet_error(gt, tmp_path):
    with pytest.raises(BpnetError, match="image_id 123"):
        evaluate_coco(gt, [{"image_id": 123, "category_id": 1, "keypoints": [0.0] * 51, "score": 1.0}])
    with pytest.raises(BpnetError, match=r"results\[0\] needs"):
        evaluate_coco(gt, [{"image_id": 139}])
    with pytest.raises(BpnetError, match="not found"):
        evaluate_coco(tmp_path / "missing.json", [])
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(BpnetError, match="not valid JSON"):
        evaluate_coco(gt, bad)
    with pytest.raises(BpnetError, match="COCO dataset"):
        evaluate_coco({"images": []}, [])


def test_kpi_names_follow_tao():
    assert KPI_NAMES == [
        "AP_0.50:0.95_all", "AP_0.5", "AP_0.75", "AP_0.50:0.95_medium", "AP_0.50:0.95_large",
        "AR_0.50:0.95_all", "AR_0.5", "AR_0.75", "AR_0.50:0.95_medium", "AR_0.50:0.95_large",
    ]  # fmt: skip
    stats = dict(zip(STAT_KEYS, np.linspace(0.1, 1.0, 10)))
    kpis = kpi_dict(stats)
    assert list(kpis) == KPI_NAMES and kpis["AP_0.5"] == stats["AP50"] and kpis["AR_0.50:0.95_large"] == stats["ARl"]


def test_people_to_coco_results_round_trip(gt, pose):
    """GT people → 18-joint Person-like objects in a 2× smaller input → results → AP 1."""
    results = []
    for img in gt["images"]:
        anns = [a for a in annotated(gt) if a["image_id"] == img["id"]]
        kp = dataset_to_pose(
            np.array([a["keypoints"] for a in anns], np.float32).reshape(-1, 17, 3), COCO_KEYPOINTS, pose
        )
        kp[..., :2] /= 2.0  # network input = half the image size
        people = [SimpleNamespace(keypoints=k, score=0.9) for k in kp]
        results += people_to_coco_results(img["id"], people, pose, COCO_KEYPOINTS, scale_xy=(2.0, 2.0))
    assert evaluate_coco(gt, results)["AP"] == pytest.approx(1.0, abs=1e-6)
    r = results[0]
    assert set(r) == {"image_id", "category_id", "keypoints", "score"}
    assert r["category_id"] == 1 and len(r["keypoints"]) == 51 and all(isinstance(v, float) for v in r["keypoints"])
    flags = np.array(r["keypoints"]).reshape(-1, 3)[:, 2]
    assert set(flags.tolist()) <= {0.0, 1.0}
    assert (np.array(r["keypoints"]).reshape(-1, 3)[flags == 0, :2] == 0).all()


def test_people_to_coco_results_with_a_callable(pose):
    kp = np.zeros((18, 3), np.float32)
    kp[pose.joint_index("nose")] = (10, 20, 0.9)
    kp[pose.joint_index("neck")] = (10, 30, 0.8)  # dropped: COCO has no neck
    person = SimpleNamespace(keypoints=kp, score=0.7)
    [r] = people_to_coco_results(5, [person], pose, COCO_KEYPOINTS, scale_xy=lambda xy: xy * 3 + 1)
    k = np.array(r["keypoints"]).reshape(17, 3)
    np.testing.assert_allclose(k[0], (31, 61, 1))
    assert (k[1:] == 0).all() and r["score"] == pytest.approx(0.7) and r["image_id"] == 5
    assert people_to_coco_results(5, [], pose, COCO_KEYPOINTS) == []


def test_per_image_table(gt):
    table = per_image_table(gt, gt_as_results(gt))
    assert [row["image_id"] for row in table] == [img["id"] for img in gt["images"]]
    assert sum(row["annotated"] for row in table) == len(annotated(gt)) == 80
    for row in table:
        assert row["detected"] == row["annotated"] == len(row["matched_oks"])
        assert all(v == pytest.approx(1.0) for v in row["matched_oks"]) and row["mean_oks"] == pytest.approx(1.0)
    jittered = per_image_table(gt, gt_as_results(gt, jitter=4.0))
    assert all(row["mean_oks"] < 1.0 for row in jittered)
    empty = per_image_table(gt, [])
    assert all(row["detected"] == 0 and row["matched_oks"] == [] and row["mean_oks"] == 0.0 for row in empty)


def test_oks_matches_pycocotools(gt):
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    results = gt_as_results(gt, jitter=3.0, seed=1)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = json.loads(json.dumps(gt))
        coco.createIndex()
        dt = coco.loadRes(json.loads(json.dumps(results)))
        ev = COCOeval(coco, dt, iouType="keypoints")
        ev.params.imgIds = [217285]
        ev._prepare()
        ref = ev.computeOks(217285, 1)  # (detections by score, ground truths in ev._gts order)
        ref_gt_ids = [g["id"] for g in ev._gts[217285, 1]]
    by_id = {a["id"]: a for a in gt["annotations"]}
    dts = sorted([r for r in results if r["image_id"] == 217285], key=lambda r: -r["score"])
    cols = [i for i, gid in enumerate(ref_gt_ids) if by_id[gid]["num_keypoints"] > 0]
    mine = np.array([[oks(by_id[ref_gt_ids[i]], d["keypoints"]) for i in cols] for d in dts])
    assert mine.shape == (13, 13)
    np.testing.assert_allclose(mine, ref[:, cols], atol=1e-9)
