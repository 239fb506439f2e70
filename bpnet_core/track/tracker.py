"""Multi-person pose tracking by OKS: ``tracker = Tracker(params); ids = tracker.update(keypoints, scores, frame)``.

Per frame:

1. every live track predicts its pose at ``frame_index`` with a constant-velocity model (the median displacement of
   its joints between its last two observations, blended with the previous velocity by ``velocity_momentum``);
2. people and tracks are associated by cost ``1 - OKS(predicted pose, person)`` with
   :func:`scipy.optimize.linear_sum_assignment`; a pair below ``oks_threshold`` is refused;
3. re-identification: confirmed tracks still unmatched (seen last frame but now poorly matching, e.g. half hidden,
   or lost for at most ``max_age`` frames) and people still unmatched are paired by the distance between the person's centre and the track's predicted centre,
   in units of the track's size (``sqrt(area)``), when below ``reid_distance`` (again an optimal assignment);
4. an unmatched person starts a tentative track; it gets an id (0, 1, 2, ... in order of confirmation) after
   ``min_hits`` matched frames and is dropped if it misses a frame before then; a confirmed track unseen for more than
   ``max_age`` processed frames is dropped.

``update`` returns one id per person (-1: not confirmed yet, or tracking disabled). With ``smoothing`` on, each
track's joints go through a One Euro filter and :attr:`Tracker.keypoints` holds the smoothed poses of the last frame
(otherwise the input). NumPy and SciPy only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from bpnet_core.errors import BpnetError
from bpnet_core.track.filters import OneEuroFilter
from bpnet_core.track.oks import oks_matrix, pose_area, pose_center, sigmas_for
from bpnet_core.track.params import TrackParams


@dataclass
class Track:
    """One person over time."""

    uid: int  # internal, unique
    kp: np.ndarray  # (J, 3) the body: joints seen last time, others carried by the motion model
    frame: int  # frame_index of the last observation
    last_update: int  # update counter of the last observation
    id: int = -1  # public id once confirmed
    hits: int = 1
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))  # px per frame
    area: float = 0.0
    filter: OneEuroFilter | None = None
    seen: np.ndarray | None = None  # (J,) joints observed at the last observation

    def __post_init__(self) -> None:
        if self.seen is None:
            self.seen = self.kp[:, 2] > 0

    def predict(self, frame_index: int) -> np.ndarray:
        kp = self.kp.copy()
        kp[:, :2] += self.velocity * (frame_index - self.frame) * (kp[:, 2:3] > 0)
        return kp


class Tracker:
    """See the module docstring. ``joint_names`` picks the OKS sigmas (COCO's by name; the default for others);
    without it, the joints are COCO's 17 when there are 17 of them, else all use ``default_sigma``."""

    def __init__(self, params: TrackParams | dict | None = None, joint_names: list[str] | None = None):
        if params is None:
            params = TrackParams()
        elif isinstance(params, dict):
            params = TrackParams.from_dict(params)
        self.params = params
        self.joint_names = joint_names
        self.sigmas: np.ndarray | None = sigmas_for(joint_names, params.default_sigma) if joint_names else None
        self.tracks: list[Track] = []
        self.next_uid = 0
        self.next_id = 0
        self.updates = 0
        self.last_frame: int | None = None
        self.keypoints = np.zeros((0, 0, 3), np.float32)  # last frame's (smoothed) keypoints

    def _sigmas(self, num_joints: int) -> np.ndarray:
        if self.sigmas is None:
            from bpnet_core.data.coco import COCO_KEYPOINTS

            names = COCO_KEYPOINTS if num_joints == len(COCO_KEYPOINTS) else [f"joint{j}" for j in range(num_joints)]
            self.sigmas = sigmas_for(names, self.params.default_sigma)
        if len(self.sigmas) != num_joints:
            raise BpnetError(f"tracker: people have {num_joints} joints but the tracker was set up for "
                             f"{len(self.sigmas)}")  # fmt: skip
        return self.sigmas

    def update(self, keypoints, scores=None, frame_index: int | None = None) -> list[int]:
        """Associate this frame's people (``keypoints`` (P, J, 3), confidence 0 = missing) with the tracks; returns
        one id per person. ``frame_index`` must increase (default: one more than the last)."""
        p = self.params
        kps = np.asarray(keypoints, np.float64)
        if kps.size == 0:
            kps = kps.reshape(0, len(self.sigmas) if self.sigmas is not None else 0, 3)
        if kps.ndim != 3 or kps.shape[2] != 3:
            raise BpnetError(f"tracker: keypoints must be (people, joints, 3), got shape {kps.shape}")
        if frame_index is None:
            frame_index = 0 if self.last_frame is None else self.last_frame + 1
        frame_index = int(frame_index)
        if self.last_frame is not None and frame_index <= self.last_frame:
            raise BpnetError(f"tracker: frame_index {frame_index} after {self.last_frame}: must increase")
        self.last_frame = frame_index
        self.updates += 1
        n = len(kps)
        if not p.enabled:
            self.keypoints = kps.astype(np.float32)
            return [-1] * n
        sig = self._sigmas(kps.shape[1]) if n or self.tracks else None
        assign: dict[int, Track] = {}

        tracks = self.tracks
        if n and tracks:
            pred = np.stack([t.predict(frame_index) for t in tracks])
            sim = oks_matrix(pred, kps, sig)
            rows, cols = linear_sum_assignment(1.0 - sim)
            for r, c in zip(rows, cols):
                if sim[r, c] >= p.oks_threshold:
                    assign[c] = tracks[r]
            # re-identification of lost tracks by distance
            taken = {t.uid for t in assign.values()}
            lost = [t for t in tracks if t.uid not in taken and t.id >= 0]
            free = [c for c in range(n) if c not in assign]
            if lost and free and p.reid_distance > 0:
                cost = np.full((len(lost), len(free)), np.inf)
                for i, t in enumerate(lost):
                    tp = t.predict(frame_index)
                    for k, c in enumerate(free):
                        both = (tp[:, 2] > 0) & (kps[c, :, 2] > 0)  # compare the same joints when there are some
                        if both.any():
                            d = np.linalg.norm(tp[both, :2].mean(0) - kps[c, both, :2].mean(0))
                        else:
                            tc, pc = pose_center(tp), pose_center(kps[c])
                            if tc is None or pc is None:
                                continue
                            d = np.linalg.norm(pc - tc)
                        cost[i, k] = d / np.sqrt(max(t.area, 1.0))
                big = np.where(np.isfinite(cost), cost, 1e9)
                rows, cols = linear_sum_assignment(big)
                for r, c in zip(rows, cols):
                    if cost[r, c] <= p.reid_distance:
                        assign[free[c]] = lost[r]

        matched = set()
        for c, t in assign.items():
            self._observe(t, kps[c], frame_index)
            matched.add(t.uid)
        new = []
        for c in range(n):
            if c not in assign and (kps[c, :, 2] > 0).any():
                t = Track(uid=self.next_uid, kp=kps[c].copy(), frame=frame_index, last_update=self.updates,
                          area=pose_area(kps[c]))  # fmt: skip
                self.next_uid += 1
                if p.smoothing:
                    t.filter = OneEuroFilter(p.min_cutoff, p.beta, p.d_cutoff)
                assign[c] = t
                new.append(t)
                matched.add(t.uid)
        keep = []
        for t in self.tracks:
            if t.uid in matched:
                keep.append(t)
            elif t.id >= 0 and self.updates - t.last_update <= p.max_age:
                keep.append(t)
            # a tentative track that missed a frame, or an old one: dropped
        self.tracks = keep + new
        for t in self.tracks:
            if t.id < 0 and t.hits >= p.min_hits and t.uid in matched:
                t.id = self.next_id
                self.next_id += 1

        out = kps.astype(np.float32).copy()
        if p.smoothing:
            for c, t in assign.items():
                valid = kps[c, :, 2] > 0
                out[c, :, :2] = t.filter(kps[c, :, :2], frame_index, valid) * valid[:, None]
        self.keypoints = out
        return [assign[c].id if c in assign else -1 for c in range(n)]

    def _observe(self, t: Track, kp: np.ndarray, frame_index: int) -> None:
        seen = kp[:, 2] > 0
        common = seen & t.seen
        dt = frame_index - t.frame
        if common.any() and dt > 0:
            step = np.median(kp[common, :2] - t.kp[common, :2], axis=0) / dt
            m = self.params.velocity_momentum if t.hits > 1 else 0.0
            t.velocity = m * t.velocity + (1 - m) * step
        # the track keeps a whole body: a joint missing now stays where the motion model puts it, so a person who
        # comes back half hidden is still compared with the same joints
        merged = t.predict(frame_index)
        merged[seen] = kp[seen]
        t.kp, t.seen = merged, seen
        t.frame, t.last_update = frame_index, self.updates
        t.hits += 1
        t.area = 0.7 * t.area + 0.3 * pose_area(merged) if t.area else pose_area(merged)
