"""Load, override, validate and dump spec files.

Layering, the same for every spec kind: **schema defaults → spec file → overrides → validate**.

* Files are YAML (read only with ``yaml.safe_load``) or, for ``.json`` names, JSON. A missing, empty or malformed
  file (YAML: with line and column), a duplicated key, an unknown key (with the closest valid key), a wrong type
  or a failed cross-field check raises a one-line :class:`~bpnet_core.errors.BpnetError` naming the file and the
  full dotted key: ``specs/x.yaml: unknown key 'model.stagse' (did you mean 'stages'?)``.
* Overrides are ``"a.b.c=value"`` strings (the CLI's ``--set``; the value is parsed with ``yaml.safe_load``, so
  ``4``, ``0.5``, ``[1,2]``, ``true`` and ``null`` work) or a mapping ``{"a.b.c": value}`` (notebooks; the value
  is used as is). A list item is addressed as ``a.b[0]`` or ``a.b.0``. Setting a mapping onto a mapping merges
  them key by key. Override keys are checked against the schema before anything is applied; errors they cause
  name ``--set`` instead of the file.
* Paths: after validation every path field is made absolute with :func:`~bpnet_core.config.schema.resolve_path`:
  a relative path that starts with ``specs/``, ``model_pose_config/`` or ``data_pose_config/`` resolves against
  the repository root, any other relative path against the spec file's folder. A relative path given by an
  override (one that does not start with those folders) is taken relative to the current directory, like any
  command-line path. Paths are never checked for existence here: TAO's specs with ``/workspace/...`` paths load
  unchanged, and each step checks the files it opens.
* :func:`dump_spec` writes the resolved spec (every default filled in, paths absolute) atomically, so
  ``load(dump(spec)) == spec``; write it as ``params.yaml`` next to a run's outputs.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from bpnet_core.config.blocks import SpecRoot
from bpnet_core.config.dataset_spec import DatasetSpec
from bpnet_core.config.fields import SHIPPED_DIRS, resolve_path
from bpnet_core.config.infer_spec import InferSpec
from bpnet_core.config.keys import (
    NotAMapping,
    UnknownKey,
    dotted,
    schema_lookup,
    split_key,
    unknown_key_message,
)
from bpnet_core.config.train_spec import TrainSpec
from bpnet_core.errors import BpnetError
from bpnet_core.fileio import read_json, write_text_atomic
from bpnet_core.paths import find_shipped, not_found_hint

__all__ = [
    "read_spec_file",
    "parse_overrides",
    "apply_overrides",
    "load_train_spec",
    "as_train_spec",
    "load_infer_spec",
    "load_dataset_spec",
    "dump_spec",
    "resolve_path",
]

log = logging.getLogger(__name__)

OVERRIDE_SOURCE = "--set"
S = TypeVar("S", bound=SpecRoot)


# ---------------------------------------------------------------------------------------------------- reading


def _yaml_position(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is None:
        return ""
    return f" at line {mark.line + 1} column {mark.column + 1}"


def _find_duplicate_key(node: Any) -> tuple[str, int] | None:
    """First key that appears twice in one YAML mapping (``safe_load`` would silently keep the last one)."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, yaml.MappingNode):
            seen: set = set()
            for key_node, value_node in n.value:
                if isinstance(key_node, yaml.ScalarNode):
                    if key_node.value in seen:
                        return key_node.value, key_node.start_mark.line + 1
                    seen.add(key_node.value)
                stack.append(value_node)
        elif isinstance(n, yaml.SequenceNode):
            stack.extend(n.value)
    return None


def read_spec_file(path: str | os.PathLike, what: str = "spec file") -> dict:
    """Read a YAML (or ``.json``) spec into a dict; every problem is a one-line :class:`BpnetError`."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        data = read_json(path, what)
    else:
        if not path.is_file():
            raise BpnetError(f"{path}: {what} not found")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise BpnetError(f"{path}: {what} is not UTF-8 text") from None
        except OSError as exc:
            raise BpnetError(f"{path}: cannot read {what}: {exc.strerror}") from None
        if not text.strip():
            raise BpnetError(f"{path}: {what} is empty")
        try:
            dup = _find_duplicate_key(yaml.compose(text, Loader=yaml.SafeLoader))
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise BpnetError(f"{path}: malformed YAML{_yaml_position(exc)}: {problem}") from None
        if dup is not None:
            raise BpnetError(f"{path}: duplicate key {dup[0]!r} at line {dup[1]}")
    if data is None:
        raise BpnetError(f"{path}: {what} is empty (only comments)")
    if not isinstance(data, dict):
        raise BpnetError(f"{path}: {what} must be a mapping of keys, got {type(data).__name__}")
    return data


# ---------------------------------------------------------------------------------------------------- overrides

Override = tuple[str, tuple, Any]  # (key as written, key parts, value)


def parse_overrides(overrides: Iterable[str] | Mapping[str, Any] | str | None) -> list[Override]:
    """Normalise overrides to ``(key, parts, value)``; ``"a.b=c"`` values are parsed with ``yaml.safe_load``."""
    if overrides is None:
        return []
    if isinstance(overrides, str):
        overrides = [overrides]
    out: list[Override] = []
    if isinstance(overrides, Mapping):
        items = [(str(k), v) for k, v in overrides.items()]
    else:
        items = []
        for item in overrides:
            if not isinstance(item, str) or "=" not in item:
                raise BpnetError(f"{OVERRIDE_SOURCE}: expected KEY=VALUE, got {item!r}")
            key, raw = item.split("=", 1)
            try:
                value = yaml.safe_load(raw) if raw.strip() else None
            except yaml.YAMLError as exc:
                problem = getattr(exc, "problem", None) or "not valid YAML"
                raise BpnetError(f"{OVERRIDE_SOURCE} {key.strip()}: cannot parse value {raw!r}: {problem}") from None
            items.append((key, value))
    for key, value in items:
        key = key.strip()
        parts = split_key(key)
        if not parts or any(chunk.strip() == "" for chunk in key.split(".")):
            raise BpnetError(f"{OVERRIDE_SOURCE}: malformed key {key!r} (use dotted keys like model.stages)")
        out.append((key, parts, value))
    return out


def _check_override_key(schema: type, parts: tuple) -> bool:
    """Raise for a key the schema does not have; return whether it names a path field."""
    try:
        _, is_path = schema_lookup(schema, parts)
    except UnknownKey as exc:
        raise BpnetError(unknown_key_message(OVERRIDE_SOURCE, parts[: exc.index + 1], exc.candidates)) from None
    except NotAMapping as exc:
        raise BpnetError(
            f"{OVERRIDE_SOURCE}: cannot set {dotted(parts)!r}: {dotted(parts[: exc.index])!r} has no sub-keys"
        ) from None
    return is_path


def _deep_merge(base: Any, new: Any) -> Any:
    if isinstance(base, dict) and isinstance(new, dict):
        merged = dict(base)
        for k, v in new.items():
            merged[k] = _deep_merge(base.get(k), v)
        return merged
    return copy.deepcopy(new)


def _set_in(data: dict, parts: tuple, value: Any) -> None:
    node: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, dict):
            key = str(part) if isinstance(part, int) and str(part) not in node and part not in node else part
            if last:
                node[key] = _deep_merge(node.get(key), value)
                return
            if not isinstance(node.get(key), (dict, list)):
                if node.get(key) is not None:
                    raise BpnetError(
                        f"{OVERRIDE_SOURCE}: cannot set {dotted(parts)!r}: {dotted(parts[: i + 1])!r} is "
                        f"{node[key]!r}, not a mapping"
                    )
                node[key] = {}
            node = node[key]
        elif isinstance(node, list) and isinstance(part, int):
            if not 0 <= part < len(node):
                raise BpnetError(
                    f"{OVERRIDE_SOURCE}: cannot set {dotted(parts)!r}: index {part} is outside "
                    f"{dotted(parts[:i])!r} (length {len(node)})"
                )
            if last:
                node[part] = _deep_merge(node[part], value)
                return
            node = node[part]
        else:
            raise BpnetError(f"{OVERRIDE_SOURCE}: cannot set {dotted(parts)!r}: {dotted(parts[:i])!r} has no sub-keys")


def _cwd_path(value: Any) -> Any:
    """A relative path typed on the command line is relative to the current directory (unless it names a file
    shipped with bpnet)."""
    if not isinstance(value, str) or not value or os.path.isabs(os.path.expanduser(value)):
        return value
    first = Path(value).parts[0] if Path(value).parts else ""
    if first in SHIPPED_DIRS:
        return value
    return os.path.normpath(os.path.join(os.getcwd(), value))


def apply_overrides(
    data: Mapping[str, Any] | None,
    overrides: Iterable[str] | Mapping[str, Any] | str | None,
    *,
    schema: type | None = None,
) -> dict:
    """Return a deep copy of ``data`` with ``overrides`` applied (see the module docstring for the forms).

    Missing intermediate mappings (or ``null`` ones) are created. With ``schema`` (a spec class such as
    :class:`TrainSpec`), every key is first checked against it (unknown key → error naming ``--set`` and the
    closest valid key), and relative paths given for path fields are made absolute against the current
    directory.
    """
    result = copy.deepcopy(dict(data or {}))
    parsed = parse_overrides(overrides)
    path_flags = [_check_override_key(schema, parts) if schema is not None else False for _, parts, _ in parsed]
    for (_key, parts, value), is_path in zip(parsed, path_flags):
        if is_path:
            value = {k: _cwd_path(v) for k, v in value.items()} if isinstance(value, dict) else _cwd_path(value)
        _set_in(result, parts, value)
    return result


# ---------------------------------------------------------------------------------------------------- paths


# ---------------------------------------------------------------------------------------------------- loading


def _build(cls: type[S], data: dict, overrides, source: str, anchor: Path | None) -> S:
    if overrides is not None and not isinstance(overrides, (Mapping, str)):
        overrides = list(overrides)  # read twice below
    parsed = parse_overrides(overrides)
    merged = apply_overrides(data, overrides, schema=cls)
    spec = cls.from_dict(merged, source=source, spec_dir=anchor.parent if anchor else None,
                         override_keys=tuple(p for _, p, _ in parsed))  # fmt: skip
    if parsed:
        log.debug("%s: applied overrides %s", source, ", ".join(k for k, _, _ in parsed))
    return spec


def _load(cls: type[S], path: str | os.PathLike, overrides, what: str, shipped: tuple[str, str]) -> S:
    """``path`` as given, else the shipped file it names (``bpnet_core.paths.find_shipped``); ``shipped`` is the
    (folder, pattern) of the shipped files listed when neither exists."""
    path = find_shipped(path)
    if not path.exists():
        raise BpnetError(f"{path}: {what} not found" + not_found_hint(*shipped))
    return _build(cls, read_spec_file(path, what), overrides, str(path), path.absolute())


def load_train_spec(path: str | os.PathLike, overrides=()) -> TrainSpec:
    """Load a training spec (``bpnet_train_*.yaml``, or a shipped one by name): defaults → file → overrides →
    validate; paths absolute."""
    return _load(TrainSpec, path, overrides, "train spec", ("specs", "bpnet_*"))


def override(spec: S, overrides=()) -> S:
    """A copy of a loaded spec (any kind) with ``overrides`` (``["a.b=c", …]`` or ``{"a.b": c}``, the CLI's
    ``--set``) applied and validated again; errors under an overridden key name ``--set``. No overrides: ``spec``."""
    if overrides is not None and not isinstance(overrides, (Mapping, str)):
        overrides = list(overrides)  # read twice below
    if not overrides:
        return spec
    cls = type(spec)
    data = apply_overrides(spec.to_dict(), overrides, schema=cls)
    keys = tuple(parts for _, parts, _ in parse_overrides(overrides))
    return cls.from_dict(data, source=spec.source, spec_dir=spec.spec_dir, override_keys=keys)


def as_train_spec(spec, overrides=()) -> TrainSpec:
    """A :class:`TrainSpec` from a path or a loaded spec, with ``overrides`` applied (what ``train()`` accepts)."""
    if isinstance(spec, (str, os.PathLike)):
        return load_train_spec(spec, overrides)
    if not isinstance(spec, TrainSpec):
        raise BpnetError(f"train() needs a train spec file or a loaded TrainSpec (got {type(spec).__name__})")
    return override(spec, overrides)


def load_infer_spec(path: str | os.PathLike, overrides=()) -> InferSpec:
    """Load an inference spec (``infer_spec*.yaml``, or a shipped one by name): defaults → file → overrides →
    validate; paths absolute."""
    return _load(InferSpec, path, overrides, "inference spec", ("specs", "infer_spec*"))


def infer_spec_from_model(meta, overrides=()) -> InferSpec:
    """The inference spec a model recommends (its contract's ``inference`` values over the defaults) + overrides."""
    return _build(InferSpec, dict(meta.inference), overrides, f"{meta.name} (recommended inference settings)", None)


def load_dataset_spec(path: str | os.PathLike, overrides=()) -> DatasetSpec:
    """Load a dataset spec (``coco_spec.json`` or YAML, or a shipped one by name); ``root_directory_path`` becomes
    absolute."""
    return _load(DatasetSpec, path, overrides, "dataset spec", ("data_pose_config", "*.json"))


# ---------------------------------------------------------------------------------------------------- dumping


class _SpecDumper(yaml.SafeDumper):
    """Safe YAML with block mappings and one-line lists of scalars (``target_shape: [32, 32]``), like TAO's files."""


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = all(not isinstance(x, (dict, list)) for x in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_SpecDumper.add_representer(list, _represent_list)


def dump_spec(spec: SpecRoot, path: str | os.PathLike) -> Path:
    """Write the resolved ``spec`` as YAML to ``path`` atomically (the folder is created if needed).

    Every default is written out; path fields are absolute, so the file reloads to an equal spec from anywhere.
    """
    path = Path(path)
    data = spec.to_dict()  # its paths are absolute since it was built (resolve_path_fields)
    header = (
        f"# Resolved {type(spec).__name__} (defaults -> spec file -> overrides), written by bpnet.\n"
        f"# Source: {spec.source}\n"
    )
    body = yaml.dump(data, Dumper=_SpecDumper, sort_keys=False, default_flow_style=False, width=120, allow_unicode=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(path, header + body)
