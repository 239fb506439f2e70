"""The embedded synthetic dataset: COCO validity, label semantics, determinism, parallel == serial, input checks."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from bpnet_core.data.synthetic import MARKER, generate_synthetic_coco
from bpnet_core.errors import BpnetError

# pycocotools' C decoder trips a NumPy 2 copy-keyword deprecation; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

ROOT = Path(__file__).resolve().parents[2]
SPLITS = ("train2017", "val2017")


def gen(path: Path, **kw) -> dict:
    args = {"num_train": 10, "num_val": 2, "image_size": (128, 128), "seed": 0, "workers": 1, "progress": False}
    args.update(kw)
    return generate_synthetic_coco(path, **args)


def load(path: Path, split: str) -> dict:
    return json.loads((path / "annotations" / f"person_keypoints_{split}.json").read_text())


def files(path: Path) -> dict[str, bytes]:
    out = {}
    for split in SPLITS:
        for f in sorted((path / split).glob("*.jpg")):
            out[f"{split}/{f.name}"] = f.read_bytes()
        out[split + ".json"] = (path / "annotations" / f"person_keypoints_{split}.json").read_bytes()
    return out


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    path = tmp_path_factory.mktemp("syn") / "small"
    summary = gen(path)
    return path, summary


@pytest.fixture(scope="module")
def sample40(tmp_path_factory):
    path = tmp_path_factory.mktemp("syn40") / "ds"
    gen(path, num_train=40, num_val=0, image_size=(96, 96), seed=3)
    return path


def annotations(path: Path) -> list[tuple[dict, dict]]:
    """(image, annotation) pairs over both splits."""
    out = []
    for split in SPLITS:
        doc = load(path, split)
        images = {im["id"]: im for im in doc["images"]}
        out += [(images[a["image_id"]], a) for a in doc["annotations"]]
    return out


def test_layout_and_coco_loads(small):
    from pycocotools.coco import COCO

    path, summary = small
    assert summary["images"] == 12 and summary["train_images"] == 10 and summary["val_images"] == 2
    assert summary["seconds"] > 0 and summary["annotations"] == summary["people"] + summary["crowd_regions"]
    ids = []
    for split, n in zip(SPLITS, (10, 2)):
        coco = COCO(str(path / "annotations" / f"person_keypoints_{split}.json"))
        assert len(coco.getImgIds()) == n
        for im in coco.dataset["images"]:
            assert im["file_name"] == f"{im['id']:012d}.jpg"
            img = cv2.imread(str(path / split / im["file_name"]))
            assert img.shape == (im["height"], im["width"], 3) == (128, 128, 3)
            ids.append(im["id"])
        assert set(coco.dataset) >= {"info", "licenses", "images", "annotations", "categories"}
        spec = json.loads((ROOT / "data_pose_config" / "coco_spec.json").read_text())["categories"][0]
        cat = coco.dataset["categories"][0]
        assert cat["id"] == 1 and cat["name"] == "person"
        assert cat["keypoints"] == spec["keypoints"] and cat["skeleton"] == spec["skeleton"]
    assert len(ids) == len(set(ids))
    ann_ids = [a["id"] for _, a in annotations(path)]
    assert len(ann_ids) == len(set(ann_ids))


def test_dataset_spec_points_at_output(small):
    path, _ = small
    spec = json.loads((path / "dataset_spec.json").read_text())
    shipped = json.loads((ROOT / "data_pose_config" / "synthetic_spec.json").read_text())
    assert spec["root_directory_path"] == str(path.resolve())
    assert {k: v for k, v in spec.items() if k != "root_directory_path"} == {
        k: v for k, v in shipped.items() if k != "root_directory_path"
    }
    assert (path / spec["train_data"]["annotation_root_dir_path"]).is_file()
    assert (path / spec["test_data"]["images_root_dir_path"]).is_dir()


def test_same_seed_identical_other_seed_different(small, tmp_path):
    path, _ = small
    again = tmp_path / "again"
    gen(again)
    assert files(again) == files(path)
    other = tmp_path / "other"
    gen(other, seed=1)
    a, b = files(path), files(other)
    assert a.keys() == b.keys()
    assert a["train2017.json"] != b["train2017.json"]
    assert sum(a[k] != b[k] for k in a if k.endswith(".jpg")) == 12


def test_two_workers_identical_to_one(small, tmp_path):
    path, _ = small
    par = tmp_path / "par"
    gen(par, workers=2)
    assert files(par) == files(path)


def test_annotation_invariants(small, sample40):
    from pycocotools import mask as mask_utils

    checked = on_mask = 0
    for path in (small[0], sample40):
        per_image: dict[int, int] = {}
        for im, a in annotations(path):
            h, w = im["height"], im["width"]
            assert a["category_id"] == 1 and a["area"] > 0
            x, y, bw, bh = a["bbox"]
            assert x >= 0 and y >= 0 and bw > 0 and bh > 0 and x + bw <= w + 1e-6 and y + bh <= h + 1e-6
            kp = np.asarray(a["keypoints"], float).reshape(17, 3)
            assert set(np.unique(kp[:, 2])) <= {0, 1, 2}
            assert a["num_keypoints"] == int((kp[:, 2] > 0).sum())
            assert np.all(kp[kp[:, 2] == 0, :2] == 0)
            lab = kp[kp[:, 2] > 0]
            assert np.all((lab[:, 0] >= 0) & (lab[:, 0] <= w - 1) & (lab[:, 1] >= 0) & (lab[:, 1] <= h - 1))
            assert np.all((lab[:, 0] >= x - 2) & (lab[:, 0] <= x + bw + 2))
            assert np.all((lab[:, 1] >= y - 2) & (lab[:, 1] <= y + bh + 2))
            seg = a["segmentation"]
            if a["iscrowd"]:
                assert isinstance(seg, dict) and isinstance(seg["counts"], str) and seg["size"] == [h, w]
                assert a["num_keypoints"] == 0
                m = mask_utils.decode(seg)
                assert int(m.sum()) == a["area"]
            else:
                per_image[im["id"]] = per_image.get(im["id"], 0) + 1
                assert isinstance(seg, list) and seg
                for poly in seg:
                    assert len(poly) >= 6 and len(poly) % 2 == 0
                    xy = np.asarray(poly).reshape(-1, 2)
                    assert np.all((xy >= 0) & (xy <= [w, h]))
                m = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(seg, h, w)))
                assert m.sum() > 0
                # visible keypoints sit on the drawn person
                grown = cv2.dilate(m, np.ones((5, 5), np.uint8))
                for kx, ky, v in kp:
                    if v == 2:
                        checked += 1
                        on_mask += int(grown[int(round(ky)), int(round(kx))] > 0)
        assert max(per_image.values()) <= 6
    assert checked > 100 and on_mask / checked > 0.95


def test_sample_has_crowds_unlabelled_occlusion_and_both_facings(sample40):
    anns = [a for _, a in annotations(sample40)]
    assert any(a["iscrowd"] == 1 for a in anns)
    assert any(a["iscrowd"] == 0 and a["num_keypoints"] == 0 for a in anns)
    v = np.concatenate([np.asarray(a["keypoints"]).reshape(17, 3)[:, 2] for a in anns])
    assert (v == 1).sum() > 10 and (v == 2).sum() > (v == 1).sum()
    # left_shoulder (5) right of right_shoulder (6) = facing the camera; the reverse = seen from behind
    facing = [
        np.sign(k[5, 0] - k[6, 0])
        for k in (np.asarray(a["keypoints"]).reshape(17, 3) for a in anns)
        if k[5, 2] > 0 and k[6, 2] > 0 and abs(k[5, 0] - k[6, 0]) > 2
    ]
    assert facing.count(1) > 5 and facing.count(-1) > 2
    counts = {}
    for im, a in annotations(sample40):
        counts.setdefault(im["id"], 0)
        counts[im["id"]] += a["iscrowd"] == 0
    assert len({c for c in counts.values()}) >= 3  # varied numbers of people


def test_rerun_overwrites_previous_output(tmp_path):
    path = tmp_path / "ds"
    gen(path, num_train=3, num_val=1, image_size=(64, 64))
    gen(path, num_train=2, num_val=0, image_size=(64, 64))
    assert sorted(p.name for p in (path / "train2017").iterdir()) == ["000000000001.jpg", "000000000002.jpg"]
    assert list((path / "val2017").iterdir()) == []
    assert len(load(path, "val2017")["images"]) == 0 and (path / MARKER).is_file()


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"num_train": -1}, "num_train must be >= 0"),
        ({"num_val": -3}, "num_val must be >= 0"),
        ({"num_train": 2.5}, "num_train must be an integer"),
        ({"image_size": (31, 64)}, "height 31 is outside 32..4096"),
        ({"image_size": (64, 4097)}, "width 4097 is outside"),
        ({"image_size": (64,)}, "image_size must be"),
        ({"seed": -1}, "seed must be"),
        ({"workers": 0}, "workers must be"),
    ],
)
def test_bad_arguments(tmp_path, kw, message):
    with pytest.raises(BpnetError, match=message):
        gen(tmp_path / "x", **kw)
    assert not (tmp_path / "x").exists()


def test_refuses_foreign_non_empty_directory(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(BpnetError, match="not empty and is not a bpnet synthetic dataset"):
        gen(tmp_path, num_train=1, num_val=0)
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]
    with pytest.raises(BpnetError, match="not a directory"):
        gen(tmp_path / "mine.txt", num_train=1, num_val=0)


def test_synthetic_data_cli(tmp_path, capsys):
    from bpnet_core.cli import main

    out = tmp_path / "cli"
    rc = main(
        [
            "synthetic_data",
            "-o",
            str(out),
            "--num_train",
            "2",
            "--num_val",
            "1",
            "--image_size",
            "48",
            "64",
            "--seed",
            "5",
            "--workers",
            "1",
            "--no_progress",
        ]
    )
    assert rc == 0 and "3 images" in capsys.readouterr().out
    assert cv2.imread(str(out / "val2017" / "000000000003.jpg")).shape == (48, 64, 3)
    assert main(["synthetic_data", "-o", str(out), "--image_size", "16", "16"]) == 2
    assert "outside 32..4096" in capsys.readouterr().err


def test_easy_difficulty_keeps_people_larger_and_inside(tmp_path):
    import json

    from bpnet_core.data.synthetic import generate_synthetic_coco
    from bpnet_core.errors import BpnetError

    generate_synthetic_coco(tmp_path / "easy", num_train=24, num_val=0, image_size=(128, 128), seed=3, workers=1,
                            progress=False, difficulty="easy")  # fmt: skip
    generate_synthetic_coco(tmp_path / "hard", num_train=24, num_val=0, image_size=(128, 128), seed=3, workers=1,
                            progress=False, difficulty="hard")  # fmt: skip

    def people(d):
        data = json.loads((tmp_path / d / "annotations" / "person_keypoints_train2017.json").read_text())
        return [a for a in data["annotations"] if not a["iscrowd"] and a["num_keypoints"] > 0], len(data["images"])

    easy, n_easy = people("easy")
    hard, n_hard = people("hard")
    assert len(easy) / n_easy <= 3.0  # 1-3 people per image
    # easy people are mostly complete: more labelled keypoints per person than in the hard mix
    assert sum(a["num_keypoints"] for a in easy) / len(easy) > sum(a["num_keypoints"] for a in hard) / len(hard)
    with pytest.raises(BpnetError, match="difficulty"):
        generate_synthetic_coco(tmp_path / "x", num_train=1, num_val=0, image_size=(64, 64), difficulty="medium")
