"""Keras → ONNX (tf2onnx), the parity check against Keras, FP16 conversion and bpnet's ONNX metadata.

The exported graph (opset 17):

=================  =========================  ================================================================
tensor             shape                      meaning
=================  =========================  ================================================================
``input_1``        (N, H, W, 3) float32       normalised as the contract says (TAO: RGB / 256 − 0.5);
                                              ``channels_first``: (N, 3, H, W). N is dynamic
                                              (or ``--static_batch_size``); H, W dynamic, or fixed by ``-d``
``heatmap_stage1`` (N, H/8, W/8, J + 1)        one per exported stage (``heatmap_out`` for the last) …
``paf_stage1``     (N, H/8, W/8, 2L)           … in TAO's order: all heatmaps, then all PAFs
=================  =========================  ================================================================

Outputs stay NHWC in both data formats. The model's contract (:class:`~bpnet_core.meta.ModelMeta`: pose config,
strides, normalisation, layout, which output is which stage, precision) travels in the ONNX ``metadata_props``
under the key ``bpnet_meta``.

Size: ``-d H,W,3`` fixes H and W (like TAO; runners then force ``pad_image_input`` at that size, as TAO does for
TensorRT). Without ``-d`` the file accepts any H, W that are multiples of 8, like the ``.keras`` model (bpnet's
default, unlike TAO's fixed ``256,256,3``).
"""

from __future__ import annotations

import logging
import os
import re

import numpy as np

from bpnet_core.data.synthetic.scene import _render_scene
from bpnet_core.errors import BpnetError
from bpnet_core.fileio import read_image
from bpnet_core.int8.calibration import list_images
from bpnet_core.meta import META_KEY, REIMPORT_HINT, ModelMeta, bpnet_meta
from bpnet_core.meta import set_onnx_meta as set_meta  # noqa: F401 - the export modules' name for it
from bpnet_core.preprocess import prepare
from bpnet_core.sizes import parse_hw

log = logging.getLogger(__name__)

INPUT_NAME = "input_1"
OPSET = 17
PARITY_TOLERANCE = 1e-3
DEFAULT_CAL_HW = (256, 256)  # TAO's default -d 256,256,3: calibration / engine size when -d is not given


def parse_input_dims(value, stride: int = 8) -> tuple[int, int] | None:
    """``-d/--input_dims``: ``"H,W,C"`` (C = 3) or ``"H,W"`` → (H, W); ``None``/``""``/``"dynamic"`` → ``None``.

    H and W must be positive multiples of the model stride (8).
    """
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "dynamic", "none")):
        return None
    return parse_hw(value, what="-d/--input_dims", stride=stride, channels=True, max_side=8192, example="288,384,3")


# ---------------------------------------------------------------------------------------------------- conversion


def select_outputs(names: list[str], output_stages: str = "all") -> list[str]:
    """The model outputs to export, in TAO order: ``all`` stages, or the ``last`` stage's two."""
    if output_stages == "all":
        return list(names)
    if output_stages == "last":
        s = len(names) // 2
        return [names[s - 1], names[-1]]
    raise BpnetError(f"--output_stages must be all or last (got {output_stages!r})")


def keras_to_onnx(
    model,
    input_hw: tuple[int, int] | None = None,
    data_format: str = "channels_last",
    output_stages: str = "all",
    static_batch_size: int = -1,
    opset: int = OPSET,
):
    """Convert a bpnet Keras model with tf2onnx; returns an ``onnx.ModelProto`` (outputs named and ordered)."""
    import tensorflow as tf
    import tf2onnx

    from bpnet_core.model import output_names

    if data_format not in ("channels_last", "channels_first"):
        raise BpnetError(f"-i/--data_format must be channels_last or channels_first (got {data_format!r})")
    names = output_names(model)
    wanted = select_outputs(names, output_stages)
    batch = int(static_batch_size) if static_batch_size and static_batch_size > 0 else None
    h, w = input_hw if input_hw else (None, None)
    sig = (tf.TensorSpec((batch, h, w, 3), tf.float32, name=INPUT_NAME),)

    @tf.function(input_signature=sig)
    def forward(x):
        outs = model(x, training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        return {n: tf.identity(o, name=n) for n, o in zip(names, outs) if n in wanted}

    tf_logger = logging.getLogger("tf2onnx")
    level = tf_logger.level
    tf_logger.setLevel(logging.WARNING)
    try:
        proto, _ = tf2onnx.convert.from_function(
            forward, input_signature=sig, opset=opset,
            inputs_as_nchw=[INPUT_NAME] if data_format == "channels_first" else None,
        )  # fmt: skip
    finally:
        tf_logger.setLevel(level)
    by_name = {o.name: o for o in proto.graph.output}
    missing = [n for n in wanted if n not in by_name]
    if missing:
        raise BpnetError(f"tf2onnx did not produce the outputs {missing} (got {sorted(by_name)})")
    ordered = [by_name[n] for n in wanted]
    del proto.graph.output[:]
    proto.graph.output.extend(ordered)
    _stable_names(proto)
    return proto


_GENERATED = re.compile(r"__\d+")


def _stable_names(proto) -> None:
    """tf2onnx numbers the tensors it creates with a process-wide counter (``…mul_1__716:0``): renumber them in
    graph order, so the same model always gives the same tensor names (calibration caches are keyed by name)."""
    g = proto.graph
    mapping: dict[str, str] = {}
    for name in [i.name for i in g.initializer] + [o for n in g.node for o in n.output]:
        if name not in mapping and _GENERATED.search(name):
            mapping[name] = _GENERATED.sub(f"__{len(mapping)}", name)
    if not mapping:
        return
    for init in g.initializer:
        init.name = mapping.get(init.name, init.name)
    for node in g.node:
        for k, n in enumerate(node.input):
            node.input[k] = mapping.get(n, n)
        for k, n in enumerate(node.output):
            node.output[k] = mapping.get(n, n)
    for vi in list(g.value_info) + list(g.input) + list(g.output):
        vi.name = mapping.get(vi.name, vi.name)


def get_meta(proto, source: str = "model"):
    """The model contract stored in a proto (a one-line error when there is none)."""
    for p in proto.metadata_props:
        if p.key == META_KEY:
            return ModelMeta.from_json(p.value, source)
    raise BpnetError(f"{source}: no bpnet model contract in the ONNX file; {REIMPORT_HINT}")


def export_meta(source_meta, wanted: list[str], data_format: str, input_hw, num_stages: int, name: str):
    """The contract of an exported bpnet model: the source's pose and input (colour order, normalisation,
    preprocessing, recommended inference settings), the exported outputs (NHWC), the input layout and size of the
    export."""
    source_input = source_meta.input_contract().meta_kwargs()  # raw-pixel (in-graph) normalisation stays raw
    return bpnet_meta(source_meta.pose, num_stages, wanted, input_hw=input_hw, name=name, input_name=INPUT_NAME,
                      layout="NCHW" if data_format == "channels_first" else "NHWC",
                      provenance={**source_meta.provenance, "exported_from": source_meta.name},
                      **source_input)  # fmt: skip


# ---------------------------------------------------------------------------------------------------- parity


def parity_image(input_hw: tuple[int, int], image_dir: str | os.PathLike | None = None, seed: int = 0) -> np.ndarray:
    """A real-looking BGR image for the parity check: the first readable image of ``image_dir``, else a synthetic
    scene of people (bpnet's synthetic data generator), else smooth coloured noise."""
    if image_dir:
        for path in list_images(image_dir)[:20]:
            try:
                return read_image(path)
            except BpnetError:
                continue
    h, w = input_hw
    try:
        return _render_scene(np.random.default_rng(seed), h, w)[0]
    except Exception:  # noqa: BLE001 - any failure of the generator: fall back to noise
        import cv2

        rng = np.random.default_rng(seed)
        small = rng.integers(0, 256, (max(2, h // 16), max(2, w // 16), 3), dtype=np.uint8)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def parity_batch(input_hw: tuple[int, int], meta, image_dir=None) -> np.ndarray:
    """The parity input: :func:`parity_image` prepared exactly like inference (``pad_image_input``), NHWC."""
    return prepare(parity_image(input_hw, image_dir), meta, input_hw, "pad_image_input").batch


def onnx_session(model_or_path, providers: list[str] | None = None):
    """An ONNX Runtime session on the CPU (a proto, bytes or a path)."""
    import onnxruntime as ort

    src = model_or_path
    if hasattr(src, "SerializeToString"):
        src = src.SerializeToString()
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(src if isinstance(src, bytes) else str(src), opts,
                                providers=providers or ["CPUExecutionProvider"])  # fmt: skip


def compare_with_keras(model, session, batch: np.ndarray, data_format: str = "channels_last") -> dict:
    """Run Keras and ONNX Runtime on ``batch`` (NHWC); max abs difference per output and overall."""
    from bpnet_core.model import output_names

    names = output_names(model)
    ref = model(batch, training=False)
    ref = dict(zip(names, [np.asarray(r) for r in (ref if isinstance(ref, (list, tuple)) else [ref])]))
    x = batch.transpose(0, 3, 1, 2) if data_format == "channels_first" else batch
    inp = session.get_inputs()[0].name
    outs = session.get_outputs()
    got = session.run([o.name for o in outs], {inp: np.ascontiguousarray(x, np.float32)})
    per = {}
    for o, g in zip(outs, got):
        r = ref[o.name]
        if g.shape != r.shape:
            raise BpnetError(f"ONNX output {o.name} has shape {g.shape}, Keras {r.shape}")
        per[o.name] = float(np.max(np.abs(g.astype(np.float32) - r)))
    scale = max(float(np.max(np.abs(r))) for r in ref.values())
    mx = max(per.values())
    return {"max_abs_diff": mx, "per_output": per, "max_abs_value": scale,
            "relative_diff": mx / scale if scale > 0 else 0.0, "input_shape": list(batch.shape)}  # fmt: skip


# ---------------------------------------------------------------------------------------------------- FP16


def convert_fp16(proto):
    """FP32 → FP16 ONNX: weights and activations in float16; the input and outputs stay float32 (a Cast after the
    input and before each output), so callers feed and read float32 as before. Returns a new proto."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(proto)
    g = m.graph
    f32, f16 = TensorProto.FLOAT, TensorProto.FLOAT16
    for i, init in enumerate(g.initializer):
        if init.data_type == f32:
            arr = numpy_helper.to_array(init).astype(np.float16)
            g.initializer[i].CopyFrom(numpy_helper.from_array(arr, init.name))
    for node in g.node:
        for attr in node.attribute:
            if node.op_type == "Cast" and attr.name == "to" and attr.i == f32:
                attr.i = f16
            elif attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == f32:
                attr.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attr.t).astype(np.float16), attr.t.name))
    del g.value_info[:]
    new_nodes = []
    for inp in g.input:
        if inp.type.tensor_type.elem_type == f32:
            half = inp.name + "_fp16"
            _rename_tensor(g, inp.name, half)
            new_nodes.append(helper.make_node("Cast", [inp.name], [half], to=f16, name=half + "_cast"))
    tail = []
    for out in g.output:
        if out.type.tensor_type.elem_type == f32:
            half = out.name + "_fp16"
            _rename_tensor(g, out.name, half)
            tail.append(helper.make_node("Cast", [half], [out.name], to=f32, name=out.name + "_cast"))
    nodes = new_nodes + list(g.node) + tail
    del g.node[:]
    g.node.extend(nodes)
    return m


def _rename_tensor(graph, old: str, new: str) -> None:
    """Rename tensor ``old`` to ``new`` wherever a node reads or writes it (graph inputs/outputs keep their names)."""
    for node in graph.node:
        for k, name in enumerate(node.input):
            if name == old:
                node.input[k] = new
        for k, name in enumerate(node.output):
            if name == old:
                node.output[k] = new
