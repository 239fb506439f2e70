"""Where the files shipped with bpnet live (specs, pose and dataset configs, model cards, notebooks, tutorial data).

The shipped files keep the source checkout's layout (``specs/``, ``model_pose_config/``, ``data_pose_config/``,
``model_cards/``, ``notebooks/``,
``tests/fixtures/{coco_sample,coco_mini_train2017,coco_unlabelled_cc,realmodels}``) under one root,
:data:`SHIPPED_ROOT`:

* in a source checkout (``pip install -e .``, ``make install``) it is the repository root;
* in an installed wheel it is the package folder ``bpnet_core/_shipped/`` (``importlib.resources``), which
  ``setup.py`` fills from those same folders at build time (the repository holds them once).

Name rule (:func:`find_shipped`): a path given by the user is used as given when it exists; otherwise a bare file
name (``infer_spec.yaml``) names the shipped file of that name in ``specs/``, ``model_pose_config/``,
``data_pose_config/`` or ``model_cards/``, and a relative path starting with one of those folders
(``specs/infer_spec.yaml``) names that shipped file.
"""

from __future__ import annotations

import importlib.resources
import logging
import os
from pathlib import Path

from bpnet_core.errors import BpnetError

log = logging.getLogger(__name__)

#: the folders of shipped files a bare file name is looked up in, in this order
NAMED_DIRS = ("specs", "model_pose_config", "data_pose_config", "model_cards")

#: every folder that ships (relative to the root), as ``setup.py`` maps them into ``bpnet_core/_shipped/``
SHIPPED_TREES = (
    "specs",
    "model_pose_config",
    "data_pose_config",
    "model_cards",
    "notebooks",
    "tests/fixtures/coco_sample",
    "tests/fixtures/coco_mini_train2017",
    "tests/fixtures/coco_unlabelled_cc",
    "tests/fixtures/realmodels",
)


def _shipped_root() -> Path:
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "model_pose_config").is_dir():
        return checkout
    return Path(os.fspath(importlib.resources.files("bpnet_core").joinpath("_shipped")))


#: the root of the shipped files: the repository root in a checkout, ``bpnet_core/_shipped`` in a wheel
SHIPPED_ROOT = _shipped_root()
#: the name the rest of the code has always used for :data:`SHIPPED_ROOT`
PROJECT_ROOT = SHIPPED_ROOT


def project_file(*parts: str) -> Path:
    """A file or folder shipped with bpnet, e.g. ``project_file("specs", "infer_spec.yaml")``."""
    path = SHIPPED_ROOT.joinpath(*parts)
    if not path.exists():
        raise BpnetError(f"{path}: shipped file not found (the bpnet installation is incomplete; reinstall it)")
    return path


def shipped_names(folder: str, pattern: str = "*") -> list[str]:
    """File names shipped in ``folder`` (one of :data:`NAMED_DIRS`)."""
    base = SHIPPED_ROOT / folder
    return sorted(p.name for p in base.glob(pattern) if p.is_file()) if base.is_dir() else []


def find_shipped(value: str | os.PathLike) -> Path:
    """``value`` as given when it exists, else the shipped file it names (module docstring); else ``value``
    unchanged, so the caller reports it as not found with its own wording (see :func:`not_found_hint`)."""
    path = Path(os.path.expanduser(os.fspath(value)))
    if path.exists() or path.is_absolute() or not path.parts:
        return path
    parts = path.parts
    if len(parts) == 1:
        candidates = [SHIPPED_ROOT / d / parts[0] for d in NAMED_DIRS]
    elif parts[0] in NAMED_DIRS:
        candidates = [SHIPPED_ROOT.joinpath(*parts)]
    else:
        candidates = []
    for candidate in candidates:
        if candidate.is_file():
            log.debug("%s: not in the current directory; using the shipped %s", value, candidate)
            return candidate
    return path


def not_found_hint(folder: str, pattern: str = "*") -> str:
    """`` (nor a shipped file: ...)`` listing the shipped names of ``folder``; for "not found" errors."""
    names = shipped_names(folder, pattern)
    return f" (nor a shipped {folder}/ file: {', '.join(names)})" if names else ""
