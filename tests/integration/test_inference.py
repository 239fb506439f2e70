"""bpnet inference / evaluate on the real COCO sample, with a stand-in network that returns rendered label maps."""

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from bpnet_core.cli import main
from bpnet_core.config import load_dataset_spec, load_infer_spec
from bpnet_core.config.schema import InferSpec
from bpnet_core.errors import BpnetError
from bpnet_core.infer import Predictor, run_inference
from bpnet_core.infer.evaluation import run_evaluation
from bpnet_core.meta import bpnet_meta
from bpnet_core.preprocess import prepare
from bpnet_core.runners import RenderedMapsSource
from tests.integration.test_convert import make_dataset

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "fixtures" / "coco_sample"
SAMPLE_JSON = SAMPLE / "person_keypoints_val2017_sample.json"


@pytest.fixture(scope="module")
def spec():
    return load_infer_spec(ROOT / "specs" / "infer_spec.yaml")


@pytest.fixture(scope="module")
def runner(pose):
    return RenderedMapsSource(SAMPLE_JSON, SAMPLE, pose)


def infer(runner, image, shape=(368, 368), mode="adjust_network_input", scales=None, flip_test=False, path=None):
    """One image through the Predictor with an inference spec of these settings."""
    spec = InferSpec.from_dict({"input_shape": list(shape), "keep_aspect_ratio_mode": mode, "flip_test": flip_test,
                                "multi_scale_inference": bool(scales), "scales": list(scales or [1.0])})  # fmt: skip
    return Predictor(runner, spec)(image, path)


@pytest.mark.parametrize("mode, shape, expect", [
    ("adjust_network_input", (368, 368), (368, 560)),  # 640x426 → shorter side 368, 552.9 rounded up to 560
    ("pad_image_input", (288, 384), (288, 384)),
])  # fmt: skip
def test_preprocess_modes(runner, mode, shape, expect):
    img = np.zeros((426, 640, 3), np.uint8)
    pre = prepare(img, runner.meta, shape, mode)
    assert pre.batch.shape == (1,) + expect + (3,)
    assert pre.batch.shape[1] % 8 == 0 and pre.batch.shape[2] % 8 == 0
    assert pre.box[2] <= expect[0] and pre.box[3] <= expect[1]
    assert pre.batch[0, -1, -1, 0] == pytest.approx(0.0)  # grey padding normalises to 0


@pytest.mark.parametrize("mode", ["adjust_network_input", "pad_image_input"])
def test_keypoints_come_back_in_original_pixels(runner, pose, mode):
    data = json.loads(SAMPLE_JSON.read_text())
    im = next(i for i in data["images"] if i["id"] == 785)  # one person, 640x425
    ann = next(a for a in data["annotations"] if a["image_id"] == 785)
    image = cv2.imread(str(SAMPLE / im["file_name"]))
    res = infer(runner, image, (368, 368), mode, path=SAMPLE / im["file_name"])
    assert len(res.keypoints) == 1
    gt = np.array(ann["keypoints"], np.float32).reshape(17, 3)
    nose = res.keypoints[0, pose.joint_index("nose")]
    assert gt[0, 2] > 0 and np.hypot(*(nose[:2] - gt[0, :2])) < 3.0 / res.scale + 2


def test_multi_scale_matches_single_scale_on_perfect_maps(runner, pose):
    image = cv2.imread(str(SAMPLE / "000000000785.jpg"))
    single = infer(runner, image, (256, 256), path=SAMPLE / "000000000785.jpg")
    multi = infer(runner, image, (256, 256), scales=[0.5, 1.0, 1.5], path=SAMPLE / "000000000785.jpg")
    assert len(multi.keypoints) == len(single.keypoints) == 1
    both = (single.keypoints[0, :, 2] > 0) & (multi.keypoints[0, :, 2] > 0)
    assert both.sum() >= 10
    assert np.abs(single.keypoints[0, both, :2] - multi.keypoints[0, both, :2]).max() < 6.0


@pytest.mark.parametrize("mode, shape", [("adjust_network_input", (256, 256)), ("pad_image_input", (288, 384))])
def test_flip_test_on_perfect_maps_changes_nothing(runner, pose, mode, shape):
    """The mirrored pass sees the mirrored people (the runner renders through the mirrored context matrix); read back
    through PoseConfig.flip_maps its maps must equal the direct ones, so the average equals the single pass."""
    path = SAMPLE / "000000000785.jpg"
    image = cv2.imread(str(path))
    single = infer(runner, image, shape, mode, path=path)
    flipped = infer(runner, image, shape, mode, path=path, flip_test=True)
    np.testing.assert_allclose(flipped.heatmaps, single.heatmaps, atol=1e-5)
    np.testing.assert_allclose(flipped.pafs, single.pafs, atol=1e-5)
    assert np.abs(single.pafs).max() > 0.5 and len(flipped.keypoints) == 1
    np.testing.assert_allclose(flipped.keypoints, single.keypoints, atol=1e-3)


def test_evaluate_rendered_maps_scores_high_ap(tmp_path, spec, pose):
    ds_path = make_dataset(tmp_path)
    ds = load_dataset_spec(ds_path)
    images_dir, _, ann = ds.split("test")
    runner = RenderedMapsSource(ann, images_dir, pose)
    metrics = run_evaluation(spec, runner, ds, tmp_path / "eval", progress=False)
    # perfect maps through the whole inference path at 368 px (TAO defaults: people need >= 4 joints, so COCO people
    # labelled with 1-3 keypoints cannot be found; measured AP 0.81, AR 0.82 on this sample)
    assert metrics["AP"] >= 0.78 and metrics["AR"] >= 0.78, metrics
    for name in ["detections.json", "detections_coco_format.json", "results.csv", "metrics.json", "per_image.csv"]:
        assert (tmp_path / "eval" / name).is_file(), name
    csv_text = (tmp_path / "eval" / "results.csv").read_text()
    assert "AP_0.50:0.95_all" in csv_text and "AR_0.50:0.95_large" in csv_text
    det = json.loads((tmp_path / "eval" / "detections.json").read_text())
    assert det["categories"][0]["keypoints"][1] == "neck" and len(det["images"]) == 36
    assert all(len(kp) == 18 for e in det["images"] for kp in e["keypoints"])
    coco = json.loads((tmp_path / "eval" / "detections_coco_format.json").read_text())
    assert all(len(r["keypoints"]) == 51 for r in coco)  # neck dropped by name


def test_inference_dir_with_broken_image_and_visualisations(tmp_path, spec, runner):
    src = tmp_path / "imgs"
    src.mkdir()
    for name in ["000000000785.jpg", "000000040083.jpg"]:
        shutil.copy(SAMPLE / name, src / name)
    (src / "broken.jpg").write_bytes(b"\xff\xd8garbage")
    # the rendered-maps runner knows images by path: register the copies
    runner.people[str((src / "000000000785.jpg").resolve())] = runner.people[
        str((SAMPLE / "000000000785.jpg").resolve())
    ]
    runner.people[str((src / "000000040083.jpg").resolve())] = runner.people[
        str((SAMPLE / "000000040083.jpg").resolve())
    ]
    s = run_inference(spec, runner, "dir", src, tmp_path / "out", dump_visualizations=True, dump_openpose_json=True,
                      progress=False)  # fmt: skip
    assert (
        s["images"] == 3 and s["processed"] == 2 and len(s["skipped"]) == 1 and "broken.jpg" in s["skipped"][0]["file"]
    )
    assert s["people"] == 3  # 1 + 2 labelled people
    assert sorted(p.name for p in (tmp_path / "out" / "images_annotated").iterdir()) == ["0.png", "1.png"]
    op = json.loads((tmp_path / "out" / "openpose_json" / "000000040083_keypoints.json").read_text())
    assert len(op["people"]) == 2 and len(op["people"][0]["pose_keypoints_2d"]) == 18 * 3


@pytest.mark.parametrize("size", [(1, 1), (3, 2000)])
def test_tiny_and_odd_images_do_not_crash(spec, runner, pose, size):
    res = infer(runner, np.zeros(size + (3,), np.uint8), (368, 368), path="none.jpg")
    assert res.keypoints.shape == (0, 18, 3)


def test_huge_image_is_resized_not_refused(runner, pose):
    big = np.zeros((10000, 10000, 3), np.uint8)
    res = infer(runner, big, (368, 368), path="none.jpg")
    assert res.input_hw == (368, 368) and len(res.keypoints) == 0


def test_wrong_channel_count_is_reported(pose):
    class Wrong:
        meta = bpnet_meta(pose, 1, ["heatmap_out", "paf_out"])

        def predict(self, batch, stage=None):
            h, w = batch.shape[1] // 8, batch.shape[2] // 8
            return np.zeros((1, h, w, 18), np.float32), np.zeros((1, h, w, 38), np.float32)

    with pytest.raises(BpnetError, match="18 heatmap / 38 PAF channels but pose config"):
        infer(Wrong(), np.zeros((64, 64, 3), np.uint8), (64, 64))


@pytest.mark.parametrize(
    "model, match",
    [
        ("missing.keras", "model file not found"),
        ("bad.keras", "not a loadable Keras model"),
        ("bad.onnx", "not a loadable ONNX model"),
        ("m.pt", "unknown model type"),
    ],
)
def test_bad_model_files(tmp_path, capsys, model, match):
    for name in ["bad.keras", "bad.onnx", "m.pt"]:
        (tmp_path / name).write_bytes(b"not a model")
    img = tmp_path / "x.jpg"
    shutil.copy(SAMPLE / "000000000785.jpg", img)
    code = main(["inference", "-i", str(ROOT / "specs" / "infer_spec.yaml"), "-m", str(tmp_path / model),
                 "--input", str(img), "-r", str(tmp_path / "out")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and match in err[0]
    assert not (tmp_path / "out" / "detections.json").exists()


def test_empty_input_dir(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code = main(["inference", "-i", str(ROOT / "specs" / "infer_spec.yaml"), "-m", "x.keras", "--input_type", "dir",
                 "--input", str(tmp_path / "empty"), "-r", str(tmp_path / "out")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "no images" in err[0] and not (tmp_path / "out").exists()
