"""The one H×W parser: ``"368x368"``, ``"288,384"``, ``"288,384,3"``, ``[288, 384]`` or ``256`` → ``(H, W)``.

>>> parse_hw("288x384")
(288, 384)
"""

from __future__ import annotations

import numpy as np

from bpnet_core.errors import BpnetError


def parse_hw(
    value,
    *,
    what: str = "input size",
    stride: int = 8,
    channels: bool = False,
    max_side: int | None = None,
    example: str = "368x368",
) -> tuple[int, int]:
    """``(H, W)`` from a string (``x``, ``×`` or ``,`` between the numbers), a sequence or an int (square); H and W
    positive multiples of ``stride``. ``channels``: a third number C is accepted and must be 3 (``-d H,W,C``).
    ``max_side``: the largest H or W accepted. Errors name ``what`` (e.g. ``"-d/--input_dims"``)."""
    form = "H,W,C" if channels else "HxW"
    if isinstance(value, str):
        parts = value.strip().lower().replace("×", "x").replace(",", "x").split("x")
    elif isinstance(value, (int, np.integer)):
        parts = [value, value]
    else:
        parts = list(value)
    try:
        dims = [int(str(p).strip()) for p in parts]
    except (TypeError, ValueError):
        raise BpnetError(f"{what} must be {form} integers such as {example} (got {value!r})") from None
    if len(dims) != 2 and not (channels and len(dims) == 3):
        raise BpnetError(f"{what} must be {form} (got {value!r})")
    if len(dims) == 3 and dims[2] != 3:
        raise BpnetError(f"{what}: the model takes 3 channels (got C={dims[2]})")
    h, w = dims[:2]
    if h < stride or w < stride or h % stride or w % stride:
        raise BpnetError(f"{what}: H and W must be positive multiples of the stride {stride} (got {h}x{w})")
    if max_side is not None and max(h, w) > max_side:
        raise BpnetError(f"{what}: {h}x{w} is too large (max side {max_side})")
    return h, w
