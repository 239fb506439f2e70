"""Model cards: a small YAML file stating an external network's contract, turned into a :class:`ModelMeta`.

A card describes a contract, not one file: the same card imports any network with that input, those outputs and
that pose config. Keys (all checked strictly; an unknown key gets a "did you mean"):

==================  ============================================================================================
``name``            the model's name
``description``     free text
``licence``         the weights' licence
``source``          provenance (free-form mapping: project, file, download command, sha256 …)
``pose_config``     a shipped pose config name (``bpnet_18joints.json``) or a path relative to the card
``input``           ``name``, ``layout`` (NHWC/NCHW), ``color`` (RGB/BGR), ``normalization`` (``in_graph`` for raw
                    0..255 pixels, or ``{scale, offset}``: x = pixel / scale − offset), ``size`` (``dynamic`` or
                    [H, W]), ``multiple`` (input sides must be multiples of it; default 8)
``num_stages``      stages of the network
``outputs``         ``stage`` (which stage the outputs are), ``heatmaps`` and ``pafs``: ``{name, channels: [start,
                    stop), stride, layout}`` — both may name the same output (heatmaps and PAFs concatenated)
``preprocessing``   ``interpolation`` (auto/linear/cubic/area/nearest), ``pad_value`` (raw pixel value)
``inference``       recommended inference-spec values (e.g. ``input_shape``, ``keep_aspect_ratio_mode``): the
                    defaults of ``bpnet inference`` / ``evaluate`` for the imported model
``architecture``    the ``model:`` block of a train spec that rebuilds the network as a trainable bpnet model
                    (``bpnet import_model -o OUT.keras``; see :class:`~bpnet_core.config.train_spec.ModelConfig`)
==================  ============================================================================================
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from bpnet_core.config import apply_overrides
from bpnet_core.config.schema import InferSpec
from bpnet_core.config.train_spec import TrainSpec
from bpnet_core.errors import BpnetError
from bpnet_core.meta import (
    COLORS,
    LAYOUTS,
    MapOutput,
    ModelMeta,
    Normalization,
    Preprocessing,
    StageOutputs,
    check_keys,
    choice,
    parse_size,
)
from bpnet_core.paths import project_file
from bpnet_core.skeleton import PoseConfig

CARD_KEYS = {"name", "description", "licence", "source", "pose_config", "input", "num_stages", "outputs",
             "preprocessing", "inference", "architecture"}  # fmt: skip


def shipped_cards() -> list[str]:
    """Names of the cards shipped with bpnet (``model_cards/*.yaml``)."""
    return sorted(p.stem for p in project_file("model_cards").glob("*.yaml"))


def card_path(card: str | os.PathLike) -> Path:
    """A card file: the path as given when it exists, else a shipped card by name (with or without ``.yaml``)."""
    p = Path(card)
    if p.is_file():
        return p
    shipped = project_file("model_cards")
    name = p.name if p.suffix in (".yaml", ".yml") else f"{p.name}.yaml"
    if len(p.parts) == 1 and (shipped / name).is_file():
        return shipped / name
    import difflib

    hint = difflib.get_close_matches(p.stem, shipped_cards(), n=1)
    raise BpnetError(f"{card}: model card not found (a path, or a shipped card: {', '.join(shipped_cards())})"
                     + (f"; did you mean {hint[0]!r}?" if hint else ""))  # fmt: skip


def _pose(value, card: Path) -> PoseConfig:
    if not isinstance(value, str) or not value:
        raise BpnetError(f"{card}: pose_config: a pose config file name or path is required")
    p = Path(value)
    if not p.is_absolute():
        beside = card.parent / p
        if beside.is_file():
            return PoseConfig.from_json(beside)
        shipped = project_file("model_pose_config")
        if (shipped / p.name).is_file() and len(p.parts) == 1:
            return PoseConfig.from_json(shipped / p.name)
    if not p.is_file():
        raise BpnetError(f"{card}: pose_config: {value} not found (beside the card or in model_pose_config/)")
    return PoseConfig.from_json(p)


def load_card(card: str | os.PathLike, overrides=()) -> tuple[ModelMeta, dict]:
    """The contract a card states (``ModelMeta``) and the card's mapping, after ``overrides`` (``key=value`` with
    dotted keys, as ``--set`` gives them)."""
    path = card_path(card)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise BpnetError(f"{path}: not a readable YAML model card ({str(exc).splitlines()[0][:160]})") from None
    where = str(path)
    check_keys(data, CARD_KEYS, where)
    data = apply_overrides(data, overrides)
    check_keys(data, CARD_KEYS, where + " (--set)")
    for key in ("name", "pose_config", "input", "outputs"):
        if key not in data:
            raise BpnetError(f"{where}: {key}: required")
    pose = _pose(data["pose_config"], path)
    inp = check_keys(data["input"], {"name", "layout", "color", "normalization", "size", "multiple"}, f"{where}: input")
    if not inp.get("name"):
        raise BpnetError(f"{where}: input.name: required")
    layout = choice(inp.get("layout", "NHWC"), LAYOUTS, f"{where}: input.layout")
    outs = check_keys(data["outputs"], {"stage", "heatmaps", "pafs"}, f"{where}: outputs")
    num_stages = data.get("num_stages", outs.get("stage", 1))
    stage = outs.get("stage", num_stages)
    for key in ("heatmaps", "pafs"):
        if key not in outs:
            raise BpnetError(f"{where}: outputs.{key}: required")
    heat = MapOutput.from_dict(outs["heatmaps"], f"{where}: outputs.heatmaps", default_layout=layout)
    pafs = MapOutput.from_dict(outs["pafs"], f"{where}: outputs.pafs", default_layout=layout)
    if heat.channels != pose.num_heatmap_channels:
        raise BpnetError(f"{where}: outputs.heatmaps.channels: {heat.start}..{heat.stop} is {heat.channels} "
                         f"channels but pose config {pose.name} needs {pose.num_heatmap_channels}")  # fmt: skip
    if pafs.channels != pose.num_paf_channels:
        raise BpnetError(f"{where}: outputs.pafs.channels: {pafs.start}..{pafs.stop} is {pafs.channels} channels but "
                         f"pose config {pose.name} needs {pose.num_paf_channels}")  # fmt: skip
    inference = data.get("inference") or {}
    if not isinstance(inference, dict):
        raise BpnetError(f"{where}: inference: must be a mapping of inference-spec keys")
    InferSpec.from_dict(dict(inference), source=f"{where}: inference")  # unknown keys / bad values fail here
    if "architecture" in data:
        if not isinstance(data["architecture"], dict):
            raise BpnetError(f"{where}: architecture: must be the model: block of a train spec")
        TrainSpec.from_dict({"model": data["architecture"]}, source=f"{where}: architecture")
    try:
        meta = ModelMeta(
            name=str(data["name"]),
            pose=pose,
            outputs=(StageOutputs(int(stage), heat, pafs),),
            num_stages=int(num_stages),
            input_name=str(inp["name"]),
            layout=layout,
            color=choice(inp.get("color", "RGB"), COLORS, f"{where}: input.color"),
            normalization=Normalization.from_dict(inp.get("normalization"), f"{where}: input.normalization"),
            input_hw=parse_size(inp.get("size", "dynamic"), f"{where}: input.size"),
            input_multiple=int(inp.get("multiple", 8)),
            preprocessing=Preprocessing.from_dict(data.get("preprocessing"), f"{where}: preprocessing"),
            inference=dict(inference),
            provenance={
                "card": str(data["name"]),
                "licence": str(data.get("licence", "")),
                "source": data.get("source") or {},
            },  # fmt: skip
        )
    except (TypeError, ValueError) as exc:
        raise BpnetError(f"{where}: {exc}") from None
    return meta, data
