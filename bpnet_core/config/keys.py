"""Key paths over the spec schemas: walk a schema along ``a.b[0].c`` (:func:`schema_lookup`), tell a path field
(:func:`has_path_marker`), parse and print dotted keys, and word an unknown key with its closest valid one."""

from __future__ import annotations

import difflib
import re
import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

from bpnet_core.config.fields import PathMarker

# ---------------------------------------------------------------------------------------------------- schema walking


def unwrap_annotation(ann: Any) -> Any:
    """Strip ``Annotated`` and ``Optional`` layers."""
    while True:
        origin = get_origin(ann)
        if origin is Annotated:
            ann = get_args(ann)[0]
            continue
        if origin in (Union, types.UnionType):
            args = [a for a in get_args(ann) if a is not type(None)]
            if len(args) == 1:
                ann = args[0]
                continue
        return ann


def has_path_marker(ann: Any, metadata: list) -> bool:
    if any(isinstance(m, PathMarker) for m in metadata):
        return True
    while True:
        origin = get_origin(ann)
        if origin is Annotated:
            if any(isinstance(m, PathMarker) for m in get_args(ann)[1:]):
                return True
            ann = get_args(ann)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(ann) if a is not type(None)]
            if len(args) != 1:
                return False
            ann = args[0]
        else:
            return False


def input_keys(model: type[BaseModel]) -> dict[str, Any]:
    """The keys a block accepts in a file (aliases, e.g. ``__class_name__``) → their FieldInfo."""
    return {(fi.alias or name): fi for name, fi in model.model_fields.items()}


class UnknownKey(Exception):
    def __init__(self, index: int, candidates: list[str]):
        self.index = index
        self.candidates = candidates


class NotAMapping(Exception):
    def __init__(self, index: int):
        self.index = index


def schema_lookup(root: type[BaseModel], parts: tuple) -> tuple[Any, bool]:
    """The annotation at key path ``parts`` and whether it is a path field. Raises :class:`UnknownKey` or
    :class:`NotAMapping` with the index of the offending part."""
    ann: Any = root
    metadata: list = []
    for i, part in enumerate(parts):
        base = unwrap_annotation(ann)
        if isinstance(base, type) and issubclass(base, BaseModel):
            keys = input_keys(base)
            if part not in keys:
                raise UnknownKey(i, list(keys))
            fi = keys[part]
            ann, metadata = fi.annotation, list(fi.metadata)
        elif get_origin(base) is dict:
            ann, metadata = get_args(base)[1], []
        elif get_origin(base) is list and (isinstance(part, int) or str(part).isdigit()):
            ann, metadata = get_args(base)[0], []
        else:
            raise NotAMapping(i)
    return ann, has_path_marker(ann, metadata)


def dotted(parts) -> str:
    """``('categories', 0, 'name')`` → ``categories[0].name``."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out


def split_key(key: str) -> tuple:
    """``"a.b[0].c"`` or ``"a.b.0.c"`` → ``('a', 'b', 0, 'c')``."""
    parts: list = []
    for chunk in key.split("."):
        m = re.fullmatch(r"([^\[\]]*)((?:\[\d+\])*)", chunk)
        if not m:
            parts.append(chunk)
            continue
        name, idx = m.groups()
        if name:
            parts.append(int(name) if name.isdigit() else name)
        parts.extend(int(x) for x in re.findall(r"\[(\d+)\]", idx))
    return tuple(parts)


def unknown_key_message(where: str, parts: tuple, candidates: list[str]) -> str:
    bad = str(parts[-1])
    visible = [c for c in candidates if c != "__class_name__"] + (
        ["__class_name__"] if "__class_name__" in candidates else []
    )
    hint = difflib.get_close_matches(bad, visible, n=1)
    if hint:
        tail = f" (did you mean {hint[0]!r}?)"
    else:
        shown = ", ".join(visible[:15]) + (", ..." if len(visible) > 15 else "")
        tail = f" (valid keys here: {shown})"
    return f"{where}: unknown key {dotted(parts)!r}{tail}"
