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
from bpnet_core.fileio import atomic_path, make_dir, save_model_atomic
from bpnet_core.infer import Predictor
from bpnet_core.infer.evaluation import run_evaluation
from bpnet_core.meta import ModelMeta, check_encrypted, keras_members, read_ir
from bpnet_core.paths import project_file
from bpnet_core.runners.keras import KerasRunner
from bpnet_core.runners.onnx import OnnxRunner, check_graph_io
from bpnet_core.runners.openvino import OpenVinoRunner, _shape

log = logging.getLogger(__name__)

EXTERNAL_SUFFIXES = (".onnx", ".pb", ".xml")
OUTPUT_SUFFIXES = (".onnx", ".xml", ".keras")
#: Largest COCO AP difference allowed between a trainable rebuild and a quantised source on the 36 real photos.
AP_TOLERANCE = 0.02


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
                 overrides=(), check_ap: bool | None = None) -> dict:  # fmt: skip
    """Import ``external`` with the contract stated by ``card`` into ``output``: ``.onnx`` or ``.xml`` for inference,
    ``.keras`` for a trainable model (:func:`import_trainable`; ``check_ap`` applies to it).

    Returns a report: ``output``, ``bytes``, ``meta`` (the contract written), ``check`` (the self-check: input size,
    map shapes and value ranges; for ``.keras`` the parity and AP checks), ``seconds``.
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
        raise BpnetError(f"{output}: the imported model is written as .onnx, .xml or .keras (trainable) "
                         f"(got {dst or 'no suffix'})")  # fmt: skip
    if dst == ".keras":
        return import_trainable(external, card, output, overrides, check_ap=check_ap, t0=t0)
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


def _real_sample_ap(runner, work: Path) -> float:

    spec = project_file("data_pose_config", "coco_real_sample_spec.json")
    return float(run_evaluation(None, runner, spec, work, progress=False)["AP"])


def import_trainable(external: str | os.PathLike, card: str | os.PathLike, output: str | os.PathLike, overrides=(),
                     check_ap: bool | None = None, t0: float | None = None) -> dict:  # fmt: skip
    """Rebuild ``external`` as a trainable bpnet ``.keras`` model (:func:`bpnet_core.transplant.transplant`), with
    the card's whole contract inside, after checking it against the source on real photos:

    * parity: the last stage's maps within :data:`~bpnet_core.transplant.PARITY_TOLERANCE` of the source's on 3 of
      the 36 COCO photos shipped with bpnet (an OpenVINO IR is compared without its activation quantisers);
    * ``check_ap`` (default: for a quantised IR source): COCO AP on the 36 photos within :data:`AP_TOLERANCE` of the
      source's own (quantised) AP, each at the card's recommended settings;
    * the written file loads in Keras safe mode and gives the same maps bit for bit.

    Nothing is written unless every check passes.
    """
    import tempfile

    import keras

    from bpnet_core.transplant import PARITY_TOLERANCE, check_photos, parity, transplant

    t0 = time.perf_counter() if t0 is None else t0
    external, output = Path(external), Path(output)
    model, meta, info = transplant(external, card, overrides)
    check = {"parity": parity(model, meta, external, card)}
    diff = check["parity"]["max_abs_diff"]
    if not diff <= PARITY_TOLERANCE:
        raise BpnetError(f"{external}: the rebuilt network differs from the source by {diff:.3g} "
                         f"(> {PARITY_TOLERANCE:g}) on real photos; nothing written")  # fmt: skip
    if check_ap is None:
        check_ap = external.suffix.lower() == ".xml"
    if check_ap:
        with tempfile.TemporaryDirectory() as tmp:
            mine = _real_sample_ap(KerasRunner(model, meta), Path(tmp) / "keras")
            theirs = None
            if external.suffix.lower() == ".xml":  # the quantised source at its card's settings
                src_meta, _ = load_card(card, overrides)
                theirs = _real_sample_ap(OpenVinoRunner(external, src_meta), Path(tmp) / "source")
        check["ap"] = {"rebuilt": mine, "source": theirs}
        if theirs is not None and abs(mine - theirs) > AP_TOLERANCE:
            raise BpnetError(f"{external}: the rebuilt network scores AP {mine:.3f} on the 36 real photos, the source "
                             f"{theirs:.3f} (more than {AP_TOLERANCE} apart); nothing written")  # fmt: skip
    make_dir(output.parent, "output folder")
    probe = meta.normalize(check_photos(1)[0][:256, :256])[None]
    before = [np.asarray(o) for o in model(probe, training=False)]
    save_model_atomic(model, output, keras_members(meta))
    reloaded = keras.saving.load_model(str(output), compile=False, safe_mode=True)
    after = [np.asarray(o) for o in reloaded(probe, training=False)]
    if any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True)):
        output.unlink(missing_ok=True)
        raise BpnetError(f"{output}: the saved model does not reload bit-exactly; removed")
    check["round_trip"] = "bit-exact"
    log.debug("imported %s as trainable %s (%s, %d layers)", external, output, info["family"], info["layers"])
    return {
        "output": str(output),
        "bytes": output.stat().st_size,
        "meta": meta.to_dict(),
        "check": check,
        "params": info["params"],
        "family": info["family"],
        "seconds": round(time.perf_counter() - t0, 1),
    }
