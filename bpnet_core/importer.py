"""``bpnet import_model``: make an external network of the OpenPose family a bpnet model (its contract embedded).

>>> report = import_model("graph_opt.pb", "mobilenet_thin", "thin.onnx")       # card: a shipped name or a path
>>> report = import_model("human-pose-estimation-0001.xml", "human-pose-estimation-0001", "hpe.xml")

=========================  =============================================  =============================
external file              conversion                                     output
=========================  =============================================  =============================
``.onnx``                  none                                           ``.onnx`` or ``.xml``
``.pb`` (frozen GraphDef)  tf2onnx (opset 17)                             ``.onnx`` or ``.xml``
``.xml`` + ``.bin`` (IR)   none (kept as IR, quantised layers included)   ``.xml``
=========================  =============================================  =============================

The card's input and outputs are checked against the graph (names, channel counts), the contract is stored in the
file (ONNX ``metadata_props`` / IR ``rt_info``), and before the file is written the network runs once on a real-
looking image at the card's recommended size: each map must come out at input size / its stride. Nothing is
written unless every check passes.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np

from bpnet_core.cards import load_card
from bpnet_core.errors import BpnetError
from bpnet_core.export.onnx import parity_image, set_meta
from bpnet_core.export.openvino import ir_bytes, onnx_to_openvino, write_ir
from bpnet_core.fileio import atomic_path, make_dir
from bpnet_core.infer import Predictor
from bpnet_core.meta import ModelMeta, check_encrypted, read_ir
from bpnet_core.runners.onnx import OnnxRunner, check_graph_io
from bpnet_core.runners.openvino import OpenVinoRunner, _shape

log = logging.getLogger(__name__)

EXTERNAL_SUFFIXES = (".onnx", ".pb", ".xml")
OUTPUT_SUFFIXES = (".onnx", ".xml")


def _graphdef_to_onnx(path: Path, meta: ModelMeta):
    import tensorflow as tf
    import tf2onnx

    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(path.read_bytes())
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise BpnetError(f"{path}: not a TensorFlow frozen GraphDef ({type(exc).__name__})") from None
    nodes = {n.name for n in graph_def.node}
    for tensor in [meta.input_name] + meta.output_names():
        if tensor.split(":")[0] not in nodes:
            raise BpnetError(f"{path}: the card names tensor {tensor!r} but the graph has no node "
                             f"{tensor.split(':')[0]!r}")  # fmt: skip
    tf_logger = logging.getLogger("tf2onnx")
    level = tf_logger.level
    tf_logger.setLevel(logging.WARNING)
    try:
        proto, _ = tf2onnx.convert.from_graph_def(graph_def, input_names=[meta.input_name],
                                                  output_names=meta.output_names(), opset=17)  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - tf2onnx raises many types
        raise BpnetError(f"{path}: tf2onnx could not convert the graph ({str(exc).splitlines()[0][:160]})") from None
    finally:
        tf_logger.setLevel(level)
    return proto


def _load_onnx(path: Path):
    import onnx

    try:
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
    except Exception as exc:  # noqa: BLE001 - onnx raises several types for a corrupt file
        raise BpnetError(f"{path}: not a loadable ONNX model ({str(exc).strip().splitlines()[0][:160]})") from None
    return proto


def _onnx_io(proto) -> tuple[dict, dict]:
    def dims(vi):
        return [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]

    inits = {i.name for i in proto.graph.initializer}
    return ({i.name: dims(i) for i in proto.graph.input if i.name not in inits},
            {o.name: dims(o) for o in proto.graph.output})  # fmt: skip


def _ov_io(model) -> tuple[dict, dict]:
    return ({n: _shape(p) for p in model.inputs for n in p.get_names()},
            {n: _shape(p) for p in model.outputs for n in p.get_names()})  # fmt: skip


def self_check(runner) -> dict:
    """Run ``runner`` once at its recommended settings; every map must have input size / its stride and finite
    values. Returns the shapes and value ranges."""
    pre = Predictor(runner).prepare(parity_image((480, 640)))  # a real-looking scene (bpnet's synthetic generator)
    heat, paf = runner.predict(pre.batch)
    h, w = pre.input_hw
    out = {"input_hw": [h, w]}
    for kind, arr, m in (("heatmaps", heat, runner.meta.heatmaps()), ("pafs", paf, runner.meta.pafs())):
        want = (h // m.stride, w // m.stride)
        if tuple(arr.shape[1:3]) != want:
            raise BpnetError(f"{runner.source}: {kind} output {m.name} is {arr.shape[1]}x{arr.shape[2]} for a {h}x{w} "
                             f"input; stride {m.stride} in the card means {want[0]}x{want[1]} (check outputs.{kind}."
                             "stride and input.layout)")  # fmt: skip
        if not np.all(np.isfinite(arr)):
            raise BpnetError(f"{runner.source}: {kind} output {m.name} holds NaN or inf on a test image")
        out[kind] = {"shape": list(arr.shape), "min": float(arr.min()), "max": float(arr.max())}
    return out


def import_model(external: str | os.PathLike, card: str | os.PathLike, output: str | os.PathLike,
                 overrides=()) -> dict:  # fmt: skip
    """Import ``external`` with the contract stated by ``card`` into ``output`` (``.onnx`` or ``.xml``).

    Returns a report: ``output``, ``bytes``, ``meta`` (the contract written), ``check`` (the self-check: input size,
    map shapes and value ranges), ``seconds``.
    """
    t0 = time.perf_counter()
    external, output = Path(external), Path(output)
    check_encrypted(external)
    if not external.is_file():
        raise BpnetError(f"{external}: model file not found")
    src, dst = external.suffix.lower(), output.suffix.lower()
    if src not in EXTERNAL_SUFFIXES:
        raise BpnetError(f"{external}: import takes .onnx, .pb (frozen TensorFlow graph) or .xml (OpenVINO IR) "
                         f"files, got {src or 'no suffix'}")  # fmt: skip
    if dst not in OUTPUT_SUFFIXES:
        raise BpnetError(f"{output}: the imported model is written as .onnx or .xml (got {dst or 'no suffix'})")
    if src == ".xml" and dst != ".xml":
        raise BpnetError(f"{output}: an OpenVINO IR cannot become ONNX; import it as .xml")
    meta, _ = load_card(card, overrides)
    meta = meta.with_changes(provenance={**meta.provenance, "imported_from": external.name})
    make_dir(output.parent, "output folder")

    if src == ".xml":
        model = read_ir(external)
        ins, outs = _ov_io(model)
        check_graph_io(meta, ins, outs, f"{external} (card {meta.name})")
        report = _finish_ir(model, output, meta)
    else:
        proto = _graphdef_to_onnx(external, meta) if src == ".pb" else _load_onnx(external)
        ins, outs = _onnx_io(proto)
        check_graph_io(meta, ins, outs, f"{external} (card {meta.name})")
        if dst == ".xml":
            report = _finish_ir(onnx_to_openvino(proto), output, meta)
        else:
            import onnx

            set_meta(proto, meta)
            with atomic_path(output) as tmp:
                onnx.save(proto, str(tmp))
                check = self_check(OnnxRunner(tmp, meta, providers=["CPUExecutionProvider"]))
            report = {"check": check}
    report.update({"output": str(output), "bytes": ir_bytes(output), "meta": meta.to_dict(),
                   "seconds": round(time.perf_counter() - t0, 1)})  # fmt: skip
    log.debug("imported %s as %s (%s)", external, output, meta.name)  # the CLI prints its own line
    return report


def _finish_ir(model, output: Path, meta: ModelMeta) -> dict:
    check = self_check(OpenVinoRunner(output, meta, model=model.clone()))
    write_ir(model, output, meta)
    return {"check": check}
