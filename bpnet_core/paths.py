"""Where the shipped spec, pose and dataset config files live.

In a source checkout (editable install) they are the folders at the repository root. Spec paths given by the user
are used as given; relative paths inside shipped specs are resolved against the repository root.
"""

from __future__ import annotations

from pathlib import Path

from bpnet_core.errors import BpnetError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def project_file(*parts: str) -> Path:
    """A file shipped with the project (``specs/``, ``model_pose_config/``, ``data_pose_config/``)."""
    path = PROJECT_ROOT.joinpath(*parts)
    if not path.exists():
        raise BpnetError(f"{path}: shipped file not found (is bpnet installed from a source checkout?)")
    return path
