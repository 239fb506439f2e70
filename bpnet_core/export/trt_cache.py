"""TensorRT's INT8 calibration cache, text format (what NVIDIA ships as ``int8_calibration_288_384.txt`` and what
DeepStream's ``int8-calib-file`` reads):

    TRT-<TensorRT version>-EntropyCalibration2
    <tensor name>: <scale as a big-endian IEEE float32, 8 hex digits>
    ...

:func:`read_calibration_cache` (in :mod:`~bpnet_core.int8.calibration`) parses it; :func:`format_calibration_cache`
/ :func:`write_calibration_cache` write it, so that a parse → write round trip gives the same text, byte for byte.
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

from bpnet_core.errors import BpnetError
from bpnet_core.fileio import write_text_atomic
from bpnet_core.int8.calibration import read_calibration_cache

DEFAULT_HEADER = "TRT-8601-EntropyCalibration2"
_HEADER = re.compile(r"^TRT-\d+-\w*Calibration\w*$")


def format_calibration_cache(scales: dict[str, float], header: str = DEFAULT_HEADER) -> str:
    """The cache text for ``{tensor name: scale}`` (insertion order kept), one ``name: hex`` line per tensor."""
    if not _HEADER.match(header):
        raise BpnetError(f"calibration cache header {header!r} is not TRT-<version>-<algorithm>Calibration<n>")
    lines = [header]
    for name, scale in scales.items():
        if not name or "\n" in name or ": " in name:
            raise BpnetError(f"calibration cache: tensor name {name!r} cannot be written")
        value = float(scale)
        if not value >= 0 or value != value or value == float("inf"):
            raise BpnetError(f"calibration cache: scale of {name} must be a finite number >= 0 (got {scale!r})")
        lines.append(f"{name}: {struct.pack('>f', value).hex()}")
    return "\n".join(lines) + "\n"


def write_calibration_cache(path: str | os.PathLike, scales: dict[str, float], header: str = DEFAULT_HEADER) -> Path:
    """Write ``scales`` as a TensorRT calibration cache at ``path`` (atomically)."""
    return write_text_atomic(path, format_calibration_cache(scales, header))


def cache_header(path: str | os.PathLike) -> str:
    """The first line of a cache (``TRT-<version>-EntropyCalibration2``)."""
    read_calibration_cache(path)  # a malformed file fails here, naming it
    return Path(path).read_text(encoding="ascii").splitlines()[0].strip()
