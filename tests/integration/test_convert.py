"""dataset_convert on the real COCO sample: main people, masks, records, determinism, kill/resume, bad input."""

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from bpnet_core.cli import main
from bpnet_core.config import load_dataset_spec
from bpnet_core.data.convert import compute_mask, convert_dataset, read_records, select_main_people

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "coco_sample"
SAMPLE_JSON = SAMPLE / "person_keypoints_val2017_sample.json"
COCO_SPEC = Path(__file__).resolve().parents[2] / "data_pose_config" / "coco_spec.json"


def make_dataset(tmp_path: Path, image_ids=None, mutate=None) -> Path:
    """A COCO-layout copy of (part of) the real sample under tmp_path; returns its dataset spec path."""
    data = json.loads(SAMPLE_JSON.read_text())
    if image_ids is not None:
        data["images"] = [im for im in data["images"] if im["id"] in image_ids]
        data["annotations"] = [a for a in data["annotations"] if a["image_id"] in image_ids]
    root = tmp_path / "coco"
    (root / "val2017").mkdir(parents=True)
    (root / "annotations").mkdir()
    for im in data["images"]:
        shutil.copy(SAMPLE / im["file_name"], root / "val2017" / im["file_name"])
    if mutate:
        mutate(data, root)
    (root / "annotations" / "person_keypoints_val2017.json").write_text(json.dumps(data))
    spec = json.loads(COCO_SPEC.read_text())
    spec["root_directory_path"] = str(root)
    spec["train_data"] = {**spec["test_data"], "mask_root_dir_path": "val_mask2017"}  # both modes read val2017
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    return spec_path


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("conv")
    spec_path = make_dataset(tmp)
    out = tmp / "out"
    out.mkdir()
    summary = convert_dataset(load_dataset_spec(spec_path), out / "val", mode="train", generate_masks=True,
                              check_files=True, progress=False)  # fmt: skip
    return tmp, out, summary


def test_records_follow_main_person_rules(converted):
    tmp, out, summary = converted
    data = json.loads(SAMPLE_JSON.read_text())
    expected = 0
    for im in data["images"]:
        anns = [
            a for a in data["annotations"] if a["image_id"] == im["id"] and not a["iscrowd"] and a["num_keypoints"] > 0
        ]
        expected += len(select_main_people(anns, 5, 32 * 32, 0.3))
    assert summary["records"] == expected > 0
    assert summary["images"] == 36 and summary["people"] == 80
    recs = read_records([out / "val-fold-000-of-001"])
    assert len(recs) == expected
    # the centre person comes first and is a real annotation of that image
    for rec in recs[:10]:
        anns = [a for a in data["annotations"] if a["image_id"] == rec["image_id"] and a["num_keypoints"] > 0]
        first = np.array(rec["joints"][0], np.float64).reshape(-1)
        assert any(np.allclose(first, np.array(a["keypoints"], np.float64)) for a in anns)
        assert rec["person_idx"] == 0 and len(rec["scales"]) == len(rec["joints"])
    assert all(s["reason"] == "no main person" for s in summary["skipped"])


def test_masks_on_real_crowd_and_unlabelled_people(converted):
    tmp, out, summary = converted
    data = json.loads(SAMPLE_JSON.read_text())
    crowd_img = next(a["image_id"] for a in data["annotations"] if a["iscrowd"])
    anns = [a for a in data["annotations"] if a["image_id"] == crowd_img]
    im = next(i for i in data["images"] if i["id"] == crowd_img)
    mask = compute_mask(anns, im["height"], im["width"])
    from pycocotools import mask as mu

    h, w = im["height"], im["width"]
    crowd = next(a for a in anns if a["iscrowd"])
    crowd_m = mu.decode(mu.frPyObjects(crowd["segmentation"], h, w)).astype(bool)
    labelled = np.zeros((h, w), bool)
    for a in anns:
        if not a["iscrowd"] and a["num_keypoints"] > 0:
            labelled |= mu.decode(mu.merge(mu.frPyObjects(a["segmentation"], h, w))).astype(bool)
    assert (mask[crowd_m & ~labelled] == 0).all()  # crowd is ignored ...
    assert (mask[crowd_m & labelled] == 255).all()  # ... except where labelled people stand
    assert (mask[~crowd_m & labelled] == 255).all()
    # the written mask file is the same, losslessly
    written = cv2.imread(str(tmp / "coco" / "val_mask2017" / im["file_name"].replace(".jpg", ".png")), 0)
    np.testing.assert_array_equal(written, mask)
    # an image whose only extra annotation is an unlabelled person gets that person masked
    assert summary["masks_written"] >= 10


def test_output_is_deterministic_and_parallel_equals_serial(tmp_path):
    spec = load_dataset_spec(make_dataset(tmp_path, image_ids={139, 34417, 183709, 217285, 196141}))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    convert_dataset(spec, tmp_path / "a" / "train", generate_masks=True, workers=1, progress=False)
    convert_dataset(spec, tmp_path / "b" / "train", generate_masks=True, workers=2, num_shards=0, progress=False)
    a = (tmp_path / "a" / "train-fold-000-of-001").read_bytes()
    assert a == (tmp_path / "b" / "train-fold-000-of-001").read_bytes() and len(a) > 0


def test_partitions_and_shards_names_and_counts(tmp_path):
    spec = load_dataset_spec(make_dataset(tmp_path, image_ids={139, 34417, 183709, 217285, 196141, 197388}))
    out = tmp_path / "o"
    out.mkdir()
    s = convert_dataset(spec, out / "train", num_partitions=2, num_shards=2, progress=False)
    names = sorted(p.name for p in out.iterdir() if "fold" in p.name)
    assert names == [f"train-fold-{f:03d}-of-002-shard-{k:05d}-of-00002" for f in range(2) for k in range(2)]
    assert sum(x["records"] for x in s["shards"]) == s["records"]
    assert len(read_records(sorted(out.glob("train-fold-*")))) == s["records"]


def test_test_mode_keeps_every_image(tmp_path):
    spec = load_dataset_spec(make_dataset(tmp_path))
    out = tmp_path / "o"
    out.mkdir()
    s = convert_dataset(spec, out / "val", mode="test", progress=False)
    assert s["records"] == 36 and not s["skipped"]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_sigkill_then_rerun_gives_identical_output(tmp_path, seed):
    spec_path = make_dataset(tmp_path)
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    ref.mkdir()
    killed.mkdir()
    cmd = [sys.executable, "-m", "bpnet_core", "dataset_convert", "-d", str(spec_path), "-m", "train",
           "--generate_masks", "-s", "3", "-j", "1"]  # fmt: skip
    assert subprocess.run(cmd + ["-o", str(ref / "train")], capture_output=True).returncode == 0
    proc = subprocess.Popen(cmd + ["-o", str(killed / "train")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(np.random.default_rng(seed).uniform(2.0, 6.0))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    final = [p for p in killed.iterdir() if p.name.startswith("train-fold")]
    for p in final:  # whatever exists under a final name is complete
        assert p.read_bytes() == (ref / p.name).read_bytes()
    assert subprocess.run(cmd + ["-o", str(killed / "train")], capture_output=True).returncode == 0
    for p in sorted(ref.glob("train-fold*")):
        assert (killed / p.name).read_bytes() == p.read_bytes()
    assert not [p for p in killed.iterdir() if p.name.endswith(".tmp")]


# ------------------------------------------------------------------ bad input
def _run_cli(tmp_path, spec_path, capsys, *extra):
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    code = main(["dataset_convert", "-d", str(spec_path), "-o", str(out / "train"), *extra])
    err = capsys.readouterr().err.strip().splitlines()
    return code, err, out


def _outside(data, root, file_name):
    """Point image 0 at an existing copy of itself outside the image root (root/val2017), as ``file_name``."""
    shutil.copy(root / "val2017" / data["images"][0]["file_name"], root / "x.jpg")
    data["images"][0]["file_name"] = file_name


def _broken_jpeg(data, root):
    im = data["images"][0]
    raw = (root / "val2017" / im["file_name"]).read_bytes()
    (root / "val2017" / im["file_name"]).write_bytes(raw[: len(raw) // 3])


@pytest.mark.parametrize(
    "mutate, match",
    [
        (
            lambda d, r: (r / "val2017" / d["images"][0]["file_name"]).unlink(),
            "image of annotation image id .* not found",
        ),
        (lambda d, r: d["images"][0].update(file_name="../../etc/passwd"), "escapes the image root"),
        (lambda d, r: _outside(d, r, "../x.jpg"), "escapes the image root"),
        (lambda d, r: _outside(d, r, str(r / "x.jpg")), "must be a relative path inside"),
        (lambda d, r: d.update(images=[], annotations=[]), "has no images"),
        (lambda d, r: d["annotations"][0].update(keypoints=[1, 2]), r"annotations\[0\].keypoints has 2 values"),
        (lambda d, r: d["annotations"][0].update(image_id=-5), "unknown image id -5"),
        (lambda d, r: d.pop("annotations"), "missing or invalid key 'annotations'"),
    ],
    ids=[
        "missing-image",
        "path-traversal",
        "parent-of-root",
        "absolute-path",
        "empty-dataset",
        "short-keypoints",
        "unknown-image-id",
        "no-annotations",
    ],
)
def test_bad_annotations_give_one_line_error_and_no_output(tmp_path, capsys, mutate, match):
    spec_path = make_dataset(tmp_path, image_ids={139, 34417}, mutate=mutate)
    code, err, out = _run_cli(tmp_path, spec_path, capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith("bpnet: error: ")
    import re

    assert re.search(match, err[0]), err[0]
    assert not any(out.iterdir()), "nothing may be written"


@pytest.mark.parametrize(
    "content", ['{"images": [', "", '{"images": [], "annotations": [] '], ids=["truncated", "empty", "unclosed"]
)
def test_malformed_annotation_json(tmp_path, capsys, content):
    spec_path = make_dataset(tmp_path, image_ids={139})
    (tmp_path / "coco" / "annotations" / "person_keypoints_val2017.json").write_text(content)
    code, err, out = _run_cli(tmp_path, spec_path, capsys)
    assert code == 2 and len(err) == 1 and "person_keypoints_val2017.json" in err[0]
    assert not any(out.iterdir())


def test_check_files_skips_and_reports_broken_images(tmp_path, capsys):
    spec_path = make_dataset(tmp_path, image_ids={139, 34417, 196141}, mutate=_broken_jpeg)
    code, err, out = _run_cli(tmp_path, spec_path, capsys, "--check_files")
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["broken_images"]) == 1 and "000000000139.jpg" in summary["broken_images"][0]["file"]
    assert "truncated" in summary["broken_images"][0]["reason"]
    assert summary["records"] > 0


def test_symlinked_image_files_are_read(tmp_path):
    """Image files that are symbolic links (DVC's symlink cache, ``cp -s``, shared storage) and a linked sub-folder
    are read like plain files: the same records and masks as from the plain copy."""
    ids = {139, 34417, 196141}
    plain = load_dataset_spec(make_dataset(tmp_path / "plain", image_ids=ids))
    store = tmp_path / "store"
    (store / "sub").mkdir(parents=True)

    def link(d, r):
        for k, im in enumerate(d["images"]):
            f = r / "val2017" / im["file_name"]
            if k == 0:  # through a linked folder: val2017/linked -> store/sub
                f.rename(store / "sub" / f.name)
                im["file_name"] = f"linked/{f.name}"
            else:
                f.rename(store / f.name)
                f.symlink_to(store / f.name)
        (r / "val2017" / "linked").symlink_to(store / "sub")

    linked = load_dataset_spec(make_dataset(tmp_path / "linked", image_ids=ids, mutate=link))
    assert (tmp_path / "linked" / "coco" / "val2017" / "000000034417.jpg").is_symlink()
    summaries = []
    for spec, where in ((plain, tmp_path / "plain"), (linked, tmp_path / "linked")):
        s = convert_dataset(spec, where / "val", mode="test", generate_masks=True, check_files=True, progress=False)
        assert not s["skipped"], s
        summaries.append({k: s[k] for k in ("records", "images", "people", "masks_written")})
    assert summaries[0] == summaries[1] and summaries[0]["records"] == 3 and summaries[0]["masks_written"] > 0


def test_odd_colour_modes_and_outside_keypoints_and_empty_people(tmp_path):
    from PIL import Image

    def mutate(d, r):
        names = [im["file_name"] for im in d["images"]]
        Image.open(r / "val2017" / names[0]).convert("L").save(r / "val2017" / names[0])
        Image.open(r / "val2017" / names[1]).convert("CMYK").save(r / "val2017" / names[1])
        ann = next(a for a in d["annotations"] if a["num_keypoints"] > 0)
        ann["keypoints"][0:3] = [-50, 10, 2]  # outside the image
        d["annotations"].append({**ann, "id": 999999, "num_keypoints": 0, "keypoints": [0] * 51})

    spec = load_dataset_spec(make_dataset(tmp_path, image_ids={139, 34417, 196141}, mutate=mutate))
    out = tmp_path / "o"
    out.mkdir()
    s = convert_dataset(spec, out / "train", generate_masks=True, check_files=True, progress=False)
    assert s["broken_images"] == [] and s["keypoints_outside_image"] == 1 and s["records"] > 0


def test_spec_typo_is_reported(tmp_path, capsys):
    spec = json.loads(COCO_SPEC.read_text())
    spec["duplicate_data_with_each_person_as_centre"] = spec.pop("duplicate_data_with_each_person_as_center")
    p = tmp_path / "typo.json"
    p.write_text(json.dumps(spec))
    code, err, out = _run_cli(tmp_path, p, capsys)
    assert code == 2 and len(err) == 1 and "duplicate_data_with_each_person_as_center" in err[0] and str(p) in err[0]
