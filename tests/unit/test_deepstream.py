"""DeepStream / TAO interoperability: the SDK-compatible export, NVIDIA's deployable card, the DeepStream configs.

A tiny 2-stage model (as in test_export.py) is exported at 64×96, normally (last stage) and SDK-compatible; the
people check uses a "network" whose maps are rendered from a sample photo's annotations (so there are people to
decode), made SDK-compatible by the same graph function the export uses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bpnet_core.errors import BpnetError

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "fixtures" / "coco_sample"
SAMPLE_JSON = SAMPLE / "person_keypoints_val2017_sample.json"
PHOTO = SAMPLE / "000000217285.jpg"  # 11 annotated people with >= 8 joints
SDK_PAF, SDK_HEAT, SDK_IN = "conv2d_transpose_1/BiasAdd:0", "heatmap_out/BiasAdd:0", "input_1:0"


@pytest.fixture(scope="module")
def exports(model_file, pose, tmp_path_factory):
    from bpnet_core.export import export_model

    d = tmp_path_factory.mktemp("sdk")
    normal = export_model(model_file, d / "normal.onnx", input_dims="64,96,3", output_stages="last", pose=pose)
    sdk = export_model(model_file, d / "sdk.onnx", input_dims="64,96,3", sdk_compatible_model=True, pose=pose)
    return d / "normal.onnx", normal, d / "sdk.onnx", sdk


def _io(path):
    import onnx

    def dims(vi):
        return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in vi.type.tensor_type.shape.dim]

    g = onnx.load(str(path)).graph
    inits = {i.name for i in g.initializer}
    return ([(i.name, dims(i)) for i in g.input if i.name not in inits], [(o.name, dims(o)) for o in g.output])


def _run(path, x):
    from bpnet_core.export.onnx import onnx_session

    s = onnx_session(str(path))
    return dict(zip([o.name for o in s.get_outputs()], s.run(None, {s.get_inputs()[0].name: x})))


def _photo_batch(meta, hw):
    from bpnet_core.fileio import read_image
    from bpnet_core.preprocess import prepare

    return prepare(read_image(PHOTO), meta, hw, "pad_image_input").batch


# ---------------------------------------------------------------------------------------------------- SDK export


@pytest.mark.slow
def test_sdk_export_names_shapes_and_parity_with_the_normal_export(exports):
    import onnx
    from onnx import numpy_helper

    from bpnet_core.export.sdk import upsample_nearest
    from bpnet_core.meta import read_meta

    normal, rn, sdk, rs = exports
    ins, outs = _io(sdk)
    assert [n for n, _ in ins] == [SDK_IN] and ins[0][1][1:] == [64, 96, 3]  # NHWC
    assert [n for n, _ in outs] == [SDK_PAF, SDK_HEAT]  # TAO's order: [paf_up, heatmap]
    assert outs[0][1][1:] == [32, 48, 38] and outs[1][1][1:] == [8, 12, 19]
    assert rs["outputs"] == [SDK_PAF, SDK_HEAT] and rs["sdk"]["max_abs_diff"] <= 1e-5
    g = onnx.load(str(sdk)).graph
    conv = [n for n in g.node if n.op_type == "ConvTranspose"]
    assert len(conv) == 1
    w = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    k, b = w[conv[0].input[1]], w[conv[0].input[2]]
    assert k.shape == (38, 38, 4, 4) and np.array_equal(k, np.einsum("ij,kl->ijkl", np.eye(38), np.ones((4, 4))))
    assert not b.any()
    meta = read_meta(sdk)
    assert meta.input_name == SDK_IN and meta.layout == "NHWC" and meta.input_hw == (64, 96)
    assert (meta.heatmaps().name, meta.heatmaps().stride) == (SDK_HEAT, 8)
    assert (meta.pafs().name, meta.pafs().stride) == (SDK_PAF, 2)
    assert meta.num_stages == 2 and meta.available_stages == [2]
    # heatmap identical, PAF = nearest x4 of the normal export's, on a random input and on a real photo
    for x in (np.random.default_rng(0).uniform(-0.5, 0.5, (2, 64, 96, 3)).astype(np.float32),
              _photo_batch(meta, (64, 96))):  # fmt: skip
        a, s = _run(normal, x), _run(sdk, x)
        assert float(np.abs(a["paf_out"]).max()) > 0.05, "the test model must have outputs of a real magnitude"
        assert float(np.abs(s[SDK_HEAT] - a["heatmap_out"]).max()) <= 1e-5
        assert float(np.abs(s[SDK_PAF] - upsample_nearest(a["paf_out"], 4)).max()) <= 1e-5
        # the check can fail: the PAF is not the normal one at its own size, nor a bilinear upsampling of it
        import cv2

        bil = np.stack([cv2.resize(p, (48, 32), interpolation=cv2.INTER_LINEAR) for p in a["paf_out"]])
        assert float(np.abs(s[SDK_PAF] - bil).max()) > 1e-3


@pytest.mark.slow  # two tf2onnx exports (the module's fixture)
def test_predictor_on_the_sdk_export_finds_the_same_peaks(exports, pose):
    """The tiny random network: the same decoder on both files gives the same heatmap peaks (identical heatmaps)
    and the same people, whatever they are (a random network's people are few and arbitrary)."""
    from bpnet_core.config import infer_spec_from_model
    from bpnet_core.fileio import read_image
    from bpnet_core.infer import Predictor
    from bpnet_core.runners import load_runner

    normal, _, sdk, _ = exports
    image = read_image(PHOTO)
    a, b = load_runner(normal), load_runner(sdk)
    spec = infer_spec_from_model(a.meta, ["heatmap_threshold=0.02", "paf_threshold=0.0"])
    ra, rb = Predictor(a, spec)(image), Predictor(b, spec)(image)
    np.testing.assert_allclose(ra.heatmaps, rb.heatmaps, atol=1e-5)
    assert rb.pafs.shape[:2] == (ra.pafs.shape[0] * 4, ra.pafs.shape[1] * 4)
    worst, differ, total = _same_people(ra.keypoints, rb.keypoints, ra.scale)
    print(f"tiny network: {len(ra.keypoints)} people, {total} joints, {differ} differ, worst {worst:.2f} px")


def _same_people(
    ka: np.ndarray, kb: np.ndarray, scale: float, tol_px: float = 1.0, max_joint_diff: float = 0.02
) -> tuple[float, int, int]:
    """The same people in both sets: each person of ``ka`` has a counterpart in ``kb`` whose joints, where both have
    them, lie within ``tol_px`` network-input pixels; at most ``max_joint_diff`` of all joints are present in only
    one of the pair (a borderline limb: the decoder samples the ×4 PAFs on their own grid). Returns (largest joint
    distance in input pixels, joints present in only one, joints in all)."""
    assert len(ka) == len(kb), (len(ka), len(kb))
    worst, differ, total = 0.0, 0, 0
    used: set[int] = set()
    for p in ka:
        best, key = None, (np.inf, np.inf)
        for j, q in enumerate(kb):
            both = (p[:, 2] > 0) & (q[:, 2] > 0)
            if j in used or both.sum() < 2:
                continue
            d = float(np.max(np.hypot(*(p[both, :2] - q[both, :2]).T))) * scale
            k = (int(((p[:, 2] > 0) != (q[:, 2] > 0)).sum()), d)
            if k < key:
                best, key = j, k
        assert best is not None and key[1] <= tol_px, f"no counterpart within {tol_px} px (best {key[1]:.2f})"
        used.add(best)
        worst, differ, total = max(worst, key[1]), differ + key[0], total + int((p[:, 2] > 0).sum())
    assert differ <= max_joint_diff * max(total, 1), f"{differ} of {total} joints differ"
    return worst, differ, total


def _rendered_network(pose, tmp_path, hw=(256, 256)):
    """A 'network' (ONNX) whose outputs are the maps rendered from the photo's annotations (input-independent), with
    the contract of a normal bpnet export (last stage, stride 8)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from bpnet_core.export.onnx import set_meta
    from bpnet_core.fileio import read_image
    from bpnet_core.meta import bpnet_meta
    from bpnet_core.preprocess import prepare
    from bpnet_core.runners.rendered import RenderedMapsSource, Transform

    meta = bpnet_meta(pose, 3, ["heatmap_out", "paf_out"], input_hw=hw, name="rendered")
    src = RenderedMapsSource(SAMPLE_JSON, SAMPLE, pose)
    pre = prepare(read_image(PHOTO), meta, hw, "pad_image_input")
    heat, paf = src.predict_with_transforms(pre.batch, [Transform(str(PHOTO), pre.matrix)], stage=None)
    nodes = [helper.make_node("ReduceMean", ["input_1"], ["m"], axes=[1, 2, 3], keepdims=1),
             helper.make_node("Mul", ["m", "zero"], ["z"]),
             helper.make_node("Add", ["z", "heat_c"], ["heatmap_out"]),
             helper.make_node("Add", ["z", "paf_c"], ["paf_out"])]  # fmt: skip
    h, w = hw
    graph = helper.make_graph(
        nodes, "rendered", [helper.make_tensor_value_info("input_1", TensorProto.FLOAT, ["N", h, w, 3])],
        [helper.make_tensor_value_info("heatmap_out", TensorProto.FLOAT, ["N", h // 8, w // 8, 19]),
         helper.make_tensor_value_info("paf_out", TensorProto.FLOAT, ["N", h // 8, w // 8, 38])],
        [numpy_helper.from_array(np.zeros((), np.float32), "zero"),
         numpy_helper.from_array(np.asarray(heat, np.float32), "heat_c"),
         numpy_helper.from_array(np.asarray(paf, np.float32), "paf_c")])  # fmt: skip
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    set_meta(proto, meta)
    onnx.save(proto, str(tmp_path / "rendered.onnx"))
    return proto, meta


def test_sdk_graph_of_a_network_with_people_decodes_the_same_people(pose, tmp_path):
    import onnx

    from bpnet_core.config import infer_spec_from_model
    from bpnet_core.export.sdk import make_sdk_model
    from bpnet_core.fileio import read_image
    from bpnet_core.infer import Predictor
    from bpnet_core.runners import load_runner

    proto, meta = _rendered_network(pose, tmp_path)
    batch = _photo_batch(meta, (256, 256))
    sdk_proto, sdk_meta, report = make_sdk_model(proto, meta, 4, batch)
    assert report["max_abs_diff"] <= 1e-5 and sdk_meta.pafs().stride == 2
    onnx.save(sdk_proto, str(tmp_path / "rendered_sdk.onnx"))
    a, b = load_runner(tmp_path / "rendered.onnx"), load_runner(tmp_path / "rendered_sdk.onnx")
    spec = infer_spec_from_model(meta)
    image = read_image(PHOTO)
    ra, rb = Predictor(a, spec)(image), Predictor(b, spec)(image)
    assert len(ra.keypoints) >= 4, "the rendered network must show people"
    worst, differ, total = _same_people(ra.keypoints, rb.keypoints, ra.scale)
    print(f"rendered network: {len(ra.keypoints)} people, {total} joints, {differ} differ, worst {worst:.2f} px")
    assert worst <= 1.0
    np.testing.assert_allclose(sorted(ra.scores), sorted(rb.scores), atol=0.05)
    # the check can fail: the PAFs read at the wrong stride (8 instead of 2) lose the people
    wrong = load_runner(tmp_path / "rendered_sdk.onnx")
    from bpnet_core.meta import MapOutput, StageOutputs

    bad = sdk_meta.with_changes(outputs=(StageOutputs(3, sdk_meta.heatmaps(), MapOutput(
        "conv2d_transpose_1/BiasAdd:0", 0, 38, 8)),))  # fmt: skip
    wrong.meta = bad
    with pytest.raises((BpnetError, AssertionError)):
        _same_people(ra.keypoints, Predictor(wrong, spec)(image).keypoints, ra.scale)


def test_sdk_export_of_an_imported_network_with_one_concat_output(pose, tmp_path, capsys):
    """An imported network whose one output holds heatmaps then PAFs (OpenPose's ``concat_stage7``), raw BGR input:
    ``bpnet export --sdk_compatible_model`` slices the maps out, the SDK file decodes the same people, and
    ``deepstream_config`` turns its contract into net-scale-factor 1, offsets 0, BGR."""
    import onnx
    from onnx import helper

    from bpnet_core.cli import main
    from bpnet_core.config import infer_spec_from_model
    from bpnet_core.export.onnx import set_meta
    from bpnet_core.fileio import read_image
    from bpnet_core.infer import Predictor
    from bpnet_core.meta import MapOutput, StageOutputs
    from bpnet_core.runners import load_runner

    proto, meta = _rendered_network(pose, tmp_path)
    g = proto.graph
    g.node.append(helper.make_node("Concat", ["heatmap_out", "paf_out"], ["Openpose/concat_stage7:0"], axis=3))
    del g.output[:]
    g.output.append(helper.make_tensor_value_info("Openpose/concat_stage7:0", onnx.TensorProto.FLOAT,
                                                  ["N", 32, 32, 57]))  # fmt: skip
    cmeta = meta.with_changes(
        name="concat",
        color="BGR",
        normalization=None,
        outputs=(
            StageOutputs(
                3, MapOutput("Openpose/concat_stage7:0", 0, 19, 8), MapOutput("Openpose/concat_stage7:0", 19, 57, 8)
            ),
        ),
    )
    set_meta(proto, cmeta)
    src = tmp_path / "concat.onnx"
    onnx.save(proto, str(src))
    out = tmp_path / "ds" / "concat_ds.onnx"
    (tmp_path / "ds").mkdir()
    assert main(["export", "-m", str(src), "-o", str(out), "--sdk_compatible_model", "-d", "256,256,3"]) == 0
    assert "vs the source: max abs diff 0.0e+00" in capsys.readouterr().out
    names = [o.name for o in onnx.load(str(out)).graph.output]
    assert names == ["conv2d_transpose_1/BiasAdd:0", "heatmap_out/BiasAdd:0"]
    a, b = load_runner(src), load_runner(out)
    assert b.meta.input_name == "input_1:0" and b.meta.pafs().stride == 2 and b.meta.color == "BGR"
    assert b.meta.input_hw == (256, 256)
    dims = [d.dim_value for d in onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim[1:]]
    assert dims == [256, 256, 3]
    spec = infer_spec_from_model(cmeta)
    image = read_image(PHOTO)
    ra, rb = Predictor(a, spec)(image), Predictor(b, spec)(image)
    assert len(ra.keypoints) >= 4
    worst, _, _ = _same_people(ra.keypoints, rb.keypoints, ra.scale)
    assert worst <= 1.0
    assert main(["deepstream_config", "-m", str(out), "-o", str(tmp_path / "ds"), "-d", "256,256,3"]) == 0
    pgie = _pgie(tmp_path / "ds" / "bodypose2d_pgie_config.txt")
    assert (pgie["net-scale-factor"], pgie["offsets"], pgie["model-color-format"]) == ("1", "0;0;0", "1")
    assert pgie["infer-dims"] == "3;256;256" and pgie["network-input-order"] == "1"
    # an FP16/INT8 request for an imported network: one line, nothing written
    bad = tmp_path / "ds" / "bad.onnx"
    assert main(["export", "-m", str(src), "-o", str(bad), "--sdk_compatible_model", "--data_type", "fp16"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "writes FP32 ONNX" in err[0] and not bad.exists()


# ---------------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("ratio, words", [("2.5", "positive integer"), ("0", "positive integer"),
                                          ("-4", "positive integer"), ("x", "positive integer"),
                                          ("3", "does not divide")])  # fmt: skip
def test_sdk_export_bad_upsample_ratio(ratio, words, model_file, tmp_path, capsys):
    from bpnet_core.cli import main

    code = main(["export", "-m", str(model_file), "-o", str(tmp_path / "m.onnx"), "--sdk_compatible_model",
                 "-u", ratio])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and words in err[0] and "upsample_ratio" in err[0], err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("extra, words", [(["-i", "channels_first"], "NHWC"), (["-t", "openvino"], "--backend onnx")])
def test_sdk_export_bad_flags(extra, words, model_file, tmp_path, capsys):
    from bpnet_core.cli import main

    out = tmp_path / ("m.xml" if "openvino" in extra else "m.onnx")
    code = main(["export", "-m", str(model_file), "-o", str(out), "--sdk_compatible_model"] + extra)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and words in err[0], err
    assert list(tmp_path.iterdir()) == []


def test_sdk_export_of_a_model_without_its_last_stage(keras_model, pose, tmp_path):
    import keras

    from bpnet_core.export import export_model

    truncated = keras.Model(keras_model.inputs, [keras_model.outputs[0], keras_model.outputs[2]], name="truncated")
    with pytest.raises(BpnetError, match="no last stage") as e:
        export_model(truncated, tmp_path / "t.onnx", input_dims="64,64,3", sdk_compatible_model=True, pose=pose)
    assert "\n" not in str(e.value) and "heatmap_stage1" in str(e.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow  # a tf2onnx export
def test_sdk_export_cli_ratio_2(model_file, tmp_path, capsys):
    from bpnet_core.cli import main
    from bpnet_core.meta import read_meta

    out = tmp_path / "sdk2.onnx"
    assert main(["export", "-m", str(model_file), "-o", str(out), "-d", "64,64,3", "--sdk_compatible_model",
                 "-u", "2"]) == 0  # fmt: skip
    assert "SDK-compatible (PAF x2 → stride 4)" in capsys.readouterr().out
    _, outs = _io(out)
    assert outs == [(SDK_PAF, outs[0][1][:1] + [16, 16, 38]), (SDK_HEAT, outs[1][1][:1] + [8, 8, 19])]
    assert read_meta(out).pafs().stride == 4


# ---------------------------------------------------------------------------------------------------- deployable card


def _without_meta(src: Path, dst: Path, swap: bool = False) -> Path:
    """An ONNX file as NVIDIA ships it: the deployable layout without a bpnet contract (``swap``: outputs named the
    wrong way round)."""
    import onnx

    from bpnet_core.export.onnx import _rename_tensor

    proto = onnx.load(str(src))
    del proto.metadata_props[:]
    if swap:
        _rename_tensor(proto.graph, SDK_PAF, "tmp")
        _rename_tensor(proto.graph, SDK_HEAT, SDK_PAF)
        _rename_tensor(proto.graph, "tmp", SDK_HEAT)
        for o in proto.graph.output:
            o.name = {SDK_PAF: SDK_HEAT, SDK_HEAT: SDK_PAF}[o.name]
    onnx.save(proto, str(dst))
    return dst


@pytest.mark.slow
def test_deployable_card_imports_and_runs_an_nvidia_layout_onnx(model_file, pose, tmp_path, capsys):
    """NVIDIA's deployable layout (here: a dynamic-size SDK export with its contract removed, as NGC's file has
    none) imports with the shipped card and runs through the Predictor at 288x384, letterboxed."""
    from bpnet_core.cli import main
    from bpnet_core.export import export_model
    from bpnet_core.fileio import read_image
    from bpnet_core.infer import Predictor
    from bpnet_core.meta import read_meta
    from bpnet_core.runners import load_runner

    export_model(model_file, tmp_path / "sdk.onnx", sdk_compatible_model=True, pose=pose)
    ngc = _without_meta(tmp_path / "sdk.onnx", tmp_path / "ngc.onnx")
    with pytest.raises(BpnetError, match="no bpnet model contract"):
        read_meta(ngc)
    out = tmp_path / "imported.onnx"
    assert main(["import_model", "-m", str(ngc), "--card", "tao_bodyposenet_deployable", "-o", str(out)]) == 0
    meta = read_meta(out)
    assert meta.input_name == SDK_IN and meta.layout == "NHWC" and meta.color == "RGB"
    assert meta.normalization.scale == (256.0,) * 3 and meta.normalization.offset == (0.5,) * 3
    assert meta.input_hw == (288, 384) and meta.inference["keep_aspect_ratio_mode"] == "letterbox"
    assert (meta.heatmaps().name, meta.heatmaps().stride, meta.pafs().name, meta.pafs().stride) == (
        SDK_HEAT, 8, SDK_PAF, 2)  # fmt: skip
    assert meta.preprocessing.pad_value == 0
    runner = load_runner(out)
    result = Predictor(runner)(read_image(PHOTO))  # 427x640 photo → 288x384 letterbox: 256x384 content, 16 px bands
    assert result.input_hw == (288, 384) and result.heatmaps.shape == (36, 48, 19)
    assert result.pafs.shape[:2] == (144, 192)
    assert np.isclose(result.scale, 0.6) and np.isclose(result.matrix[1, 2], 16.0, atol=0.5)
    # the imported file computes what the SDK export computes
    x = np.random.default_rng(2).uniform(-0.5, 0.5, (1, 288, 384, 3)).astype(np.float32)
    a, b = _run(tmp_path / "sdk.onnx", x), _run(out, x)
    assert all(np.array_equal(a[k], b[k]) for k in (SDK_HEAT, SDK_PAF))
    # and it exports again like any bpnet model (the parity check compares PAFs at their own, finer stride)
    r = export_model(out, tmp_path / "imported16.onnx", data_type="fp16")
    assert r["parity"]["snr_db"] > 30 and read_meta(tmp_path / "imported16.onnx").pafs().stride == 2


@pytest.mark.slow
def test_deployable_card_refuses_swapped_or_missing_outputs(model_file, pose, tmp_path, capsys):
    import onnx

    from bpnet_core.cli import main
    from bpnet_core.export import export_model

    export_model(model_file, tmp_path / "sdk.onnx", sdk_compatible_model=True, pose=pose)
    swapped = _without_meta(tmp_path / "sdk.onnx", tmp_path / "swapped.onnx", swap=True)
    missing = tmp_path / "missing.onnx"
    proto = onnx.load(str(swapped))
    del proto.graph.output[0]
    onnx.save(proto, str(missing))
    out = tmp_path / "out"
    out.mkdir()
    for src, words in ((swapped, "channels"), (missing, "not in the model")):
        code = main(["import_model", "-m", str(src), "--card", "tao_bodyposenet_deployable", "-o",
                     str(out / "x.onnx")])  # fmt: skip
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and words in err[0] and str(src) in err[0], err
        assert list(out.iterdir()) == []


# ------------------------------------------------------------------------------------------------ DeepStream configs


def _pgie(path) -> dict:
    import configparser

    cp = configparser.ConfigParser(interpolation=None)
    cp.optionxform = str
    assert cp.read(path) == [str(path)]
    assert cp.sections() == ["property"]
    return dict(cp["property"])


@pytest.mark.slow  # the tf2onnx exports of the module's fixture
def test_deepstream_configs_follow_the_model_contract(exports, pose, tmp_path, capsys):
    from bpnet_core.cli import main
    from bpnet_core.export.deepstream import read_model_config

    _, _, sdk, _ = exports
    out = tmp_path / "ds"
    assert main(["deepstream_config", "-m", str(sdk), "-o", str(out)]) == 0
    assert "infer-dims 3;64;96" in capsys.readouterr().out
    p = _pgie(out / "bodypose2d_pgie_config.txt")
    expect = {"infer-dims": "3;64;96", "network-input-order": "1", "model-color-format": "0",
              "net-scale-factor": "0.00390625", "offsets": "128;128;128",
              "output-blob-names": f"{SDK_PAF};{SDK_HEAT}", "maintain-aspect-ratio": "1", "symmetric-padding": "1",
              "scaling-filter": "1", "network-mode": "2", "batch-size": "32", "network-type": "100",
              "output-tensor-meta": "1", "gpu-id": "0"}  # fmt: skip
    assert {k: p.get(k) for k in expect} == expect
    assert "int8-calib-file" not in p
    assert (out / p["onnx-file"]).resolve() == sdk.resolve()
    assert p["model-engine-file"] == p["onnx-file"] + "_b32_gpu0_fp16.engine"
    m = read_model_config(out / "bodypose2d_model_config.txt")
    consts = {"numJoints": 18, "nmsWindowSize": 7, "featUpsamplingFactor": 4, "threshHeat": 0.05,
              "threshVectorScore": 0.05, "threshVectorCnt1": 8, "threshPartCnt": 4, "threshHumanScore": 0.4,
              "batchSize": 32}  # fmt: skip
    assert {k: m.get(k) for k in consts} == consts
    assert m["jointEdges"] == [tuple(x) for x in pose.limbs] and len(m["jointEdges"]) == 19
    assert m["jointEdges"][0] == (1, 8)  # TAO's first limb: neck → right hip (1-based [2, 9])
    assert m["connections"] == m["jointEdges"]


@pytest.mark.slow  # a tf2onnx export
def test_deepstream_config_int8_ratio_and_custom_skeleton(keras_model, pose, tmp_path):
    """INT8 with a calibration cache; a ×2 SDK export (featUpsamplingFactor 2); a 17-joint pose config: numJoints and
    jointEdges follow the model's pose config; a dynamic model takes -d."""
    import onnx

    from bpnet_core.export import export_model
    from bpnet_core.export.deepstream import deepstream_config, read_model_config
    from bpnet_core.export.onnx import get_meta, set_meta
    from bpnet_core.skeleton import PoseConfig

    export_model(keras_model, tmp_path / "sdk2.onnx", sdk_compatible_model=True, upsample_ratio=2, pose=pose)
    cache = tmp_path / "cal.txt"
    cache.write_text("TRT-8601-EntropyCalibration2\ninput_1:0: 3c010a14\n")
    r = deepstream_config(tmp_path / "sdk2.onnx", tmp_path / "a", input_dims="288,384,3", batch_size=8,
                          int8_calib_file=cache)  # fmt: skip
    p = _pgie(r["pgie"])
    assert (p["network-mode"], p["batch-size"], p["infer-dims"]) == ("1", "8", "3;288;384")
    assert (tmp_path / "a" / p["int8-calib-file"]).resolve() == cache.resolve()
    m = read_model_config(r["model_config"])
    assert (m["featUpsamplingFactor"], m["batchSize"]) == (2, 8)
    # a custom skeleton: the contract's pose config decides numJoints and jointEdges
    coco = PoseConfig.from_json(ROOT / "model_pose_config" / "coco_17joints.json")
    proto = onnx.load(str(tmp_path / "sdk2.onnx"))
    meta = get_meta(proto)
    from bpnet_core.meta import MapOutput, StageOutputs

    s = meta.stage()
    custom = meta.with_changes(
        pose=coco,
        outputs=(
            StageOutputs(
                s.stage,
                MapOutput(s.heatmaps.name, 0, coco.num_heatmap_channels, 8),
                MapOutput(s.pafs.name, 0, coco.num_paf_channels, 4),
            ),
        ),
    )
    set_meta(proto, custom)
    onnx.save(proto, str(tmp_path / "coco.onnx"))
    m = read_model_config(deepstream_config(tmp_path / "coco.onnx", tmp_path / "b")["model_config"])
    assert m["numJoints"] == 17 and m["jointEdges"] == [tuple(x) for x in coco.limbs]
    assert _pgie(tmp_path / "b" / "bodypose2d_pgie_config.txt")["infer-dims"] == "3;288;384"  # dynamic: TAO's size


@pytest.mark.parametrize("case, words", [
    ("normal", "not an SDK-compatible model"),
    ("dims", "is built for 64x96"),
    ("int8", "give --int8_calib_file"),
    ("calib", "--int8_calib_file not found"),
    ("keras", "ONNX model"),
    ("etlt", "encrypted"),
    ("batch", "--batch_size"),
])  # fmt: skip
@pytest.mark.slow  # the tf2onnx exports of the module's fixture
def test_deepstream_config_bad_input(case, words, exports, model_file, tmp_path, capsys):
    from bpnet_core.cli import main

    normal, _, sdk, _ = exports
    out = tmp_path / "ds"
    model = {"normal": normal, "keras": model_file, "etlt": tmp_path / "model.etlt"}.get(case, sdk)
    extra = {
        "dims": ["-d", "288,384,3"],
        "int8": ["--network_mode", "int8"],
        "calib": ["--int8_calib_file", str(tmp_path / "nope.txt")],
        "batch": ["--batch_size", "0"],
    }.get(case, [])
    code = main(["deepstream_config", "-m", str(model), "-o", str(out)] + extra)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and words in err[0], err
    assert not out.exists()


# ---------------------------------------------------------------------------------------------------- INT8 cache


def test_tensorrt_calibration_cache_text_round_trip(tmp_path):
    """The text format of NVIDIA's int8_calibration_288_384.txt: header, then `name: <big-endian float32 hex>`;
    parse → write gives the same bytes, write → parse the same float32 scales."""
    import struct

    from bpnet_core.export.trt_cache import cache_header, format_calibration_cache, write_calibration_cache
    from bpnet_core.int8.calibration import read_calibration_cache

    text = ("TRT-7000-EntropyCalibration2\ninput_1:0: 3c010a14\nblock_1a_conv_1/convolution: 3d5a4f1e\n"
            "heatmap_out/BiasAdd:0: 3c8b3d57\nconv2d_transpose_1/BiasAdd:0: 3c2d1c8a\n")  # fmt: skip
    src = tmp_path / "int8_calibration_288_384.txt"
    src.write_text(text)
    scales = read_calibration_cache(src)
    assert list(scales) == ["input_1:0", "block_1a_conv_1/convolution", "heatmap_out/BiasAdd:0",
                            "conv2d_transpose_1/BiasAdd:0"]  # fmt: skip
    assert scales["input_1:0"] == struct.unpack(">f", bytes.fromhex("3c010a14"))[0]
    out = write_calibration_cache(tmp_path / "copy.txt", scales, cache_header(src))
    assert out.read_bytes() == text.encode("ascii")
    rng = np.random.default_rng(0)
    mine = {f"t{i}/BiasAdd:0": float(np.float32(v)) for i, v in enumerate(rng.uniform(1e-4, 1.0, 50))}
    p = write_calibration_cache(tmp_path / "mine.txt", mine)
    assert read_calibration_cache(p) == mine  # float32 values: exact
    with pytest.raises(BpnetError, match="finite"):
        format_calibration_cache({"x": float("nan")})
    with pytest.raises(BpnetError, match="header"):
        format_calibration_cache(mine, "EntropyCalibration2")
