"""Packaging of the shipped files: the folders at the repository root (specs, configs, cards, notebooks, the
tutorial's sample data) are mapped into the package as ``bpnet_core/_shipped/<same path>`` at build time, so the
repository keeps one copy and a wheel carries them (``bpnet_core.paths`` finds them in both cases). Everything else
is in ``pyproject.toml``."""

import sys
from pathlib import Path

from setuptools import find_packages, setup

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bpnet_core.paths import SHIPPED_TREES  # noqa: E402  (a stdlib-only module: the one list of shipped folders)

packages = find_packages(include=["bpnet_core", "bpnet_core.*"])
package_dir = {}
package_data = {}
for tree in SHIPPED_TREES:
    name = "bpnet_core._shipped." + tree.replace("/", ".")
    packages.append(name)
    package_dir[name] = tree
    package_data[name] = ["**/*"]
    # sub-folders whose names are identifiers (e.g. notebooks/figures) look importable: declare them, as setuptools asks
    skip = ("__pycache__", ".ipynb_checkpoints")
    for sub in sorted(p for p in Path(tree).rglob("*") if p.is_dir() and p.name not in skip):
        rel = sub.relative_to(tree).parts
        if all(part.isidentifier() for part in rel):
            packages.append(name + "." + ".".join(rel))

setup(
    packages=packages,
    package_dir=package_dir,
    package_data=package_data,
    exclude_package_data={"": ["*.pyc", "**/__pycache__/*", "**/.ipynb_checkpoints/*"]},
)
