"""Field types of the spec schemas: path fields (:data:`PathStr`, :func:`resolve_path`), strict numbers, and
:class:`SpecValueError`, the error a cross-field check raises."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, Strict
from pydantic_core import PydanticCustomError

from bpnet_core.paths import PROJECT_ROOT

# ---------------------------------------------------------------------------------------------------- paths

#: Relative paths that start with one of these folders name files shipped in the repository and resolve against
#: the repository root; every other relative path resolves against the folder of the spec file that holds it.
SHIPPED_DIRS = ("specs", "model_pose_config", "data_pose_config")


class PathMarker:
    """Annotation metadata: this string field is a file-system path."""

    def __repr__(self) -> str:
        return "PATH"


PATH = PathMarker()
PathStr = Annotated[str, PATH]


def resolve_path(spec_file: str | os.PathLike | None, value: str | os.PathLike | None) -> Path | None:
    """Make a path found in a spec absolute.

    * ``None`` stays ``None``; ``~`` is expanded; an absolute path is returned as is (normalised).
    * A relative path whose first component is ``specs``, ``model_pose_config`` or ``data_pose_config`` is a file
      shipped with bpnet and resolves against the repository root (``bpnet_core.paths.PROJECT_ROOT``), wherever the
      spec file itself lives (so a dumped ``params.yaml`` in a results folder still finds them).
    * Any other relative path resolves against the folder of ``spec_file`` (the current directory when
      ``spec_file`` is ``None``).
    """
    if value is None:
        return None
    text = os.path.expanduser(os.fspath(value))
    if os.path.isabs(text):
        return Path(os.path.normpath(text))
    first = Path(text).parts[0] if Path(text).parts else ""
    if first in SHIPPED_DIRS:
        base = PROJECT_ROOT
    elif spec_file is not None:
        base = Path(spec_file).absolute().parent
    else:
        base = Path.cwd()
    return Path(os.path.normpath(os.path.join(os.fspath(base), text)))


# ---------------------------------------------------------------------------------------------------- types


def _as_number(value: Any) -> Any:
    """Floats: refuse booleans, accept numeric strings (YAML 1.1 reads ``1e-3`` as a string)."""
    if isinstance(value, bool):
        raise PydanticCustomError("float_type", "must be a number")
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise PydanticCustomError("float_parsing", "must be a number") from None
    return value


Int = Annotated[int, Strict()]
Bool = Annotated[bool, Strict()]
Float = Annotated[float, BeforeValidator(_as_number), Strict()]
PosInt = Annotated[int, Strict(), Field(gt=0)]
PosFloat = Annotated[float, BeforeValidator(_as_number), Strict(), Field(gt=0)]
Prob = Annotated[float, BeforeValidator(_as_number), Strict(), Field(ge=0.0, le=1.0)]


class SpecValueError(ValueError):
    """A cross-field check failed. ``key`` is dotted and relative to the block whose validator raised it;
    ``related`` lists other keys (same base) whose values took part, so an override of any of them is blamed."""

    def __init__(self, key: str | None, message: str, related: tuple[str, ...] = ()):
        super().__init__(message)
        self.key = key
        self.message = message
        self.related = related
