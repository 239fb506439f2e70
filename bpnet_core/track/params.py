"""Tracking constants: the ``tracking:`` block of the inference spec (bpnet extension)."""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, fields

from bpnet_core.errors import BpnetError


@dataclass(frozen=True)
class TrackParams:
    """Every constant of :class:`~bpnet_core.track.Tracker`.

    Ages and hit counts are in *processed* frames (calls to ``update``); velocities use ``frame_index`` differences,
    so ``--stride_frames`` is taken into account. Filter frequencies are in cycles per frame (× fps for Hz).
    """

    enabled: bool = True  # give people track ids (video inference); False: every id is -1
    oks_threshold: float = 0.2  # an association needs OKS(predicted track pose, person) >= this
    max_age: int = 30  # a track unseen for more than this many processed frames is dropped
    min_hits: int = 2  # a new track gets its id after this many matched frames (before: id -1)
    reid_distance: float = 1.0  # a lost track re-takes a person whose centre is within this × the track's size
    velocity_momentum: float = 0.5  # weight of the old velocity in the constant-velocity model (0 = last step only)
    default_sigma: float = 0.079  # OKS sigma of joints COCO has no constant for (neck, custom joints): COCO's
    # shoulder value, the middle of COCO's range
    smoothing: bool = False  # One Euro filter of each track's keypoints (off for evaluation, on for viewing)
    min_cutoff: float = 0.05  # One Euro minimum cutoff (cycles per frame); lower = smoother when still
    beta: float = 0.05  # One Euro speed coefficient; higher = less lag when moving
    d_cutoff: float = 0.2  # One Euro cutoff of the speed estimate (cycles per frame)

    def __post_init__(self) -> None:
        checks = [
            ("oks_threshold", 0.0 <= self.oks_threshold < 1.0, "in [0, 1)"),
            ("max_age", _is_int(self.max_age) and self.max_age >= 0, "an integer >= 0"),
            ("min_hits", _is_int(self.min_hits) and self.min_hits >= 1, "an integer >= 1"),
            ("reid_distance", self.reid_distance >= 0, ">= 0 (0 = no re-identification)"),
            ("velocity_momentum", 0.0 <= self.velocity_momentum < 1.0, "in [0, 1)"),
            ("default_sigma", self.default_sigma > 0, "> 0"),
            ("min_cutoff", self.min_cutoff > 0, "> 0"),
            ("beta", self.beta >= 0, ">= 0"),
            ("d_cutoff", self.d_cutoff > 0, "> 0"),
        ]
        for name, ok, expect in checks:
            if not ok:
                raise BpnetError(f"tracking parameter {name}={getattr(self, name)!r} must be {expect}")

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_dict(cls, data: dict | None, where: str = "tracking") -> "TrackParams":
        """Strict: an unknown key is a one-line error with a "did you mean" hint."""
        data = dict(data or {})
        names = cls.field_names()
        for key in data:
            if key not in names:
                hint = difflib.get_close_matches(str(key), names, n=1)
                raise BpnetError(f"{where}: unknown key {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        return cls(**data)

    def to_dict(self) -> dict:
        return asdict(self)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
