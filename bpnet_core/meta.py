"""The model contract: everything needed to use a model correctly, stored inside every model file bpnet writes.

>>> meta = read_meta("thin.onnx")              # .keras, .onnx, .xml (OpenVINO IR) or a TensorRT engine's sidecar
>>> meta.pose.num_joints, meta.color, meta.heatmaps().stride
(18, 'BGR', 8)

=====================  ==========================================================================================
field                  meaning
=====================  ==========================================================================================
``pose``               the :class:`~bpnet_core.skeleton.PoseConfig` itself (joints, limbs, flip pairs), embedded
``input_name``         the network's image input
``layout``             ``NHWC`` or ``NCHW`` (runners transpose; preprocessing always produces NHWC)
``color``              ``RGB`` or ``BGR`` channel order the network expects
``normalization``      ``x = pixel / scale − offset`` per channel (:class:`Normalization`), or ``None``: the graph
                       normalises itself and takes raw 0..255 pixels
``input_hw``           ``None`` (any size that is a multiple of ``input_multiple``) or a fixed (H, W)
``outputs``            per available stage, which output (and which channels of it) holds the heatmaps and the PAFs,
                       and each map's own stride (:class:`MapOutput`)
``num_stages``         stages of the network (outputs may cover only the last one)
``preprocessing``      the recommended way to turn a photo into an input (:class:`Preprocessing`)
``inference``          recommended inference-spec values (``input_shape``, ``keep_aspect_ratio_mode``, …): the
                       defaults of ``bpnet inference`` / ``evaluate`` when no spec is given
``provenance``         where the model comes from (card, source file, licence)
=====================  ==========================================================================================

Storage: ``.keras`` archive member ``bpnet_meta.json``; ONNX ``metadata_props['bpnet_meta']``; OpenVINO IR
``rt_info['bpnet_meta']``; TensorRT engine sidecar ``<engine>.meta.json``. All hold :meth:`ModelMeta.to_json`.

Through training, pruning and retraining the input half of the contract (:class:`InputContract`: colour,
normalisation, preprocessing, inference settings, provenance) passes from the model file a run starts from to the
file it writes (:func:`bpnet_core.config.training_contract`): the weights were trained on that input.
"""

from __future__ import annotations

import difflib
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from bpnet_core.errors import BpnetError
from bpnet_core.skeleton import PoseConfig

META_KEY = "bpnet_meta"
META_VERSION = 1
KERAS_MEMBER = "bpnet_meta.json"
ENGINE_SUFFIXES = (".engine", ".trt", ".plan")
LAYOUTS = ("NHWC", "NCHW")
COLORS = ("RGB", "BGR")
#: keep_aspect_ratio_mode values: TAO's two plus bpnet's (see :mod:`bpnet_core.preprocess`)
RESIZE_MODES = ("adjust_network_input", "pad_image_input", "fixed_height", "stretch", "letterbox")
INTERPOLATIONS = ("auto", "linear", "cubic", "area", "nearest")
REIMPORT_HINT = "re-import it with `bpnet import_model -m FILE --card CARD -o OUT`, or re-export it with this bpnet"


def check_keys(d: Any, allowed: set[str], where: str) -> dict:
    if not isinstance(d, dict):
        raise BpnetError(f"{where}: expected a mapping, got {type(d).__name__}")
    for key in d:
        if key not in allowed:
            hint = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            raise BpnetError(f"{where}: unknown key {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
    return d


def choice(value: Any, choices: tuple, where: str) -> str:
    v = str(value)
    for c in choices:
        if v.upper() == c.upper():
            return c
    raise BpnetError(f"{where}: must be one of {', '.join(choices)} (got {value!r})")


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise BpnetError(f"{where}: must be a positive integer (got {value!r})")
    return int(value)


def _triple(value: Any, where: str) -> tuple[float, float, float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value] * 3
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        out = ()
    if len(out) != 3:
        raise BpnetError(f"{where}: must be a number or 3 numbers (got {value!r})")
    return out  # type: ignore[return-value]


@dataclass(frozen=True)
class Normalization:
    """``x = pixel / scale − offset`` per channel, channels in the model's colour order. TAO: 256, 0.5."""

    scale: tuple[float, float, float] = (256.0, 256.0, 256.0)
    offset: tuple[float, float, float] = (0.5, 0.5, 0.5)

    def __post_init__(self) -> None:
        if any(s == 0 for s in self.scale):
            raise BpnetError(f"normalization.scale must not be 0 (got {list(self.scale)})")

    def to_dict(self) -> dict:
        return {"scale": list(self.scale), "offset": list(self.offset)}

    @classmethod
    def from_dict(cls, d: Any, where: str) -> Normalization | None:
        if d is None or (isinstance(d, str) and d.strip().lower() in ("in_graph", "none", "raw")):
            return None
        check_keys(d, {"scale", "offset"}, where)
        return cls(_triple(d.get("scale", 1.0), f"{where}.scale"), _triple(d.get("offset", 0.0), f"{where}.offset"))


#: ``normalization`` value of :func:`bpnet_meta` / :func:`~bpnet_core.model.model_meta` for a network that takes raw
#: 0..255 pixels (stored as ``None``; there ``None`` means TAO's default, 256 / 0.5, for existing callers).
IN_GRAPH = "in_graph"


def normalize_pixels(image_bgr: np.ndarray, color: str = "RGB", normalization: Normalization | None = None):
    """uint8 BGR pixels (..., 3) → float32 in ``color`` order, ``x / scale − offset`` (``None``: raw 0..255). The one
    normalisation of bpnet: training input, inference, calibration and parity checks all call it."""
    x = (image_bgr[..., ::-1] if color == "RGB" else image_bgr).astype(np.float32)
    if normalization is not None:
        x = x / np.asarray(normalization.scale, np.float32) - np.asarray(normalization.offset, np.float32)
    return x


def denormalize_pixels(x: np.ndarray, color: str = "RGB", normalization: Normalization | None = None) -> np.ndarray:
    """The inverse of :func:`normalize_pixels`: network input (..., 3) → uint8 BGR pixels (clipped to 0..255), for
    pictures of what a network was fed."""
    x = np.asarray(x, np.float32)
    if normalization is not None:
        x = (x + np.asarray(normalization.offset, np.float32)) * np.asarray(normalization.scale, np.float32)
    x = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(x[..., ::-1] if color == "RGB" else x)


def scale_offset(normalization: Normalization | None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(scale, offset)`` of a normalisation; raw pixels (``None``) are scale 1, offset 0."""
    if normalization is None:
        return (1.0, 1.0, 1.0), (0.0, 0.0, 0.0)
    return tuple(normalization.scale), tuple(normalization.offset)


@dataclass(frozen=True)
class MapOutput:
    """One map tensor: output ``name``, channels ``[start, stop)`` of its channel axis, stride, layout."""

    name: str
    start: int
    stop: int
    stride: int = 8
    layout: str = "NHWC"

    @property
    def channels(self) -> int:
        return self.stop - self.start

    def take(self, array: np.ndarray) -> np.ndarray:
        """This map, NHWC float32, from the raw output ``array`` (N, ...)."""
        a = np.asarray(array)
        if a.ndim != 4:
            raise BpnetError(f"output {self.name}: expected a 4-D map, got shape {a.shape}")
        if self.layout == "NCHW":
            a = a.transpose(0, 2, 3, 1)
        if a.shape[3] < self.stop:
            raise BpnetError(f"output {self.name}: has {a.shape[3]} channels, the contract needs channels "
                             f"{self.start}..{self.stop - 1}")  # fmt: skip
        return np.ascontiguousarray(a[..., self.start : self.stop], np.float32)

    def to_dict(self) -> dict:
        return {"name": self.name, "channels": [self.start, self.stop], "stride": self.stride, "layout": self.layout}

    @classmethod
    def from_dict(cls, d: Any, where: str, default_stride: int = 8, default_layout: str = "NHWC") -> MapOutput:
        check_keys(d, {"name", "channels", "stride", "layout"}, where)
        if not isinstance(d.get("name"), str) or not d["name"]:
            raise BpnetError(f"{where}.name: the output's name is required")
        ch = d.get("channels")
        if not (isinstance(ch, (list, tuple)) and len(ch) == 2 and all(isinstance(c, int) for c in ch)
                and 0 <= ch[0] < ch[1]):  # fmt: skip
            raise BpnetError(f"{where}.channels: must be [start, stop) with 0 <= start < stop (got {ch!r})")
        return cls(d["name"], int(ch[0]), int(ch[1]), _positive_int(d.get("stride", default_stride), f"{where}.stride"),
                   choice(d.get("layout", default_layout), LAYOUTS, f"{where}.layout"))  # fmt: skip


@dataclass(frozen=True)
class StageOutputs:
    stage: int
    heatmaps: MapOutput
    pafs: MapOutput


@dataclass(frozen=True)
class Preprocessing:
    """How a photo becomes a network input, beyond the inference spec's ``input_shape`` / ``keep_aspect_ratio_mode``:
    the resampling filter (``auto`` = area when shrinking, linear when enlarging) and the padding pixel value."""

    interpolation: str = "auto"
    pad_value: float = 128.0  # a raw pixel value (0..255), the same in every channel

    def to_dict(self) -> dict:
        return {"interpolation": self.interpolation, "pad_value": self.pad_value}

    @classmethod
    def from_dict(cls, d: Any, where: str) -> Preprocessing:
        d = check_keys(d or {}, {"interpolation", "pad_value"}, where)
        pad = d.get("pad_value", 128.0)
        if isinstance(pad, bool) or not isinstance(pad, (int, float)) or not 0 <= pad <= 255:
            raise BpnetError(f"{where}.pad_value: must be a pixel value in 0..255 (got {pad!r})")
        return cls(choice(d.get("interpolation", "auto"), INTERPOLATIONS, f"{where}.interpolation").lower(),
                   float(pad))  # fmt: skip


@dataclass(frozen=True)
class ModelMeta:
    """The contract of one model file (see the module docstring)."""

    name: str
    pose: PoseConfig
    outputs: tuple[StageOutputs, ...]
    num_stages: int
    input_name: str = "input_1"
    layout: str = "NHWC"
    color: str = "RGB"
    normalization: Normalization | None = field(default_factory=Normalization)
    input_hw: tuple[int, int] | None = None
    input_multiple: int = 8
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    inference: dict = field(default_factory=dict)
    precision: str = "fp32"
    provenance: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"model contract of {self.name}"
        if not self.outputs:
            raise BpnetError(f"{where}: no outputs")
        for s in self.outputs:
            if s.heatmaps.channels != self.pose.num_heatmap_channels:
                raise BpnetError(f"{where}: heatmap output {s.heatmaps.name} has {s.heatmaps.channels} channels but "
                                 f"pose config {self.pose.name} needs {self.pose.num_heatmap_channels} "
                                 f"({self.pose.num_joints} joints + background)")  # fmt: skip
            if s.pafs.channels != self.pose.num_paf_channels:
                raise BpnetError(f"{where}: PAF output {s.pafs.name} has {s.pafs.channels} channels but pose config "
                                 f"{self.pose.name} needs {self.pose.num_paf_channels} (2 x {self.pose.num_limbs} "
                                 "limbs)")  # fmt: skip
            if not 1 <= s.stage <= self.num_stages:
                raise BpnetError(f"{where}: output stage {s.stage} outside 1..{self.num_stages}")

    # ------------------------------------------------------------------ derived
    @property
    def stride(self) -> int:
        """The heatmaps' stride (the decoder's grid); PAFs may have their own (:meth:`pafs`)."""
        return self.stage().heatmaps.stride

    @property
    def available_stages(self) -> list[int]:
        return sorted(s.stage for s in self.outputs)

    def stage(self, stage: int | None = None) -> StageOutputs:
        """The outputs of ``stage`` (1-based; ``None`` = the last available)."""
        by = {s.stage: s for s in self.outputs}
        t = max(by) if stage is None else int(stage)
        if t not in by:
            raise BpnetError(f"output_stage_to_use={stage}: model {self.name} provides stage(s) {sorted(by)} "
                             f"of {self.num_stages}")  # fmt: skip
        return by[t]

    def heatmaps(self, stage: int | None = None) -> MapOutput:
        return self.stage(stage).heatmaps

    def pafs(self, stage: int | None = None) -> MapOutput:
        return self.stage(stage).pafs

    def output_names(self) -> list[str]:
        names: list[str] = []
        for s in self.outputs:
            for m in (s.heatmaps, s.pafs):
                if m.name not in names:
                    names.append(m.name)
        return names

    def normalize(self, image_bgr: np.ndarray) -> np.ndarray:
        """uint8 BGR (H, W, 3) → float32 (H, W, 3) in this model's colour order and normalisation (NHWC)."""
        return normalize_pixels(image_bgr, self.color, self.normalization)

    def with_changes(self, **changes) -> ModelMeta:
        return replace(self, **changes)

    def input_contract(self, source: str | None = None) -> InputContract:
        """The part of this contract that describes the input and its use (colour, normalisation, preprocessing,
        recommended inference settings, provenance), e.g. for a model trained from this one."""
        return InputContract(self.color, self.normalization, self.preprocessing, dict(self.inference),
                             dict(self.provenance), source)  # fmt: skip

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict:
        return {
            "version": META_VERSION,
            "name": self.name,
            "pose": self.pose.to_json_dict(),
            "input": {
                "name": self.input_name,
                "layout": self.layout,
                "color": self.color,
                "normalization": self.normalization.to_dict() if self.normalization else "in_graph",
                "size": list(self.input_hw) if self.input_hw else "dynamic",
                "multiple": self.input_multiple,
            },  # fmt: skip
            "outputs": [
                {"stage": s.stage, "heatmaps": s.heatmaps.to_dict(), "pafs": s.pafs.to_dict()} for s in self.outputs
            ],  # fmt: skip
            "num_stages": self.num_stages,
            "preprocessing": self.preprocessing.to_dict(),
            "inference": dict(self.inference),
            "precision": self.precision,
            "provenance": dict(self.provenance),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: Any, source: str = "model") -> ModelMeta:
        where = f"{source}: model contract"
        check_keys(d, {"version", "name", "pose", "input", "outputs", "num_stages", "preprocessing", "inference",
                        "precision", "provenance"}, where)  # fmt: skip
        if d.get("version") != META_VERSION:
            raise BpnetError(f"{where}: version {d.get('version')!r} is not {META_VERSION}; {REIMPORT_HINT}")
        pose = pose_from_dict(d.get("pose"), f"{where}.pose")
        inp = check_keys(d.get("input") or {}, {"name", "layout", "color", "normalization", "size", "multiple"},
                          f"{where}.input")  # fmt: skip
        layout = choice(inp.get("layout", "NHWC"), LAYOUTS, f"{where}.input.layout")
        stages = []
        outs = d.get("outputs")
        if not isinstance(outs, list) or not outs:
            raise BpnetError(f"{where}.outputs: must be a non-empty list")
        for k, s in enumerate(outs):
            check_keys(s, {"stage", "heatmaps", "pafs"}, f"{where}.outputs[{k}]")
            stages.append(StageOutputs(_positive_int(s.get("stage"), f"{where}.outputs[{k}].stage"),
                                       MapOutput.from_dict(s.get("heatmaps"), f"{where}.outputs[{k}].heatmaps"),
                                       MapOutput.from_dict(s.get("pafs"), f"{where}.outputs[{k}].pafs")))  # fmt: skip
        return cls(
            name=str(d.get("name") or "model"),
            pose=pose,
            outputs=tuple(stages),
            num_stages=_positive_int(d.get("num_stages", max(s.stage for s in stages)), f"{where}.num_stages"),
            input_name=str(inp.get("name", "input_1")),
            layout=layout,
            color=choice(inp.get("color", "RGB"), COLORS, f"{where}.input.color"),
            normalization=Normalization.from_dict(inp.get("normalization"), f"{where}.input.normalization"),
            input_hw=parse_size(inp.get("size", "dynamic"), f"{where}.input.size"),
            input_multiple=_positive_int(inp.get("multiple", 8), f"{where}.input.multiple"),
            preprocessing=Preprocessing.from_dict(d.get("preprocessing"), f"{where}.preprocessing"),
            inference=dict(d.get("inference") or {}),
            precision=str(d.get("precision", "fp32")),
            provenance=dict(d.get("provenance") or {}),
        )

    @classmethod
    def from_json(cls, text: str, source: str = "model") -> ModelMeta:
        try:
            d = json.loads(text)
        except (json.JSONDecodeError, TypeError) as exc:
            raise BpnetError(f"{source}: the model contract is not valid JSON ({exc}); {REIMPORT_HINT}") from None
        return cls.from_dict(d, source)


def parse_size(value: Any, where: str) -> tuple[int, int] | None:
    if value is None or (isinstance(value, str) and value.strip().lower() == "dynamic"):
        return None
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return _positive_int(value[0], where), _positive_int(value[1], where)
    raise BpnetError(f"{where}: must be dynamic or [H, W] (got {value!r})")


def pose_from_dict(d: Any, where: str) -> PoseConfig:
    """A :class:`PoseConfig` from its file form (as :meth:`PoseConfig.to_json_dict` writes it)."""
    if not isinstance(d, dict):
        raise BpnetError(f"{where}: the pose config is missing")
    try:
        names = [str(n) for n in d["keypoints"]]
        limbs = [(int(a) - 1, int(b) - 1) for a, b in d["skeleton"]]
        return PoseConfig(name=str(d.get("name", "pose")), joint_names=names, limbs=limbs,
                          derived_joints={str(k): list(v) for k, v in (d.get("derived_joints") or {}).items()},
                          source=where)  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise BpnetError(f"{where}: malformed pose config ({type(exc).__name__}: {exc})") from None


@dataclass(frozen=True)
class InputContract:
    """What a network's input is and how the network is best used: colour order, normalisation (``None``: raw 0..255
    pixels), preprocessing, recommended inference settings and provenance — the part of a :class:`ModelMeta` that
    does not depend on the graph, so that it can pass from one model file to the next (a training run takes it from
    the model it starts from, see :func:`bpnet_core.config.training_contract`). ``source``: the model file it was
    read from (``None``: from a train spec)."""

    color: str = "RGB"
    normalization: Normalization | None = field(default_factory=Normalization)
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    inference: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    source: str | None = None

    def normalize(self, image_bgr: np.ndarray) -> np.ndarray:
        """uint8 BGR → float32 network input in this contract's colour order and normalisation."""
        return normalize_pixels(image_bgr, self.color, self.normalization)

    def denormalize(self, x: np.ndarray) -> np.ndarray:
        """Network input → uint8 BGR pixels (the inverse of :meth:`normalize`)."""
        return denormalize_pixels(x, self.color, self.normalization)

    def meta_kwargs(self) -> dict:
        """Keyword arguments of :func:`bpnet_meta` (and ``model_meta`` / ``save_bpnet_model``) that write this
        contract's input into a model file's contract (provenance apart: the writer decides what it adds)."""
        norm = self.normalization if self.normalization is not None else IN_GRAPH
        return {"normalization": norm, "color": self.color, "preprocessing": self.preprocessing,
                "inference": dict(self.inference)}  # fmt: skip


def bpnet_meta(pose: PoseConfig, num_stages: int, output_names: list[str],
               normalization: Normalization | str | None = None, input_hw=None, layout: str = "NHWC",
               input_name: str = "input_1", name: str = "bpnet", stride: int = 8, precision: str = "fp32",
               provenance: dict | None = None, *, color: str = "RGB", preprocessing: Preprocessing | None = None,
               inference: dict | None = None) -> ModelMeta:  # fmt: skip
    """The contract of a bpnet-built network whose outputs are ``[heat_1..heat_S, paf_1..paf_S]`` of one or more
    consecutive stages ending at ``num_stages`` (TAO order). Outputs stay NHWC.

    Input: ``color`` order (RGB, as TAO trains, unless the weights came from a BGR network), ``x / scale − offset``
    with ``normalization`` (``None``: TAO's 256 / 0.5; :data:`IN_GRAPH`: raw 0..255 pixels), the recommended
    ``preprocessing`` (default :class:`Preprocessing`) and ``inference`` settings (default none)."""
    if len(output_names) < 2 or len(output_names) % 2:
        raise BpnetError(f"{name}: expected heatmap and PAF outputs per stage, got {output_names}")
    s = len(output_names) // 2
    first = num_stages - s + 1
    outs = tuple(
        StageOutputs(
            first + t,
            MapOutput(output_names[t], 0, pose.num_heatmap_channels, stride),
            MapOutput(output_names[s + t], 0, pose.num_paf_channels, stride),
        )
        for t in range(s)
    )
    if isinstance(normalization, str):
        if normalization.strip().lower() not in (IN_GRAPH, "none", "raw"):
            raise BpnetError(f"{name}: normalization must be a Normalization, None or {IN_GRAPH!r} "
                             f"(got {normalization!r})")  # fmt: skip
        normalization = None
    elif normalization is None:
        normalization = Normalization()
    return ModelMeta(name=name, pose=pose, outputs=outs, num_stages=num_stages, input_name=input_name, layout=layout,
                     color=choice(color, COLORS, f"{name}: color"), normalization=normalization,
                     input_hw=tuple(input_hw) if input_hw else None, input_multiple=stride,
                     preprocessing=preprocessing or Preprocessing(), inference=dict(inference or {}),
                     precision=precision, provenance=dict(provenance or {}))  # fmt: skip


# ---------------------------------------------------------------------------------------------------- file I/O


def keras_members(meta: ModelMeta) -> dict[str, str]:
    """The archive member that carries ``meta`` in a ``.keras`` file (for :func:`bpnet_core.fileio.save_model_atomic`;
    Keras ignores members it does not know)."""
    return {KERAS_MEMBER: meta.to_json()}


def stored_contract(path: str | os.PathLike | None) -> ModelMeta | None:
    """The contract inside a ``.keras`` model file, or ``None`` when ``path`` is not one that carries a contract (no
    such file, another file type — weights ``.h5``, TAO ``.hdf5``, ``imagenet`` —, not a zip archive, or a plain Keras
    model without ``bpnet_meta.json``). A malformed contract is an error, as in :func:`read_meta`."""
    if not path:
        return None
    path = Path(path)
    if path.suffix.lower() != ".keras" or not path.is_file():
        return None
    try:
        with zipfile.ZipFile(path) as zf:
            if KERAS_MEMBER not in zf.namelist():
                return None
    except (zipfile.BadZipFile, OSError):
        return None
    return read_meta(path)


def engine_sidecar(path: str | os.PathLike) -> Path:
    return Path(str(path) + ".meta.json")


def read_meta(path: str | os.PathLike) -> ModelMeta:
    """The contract stored in a model file; a one-line error saying how to re-import when it is missing/malformed."""
    path = Path(path)
    if not path.exists():
        raise BpnetError(f"{path}: model file not found")
    suffix = path.suffix.lower()
    text = None
    if suffix == ".keras":
        try:
            with zipfile.ZipFile(path) as zf:
                if KERAS_MEMBER in zf.namelist():
                    text = zf.read(KERAS_MEMBER).decode("utf-8")
        except (zipfile.BadZipFile, OSError) as exc:
            raise BpnetError(f"{path}: not a loadable Keras model ({exc})") from None
    elif suffix == ".onnx":
        import onnx

        try:
            proto = onnx.load(str(path), load_external_data=False)
        except Exception as exc:  # noqa: BLE001 - onnx raises several types for a corrupt file
            raise BpnetError(f"{path}: not a loadable ONNX model ({str(exc).splitlines()[0][:160]})") from None
        text = next((p.value for p in proto.metadata_props if p.key == META_KEY), None)
    elif suffix == ".xml":
        model = read_ir(path)
        if model.has_rt_info([META_KEY]):
            text = model.get_rt_info([META_KEY]).astype(str)
    elif suffix in ENGINE_SUFFIXES:
        side = engine_sidecar(path)
        if side.is_file():
            text = side.read_text()
    else:
        raise BpnetError(f"{path}: unknown model type {suffix!r} (expected .keras, .onnx, .xml or .engine)")
    if text is None:
        raise BpnetError(f"{path}: no bpnet model contract ({META_KEY}) in the file; {REIMPORT_HINT}")
    return ModelMeta.from_json(text, str(path))


def set_onnx_meta(proto, meta: ModelMeta) -> None:
    """Store the contract in an ONNX proto under ``metadata_props['bpnet_meta']`` (replacing an earlier entry)."""
    keep = [p for p in proto.metadata_props if p.key != META_KEY]
    del proto.metadata_props[:]
    for p in keep:
        proto.metadata_props.add(key=p.key, value=p.value)
    proto.metadata_props.add(key=META_KEY, value=meta.to_json())


def write_ir(model, output: str | os.PathLike, meta: ModelMeta, compress_to_fp16: bool = False) -> Path:
    """Save the ``openvino.Model`` ``model`` as an IR with ``meta`` in its rt_info, atomically (``.bin`` first, then
    ``.xml``)."""
    output = Path(output)
    if output.suffix.lower() != ".xml":
        raise BpnetError(f"{output}: an OpenVINO IR is written as .xml (+ .bin)")
    try:
        import openvino as ov
    except ImportError:
        raise BpnetError("--backend openvino needs the openvino package (pip install 'bpnet[deploy]')") from None
    model.set_rt_info(meta.to_json(), [META_KEY])
    with tempfile.TemporaryDirectory(prefix=f".{output.stem}.", dir=output.parent) as tmp:
        xml = Path(tmp) / "model.xml"
        ov.save_model(model, str(xml), compress_to_fp16=compress_to_fp16)
        os.replace(xml.with_suffix(".bin"), output.with_suffix(".bin"))
        os.replace(xml, output)
    return output


def read_ir(path: str | os.PathLike):
    """An OpenVINO IR (``.xml`` + its ``.bin``) as an ``openvino.Model``; one-line errors for the usual faults."""
    path = Path(path)
    bin_path = path.with_suffix(".bin")
    if not bin_path.is_file():
        raise BpnetError(f"{path}: the IR's weights file {bin_path.name} is missing beside it")
    try:
        import openvino as ov
    except ImportError:
        raise BpnetError(f"{path}: OpenVINO IR needs the openvino package (pip install 'bpnet[deploy]')") from None
    try:
        return ov.Core().read_model(str(path), str(bin_path))
    except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeError subclasses for corrupt files
        raise BpnetError(f"{path}: not a loadable OpenVINO IR ({str(exc).strip().splitlines()[0][:160]})") from None


def check_encrypted(path: str | os.PathLike) -> None:
    """TAO's encrypted ``.tlt`` / ``.etlt`` files cannot be read by anyone but TAO."""
    if Path(path).suffix.lower() in (".tlt", ".etlt"):
        raise BpnetError(f"{path}: an encrypted TAO model; export it to plain ONNX (or .hdf5) with TAO first — bpnet "
                         "does not decrypt")  # fmt: skip
