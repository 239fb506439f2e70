"""Weights of a model trained with TAO 5 (a plain Keras 2 ``.hdf5``) loaded into bpnet's Keras 3 model.

TAO names its layers with ``/`` (``stage2/conv1``), which Keras 3 refuses, and names the VGG blocks its own way; the
name map below translates them (:func:`tao_to_bpnet` / :func:`bpnet_to_tao`):

==============================================  ==============================================
TAO 5 (Keras 2)                                 bpnet (Keras 3)
==============================================  ==============================================
``block_{k}{x}_conv_1`` (x = a, b, c, d)        ``block{k}_conv{1, 2, 3, 4}``  (k = 1 … 4)
``block_{k}{x}_bn_1``                           ``block{k}_conv{i}_bn``
``block_6a_conv_1`` / ``block_6a_bn_1``         ``interface_conv4_3`` / ``interface_conv4_3_bn``
``channel_reduction_conv``                      ``channel_reduction_conv``
``stage{t}/conv{i}``                            ``stage{t}_conv{i}``
``stage{t}/paf/conv{n}``                        ``stage{t}_paf_conv{n}``
``stage{t}/cmap/conv{n}``                       ``stage{t}_heat_conv{n}``
``stage{t}/paf_branch/out``                     ``paf_stage{t}``
``stage{t}/heat_branch/out``                    ``heatmap_stage{t}``
``paf_out`` / ``heatmap_out`` (last stage)      ``paf_out`` / ``heatmap_out``
==============================================  ==============================================

The file is read with :func:`~bpnet_core.model.bpnet.read_weights_by_layer` (Keras 2 layout:
``model_weights/<layer>/<layer>/kernel:0`` with the ``layer_names`` / ``weight_names`` attributes; ``/`` in a layer
name becomes ``_`` there), so the map works on those names. The architecture comes from the train spec (TAO's
``model:`` block: stages, kernel sizes, attention), the output widths from the pose config; every weight's shape is
checked before anything is set. With ``widths_from_file`` (TAO's ``load_graph``: a model pruned by TAO) the hidden
convolutions take their filter counts from the file instead of the spec.

TAO's encrypted ``.tlt`` / ``.etlt`` files cannot be read (:func:`bpnet_core.meta.check_encrypted`); TAO 5 writes plain
``.hdf5`` (and ``.onnx``), which is what this module reads.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import keras

from bpnet_core.config import load_train_spec
from bpnet_core.errors import BpnetError
from bpnet_core.meta import check_encrypted, read_meta
from bpnet_core.model.bpnet import (
    _names_list,
    _shapes,
    build_model,
    load_bpnet_model,
    match_layers,
    model_meta,
    num_stages,
    read_weights_by_layer,
    spec_normalization,
)
from bpnet_core.model.stages import FINAL_HEATMAP, FINAL_PAF, is_output_layer, layer_stage
from bpnet_core.skeleton import PoseConfig, default_pose_config_path

log = logging.getLogger(__name__)

#: Suffixes of the plain Keras 2 files TAO 5 writes.
TAO_SUFFIXES = (".hdf5", ".h5")

_SUB = "abcdefghijklmnopqrstuvwxyz"
# names as read_weights_by_layer returns them ("/" → "_")
_VGG = re.compile(r"^block_(\d+)([a-z])_(conv|bn)_1$")
_CMAP = re.compile(r"^stage(\d+)_cmap_conv(\d+)$")
_BRANCH_OUT = re.compile(r"^stage(\d+)_(paf|heat)_branch_out$")
# bpnet names (for the reverse map)
_B_VGG = re.compile(r"^block(\d+)_conv(\d+)(_bn)?$")
_B_INTERFACE = re.compile(r"^interface_conv4_3(_bn)?$")
_B_STAGE = re.compile(r"^stage(\d+)_(conv\d+|paf_conv\d+|heat_conv\d+|paf_attention|heat_attention)$")
_B_OUT = re.compile(r"^(paf|heatmap)_stage(\d+)$")
#: A layer name only TAO's files have (VGG block naming or a ``/`` in a stage layer).
_TAO_LIKE = re.compile(r"^block_\d+[a-z]_(conv|bn)_\d+$|^stage\d+/")


def tao_to_bpnet(name: str) -> str:
    """bpnet's layer name for a TAO layer name (``stage2/cmap/conv6`` or its ``_`` form → ``stage2_heat_conv6``).

    Names without a counterpart are returned with ``/`` replaced by ``_`` (they then match no bpnet layer)."""
    n = name.replace("/", "_")
    m = _VGG.match(n)
    if m:
        block, sub, kind = int(m.group(1)), m.group(2), m.group(3)
        base = "interface_conv4_3" if block == 6 else f"block{block}_conv{_SUB.index(sub) + 1}"
        return base + ("_bn" if kind == "bn" else "")
    m = _CMAP.match(n)
    if m:
        return f"stage{m.group(1)}_heat_conv{m.group(2)}"
    m = _BRANCH_OUT.match(n)
    if m:
        return f"{'paf' if m.group(2) == 'paf' else 'heatmap'}_stage{m.group(1)}"
    return n


def bpnet_to_tao(name: str) -> str:
    """TAO's layer name for a bpnet layer name (the inverse of :func:`tao_to_bpnet` on the layers TAO has)."""
    m = _B_VGG.match(name)
    if m:
        return f"block_{m.group(1)}{_SUB[int(m.group(2)) - 1]}_{'bn' if m.group(3) else 'conv'}_1"
    m = _B_INTERFACE.match(name)
    if m:
        return f"block_6a_{'bn' if m.group(1) else 'conv'}_1"
    m = _B_STAGE.match(name)
    if m:
        rest = m.group(2).replace("heat_", "cmap_").replace("_", "/")
        return f"stage{m.group(1)}/{rest}"
    m = _B_OUT.match(name)
    if m:
        return f"stage{m.group(2)}/{'paf' if m.group(1) == 'paf' else 'heat'}_branch/out"
    return name


def is_tao_hdf5(path: str | os.PathLike) -> bool:
    """True for a Keras 2 ``.hdf5``/``.h5`` whose layer names are TAO's (``block_1a_conv_1``, ``stage1/conv1`` …)."""
    path = Path(path)
    if path.suffix.lower() not in TAO_SUFFIXES or not path.is_file():
        return False
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            root = h5.get("model_weights", h5)
            names = [v.decode() if isinstance(v, bytes) else str(v) for v in root.attrs.get("layer_names", [])]
    except (OSError, KeyError):
        return False
    return any(_TAO_LIKE.match(n) for n in names)


def _label(bpnet_name: str) -> str:
    tao = bpnet_to_tao(bpnet_name)
    return tao if tao == bpnet_name else f"{tao} ({bpnet_name})"


def _fit_widths(model: keras.Model, stored: dict[str, list]) -> keras.Model:
    """The same graph with each hidden convolution's filter count taken from the file (a model pruned by TAO)."""
    config = model.get_config()
    changed = 0
    for layer_cfg in config["layers"]:
        layer_cfg.pop("build_config", None)  # input widths follow from the rebuilt graph
        cfg = layer_cfg["config"]
        name = cfg.get("name")
        arrays = stored.get(name)
        if layer_cfg.get("class_name") != "Conv2D" or not arrays or is_output_layer(name) or arrays[0].ndim != 4:
            continue
        filters = int(arrays[0].shape[-1])
        if filters != int(cfg["filters"]):
            cfg["filters"] = filters
            changed += 1
    if not changed:
        return model
    log.info("%d convolutions take their filter counts from the file (a pruned model)", changed)
    return keras.Model.from_config(config)


def load_tao_weights(model: keras.Model, path: str | os.PathLike, strict: bool = True) -> dict:
    """Copy the weights of a TAO 5 ``.hdf5`` into ``model`` through the name map; every shape is checked first.

    ``strict``: every layer of ``model`` must be in the file and every weighted layer of the file in ``model``
    (a conversion). Otherwise (``pretrained_weights`` for fine-tuning) stage layers missing from the file keep their
    initialisation and extra layers of the file are ignored, as :func:`load_pretrained_weights` does; the backbone
    must still be complete. Nothing is set when a layer does not fit: one :class:`BpnetError` names the file and the
    layers (TAO's name, bpnet's in brackets), the first few and a count.

    Returns ``{"loaded": [...], "missing": [...], "unused": [...]}`` (bpnet layer names; unused: the file's).
    """
    path = Path(path)
    check_encrypted(path)
    stored = {tao_to_bpnet(k): v for k, v in read_weights_by_layer(path).items()}
    stages = num_stages(model)
    file_stages = max([layer_stage(n) for n in stored] + [0])  # stage{t}/conv… exist for every stage
    if file_stages != stages and FINAL_PAF in stored:  # the file's last outputs belong to its own last stage
        for final, prefix in ((FINAL_HEATMAP, "heatmap"), (FINAL_PAF, "paf")):
            if final in stored:
                stored[f"{prefix}_stage{file_stages}"] = stored.pop(final)
    assignments, loaded, missing, mismatched = match_layers(
        model, stored, lambda name, want, got: f"{_label(name)}: model {_shapes(want)}, file {_shapes(got)}"
    )
    names = {layer.name for layer in model.layers}
    unused = [n for n in stored if n not in names]  # in the file's order
    fatal_missing = missing if strict or not loaded else [n for n in missing if layer_stage(n, stages) == 0]
    problems = []
    if mismatched:
        problems.append(f"{len(mismatched)} layers have other shapes: {_names_list(mismatched, 3)}")
    if fatal_missing:
        problems.append(f"{len(fatal_missing)} layers not in the file: "
                        f"{_names_list([_label(n) for n in fatal_missing], 4)}")  # fmt: skip
    if unused and (strict or not loaded):
        problems.append(f"{len(unused)} layers of the file not in the model: "
                        f"{_names_list([bpnet_to_tao(n) for n in unused], 4)}")  # fmt: skip
    if problems:
        raise BpnetError(f"{path}: the TAO model ({file_stages} stages) does not fit this model ({stages} stages, "
                         f"{int(model.outputs[stages - 1].shape[-1])} heatmap / {int(model.outputs[-1].shape[-1])} "
                         "PAF channels; check model.stages, the kernel sizes and the pose config): "
                         + "; ".join(problems))  # fmt: skip
    if missing:
        log.warning("%s: %d layers not in the file keep their initialisation: %s", path, len(missing),
                    _names_list(missing))  # fmt: skip
    if unused:
        log.info("%s: %d layers of the file are not in this model: %s", path, len(unused), _names_list(unused))
    for layer, arrays in assignments:
        layer.set_weights(arrays)
    log.info("loaded TAO weights of %d layers from %s", len(loaded), path)
    return {"loaded": loaded, "missing": missing, "unused": unused}


def load_tao_hdf5(path: str | os.PathLike, spec_or_model: Any = None, pose: PoseConfig | None = None,
                  widths_from_file: bool = False, strict: bool = True) -> keras.Model:  # fmt: skip
    """A bpnet Keras model holding the weights of a TAO 5 ``.hdf5``.

    Args:
        path: the TAO ``.hdf5`` (``.tlt``/``.etlt``: a :class:`BpnetError` — export to plain ``.hdf5`` with TAO 5).
        spec_or_model: a built bpnet model, or what :func:`build_model` takes (a train spec, its ``model`` block,
            a dict; ``None`` = TAO's defaults) — it must describe the architecture TAO trained.
        pose: the pose config (output widths; default: the shipped 18-joint config).
        widths_from_file: hidden convolutions take their filter counts from the file (a TAO-pruned model).
        strict: see :func:`load_tao_weights`.
    """
    path = Path(path)
    check_encrypted(path)
    if not path.is_file():
        raise BpnetError(f"{path}: TAO model file not found")
    if path.suffix.lower() not in TAO_SUFFIXES:
        raise BpnetError(f"{path}: not a TAO 5 model file (expected .hdf5 or .h5, got {path.suffix or 'no suffix'})")
    model = spec_or_model if isinstance(spec_or_model, keras.Model) else build_model(spec_or_model, pose)
    if widths_from_file:
        stored = {tao_to_bpnet(k): v for k, v in read_weights_by_layer(path).items()}
        model = _fit_widths(model, stored)
    load_tao_weights(model, path, strict=strict)
    return model


def architecture_from_file(path: str | os.PathLike) -> dict:
    """The model keys a TAO 5 ``.hdf5`` implies (VGG; its stage count and stage kernel sizes, read off the weights).

    What TAO's spec would say and the weights show: ``stages`` (the highest ``stage{t}/…`` layer), the kernel sizes of
    the initial stage's and of a refinement stage's trunk convolutions. Filter counts are taken from the file when the
    model loads (``widths_from_file``), so a model pruned by TAO fits too."""
    path = Path(path)
    stored = {tao_to_bpnet(k): v for k, v in read_weights_by_layer(path).items()}
    stages = max([layer_stage(n) for n in stored] + [0])
    if stages == 0 or "block1_conv1" not in stored:
        raise BpnetError(f"{path}: not a TAO BodyPoseNet model (no VGG block_1a_conv_1 / stage1/conv1 layers)")

    def kernels(t: int) -> list[int]:
        sizes, i = [], 1
        while f"stage{t}_conv{i}" in stored:
            sizes.append(int(stored[f"stage{t}_conv{i}"][0].shape[0]))
            i += 1
        return sizes

    keys = {"architecture": "vgg", "stages": stages, "stage1_kernel_sizes": kernels(1)}
    if stages > 1:
        keys["stageT_kernel_sizes"] = kernels(2)
    return keys


def load_tao_model(path: str | os.PathLike, train_spec: str | os.PathLike | None = None, overrides=()):
    """A TAO 5 ``.hdf5`` as a bpnet Keras model and its contract: ``(keras.Model, ModelMeta)``.

    This is what ``-m model.hdf5`` means to ``inference``, ``evaluate``, ``prune`` and ``export`` (TAO's contract).
    With ``train_spec`` (TAO's ``bpnet_train_m1_coco.yaml`` works; an inference spec's ``train_spec`` key) the
    architecture, pose config and normalisation come from it; without one, the architecture is read off the file
    (:func:`architecture_from_file`), the pose config is the shipped 18-joint one and the normalisation TAO's
    ``x / 256 − 0.5``. Filter counts always follow the file (a model pruned and retrained with TAO loads too)."""
    path = Path(path)
    check_encrypted(path)
    if not path.is_file():
        raise BpnetError(f"{path}: TAO model file not found")
    import h5py

    try:
        with h5py.File(path, "r"):
            pass
    except OSError:
        raise BpnetError(f"{path}: not a readable .hdf5 file (truncated or another format)") from None
    if not is_tao_hdf5(path):
        raise BpnetError(f"{path}: not a TAO 5 BodyPoseNet .hdf5 (no TAO layer names such as block_1a_conv_1); "
                         "bpnet's own models are .keras files")  # fmt: skip
    normalization = None
    if train_spec is not None:
        spec = load_train_spec(train_spec, overrides)
        pose = spec_pose(spec)
        model = load_tao_hdf5(path, spec, pose, widths_from_file=True, strict=True)
        normalization = spec_normalization(spec)
    else:
        pose = PoseConfig.from_json(default_pose_config_path())
        model = load_tao_hdf5(path, architecture_from_file(path), pose, widths_from_file=True, strict=True)
    return model, model_meta(model, pose, normalization, name=path.stem)


def spec_pose(spec) -> PoseConfig:
    """The pose config a (TAO) train spec names; TAO's container paths that do not exist here fall back to the shipped
    18-joint config, with a warning."""

    pose_path = spec.dataloader.pose_config.pose_config_path  # absolute: resolved when the spec loaded
    if pose_path is None or not Path(pose_path).is_file():
        log.warning("%s: pose config %s not found; using the shipped %s", spec.source, pose_path,
                    default_pose_config_path().name)  # fmt: skip
        pose_path = default_pose_config_path()
    return PoseConfig.from_json(pose_path)


def load_model_file(path: str | os.PathLike, train_spec: str | os.PathLike | None = None, overrides=()):
    """A Keras model file with its contract, ``(keras.Model, ModelMeta)``: bpnet's ``.keras`` (contract inside) or a
    TAO 5 ``.hdf5`` (:func:`load_tao_model`; ``train_spec`` optional). Other suffixes: a one-line error."""
    path = Path(path)
    check_encrypted(path)
    suffix = path.suffix.lower()
    if suffix in TAO_SUFFIXES:
        return load_tao_model(path, train_spec, overrides)
    if suffix != ".keras":
        raise BpnetError(f"{path}: expected a Keras model: bpnet's .keras or TAO 5's .hdf5 (got "
                         f"{suffix or 'no suffix'})")  # fmt: skip
    meta = read_meta(path)
    return load_bpnet_model(path, meta.pose), meta
