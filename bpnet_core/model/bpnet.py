"""``build_model``: the BodyPoseNet Keras model (TAO's ``BpNetLiteModel``), plus loading of pretrained weights.

>>> model = build_model({"stages": 2, "width_multiplier": 0.25}, pose)      # or build_model(spec, pose)
>>> [o.name for o in model.outputs] → heatmap_stage1, heatmap_out, paf_stage1, paf_out   (see output_layer_names)

Model contract (NHWC, float32):

==============  ====================  ===================================================================
tensor          shape                 meaning
==============  ====================  ===================================================================
``input_1``     (N, H, W, 3)          RGB / image_scale − image_offset (a model trained from another model:
                                      that model's colour and normalisation); H, W multiples of 8, any size
heatmap output  (N, H/8, W/8, J + 1)  one per stage, linear; last channel = background
PAF output      (N, H/8, W/8, 2L)     one per stage, linear; limb k at channels 2k, 2k+1
==============  ====================  ===================================================================

Outputs are ordered ``[heatmap_1 … heatmap_S, paf_1 … paf_S]`` (TAO's order); stage ``t < S`` outputs are named
``heatmap_stage{t}`` / ``paf_stage{t}``, the last stage's ``heatmap_out`` / ``paf_out`` (TAO's names).

The model uses only built-in Keras layers (no Lambda, no custom classes), so ``.keras`` files load with
``safe_mode=True`` and without importing bpnet.

Weights from files (:func:`load_pretrained_weights`) are matched to layers **by name**: ``.keras`` files,
``.weights.h5`` files (Keras 3) and Keras-2 ``.h5``/``.hdf5`` files are read with ``h5py`` without rebuilding the
architecture they came from. ``pretrained_weights: imagenet`` copies ImageNet kernels from ``keras.applications``
(needs the network once; offline it warns and keeps the random initialisation).
"""

from __future__ import annotations

import io
import logging
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np

import bpnet_core.int8.fakequant  # noqa: F401 - registers the QAT layers, so that a QAT .keras model loads
from bpnet_core.config.contract import spec_normalization as spec_normalization  # re-exported (one definition)
from bpnet_core.config.train_spec import ModelConfig, TrainSpec, pose_channels
from bpnet_core.costs import count_params
from bpnet_core.errors import BpnetError
from bpnet_core.fileio import save_model_atomic
from bpnet_core.meta import ModelMeta, Normalization, Preprocessing, bpnet_meta, keras_members
from bpnet_core.model.backbones import OUTPUT_STRIDE, LayerFactory, build_backbone
from bpnet_core.model.lightweight_openpose import lightweight_stages
from bpnet_core.model.mobilenet_v1 import mobilenet_v1_backbone
from bpnet_core.model.openpose_separable import separable_stages
from bpnet_core.model.stages import layer_stage, openpose_stages
from bpnet_core.skeleton import PoseConfig, default_pose_config_path

log = logging.getLogger(__name__)

#: ``model.head`` → the function that builds its stages on the backbone's features.
HEAD_BUILDERS = {
    "openpose": openpose_stages,
    "openpose_separable": separable_stages,
    "lightweight_openpose": lightweight_stages,
}

#: ``pretrained_weights`` value that asks for ImageNet weights from ``keras.applications``.
IMAGENET = "imagenet"

#: Flat keyword shortcuts of :func:`build_model` for keys of ``model.backbone_attributes``.
_BACKBONE_SHORTCUTS = {"architecture": "architecture", "backbone_use_bias": "use_bias"}


def _nested(m: Mapping) -> dict:
    """Model keys in the spec's form: the flat shortcuts go into ``backbone_attributes``."""
    out: dict = {}
    for key, value in m.items():
        if key in _BACKBONE_SHORTCUTS:
            out.setdefault("backbone_attributes", {})[_BACKBONE_SHORTCUTS[key]] = value
        elif key == "backbone_attributes" and isinstance(value, Mapping):
            out.setdefault("backbone_attributes", {}).update(value)
        else:
            out[key] = list(value) if isinstance(value, tuple) else value
    return out


def model_config(spec_or_kwargs: Any = None, pose: PoseConfig | None = None, **kwargs):
    """The validated ``model:`` block (:class:`~bpnet_core.config.train_spec.ModelConfig`, the one schema of the
    architecture) of a train spec, of a ``model`` block, of a dict of model keys or of keyword arguments.

    Dicts and keywords use the spec's keys (``stages``, ``width_multiplier``, ``backbone_attributes: {…}``) or the
    shortcuts ``architecture`` and ``backbone_use_bias``; ``kwargs`` override ``spec_or_kwargs``. Without explicit
    ``heat_channels`` / ``paf_channels`` a dict takes them from ``pose``. Errors name the key, as spec errors do.
    """
    src = spec_or_kwargs
    if src is None or isinstance(src, Mapping):
        data = _nested(src or {})
        source = "build_model"
        if pose is not None:
            data.setdefault("heat_channels", pose.num_heatmap_channels)
            data.setdefault("paf_channels", pose.num_paf_channels)
    else:
        block = getattr(src, "model", src)  # a TrainSpec or its model block
        if not isinstance(block, ModelConfig):
            raise BpnetError(f"build_model needs a train spec, its model block or a dict (got {type(src).__name__})")
        if not kwargs:
            return block
        data = block.model_dump(by_alias=True)
        source = getattr(src, "source", "build_model")
    extra = _nested(kwargs)
    if "backbone_attributes" in extra:
        data["backbone_attributes"] = {**data.get("backbone_attributes", {}), **extra.pop("backbone_attributes")}
    data.update(extra)
    return TrainSpec.from_dict({"model": data}, source=source).model


def _default_pose() -> PoseConfig:
    return PoseConfig.from_json(default_pose_config_path())


def build_model(spec_or_kwargs: Any = None, pose: PoseConfig | None = None, **kwargs) -> keras.Model:
    """Build the BodyPoseNet graph (random initialisation; see :func:`model_from_spec` for pretrained weights).

    Args:
        spec_or_kwargs: a train spec, its ``model`` block, a dict of model keys, or ``None`` (TAO defaults).
        pose: the :class:`PoseConfig` that fixes the output widths (default: the shipped 18-joint config).
        **kwargs: model keys that override ``spec_or_kwargs`` (``stages=2``, ``architecture="mobilenet_v2"`` …).

    Returns:
        A functional ``keras.Model`` named ``bpnet`` with input ``input_1`` (None, None, 3) and outputs
        ``[heatmap_1 … heatmap_S, paf_1 … paf_S]``.
    """
    pose = pose or _default_pose()
    cfg = model_config(spec_or_kwargs, pose, **kwargs)
    source = getattr(spec_or_kwargs, "source", "model")
    heat_ch, paf_ch = pose_channels(cfg, pose, source if isinstance(source, str) else "model")
    factory = LayerFactory(
        kernel_initializer=cfg.kernel_initializer,
        regularization_type=cfg.regularization_type,
        kernel_regularization_factor=cfg.kernel_regularization_factor,
        bias_regularization_factor=cfg.bias_regularization_factor,
        use_bias=cfg.use_bias,
    )
    inputs = keras.Input(shape=(None, None, 3), name="input_1")
    bb, width = cfg.backbone_attributes, float(cfg.width_multiplier)
    if bb.architecture == "mobilenet_v1":
        features = mobilenet_v1_backbone(inputs, factory, bb, width)
    else:
        features = build_backbone(inputs, factory, bb, width)
    heats, pafs = HEAD_BUILDERS[cfg.head](features, factory, cfg, heat_ch, paf_ch)
    return keras.Model(inputs, heats + pafs, name="bpnet")


# ---------------------------------------------------------------------------------------------------- inspection


def num_stages(model: keras.Model) -> int:
    """Number of stages of a BodyPoseNet model (half its outputs)."""
    return max(1, len(model.outputs) // 2)


def output_names(model: keras.Model) -> list[str]:
    """The names of the model's outputs in order (``heatmap_stage1`` … ``paf_out``)."""
    names = []
    for t in model.outputs:
        hist = getattr(t, "_keras_history", None)
        names.append(hist.operation.name if hist is not None else t.name)
    return names


def model_meta(model: keras.Model, pose: PoseConfig, normalization: Normalization | str | None = None,
               name: str = "bpnet", *, color: str = "RGB", preprocessing: Preprocessing | None = None,
               inference: dict | None = None, provenance: dict | None = None) -> ModelMeta:  # fmt: skip
    """The contract of a bpnet Keras model: every stage's outputs (NHWC, stride 8), the pose config it predicts, and
    its input: ``color`` order (RGB unless the weights came from a BGR network), ``x / scale − offset`` (TAO's
    256 / 0.5 unless ``normalization`` says otherwise; :data:`~bpnet_core.meta.IN_GRAPH`: raw 0..255 pixels), the
    recommended ``preprocessing`` and ``inference`` settings, and ``provenance``. A training run passes its
    :func:`~bpnet_core.config.training_contract` as ``**contract.meta_kwargs()``."""
    check_model_channels(model, pose, name)
    shape = model.inputs[0].shape
    fixed = (int(shape[1]), int(shape[2])) if shape[1] is not None and shape[2] is not None else None
    return bpnet_meta(pose, num_stages(model), output_names(model), normalization, fixed, name=name,
                      stride=OUTPUT_STRIDE, provenance=provenance, color=color, preprocessing=preprocessing,
                      inference=inference)  # fmt: skip


def save_bpnet_model(model: keras.Model, path: str | os.PathLike, pose: PoseConfig,
                     normalization: Normalization | str | None = None, **contract) -> Path:  # fmt: skip
    """Save ``model`` as ``.keras`` with its contract (:func:`model_meta`; ``contract``: its keyword arguments
    ``color``, ``preprocessing``, ``inference``, ``provenance``) inside, atomically."""
    meta = model_meta(model, pose, normalization, Path(path).stem, **contract)
    return save_model_atomic(model, path, keras_members(meta))


def count_conv_params(model: keras.Model) -> int:
    """Parameters of the convolution kernels and biases, no BN (16.8 M for TAO's 3-stage BpNetLite); counted with
    :func:`bpnet_core.costs.count_params`."""
    kinds = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)
    return sum(count_params(layer) for layer in model.layers if isinstance(layer, kinds))


def check_model_channels(model: keras.Model, pose: PoseConfig, source: str = "model") -> None:
    """The outputs of ``model`` must be the pose's (heatmap, PAF) widths."""
    outs = model.outputs
    if len(outs) < 2 or len(outs) % 2:
        raise BpnetError(f"{source}: not a BodyPoseNet model ({len(outs)} outputs; expected heatmaps + PAFs per stage)")
    s = len(outs) // 2
    heat, paf = int(outs[s - 1].shape[-1]), int(outs[-1].shape[-1])
    if heat != pose.num_heatmap_channels or paf != pose.num_paf_channels:
        raise BpnetError(
            f"{source}: the model predicts {heat} heatmap / {paf} PAF channels but pose config "
            f"{pose.source or pose.name} needs {pose.num_heatmap_channels} / {pose.num_paf_channels}"
        )


# ------------------------------------------------------------------------------------------------- weights from files


def match_layers(model: keras.Model, stored: dict, describe) -> tuple[list, list, list, list]:
    """Pair each weighted layer of ``model`` with ``stored[layer.name]`` (arrays from a file), checking shapes.

    Returns ``(assignments, loaded, missing, mismatched)``: (layer, arrays) pairs that fit, their names, the names
    absent from the file, and ``describe(name, model_shapes, file_shapes)`` for each layer whose shapes differ."""
    assignments, loaded, missing, mismatched = [], [], [], []
    for layer in model.layers:
        if not layer.weights:
            continue
        arrays = stored.get(layer.name)
        if arrays is None:
            missing.append(layer.name)
            continue
        want = [tuple(w.shape) for w in layer.weights]
        got = [tuple(a.shape) for a in arrays]
        if want != got:
            mismatched.append(describe(layer.name, want, got))
            continue
        assignments.append((layer, arrays))
        loaded.append(layer.name)
    return assignments, loaded, missing, mismatched


def _shapes(shapes: list[tuple]) -> str:
    return " + ".join("x".join(str(d) for d in s) for s in shapes)


def _names_list(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def _collect_keras3(h5) -> dict[str, list[np.ndarray]]:
    """``{layer name: [arrays]}`` from a Keras 3 weights file (``vars`` groups carry the layer name)."""
    import h5py

    out: dict[str, list[np.ndarray]] = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Group) and name.split("/")[-1] == "vars" and "name" in obj.attrs:
            keys = sorted(obj.keys(), key=lambda k: int(k) if k.isdigit() else 1 << 30)
            arrays = [np.asarray(obj[k][()]) for k in keys if isinstance(obj[k], h5py.Dataset)]
            if arrays:
                layer = obj.attrs["name"]
                out[layer.decode() if isinstance(layer, bytes) else str(layer)] = arrays

    h5.visititems(visit)
    return out


def _collect_legacy(h5) -> dict[str, list[np.ndarray]]:
    """``{layer name: [arrays]}`` from a Keras 2 ``.h5``/``.hdf5`` (``layer_names`` / ``weight_names`` attributes)."""

    def text(v):
        return v.decode() if isinstance(v, bytes) else str(v)

    root = h5.get("model_weights", h5)
    out: dict[str, list[np.ndarray]] = {}
    for lname in root.attrs.get("layer_names", []):
        g = root[text(lname)]
        arrays = [np.asarray(g[text(w)][()]) for w in g.attrs.get("weight_names", [])]
        if arrays:
            out[text(lname).replace("/", "_")] = arrays
    return out


def read_weights_by_layer(path: str | os.PathLike) -> dict[str, list[np.ndarray]]:
    """All weights stored in a model or weights file, keyed by layer name (no model is rebuilt)."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise BpnetError(f"{path}: pretrained_weights file not found")
    name = path.name.lower()
    try:
        if name.endswith(".keras"):
            with zipfile.ZipFile(path) as zf:
                members = [m for m in zf.namelist() if m.endswith(".weights.h5")]
                if not members:
                    raise BpnetError(f"{path}: .keras file holds no weights (model.weights.h5 missing)")
                data = zf.read(members[0])
            with h5py.File(io.BytesIO(data), "r") as h5:
                found = _collect_keras3(h5)
        elif name.endswith((".h5", ".hdf5")):
            with h5py.File(path, "r") as h5:
                found = _collect_keras3(h5) or _collect_legacy(h5)
        elif name.endswith((".tlt", ".etlt")):
            raise BpnetError(f"{path}: TAO's encrypted .tlt/.etlt models cannot be read; give a .keras or .h5 file")
        else:
            raise BpnetError(f"{path}: unknown weights file type (expected .keras, .weights.h5, .h5 or .hdf5)")
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
        raise BpnetError(f"{path}: cannot read weights ({type(exc).__name__}: {exc})") from None
    if not found:
        raise BpnetError(f"{path}: no layer weights found in the file")
    return found


def load_pretrained_weights(model: keras.Model, path: str | os.PathLike, allow_missing_stages: bool = True) -> dict:
    """Copy weights from ``path`` into ``model``, layer by layer, matched by name.

    Every layer of the backbone must be in the file, and every layer found in both must have the same weight
    shapes; otherwise nothing is loaded and a :class:`BpnetError` names the layers that do not match (a file of
    another architecture or width). Stage layers missing from the file (a file with fewer stages) keep their
    initialisation, with a warning, when ``allow_missing_stages``.

    Returns ``{"loaded": [...], "missing": [...], "unused": [...]}`` (layer names).
    """
    path = Path(path)
    stored = read_weights_by_layer(path)
    assignments, loaded, missing, mismatched = match_layers(
        model, stored, lambda name, want, got: f"{name} (model {_shapes(want)}, file {_shapes(got)})"
    )
    unused = sorted(set(stored) - {layer.name for layer in model.layers})
    backbone_missing = [n for n in missing if layer_stage(n, num_stages(model)) == 0]
    if mismatched or backbone_missing or not loaded:
        problems = []
        absent = backbone_missing or (missing if not loaded else [])
        if absent:
            problems.append(f"{len(absent)} layers not found in the file: {_names_list(absent)}")
        if mismatched:
            problems.append(f"{len(mismatched)} layers have other shapes: {_names_list(mismatched, 3)}")
        if not loaded:
            problems.append(f"the file has {_names_list(sorted(stored), 4)}")
        raise BpnetError(f"{path}: weights of another architecture: " + "; ".join(problems))
    if missing:
        if not allow_missing_stages:
            raise BpnetError(f"{path}: layers not found in the file: {_names_list(missing)}")
        log.warning("%s: %d layers not in the file keep their initialisation: %s", path, len(missing),
                    _names_list(missing))  # fmt: skip
    for layer, arrays in assignments:
        layer.set_weights(arrays)
    if unused:
        log.info("%s: %d layers of the file are not in this model: %s", path, len(unused), _names_list(unused))
    log.info("loaded weights of %d layers from %s", len(loaded), path)
    return {"loaded": loaded, "missing": missing, "unused": unused}


def load_imagenet_weights(model: keras.Model, architecture: str, width: float = 1.0) -> int:
    """Copy ImageNet weights from ``keras.applications`` into the backbone (layers matched by name and shape).

    VGG19: conv kernels only (our convs are bias-free with BN); ``block1_conv1`` has its input channels reversed,
    because Keras' VGG19 was trained on BGR input and bpnet feeds RGB. MobileNetV2: every matching layer.
    Without network access Keras raises a plain ``Exception``: we log ONE warning and keep the random
    initialisation. Returns the number of layers copied.
    """
    try:
        if architecture == "vgg":
            ref = keras.applications.VGG19(weights="imagenet", include_top=False)
        else:
            ref = keras.applications.MobileNetV2(weights="imagenet", include_top=False, alpha=float(width))
    except Exception as exc:  # noqa: BLE001 - keras.utils.get_file raises a bare Exception when offline
        log.warning("ImageNet weights for %s are not available (%s: %s); training starts from a random "
                    "initialisation", architecture, type(exc).__name__, str(exc).splitlines()[0][:160])  # fmt: skip
        return 0
    ref_layers = {layer.name: layer for layer in ref.layers if layer.weights}
    copied = 0
    for layer in model.layers:
        src = ref_layers.get(layer.name)
        if src is None or not layer.weights:
            continue
        arrays = [np.asarray(w) for w in src.get_weights()]
        if architecture == "vgg":
            arrays = arrays[:1]
            if layer.name == "block1_conv1":
                arrays = [arrays[0][:, :, ::-1, :]]
        if [tuple(a.shape) for a in arrays] != [tuple(w.shape) for w in layer.weights]:
            continue
        layer.set_weights(arrays)
        copied += 1
    if copied == 0:
        log.warning("ImageNet weights for %s do not fit this model (width %.2f); keeping the random initialisation",
                    architecture, width)  # fmt: skip
    else:
        log.info("copied ImageNet weights into %d backbone layers", copied)
    return copied


def load_bpnet_model(path: str | os.PathLike, pose: PoseConfig | None = None) -> keras.Model:
    """Load a whole model (architecture + weights) from a ``.keras`` file, e.g. a pruned one (``load_graph``)."""
    path = Path(path)
    if not path.is_file():
        raise BpnetError(f"{path}: model file not found")
    if path.suffix.lower() != ".keras":
        raise BpnetError(f"{path}: load_graph needs a .keras model file (got {path.suffix or 'no suffix'})")
    try:
        model = keras.saving.load_model(str(path), compile=False, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - any deserialisation failure means "not a loadable bpnet model"
        raise BpnetError(f"{path}: not a loadable Keras model ({type(exc).__name__}: {str(exc)[:200]})") from None
    if pose is not None:
        check_model_channels(model, pose, str(path))
    return model


def is_imagenet(value: str | os.PathLike | None) -> bool:
    """``pretrained_weights: imagenet`` (after path resolution the value ends in ``/imagenet``; no such file)."""
    if value is None:
        return False
    p = Path(value)
    return p.name.lower() == IMAGENET and not p.exists()
