"""Tracking constants: the ``tracking:`` block of the inference spec (bpnet extension), read by
:class:`~bpnet_core.track.Tracker`. Outside the ``track`` package so that the spec schema (:mod:`bpnet_core.config`)
can embed it without loading the tracker (SciPy, OpenCV)."""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, fields

from bpnet_core.errors import BpnetError, ParamValueError

CAMERA_MOTION = ("image", "pose", "still")


@dataclass(frozen=True)
class TrackParams:
    """Every constant of :class:`~bpnet_core.track.Tracker`.

    Ages and hit counts are in *processed* frames (calls to ``update``); velocities use ``frame_index`` differences,
    so ``--stride_frames`` is taken into account. Filter frequencies are in cycles per frame (× fps for Hz).
    """

    enabled: bool = True  # give people track ids (video inference); False: every id is -1
    oks_threshold: float = 0.2  # an association needs OKS(predicted track pose, person) >= this
    max_age: int = 30  # a track unseen for more than this many processed frames in which it was expected in the
    # picture is dropped (every unseen frame counts when the tracker is not told the image size)
    max_age_out_of_view: int = 150  # ... and in any case after max(this, max_age) unseen frames: a track whose
    # predicted pose is mostly outside the picture (e.g. carried out by the camera's pan or zoom) waits up to 10 s at
    # 15 fps for the camera to come back
    min_hits: int = 2  # a new track gets its id after this many matched frames (before: id -1)
    reid_distance: float = 1.0  # a lost track re-takes a person whose centre is within this × the track's size
    velocity_momentum: float = 0.5  # weight of the old velocity in the constant-velocity model (0 = last step only)
    max_extrapolation: int = 10  # a track unseen for longer keeps moving at its own velocity for this many frames
    # only, then stays where that left it (the camera's motion still carries it): a few frames of a person's walk
    # are predictable, a long gap's extrapolation is mostly the velocity estimate's error grown
    camera_motion: str = "image"  # how the camera's frame-to-frame motion (a similarity: shift, zoom, rotation) is
    # found; every track is predicted with it and the tracks of people not seen (out of the picture, missed) are
    # carried along with it. "image": sparse optical flow on the frame's background (people masked out) when the
    # caller passes the frame (video inference does), nothing without frames; "pose": from the joints of the people
    # matched in consecutive frames, no image needed (a moving camera filming people who move little: people
    # walking under a still camera read as camera motion); "still": no camera motion (not "off", which YAML reads
    # as false)
    camera_min_people: int = 2  # "pose": the camera motion is trusted when the joints of at least this many people,
    # and of at least half the people matched in both frames, agree with it (one person's motion is not the camera's)
    agreement_distance: float = 0.1  # joints agree on a motion within this × the person's size (sqrt of the keypoint
    # box area; at least 2 px): the RANSAC threshold of the camera motion from the joints (median size of the
    # people), and the largest spread (median deviation from the median step) of a track's joint steps for the
    # step to update its velocity (a person half out of the picture or a mislabelled detection moves its joints
    # every which way: the old velocity is kept)
    camera_momentum: float = 0.5  # weight of the previous prediction in the camera motion expected at the next frame
    # (0 = the last estimate only): a camera moves smoothly and one frame's estimate is noisy. "pose" predicts with
    # it; both modes fall back on it, for at most max_extrapolation frames, when a frame gives no estimate
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
            (
                "max_age_out_of_view",
                _is_int(self.max_age_out_of_view) and self.max_age_out_of_view >= 0,
                "an integer >= 0",
            ),
            ("min_hits", _is_int(self.min_hits) and self.min_hits >= 1, "an integer >= 1"),
            ("reid_distance", self.reid_distance >= 0, ">= 0 (0 = no re-identification)"),
            ("max_extrapolation", _is_int(self.max_extrapolation) and self.max_extrapolation >= 0, "an integer >= 0"),
            ("velocity_momentum", 0.0 <= self.velocity_momentum < 1.0, "in [0, 1)"),
            ("camera_motion", self.camera_motion in CAMERA_MOTION, "one of " + ", ".join(map(repr, CAMERA_MOTION))),
            ("camera_min_people", _is_int(self.camera_min_people) and self.camera_min_people >= 1, "an integer >= 1"),
            ("agreement_distance", self.agreement_distance > 0, "> 0"),
            ("camera_momentum", 0.0 <= self.camera_momentum < 1.0, "in [0, 1)"),
            ("default_sigma", self.default_sigma > 0, "> 0"),
            ("min_cutoff", self.min_cutoff > 0, "> 0"),
            ("beta", self.beta >= 0, ">= 0"),
            ("d_cutoff", self.d_cutoff > 0, "> 0"),
        ]
        ParamValueError.first("tracking", self, checks)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_dict(cls, data: dict | None, where: str = "tracking") -> TrackParams:
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
