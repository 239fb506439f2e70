"""The input contract through training (issue #26 §3): what ``bpnet_meta`` writes, the rule of
:func:`bpnet_core.config.training_contract` (the ``pretrained_weights`` model's contract wins; an explicit, different
spec normalisation is refused), and the contract kept by ``params.yaml`` and by export. Fast: no Keras, the model
files are zip archives that hold only the contract member."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from bpnet_core.config import TrainSpec, load_train_spec, training_contract, with_contract_normalization
from bpnet_core.errors import BpnetError
from bpnet_core.meta import (
    IN_GRAPH,
    KERAS_MEMBER,
    InputContract,
    Normalization,
    Preprocessing,
    bpnet_meta,
    denormalize_pixels,
    normalize_pixels,
    stored_contract,
)

HPE = Normalization((255.0,) * 3, (128.0 / 255.0,) * 3)  # human-pose-estimation-0001: BGR, x/255 − 128/255
CARD = {"preprocessing": Preprocessing("cubic", 0.0), "inference": {"input_shape": [368, 432],
        "keep_aspect_ratio_mode": "stretch"}}  # fmt: skip
PROVENANCE = {"card": "human-pose-estimation-0001", "license": "Apache-2.0"}


def contract_file(path: Path, pose, normalization=HPE, color="BGR") -> Path:
    """A ``.keras`` archive holding only a contract (enough for :func:`training_contract`, which reads no weights)."""
    meta = bpnet_meta(pose, 2, ["heatmap_stage1", "heatmap_out", "paf_stage1", "paf_out"], normalization,
                      name=path.stem, provenance=PROVENANCE, color=color, **CARD)  # fmt: skip
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(KERAS_MEMBER, meta.to_json())
    return path


def inputs(meta) -> tuple:
    return meta.color, meta.normalization, meta.preprocessing, meta.inference


def spec(tmp_path: Path, weights=None, load_graph=False, norm: dict | None = None) -> TrainSpec:
    data = {"pretrained_weights": str(weights) if weights else None, "load_graph": load_graph}
    if norm is not None:
        data["dataloader"] = {"normalization_params": norm}
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_train_spec(path)


def test_bpnet_meta_takes_colour_preprocessing_inference_and_provenance(pose):
    names = ["heatmap_out", "paf_out"]
    tao = bpnet_meta(pose, 1, names)  # existing callers: RGB, TAO's 256 / 0.5, no recommendations
    assert tao.color == "RGB" and tao.normalization == Normalization() and tao.inference == {}
    assert tao.preprocessing == Preprocessing()
    thin = bpnet_meta(pose, 1, names, IN_GRAPH, color="bgr", provenance={"card": "mobilenet_thin"}, **CARD)
    assert thin.color == "BGR" and thin.normalization is None and thin.preprocessing.interpolation == "cubic"
    assert thin.inference["keep_aspect_ratio_mode"] == "stretch" and thin.provenance == {"card": "mobilenet_thin"}
    again = bpnet_meta(pose, 1, names, **thin.input_contract().meta_kwargs())  # the input passes on unchanged
    assert inputs(again) == inputs(thin)
    with pytest.raises(BpnetError, match="color: must be one of RGB, BGR"):
        bpnet_meta(pose, 1, names, color="YUV")
    with pytest.raises(BpnetError, match="normalization must be a Normalization, None or 'in_graph'"):
        bpnet_meta(pose, 1, names, "sometimes")


@pytest.mark.parametrize("color, norm", [("RGB", Normalization()), ("BGR", HPE), ("BGR", None)])
def test_denormalize_inverts_normalize(color, norm):
    bgr = np.random.default_rng(0).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    x = normalize_pixels(bgr, color, norm)
    np.testing.assert_array_equal(denormalize_pixels(x, color, norm), bgr)
    np.testing.assert_array_equal(InputContract(color, norm).denormalize(x), bgr)


def test_stored_contract_only_from_keras_files_that_carry_one(pose, tmp_path):
    assert stored_contract(None) is None and stored_contract(tmp_path / "missing.keras") is None
    (tmp_path / "w.h5").write_bytes(b"\x89HDF")
    (tmp_path / "junk.keras").write_bytes(b"junk")
    with zipfile.ZipFile(tmp_path / "plain.keras", "w") as zf:
        zf.writestr("config.json", "{}")
    for name in ("w.h5", "junk.keras", "plain.keras"):
        assert stored_contract(tmp_path / name) is None, name
    assert stored_contract(contract_file(tmp_path / "m.keras", pose)).color == "BGR"


@pytest.mark.parametrize("load_graph", [False, True])
def test_the_models_contract_wins(pose, tmp_path, load_graph):
    model = contract_file(tmp_path / "hpe.keras", pose)
    c = training_contract(spec(tmp_path, model, load_graph))
    assert (c.color, c.normalization, c.preprocessing, c.inference) == ("BGR", HPE, CARD["preprocessing"],
                                                                        CARD["inference"])  # fmt: skip
    assert c.provenance == PROVENANCE and c.source == str(model)
    # explicit values that agree with the contract are fine; raw pixels are scale 1, offset 0
    agree = {"image_scale": [255.0] * 3, "image_offset": [128.0 / 255.0] * 3}
    assert training_contract(spec(tmp_path, model, load_graph, agree)).normalization == HPE
    raw = contract_file(tmp_path / "thin.keras", pose, IN_GRAPH)
    c = training_contract(spec(tmp_path, raw, load_graph, {"image_scale": [1, 1, 1], "image_offset": [0, 0, 0]}))
    assert c.normalization is None and c.color == "BGR"


@pytest.mark.parametrize("key, value, model_value", [
    ("image_scale", [256.0, 256.0, 256.0], "[255, 255, 255]"),
    ("image_offset", [0.5, 0.5, 0.5], "[0.501961, 0.501961, 0.501961]"),
])  # fmt: skip
def test_an_explicit_different_normalisation_is_refused(pose, tmp_path, key, value, model_value):
    model = contract_file(tmp_path / "hpe.keras", pose)
    s = spec(tmp_path, model, norm={key: value})
    with pytest.raises(BpnetError) as err:
        training_contract(s)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{s.source}: dataloader.normalization_params.{key} is ")
    assert f"is [{', '.join(f'{v:g}' for v in value)}] but" in msg and model_value in msg and str(model) in msg
    assert "the model's contract wins: remove the key" in msg
    # the same value given with --set is as explicit as one in the file
    with pytest.raises(BpnetError, match=f"normalization_params.{key} is"):
        training_contract(load_train_spec(s.source, [f"dataloader.normalization_params.{key}={value}"]))


def test_without_a_contract_the_spec_decides(pose, tmp_path):
    norm = {"image_scale": [128.0] * 3, "image_offset": [1.0] * 3}
    (tmp_path / "w.h5").write_bytes(b"\x89HDF")
    for weights in (None, tmp_path / "w.h5", "imagenet"):
        c = training_contract(spec(tmp_path, weights, norm=norm))
        assert c == InputContract("RGB", Normalization((128.0,) * 3, (1.0,) * 3)), weights
    assert training_contract(TrainSpec.from_dict({})) == InputContract()  # TAO's 256 / 0.5, RGB


def test_params_yaml_records_the_contracts_normalisation(pose, tmp_path):
    from bpnet_core.config import dump_spec

    model = contract_file(tmp_path / "thin.keras", pose, IN_GRAPH)
    s = spec(tmp_path, model, load_graph=True)
    resolved = with_contract_normalization(s, training_contract(s))
    assert resolved.source == s.source and resolved.load_graph
    again = load_train_spec(dump_spec(resolved, tmp_path / "params.yaml"))
    assert again.dataloader.normalization_params.image_scale == [1.0] * 3
    assert again.dataloader.normalization_params.image_offset == [0.0] * 3
    assert training_contract(again).normalization is None  # the written spec trains the same model again


def test_export_keeps_the_input_contract(pose):
    from bpnet_core.export.onnx import export_meta

    for norm in (HPE, IN_GRAPH):
        src = bpnet_meta(pose, 2, ["heatmap_stage1", "heatmap_out", "paf_stage1", "paf_out"], norm, color="BGR",
                         provenance=PROVENANCE, **CARD)  # fmt: skip
        out = export_meta(src, ["heatmap_out", "paf_out"], "channels_first", (368, 432), 2, "m")
        assert inputs(out) == inputs(src)
        assert out.layout == "NCHW" and out.provenance["exported_from"] == src.name
