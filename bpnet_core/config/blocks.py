"""Base classes of the spec schemas: :class:`Block` (one mapping of a spec file: strict keys, a checked
``__class_name__`` label) and :class:`SpecRoot` (a whole spec file: its origin, validation into one-line errors,
the file form)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, ValidationInfo, field_validator

from bpnet_core.config.errors import format_validation_error
from bpnet_core.config.fields import resolve_path
from bpnet_core.config.keys import has_path_marker, unwrap_annotation
from bpnet_core.errors import BpnetError


def _choices(values) -> str:
    values = [repr(v) for v in values]
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " or " + values[-1]


# ---------------------------------------------------------------------------------------------------- base block


class Block(BaseModel):
    """One mapping of a spec file: unknown keys are errors; ``__class_name__`` is a checked label."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), arbitrary_types_allowed=False)

    #: Allowed ``__class_name__`` values; the block's own class name when TAO gives it none.
    CLASS_NAMES: ClassVar[tuple[str, ...]] = ()

    class_name: str | None = Field(default=None, alias="__class_name__")

    @classmethod
    def allowed_class_names(cls) -> tuple[str, ...]:
        return cls.CLASS_NAMES or (cls.__name__,)

    @field_validator("class_name")
    @classmethod
    def _check_class_name(cls, value: str | None) -> str | None:
        if value is None:
            return cls.model_fields["class_name"].default
        allowed = cls.allowed_class_names()
        if value not in allowed:
            raise ValueError(f"must be one of {_choices(allowed)} (got {value!r})")
        return value

    @field_validator("*", mode="before")
    @classmethod
    def _null_block_means_defaults(cls, value: Any, info: ValidationInfo) -> Any:
        """``block: null`` means "all defaults" for a block that always exists (``finetuning_config: null``);
        an optional block (``identity_spatial_aug_params: null``) keeps ``None``."""
        if value is None and info.field_name in cls.model_fields:
            ann = cls.model_fields[info.field_name].annotation
            if isinstance(ann, type) and issubclass(ann, Block):
                return {}
        return value


class SpecRoot(Block):
    """A whole spec file: remembers where it was loaded from, compares by value."""

    _source: str | None = PrivateAttr(default=None)
    _spec_dir: Path | None = PrivateAttr(default=None)

    @property
    def source(self) -> str:
        """The file this spec was loaded from, as given (``"<dict>"`` when built in code)."""
        return self._source or "<dict>"

    @property
    def spec_dir(self) -> Path | None:
        """Absolute folder of the spec file (``None`` when built in code)."""
        return self._spec_dir

    def _set_origin(self, source: str | None, spec_dir: Path | None) -> None:
        self._source = source
        self._spec_dir = spec_dir

    def resolve(self, value: str | os.PathLike | None) -> Path | None:
        """:func:`resolve_path` relative to this spec's file."""
        anchor = (self._spec_dir / "spec") if self._spec_dir is not None else None
        return resolve_path(anchor, value)

    def to_dict(self) -> dict:
        """The file form: TAO key names (``__class_name__``), JSON-safe values, unset labels dropped."""
        return _drop_null_labels(self.model_dump(mode="json", by_alias=True))

    @classmethod
    def from_dict(
        cls,
        data: Any,
        source: str = "<dict>",
        spec_dir: str | os.PathLike | None = None,
        override_keys: tuple = (),
    ):
        """Validate a mapping; any problem becomes a one-line :class:`BpnetError` naming ``source`` and the key.

        ``override_keys`` (tuples of key parts) are the keys set by ``--set``: errors under them name ``--set``.
        """
        if not isinstance(data, dict):
            raise BpnetError(f"{source}: a spec must be a mapping of keys, got {type(data).__name__}")
        try:
            spec = cls.model_validate(data)
        except ValidationError as exc:
            raise BpnetError(format_validation_error(exc, cls, source, override_keys)) from None
        spec._set_origin(source, Path(spec_dir).absolute() if spec_dir is not None else None)
        resolve_path_fields(spec, (spec.spec_dir / "spec") if spec.spec_dir is not None else None)
        return spec

    def __eq__(self, other: object) -> bool:  # by value: the same spec loaded from two files is equal
        if type(self) is not type(other):
            return NotImplemented
        return self.model_dump() == other.model_dump()  # type: ignore[union-attr]

    __hash__ = None  # type: ignore[assignment]


def resolve_path_fields(block: Any, anchor: Path | None) -> None:
    """Make every path field of a validated spec absolute (in place), with :func:`resolve_path` against ``anchor``
    (the spec file; ``None``: the current directory). Done once, when the spec is built: consumers use the values."""
    for name, fi in type(block).model_fields.items():
        value = getattr(block, name)
        if value is None:
            continue
        if has_path_marker(fi.annotation, list(fi.metadata)):
            setattr(block, name, os.fspath(resolve_path(anchor, value)))
            continue
        base = unwrap_annotation(fi.annotation)
        if isinstance(value, dict) and has_path_marker(getattr(base, "__args__", (None, None))[-1], []):
            setattr(block, name, {k: os.fspath(resolve_path(anchor, v)) for k, v in value.items()})
        elif isinstance(value, BaseModel):
            resolve_path_fields(value, anchor)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, BaseModel):
                    resolve_path_fields(item, anchor)


def _drop_null_labels(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _drop_null_labels(v) for k, v in obj.items() if not (k == "__class_name__" and v is None)}
    if isinstance(obj, list):
        return [_drop_null_labels(v) for v in obj]
    return obj
