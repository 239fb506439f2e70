"""Multi-person pose tracking by OKS: ``tracker = Tracker(params); ids = tracker.update(keypoints, scores, frame)``.

Per frame:

1. camera motion (``camera_motion``, :mod:`bpnet_core.track.camera`): with ``"image"`` and the frame given, the
   similarity (shift, zoom, rotation) from the previous frame to this one is measured now on the background by
   optical flow; with ``"pose"`` it is estimated after the association (step 4) and the prediction uses the
   running mean of the past estimates (a camera moving steadily); ``"still"``: none;
2. every live track predicts its pose at ``frame_index``: its own motion by a constant-velocity model (the median
   displacement of its joints between its last two observations once the camera's motion is taken out, blended with
   the previous velocity by ``velocity_momentum``; a step whose joints disagree, by more than ``agreement_distance``
   × the person's size, leaves the velocity as it was; a track unseen for longer than ``max_extrapolation`` frames
   stops there), then the camera's;
3. association, confirmed tracks first (a fragment of a person split off by the decoder, which started a tentative
   track, must not take the person from their confirmed track): people and confirmed tracks are associated by cost
   ``1 - OKS(predicted pose, person)`` with :func:`scipy.optimize.linear_sum_assignment` (a pair below
   ``oks_threshold`` is refused); then tentative tracks and the people left, the same way; then re-identification:
   confirmed tracks still unmatched (seen last frame but now poorly matching, e.g. half hidden, or lost) and people
   still unmatched are paired by the distance between the person's centre and the track's predicted centre, in units
   of the track's size (``sqrt(area)``), when below ``reid_distance`` (again an optimal assignment);
4. every track is carried along with this frame's camera motion (``"pose"``: estimated now from the joints of the
   people matched in both frames, RANSAC, kept only when most people agree; no estimate: the predicted motion for at
   most ``max_extrapolation`` frames, then none), so a person out of the picture or missed by the detector is
   expected where the camera has taken them, and comes back to their id when the camera comes back;
5. an unmatched person starts a tentative track; it gets an id (0, 1, 2, ... in order of confirmation) after
   ``min_hits`` matched frames and is dropped if it misses a frame before then; a confirmed track is dropped after
   ``max_age`` unseen processed frames in which it was expected in the picture (with ``image_size`` or ``image``:
   most of its predicted joints inside; without: every unseen frame), or ``max(max_age_out_of_view, max_age)``
   unseen frames in all.

``update`` returns one id per person (-1: not confirmed yet, or tracking disabled). With ``smoothing`` on, each
track's joints go through a One Euro filter and :attr:`Tracker.keypoints` holds the smoothed poses of the last frame
(otherwise the input). NumPy, SciPy and OpenCV only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from bpnet_core.data.coco import COCO_KEYPOINTS
from bpnet_core.errors import BpnetError
from bpnet_core.track.camera import MIN_THRESHOLD_PX, FlowCameraEstimator, apply, estimate_camera_motion, scale_of
from bpnet_core.track.filters import OneEuroFilter
from bpnet_core.track.oks import oks_matrix, pose_area, pose_center, sigmas_for
from bpnet_core.track_params import TrackParams


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
    misses: int = 0  # unseen frames since the last observation in which the track was expected in the picture

    def __post_init__(self) -> None:
        if self.seen is None:
            self.seen = self.kp[:, 2] > 0

    def predict(self, frame_index: int, camera: np.ndarray | None = None, horizon: int | None = None) -> np.ndarray:
        """The pose at ``frame_index`` by the track's own constant velocity (over at most ``horizon`` frames since
        its last observation); then ``camera`` (2×3, the camera's motion from the track's current coordinates to
        that frame's) when given."""
        kp = self.kp.copy()
        dt = frame_index - self.frame
        kp[:, :2] += self.velocity * (dt if horizon is None else min(dt, horizon)) * (kp[:, 2:3] > 0)
        if camera is not None:
            kp[:, :2] = np.where(kp[:, 2:3] > 0, apply(camera, kp[:, :2]), kp[:, :2])
        return kp

    def move_with_camera(self, M: np.ndarray) -> None:
        """Express the track in the next frame's coordinates: the camera moved by ``M`` (2×3)."""
        pres = self.kp[:, 2:3] > 0
        self.kp[:, :2] = np.where(pres, apply(M, self.kp[:, :2]), self.kp[:, :2])
        self.velocity = M[:, :2] @ self.velocity
        self.area *= scale_of(M) ** 2


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
        self.camera: np.ndarray | None = None  # the camera motion expected at the next update (2×3), None: still
        self.camera_estimates = 0  # updates with a camera-motion estimate
        self.camera_unseen = 0  # updates since the last estimate (the camera's motion extrapolated meanwhile)
        self.flow: FlowCameraEstimator | None = None  # camera motion from the frames (camera_motion: image)

    def _sigmas(self, num_joints: int) -> np.ndarray:
        if self.sigmas is None:
            names = COCO_KEYPOINTS if num_joints == len(COCO_KEYPOINTS) else [f"joint{j}" for j in range(num_joints)]
            self.sigmas = sigmas_for(names, self.params.default_sigma)
        if len(self.sigmas) != num_joints:
            raise BpnetError(f"tracker: people have {num_joints} joints but the tracker was set up for "
                             f"{len(self.sigmas)}")  # fmt: skip
        return self.sigmas

    def update(self, keypoints, scores=None, frame_index: int | None = None, image_size: tuple[int, int] | None = None,
               image: np.ndarray | None = None) -> list[int]:  # fmt: skip
        """Associate this frame's people (``keypoints`` (P, J, 3), confidence 0 = missing) with the tracks; returns
        one id per person. ``frame_index`` must increase (default: one more than the last); ``image_size``
        ``(height, width)`` of the frame, when known, tells tracks out of the picture from people missed in it;
        ``image`` (the frame, BGR or grey; gives ``image_size`` too), when given, lets ``camera_motion: image``
        measure the camera's motion on the background."""
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
        if image is not None and image_size is None:
            image_size = np.asarray(image).shape[:2]
        # the camera's motion: measured on the frames now (before the association), else predicted from the past
        measured = None
        if p.camera_motion == "image" and image is not None:
            if self.flow is None:
                self.flow = FlowCameraEstimator()
            measured = self.flow(image, kps)
        cam = measured if measured is not None else self.camera

        tracks = self.tracks
        if n and tracks:
            # confirmed tracks first: a fragment of a person (a split detection) that started a tentative track
            # must not take the person from their confirmed track; then tentative tracks, by OKS too
            confirmed = [t for t in tracks if t.id >= 0]
            self._match_oks(confirmed, kps, sig, frame_index, assign, cam)
            self._match_oks([t for t in tracks if t.id < 0], kps, sig, frame_index, assign, cam)
            # re-identification of lost tracks by distance
            taken = {t.uid for t in assign.values()}
            lost = [t for t in confirmed if t.uid not in taken]
            free = [c for c in range(n) if c not in assign]
            if lost and free and p.reid_distance > 0:
                cost = np.full((len(lost), len(free)), np.inf)
                for i, t in enumerate(lost):
                    tp = t.predict(frame_index, cam, p.max_extrapolation)
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

        # the camera's motion since the last frame (measured on the frames, or from the joints of the people seen in
        # both); every track moves with it. The prediction of the next frame's motion is a running mean of the
        # estimates (a camera moves smoothly, one frame's estimate is noisy); without an estimate that prediction
        # stands in, for at most max_extrapolation frames (a camera that was moving goes on moving)
        M = None
        if p.camera_motion != "still":
            M = self._camera_motion(assign, kps) if p.camera_motion == "pose" else measured
            if M is not None:
                self.camera_estimates += 1
                self.camera_unseen = 0
                prev = self.camera
                self.camera = M if prev is None else p.camera_momentum * prev + (1 - p.camera_momentum) * M
            elif self.camera is not None and self.camera_unseen < p.max_extrapolation:
                M = self.camera
                self.camera_unseen += 1
            else:
                self.camera = None
        if M is not None:
            for t in tracks:
                t.move_with_camera(M)
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
                continue
            if t.id < 0:
                continue
            pose = t.predict(frame_index, None, p.max_extrapolation)
            t.misses += image_size is None or self._in_view(pose, image_size)
            if t.misses <= p.max_age and self.updates - t.last_update <= max(p.max_age, p.max_age_out_of_view):
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

    def _match_oks(self, tracks: list, kps: np.ndarray, sig: np.ndarray, frame_index: int, assign: dict,
                   cam: np.ndarray | None) -> None:  # fmt: skip
        """Optimal assignment by ``1 - OKS(predicted pose, person)`` of ``tracks`` to the people not in ``assign``
        (person index -> track), pairs below ``oks_threshold`` refused; adds to ``assign``. ``cam``: the camera's
        motion applied to the predictions."""
        free = [c for c in range(len(kps)) if c not in assign]
        if not tracks or not free:
            return
        p = self.params
        pred = np.stack([t.predict(frame_index, cam, p.max_extrapolation) for t in tracks])
        sim = oks_matrix(pred, kps[free], sig)
        rows, cols = linear_sum_assignment(1.0 - sim)
        for r, c in zip(rows, cols):
            if sim[r, c] >= p.oks_threshold:
                assign[free[c]] = tracks[r]

    def _camera_motion(self, assign: dict, kps: np.ndarray) -> np.ndarray | None:
        """The camera's motion from the previous update's frame to this one (2×3), or None: estimated from the tracks
        matched now that were also observed at the previous update (their joints seen in both frames)."""
        p = self.params
        pairs, sizes = [], []
        for c, t in assign.items():
            if t.last_update != self.updates - 1:
                continue
            both = t.seen & (kps[c, :, 2] > 0)
            pairs.append((t.kp[both, :2], kps[c, both, :2]))
            sizes.append(np.sqrt(max(t.area, 1.0)))
        M, _ = estimate_camera_motion(pairs, sizes, p.agreement_distance, p.camera_min_people)
        return M

    @staticmethod
    def _in_view(kp: np.ndarray, image_size: tuple[int, int]) -> bool:
        """Most of the pose's present joints are inside the picture."""
        h, w = image_size
        xy = kp[kp[:, 2] > 0, :2]
        if not len(xy):
            return False
        inside = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
        return bool(2 * inside.sum() > len(xy))

    def _observe(self, t: Track, kp: np.ndarray, frame_index: int) -> None:
        seen = kp[:, 2] > 0
        common = seen & t.seen
        dt = frame_index - t.frame
        if common.any() and dt > 0:
            d = kp[common, :2] - t.kp[common, :2]
            step = np.median(d, axis=0)
            spread = np.median(np.linalg.norm(d - step, axis=1))
            if spread <= max(MIN_THRESHOLD_PX, self.params.agreement_distance * np.sqrt(max(t.area, 1.0))):
                m = self.params.velocity_momentum if t.hits > 1 else 0.0
                t.velocity = m * t.velocity + (1 - m) * step / dt
        # the track keeps a whole body: a joint missing now stays where the motion model puts it, so a person who
        # comes back half hidden is still compared with the same joints
        merged = t.predict(frame_index, None, self.params.max_extrapolation)
        merged[seen] = kp[seen]
        t.kp, t.seen = merged, seen
        t.frame, t.last_update, t.misses = frame_index, self.updates, 0
        t.hits += 1
        t.area = 0.7 * t.area + 0.3 * pose_area(merged) if t.area else pose_area(merged)
