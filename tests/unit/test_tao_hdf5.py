"""TAO 5 ``.hdf5`` models (Keras 2 layer names) loaded into bpnet's Keras 3 model through the name map.

The files are written here with h5py in the layout Keras 2's ``model.save`` uses (``model_weights/<layer>/<layer>/
kernel:0`` + the ``layer_names`` / ``weight_names`` attributes), with TAO's layer names and shapes (TAO's
``nvidia_tao_tf1/cv/bpnet/models/bpnet_lite_model.py``: ``block_1a_conv_1`` …, ``stage1/conv1`` …, ``paf_out``,
``heatmap_out``) — written out here independently of bpnet's map.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")
h5py = pytest.importorskip("h5py")

from bpnet_core.cli import main  # noqa: E402
from bpnet_core.config import load_train_spec  # noqa: E402
from bpnet_core.errors import BpnetError  # noqa: E402
from bpnet_core.model import build_model, load_bpnet_model, model_from_spec  # noqa: E402
from bpnet_core.model.tao import bpnet_to_tao, is_tao_hdf5, load_tao_hdf5, tao_to_bpnet  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TAO_SPEC = ROOT / "specs" / "bpnet_train_m1_coco.yaml"
TAO_3_STAGE_PARAMS = 16_777_835  # TAO's unit test: nvidia_tao_tf1/cv/bpnet/models/test_bpnet_lite_model.py
SUB = "abcd"
TINY = {"stages": 2, "width_multiplier": 0.125, "stageT_kernel_sizes": [3, 3]}


def tao_layers(stages=3, width=1.0, heat=19, paf=38, stage1_k=(3, 3, 3), stage_t_k=(7, 7, 7, 7, 7)):
    """TAO's layers in model order: ``[(tao name, bpnet name, [(weight name, shape)])]`` (weightless ones too)."""

    def w(c):
        return max(8, int(round(c * width)))

    out = []
    cin = 3
    vgg = [(1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 2, 512), (6, 1, 256)]
    for block, n, filters in vgg:
        for i in range(n):
            base = f"block_{block}{SUB[i]}"
            ours = "interface_conv4_3" if block == 6 else f"block{block}_conv{i + 1}"
            c = w(filters)
            out.append((f"{base}_conv_1", ours, [("kernel:0", (3, 3, cin, c))]))
            out.append(
                (
                    f"{base}_bn_1",
                    f"{ours}_bn",
                    [(k, (c,)) for k in ("gamma:0", "beta:0", "moving_mean:0", "moving_variance:0")],
                )
            )
            out.append((f"{base}_relu", None, []))
            cin = c
    feat = w(128)
    out.append(
        ("channel_reduction_conv", "channel_reduction_conv", [("kernel:0", (3, 3, cin, feat)), ("bias:0", (feat,))])
    )
    out.append(("channel_reduction_conv/relu", None, []))

    def conv(tao, ours, k, ci, co, relu=True):
        out.append((tao, ours, [("kernel:0", (k, k, ci, co)), ("bias:0", (co,))]))
        if relu:
            out.append((f"{tao}/relu", None, []))

    for t in range(1, stages + 1):
        last = t == stages
        if t == 1:
            ci, kernels, branch = feat, stage1_k, w(512)
        else:
            out.append((f"stage{t}/concat", None, []))
            ci, kernels, branch = feat + heat + paf, stage_t_k, w(128)
        for i, k in enumerate(kernels, start=1):
            conv(f"stage{t}/conv{i}", f"stage{t}_conv{i}", k, ci, w(128))
            ci = w(128)
        n = len(kernels) + 1
        conv(f"stage{t}/paf/conv{n}", f"stage{t}_paf_conv{n}", 1, ci, branch)
        conv(f"stage{t}/cmap/conv{n}", f"stage{t}_heat_conv{n}", 1, ci, branch)
        for tao_branch, ours, channels in (("paf", "paf", paf), ("heat", "heatmap", heat)):
            name = f"{ours}_out" if last else None
            conv(
                name or f"stage{t}/{tao_branch}_branch/out", name or f"{ours}_stage{t}", 1, branch, channels, relu=False
            )
    return out


def write_tao_hdf5(path, layers, model_save=True, change=None, drop=(), rng=None):
    """A Keras 2 file: layer ``i``'s weight ``j`` is the constant ``10 i + j + 1`` (with ``rng``: small random weights,
    BN variances ≥ 1, a network whose outputs stay finite). ``change``: {tao name: shapes}."""
    change = change or {}
    with h5py.File(path, "w") as h5:
        h5.attrs["keras_version"] = b"2.9.0"
        h5.attrs["backend"] = b"tensorflow"
        root = h5.create_group("model_weights") if model_save else h5
        names = [name for name, _, _ in layers if name not in drop]
        root.attrs["layer_names"] = np.array([n.encode() for n in names])
        for i, (name, _, weights) in enumerate(layers):
            if name in drop:
                continue
            g = root.require_group(name)
            shapes = change.get(name, [s for _, s in weights])
            wnames = [f"{name}/{wn}" for wn, _ in weights]
            g.attrs["weight_names"] = np.array([n.encode() for n in wnames])
            for j, (wn, shape) in enumerate(zip(wnames, shapes)):
                if rng is None:
                    data = np.full(shape, 10 * i + j + 1, np.float32)
                else:
                    data = rng.normal(0, 0.1, shape).astype(np.float32)
                    data = 1 + np.abs(data) if wn.endswith(("moving_variance:0", "gamma:0")) else data
                g.create_dataset(wn, data=data)
    return path


def constants(layers):
    """{bpnet layer: [constant per weight]} for the file :func:`write_tao_hdf5` writes."""
    return {ours: [10 * i + j + 1 for j in range(len(w))] for i, (_, ours, w) in enumerate(layers) if ours}


def check_constants(model, layers):
    expected = constants(layers)
    seen = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        want = expected[layer.name]
        got = [np.asarray(v) for v in layer.get_weights()]
        assert len(got) == len(want), layer.name
        for g, c in zip(got, want):
            assert np.all(g == c), f"{layer.name}: expected {c}, got {g.ravel()[:3]}"
        seen.add(layer.name)
    assert seen == set(expected)


@pytest.fixture(scope="module")
def tao_spec():
    return load_train_spec(TAO_SPEC)


@pytest.fixture(scope="module")
def full_model(tao_spec, pose):
    """bpnet's model of TAO's spec (3 stages, VGG), built once."""
    return build_model(tao_spec, pose)


def test_parameter_count_matches_tao(full_model):
    layers = tao_layers()
    in_file = sum(int(np.prod(s)) for _, _, w in layers for _, s in w)
    assert in_file == TAO_3_STAGE_PARAMS
    assert full_model.count_params() == TAO_3_STAGE_PARAMS


def test_every_tao_layer_lands_in_its_bpnet_layer(full_model, tmp_path, pose):
    layers = tao_layers()
    path = write_tao_hdf5(tmp_path / "model.hdf5", layers)
    assert is_tao_hdf5(path)
    model = load_tao_hdf5(path, full_model, pose)
    assert model is full_model
    check_constants(model, layers)
    # the map both ways, on every name of the file
    for tao, ours, weights in layers:
        if weights:
            assert tao_to_bpnet(tao) == ours and bpnet_to_tao(ours) == tao


def test_mismatching_file_names_the_layers(full_model, tmp_path, pose):
    layers = tao_layers()
    path = write_tao_hdf5(tmp_path / "bad.hdf5", layers,
                          change={"stage2/conv3": [(7, 7, 128, 96), (96,)]}, drop=("block_3c_bn_1",))  # fmt: skip
    before = full_model.get_layer("block1_conv1").get_weights()[0].copy()
    with pytest.raises(BpnetError) as e:
        load_tao_hdf5(path, full_model, pose)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg
    assert "stage2/conv3 (stage2_conv3): model 7x7x128x128 + 128, file 7x7x128x96 + 96" in msg
    assert "1 layers not in the file: block_3c_bn_1 (block3_conv3_bn)" in msg
    assert np.array_equal(full_model.get_layer("block1_conv1").get_weights()[0], before)  # nothing set


def test_other_skeleton_and_more_stages_are_refused(tmp_path, pose):
    model = build_model(TINY, pose)
    path = write_tao_hdf5(tmp_path / "coco17.hdf5", tao_layers(stages=2, width=0.125, heat=18, paf=32,
                                                                stage_t_k=(3, 3)))  # fmt: skip
    with pytest.raises(BpnetError, match=r"5 layers have other shapes: .*stage1/paf_branch/out \(paf_stage1\)"):
        load_tao_hdf5(path, model, pose)
    path = write_tao_hdf5(tmp_path / "s3.hdf5", tao_layers(stages=3, width=0.125, stage_t_k=(3, 3)))
    with pytest.raises(
        BpnetError,
        match=r"TAO model \(3 stages\) does not fit this model \(2 stages.*"
        r"2 layers not in the file: heatmap_out, paf_out; 8 layers of the file not in the model: "
        r"stage2/paf_branch/out, stage2/heat_branch/out, stage3/conv1",
    ):
        load_tao_hdf5(path, build_model(TINY, pose), pose)


def test_save_weights_layout_and_pruned_widths(tmp_path, pose):
    layers = tao_layers(stages=2, width=0.125, stage_t_k=(3, 3))
    plain = write_tao_hdf5(tmp_path / "w.h5", layers, model_save=False)
    check_constants(load_tao_hdf5(plain, TINY, pose), layers)
    # a TAO-pruned model: stage2/conv1 keeps 8 of 16 filters, stage2/conv2 reads 8 channels
    pruned = {"stage2/conv1": [(3, 3, 16 + 19 + 38, 8), (8,)], "stage2/conv2": [(3, 3, 8, 16), (16,)]}
    path = write_tao_hdf5(tmp_path / "pruned.hdf5", layers, change=pruned)
    with pytest.raises(BpnetError, match="2 layers have other shapes: stage2/conv1"):
        load_tao_hdf5(path, TINY, pose)
    model = load_tao_hdf5(path, TINY, pose, widths_from_file=True)
    assert model.get_layer("stage2_conv1").filters == 8
    assert np.all(model.get_layer("stage2_conv2").get_weights()[0] == constants(layers)["stage2_conv2"][0])


def test_pretrained_weights_in_the_train_spec(tmp_path, pose):
    layers = tao_layers(stages=2, width=0.125, stage_t_k=(3, 3))
    path = write_tao_hdf5(tmp_path / "tao.hdf5", layers)
    over = [f"model.{k}={v}" for k, v in TINY.items()] + [f"pretrained_weights={path}"]
    check_constants(model_from_spec(load_train_spec(TAO_SPEC, over), pose), layers)
    # fine-tuning with more stages than the file: the extra stage keeps its initialisation
    spec = load_train_spec(TAO_SPEC, over + ["model.stages=3"])
    model = model_from_spec(spec, pose)
    consts = constants(layers)
    assert np.all(model.get_layer("stage2_conv1").get_weights()[0] == consts["stage2_conv1"][0])
    # the file's last outputs (stage 2) go to stage 2's outputs, not to the model's last stage
    assert np.all(model.get_layer("heatmap_stage2").get_weights()[0] == consts["heatmap_out"][0])
    assert not np.any(model.get_layer("paf_out").get_weights()[0] == consts["paf_out"][0])
    # load_graph: all layers must be there
    with pytest.raises(BpnetError, match=r"layers not in the file: stage3/conv1 \(stage3_conv1\)"):
        model_from_spec(load_train_spec(TAO_SPEC, over + ["model.stages=3", "load_graph=true"]), pose)


def test_encrypted_files_are_refused(tmp_path, pose):
    for name in ("model.etlt", "model.tlt"):
        f = tmp_path / name
        f.write_bytes(b"\x00" * 16)
        with pytest.raises(BpnetError, match="encrypted TAO model; export it"):
            load_tao_hdf5(f, TINY, pose)
    over = [f"pretrained_weights={tmp_path / 'model.tlt'}"]
    with pytest.raises(BpnetError, match="encrypted TAO model"):
        model_from_spec(load_train_spec(TAO_SPEC, over), pose)


def test_import_tao_cli(tmp_path, capsys):
    layers = tao_layers(stages=2, width=0.125, stage_t_k=(3, 3))
    src = write_tao_hdf5(tmp_path / "tao.hdf5", layers)
    out = tmp_path / "bpnet.keras"
    sets = sum((["--set", f"model.{k}={v}"] for k, v in TINY.items()), [])
    assert main(["import_tao", "-m", str(src), "-e", str(TAO_SPEC), "-o", str(out), *sets]) == 0
    assert "imported TAO model" in capsys.readouterr().out
    model = load_bpnet_model(out)
    check_constants(model, layers)
    from bpnet_core.meta import read_meta

    meta = read_meta(out)
    assert meta.num_stages == 2
    # bad input: one line, exit 2, nothing written
    etlt = tmp_path / "m.etlt"
    etlt.write_bytes(b"x")
    bad = tmp_path / "bad.keras"
    for model_file in (etlt, src):
        argv = ["import_tao", "-m", str(model_file), "-e", str(TAO_SPEC), "-o", str(bad)]
        assert main(argv + sets + ["--set", "model.stages=3"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(model_file) in err[0]
        assert not bad.exists()


@pytest.mark.slow  # 5-13 s on 2 idle cores: make test runs it, make test-fast does not
def test_a_tao_hdf5_is_a_model_for_inference_evaluate_prune_and_export(tmp_path, capsys):
    """TAO's contract: ``-m model.hdf5`` works for inference / evaluate / prune / export, its architecture read off the
    file (or taken from the inference spec's ``train_spec``), and gives what the ``import_tao``'d model gives."""
    from bpnet_core.meta import read_meta
    from bpnet_core.model.tao import architecture_from_file
    from bpnet_core.runners import load_runner

    layers = tao_layers(stages=2, width=0.125, stage_t_k=(3, 3))
    src = write_tao_hdf5(tmp_path / "tao.hdf5", layers, rng=np.random.default_rng(0))
    assert architecture_from_file(src) == {"architecture": "vgg", "stages": 2, "stage1_kernel_sizes": [3, 3, 3],
                                           "stageT_kernel_sizes": [3, 3]}  # fmt: skip
    ref = tmp_path / "ref.keras"
    sets = sum((["--set", f"model.{k}={v}"] for k, v in TINY.items()), [])
    assert main(["import_tao", "-m", str(src), "-e", str(TAO_SPEC), "-o", str(ref), *sets]) == 0
    batch = np.random.default_rng(1).normal(0, 0.5, (1, 64, 96, 3)).astype(np.float32)
    want = load_runner(ref).predict(batch)
    direct = load_runner(src)
    assert direct.meta.num_stages == 2 and direct.meta.pose.name == read_meta(ref).pose.name
    for a, b in zip(direct.predict(batch), want):
        assert a.shape == b.shape and np.all(np.isfinite(a)) and np.allclose(a, b, atol=1e-6)
    # the inference spec's train_spec gives the architecture (TAO's key)
    spec_file = tmp_path / "train.yaml"
    import yaml

    train = yaml.safe_load(TAO_SPEC.read_text())
    train["model"].update(TINY)
    spec_file.write_text(yaml.safe_dump(train))
    for a, b in zip(load_runner(src, train_spec=spec_file).predict(batch), want):
        assert np.allclose(a, b, atol=1e-6)
    infer = tmp_path / "infer.yaml"
    infer.write_text(yaml.safe_dump({"train_spec": str(spec_file), "input_shape": [96, 96]}))
    image = ROOT / "tests" / "fixtures" / "coco_sample" / "000000000785.jpg"
    args = ["inference", "-i", str(infer), "-m", str(src), "--input", str(image), "-r", str(tmp_path / "inf")]
    assert main(args) == 0
    assert (tmp_path / "inf" / "detections.json").is_file()
    assert (
        main(
            [
                "evaluate",
                "-m",
                str(src),
                "--set",
                "input_shape=[96,96]",
                "-d",
                str(ROOT / "data_pose_config" / "coco_real_sample_spec.json"),
                "-r",
                str(tmp_path / "ev"),
            ]
        )
        == 0
    )
    assert (tmp_path / "ev" / "metrics.json").is_file()
    pruned = tmp_path / "pruned.keras"
    assert main(["prune", "-m", str(src), "-o", str(pruned), "-pth", "0.99", "-nf", "1", "-pg", "1"]) == 0
    assert read_meta(pruned).num_stages == 2
    assert load_bpnet_model(pruned).count_params() < load_bpnet_model(ref).count_params()
    onnx_file = tmp_path / "tao.onnx"
    assert main(["export", "-m", str(src), "-o", str(onnx_file)]) == 0 and read_meta(onnx_file).num_stages == 2
    capsys.readouterr()
    # not a TAO file: one line naming it, exit 2, nothing written
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as h5:
        h5.create_group("model_weights").attrs["layer_names"] = np.array([b"dense_1"])
    for argv in (["inference", "-m", str(other), "--input", str(image), "-r", str(tmp_path / "bad")],
                 ["prune", "-m", str(other), "-o", str(tmp_path / "bad.keras")],
                 ["export", "-m", str(other), "-o", str(tmp_path / "bad.onnx")]):  # fmt: skip
        assert main(argv) == 2, argv[0]
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(other) in err[0] and "not a TAO 5 BodyPoseNet" in err[0], err
    assert not (tmp_path / "bad").exists() and not (tmp_path / "bad.keras").exists()
    assert not (tmp_path / "bad.onnx").exists()
