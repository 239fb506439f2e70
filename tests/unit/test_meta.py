"""The model contract (ModelMeta): serialisation, storage in each file type, strict reading, and the preprocessing
it drives (resize modes and their inverse)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from bpnet_core.errors import BpnetError
from bpnet_core.meta import MapOutput, ModelMeta, Normalization, StageOutputs, bpnet_meta, read_meta
from bpnet_core.preprocess import prepare, to_photo

ROOT = Path(__file__).resolve().parents[2]


def concat_meta(pose, layout="NHWC") -> ModelMeta:
    """A tf-pose-like contract: one output holding 19 heatmaps then 38 PAFs, BGR raw pixels."""
    return ModelMeta(
        name="concat",
        pose=pose,
        num_stages=7,
        layout=layout,
        color="BGR",
        normalization=None,
        input_name="image:0",
        outputs=(StageOutputs(7, MapOutput("out", 0, 19, 8, layout), MapOutput("out", 19, 57, 8, layout)),),
    )


def test_round_trip_and_derived_values(pose):
    meta = concat_meta(pose)
    again = ModelMeta.from_json(meta.to_json(), "x")
    assert again == meta.with_changes(pose=again.pose) and again.pose.limbs == pose.limbs
    assert again.stride == 8 and again.available_stages == [7] and again.output_names() == ["out"]
    assert again.normalization is None and json.loads(meta.to_json())["input"]["normalization"] == "in_graph"


def test_channel_slices_and_layouts(pose):
    raw = np.arange(2 * 3 * 4 * 57, dtype=np.float32).reshape(2, 3, 4, 57)
    m = concat_meta(pose)
    np.testing.assert_array_equal(m.heatmaps().take(raw), raw[..., :19])
    np.testing.assert_array_equal(m.pafs().take(raw), raw[..., 19:])
    nchw = concat_meta(pose, "NCHW")
    np.testing.assert_array_equal(nchw.pafs().take(raw.transpose(0, 3, 1, 2)), raw[..., 19:])
    with pytest.raises(BpnetError, match="has 38 channels, the contract needs channels 19..56"):
        m.pafs().take(raw[..., :38])


def test_contract_checks_channels_against_the_pose(pose):
    with pytest.raises(BpnetError, match="heatmap output out has 18 channels but pose config"):
        ModelMeta(name="m", pose=pose, num_stages=1,
                  outputs=(StageOutputs(1, MapOutput("out", 0, 18), MapOutput("out", 18, 56)),))  # fmt: skip


@pytest.mark.parametrize("edit, words", [
    (lambda d: d.update(version=99), "version 99 is not 1"),
    (lambda d: d.update(colour="RGB"), "unknown key 'colour'"),
    (lambda d: d["input"].update(layout="NWHC"), "input.layout: must be one of NHWC, NCHW"),
    (lambda d: d["input"].update(color="YUV"), "input.color: must be one of RGB, BGR"),
    (lambda d: d["outputs"][0]["pafs"].update(channels=[19]), "channels: must be"),
    (lambda d: d.pop("pose"), "the pose config is missing"),
])  # fmt: skip
def test_malformed_contracts_are_one_line_errors(pose, edit, words):
    d = concat_meta(pose).to_dict()
    edit(d)
    with pytest.raises(BpnetError, match=words) as e:
        ModelMeta.from_dict(d, "m.onnx")
    assert "\n" not in str(e.value) and "m.onnx" in str(e.value)


def test_keras_archive_carries_the_contract(pose, tmp_path):
    import keras

    from bpnet_core.model import build_model, save_bpnet_model

    model = build_model({"stages": 2, "width_multiplier": 0.125}, pose)
    path = save_bpnet_model(model, tmp_path / "m.keras", pose, Normalization((255.0,) * 3, (0.0,) * 3))
    assert "bpnet_meta.json" in zipfile.ZipFile(path).namelist()
    meta = read_meta(path)
    assert meta.num_stages == 2 and meta.available_stages == [1, 2] and meta.normalization.scale == (255.0,) * 3
    assert meta.outputs[1].heatmaps.name == "heatmap_out" and meta.pose.joint_names == pose.joint_names
    keras.saving.load_model(str(path), compile=False)  # Keras itself ignores the extra member


def test_missing_and_foreign_contracts(pose, tmp_path):
    from bpnet_core.model import build_model
    from bpnet_core.runners import load_runner

    plain = tmp_path / "plain.keras"
    build_model({"stages": 1, "width_multiplier": 0.125}, pose).save(plain)
    with pytest.raises(BpnetError, match="no bpnet model contract .* re-import it with `bpnet import_model"):
        read_meta(plain)
    for name in ("model.tlt", "model.etlt"):
        (tmp_path / name).write_bytes(b"\x00encrypted")
        with pytest.raises(BpnetError, match="encrypted TAO model; export it to plain ONNX"):
            load_runner(tmp_path / name)
    (tmp_path / "m.xml").write_text("<net/>")
    with pytest.raises(BpnetError, match="m.bin is missing beside it"):
        read_meta(tmp_path / "m.xml")
    (tmp_path / "m.bin").write_bytes(b"")
    with pytest.raises(BpnetError, match="not a loadable OpenVINO IR"):
        read_meta(tmp_path / "m.xml")
    (tmp_path / "tao.hdf5").write_bytes(b"\x89HDF\r\n")
    with pytest.raises(BpnetError, match="tao.hdf5: not a readable .hdf5 file"):
        load_runner(tmp_path / "tao.hdf5")
    (tmp_path / "m.engine").write_bytes(b"engine")
    with pytest.raises(BpnetError, match="no bpnet model contract"):
        read_meta(tmp_path / "m.engine")


# ---------------------------------------------------------------------------------------------------- preprocessing


@pytest.mark.parametrize("mode, shape, out_hw", [
    ("adjust_network_input", (368, 368), (368, 560)),  # shorter side 368
    ("fixed_height", (368, 368), (368, 560)),          # height 368 (landscape: the same)
    ("pad_image_input", (288, 384), (288, 384)),
    ("stretch", (368, 432), (368, 432)),
    ("letterbox", (288, 288), (288, 288)),
])  # fmt: skip
def test_resize_modes_and_their_inverse(pose, mode, shape, out_hw):
    meta = bpnet_meta(pose, 1, ["heatmap_out", "paf_out"])
    image = np.zeros((426, 640, 3), np.uint8)
    image[100:110, 200:210] = 255  # a white square: its centre must map back where it was
    pre = prepare(image, meta, shape, mode)
    assert pre.input_hw == out_hw
    y0, x0, y1, x1 = pre.box
    centre_in = np.array([[(x0 + (x1 - x0) * 205 / 640), (y0 + (y1 - y0) * 105 / 426)]])
    np.testing.assert_allclose(to_photo(centre_in, pre.matrix), [[205, 105]], atol=1.0)
    if mode == "letterbox":
        assert y0 > 0 and abs(y0 - (out_hw[0] - y1)) <= 1  # centred: symmetric padding
    if mode == "stretch":
        assert pre.matrix[0, 0] == pytest.approx(432 / 640) and pre.matrix[1, 1] == pytest.approx(368 / 426)


def test_portrait_fixed_height_differs_from_shorter_side(pose):
    meta = bpnet_meta(pose, 1, ["heatmap_out", "paf_out"])
    portrait = np.zeros((640, 480, 3), np.uint8)
    assert prepare(portrait, meta, (368, 368), "fixed_height").input_hw == (368, 280)
    assert prepare(portrait, meta, (368, 368), "adjust_network_input").input_hw == (496, 368)


def test_contract_drives_colour_normalisation_and_padding(pose):
    bgr = concat_meta(pose).with_changes(preprocessing=concat_meta(pose).preprocessing.__class__("nearest", 0.0))
    image = np.zeros((16, 8, 3), np.uint8)
    image[..., 0] = 200  # blue
    pre = prepare(image, bgr, (16, 16), "pad_image_input")
    assert pre.batch[0, 0, 0].tolist() == [200.0, 0.0, 0.0] and pre.batch[0, 0, 15].tolist() == [0.0, 0.0, 0.0]
    rgb = bpnet_meta(pose, 1, ["heatmap_out", "paf_out"])
    pre = prepare(image, rgb, (16, 16), "pad_image_input")
    np.testing.assert_allclose(pre.batch[0, 0, 0], [-0.5, -0.5, 200 / 256 - 0.5])
    np.testing.assert_allclose(pre.batch[0, 0, 15], [0.0, 0.0, 0.0])  # grey 128 padding → 0
