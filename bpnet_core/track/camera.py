"""Global camera motion between consecutive frames: the similarity (shift, zoom, rotation) that carries the first
frame's points onto the second's, from the people's joints alone (no image needed) or from the frames themselves.

**From the joints** (:func:`estimate_camera_motion`). A moving camera moves everyone at once; people walking move
one by one. So the joints of every person matched in both frames (the pairs of the tracker's association) vote:
:func:`cv2.estimateAffinePartial2D` with RANSAC finds the similarity most joints agree with (threshold:
``inlier_distance`` × the median person's size, at least :data:`MIN_THRESHOLD_PX`), a person *supports* it when at
least half of its joints are inliers, and the estimate is kept only when at least ``min_people`` people, and at
least half of the people with correspondences, support it;
it is then refitted by least squares (Umeyama's closed form) on the supporters' inlier joints. A frame-to-frame zoom
outside [:data:`MIN_SCALE`, :data:`MAX_SCALE`] is refused as implausible. Otherwise the camera counts as still
(``None``): with one person in view their own motion and the camera's cannot be told apart. Its limit: in one frame
a walking person moves about as far as the decoders' joint noise (a few hundredths of their size), so people walking
under a still camera also agree on a "camera motion" (their mean motion; two people walking apart read as a zoom):
harmless to them, whose predictions stay right, but it carries the unseen tracks along. Hence the tracker's
``camera_motion: pose`` is for a moving camera filming people who move little, and is not the default.

**From the frames** (:class:`FlowCameraEstimator`, when the caller has the images, e.g. video inference): the
background's motion, as in BoT-SORT's global motion compensation (Aharon et al. 2022): corners
(:func:`cv2.goodFeaturesToTrack`) of the previous frame outside the people's boxes, followed into this frame by
pyramidal Lucas-Kanade optical flow (:func:`cv2.calcOpticalFlowPyrLK`), then the same RANSAC similarity
(threshold :data:`FLOW_THRESHOLD_PX`) kept when at least :data:`FLOW_MIN_INLIERS` corners and half of those followed
agree. Frames are first scaled down to at most :data:`FLOW_MAX_SIDE` px. Independent of how many people are in view;
a textureless background, or one hidden by people, gives no estimate.
"""

from __future__ import annotations

import cv2
import numpy as np

#: smallest RANSAC threshold (px): the decoders' joint jitter
MIN_THRESHOLD_PX = 2.0
#: a person takes part with at least this many joints seen in both frames
MIN_JOINTS = 3
MIN_SCALE, MAX_SCALE = 0.5, 2.0
#: optical flow: frames scaled to at most this side (px); corners; RANSAC threshold (px, at that scale)
FLOW_MAX_SIDE = 320
FLOW_MAX_CORNERS = 200
FLOW_THRESHOLD_PX = 1.0
FLOW_MIN_INLIERS = 12
#: people's boxes (of their joints) are grown by this fraction of their size on each side before masking them out
FLOW_PERSON_MARGIN = 0.25


def similarity_lstsq(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2×3 similarity (no reflection) minimising the squared distances ``|M(src) - dst|²`` (Umeyama 1991)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    var = (a**2).sum()
    if var <= 1e-12:
        return np.array([[1.0, 0.0, md[0] - ms[0]], [0.0, 1.0, md[1] - ms[1]]])
    # complex-number form of a 2D similarity: dst = z · src + t with z = s·e^{iθ}
    za, zb = a[:, 0] + 1j * a[:, 1], b[:, 0] + 1j * b[:, 1]
    z = (np.conj(za) * zb).sum() / var
    R = np.array([[z.real, -z.imag], [z.imag, z.real]])
    return np.c_[R, md - R @ ms]


def apply(M: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """``M`` (2×3) applied to points (..., 2)."""
    return xy @ M[:, :2].T + M[:, 2]


def scale_of(M: np.ndarray) -> float:
    return float(np.sqrt(abs(np.linalg.det(M[:, :2]))))


def estimate_camera_motion(pairs: list[tuple[np.ndarray, np.ndarray]], sizes: list[float], inlier_distance: float,
                           min_people: int) -> tuple[np.ndarray | None, dict]:  # fmt: skip
    """``pairs``: one ``(src (k, 2), dst (k, 2))`` per person (the joints seen in both frames, previous → current),
    ``sizes`` their sizes (px). Returns the 2×3 similarity or None (see the module docstring), and a small report
    (``people``, ``supporters``, ``threshold``)."""
    use = [i for i, (s, _) in enumerate(pairs) if len(s) >= MIN_JOINTS]
    info = {"people": len(use), "supporters": 0, "threshold": None}
    if len(use) < max(min_people, 1):
        return None, info
    src = np.concatenate([pairs[i][0] for i in use]).astype(np.float32)
    dst = np.concatenate([pairs[i][1] for i in use]).astype(np.float32)
    owner = np.concatenate([np.full(len(pairs[i][0]), k) for k, i in enumerate(use)])
    thr = max(MIN_THRESHOLD_PX, inlier_distance * float(np.median([sizes[i] for i in use])))
    info["threshold"] = thr
    M, inl = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=thr, maxIters=2000,
                                         confidence=0.999, refineIters=0)  # fmt: skip
    if M is None or inl is None:
        return None, info
    inl = inl.ravel().astype(bool)
    support = [k for k in range(len(use)) if inl[owner == k].mean() >= 0.5]
    info["supporters"] = len(support)
    if len(support) < min_people or 2 * len(support) < len(use):
        return None, info
    keep = inl & np.isin(owner, support)
    M = similarity_lstsq(src[keep], dst[keep])
    if not MIN_SCALE <= scale_of(M) <= MAX_SCALE:
        return None, info
    return M, info


class FlowCameraEstimator:
    """Camera motion from the frames (see the module docstring): ``M = est(image, people)`` with ``people`` (P, J, 3)
    the joints found in ``image`` (their boxes are left out when this frame's corners are picked for the next call).
    Returns the 2×3 similarity from the previous frame to this one, or None (first frame, size change, too few
    agreeing corners)."""

    def __init__(self) -> None:
        self.prev: np.ndarray | None = None
        self.mask: np.ndarray | None = None
        self.scale = 1.0

    def __call__(self, image: np.ndarray, people: np.ndarray | None = None) -> np.ndarray | None:
        img = np.asarray(image)
        gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 and img.shape[2] == 3 else img
        if gray.ndim != 2:
            gray = gray[..., 0]
        h, w = gray.shape
        scale = min(1.0, FLOW_MAX_SIDE / max(h, w))
        if scale < 1.0:
            gray = cv2.resize(gray, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        gray = np.ascontiguousarray(gray, dtype=np.uint8)
        M = None
        if self.prev is not None and self.prev.shape == gray.shape and self.scale == scale:
            M = self._flow(self.prev, gray, self.mask)
            if M is not None and scale != 1.0:  # to full-resolution pixels
                M = M.copy()
                M[:, 2] /= scale
        self.prev, self.scale = gray, scale
        self.mask = self._people_mask(gray.shape, people, scale)
        return M

    @staticmethod
    def _people_mask(shape: tuple[int, int], people, scale: float) -> np.ndarray:
        mask = np.full(shape, 255, np.uint8)
        for kp in np.asarray(people if people is not None else np.zeros((0, 1, 3)), np.float64):
            xy = kp[kp[:, 2] > 0, :2] * scale
            if len(xy) == 0:
                continue
            lo, hi = xy.min(0), xy.max(0)
            m = FLOW_PERSON_MARGIN * max(hi - lo) + 4
            x0, y0 = np.floor(lo - m).astype(int)
            x1, y1 = np.ceil(hi + m).astype(int)
            mask[max(y0, 0) : max(y1 + 1, 0), max(x0, 0) : max(x1 + 1, 0)] = 0
        return mask

    @staticmethod
    def _flow(prev: np.ndarray, cur: np.ndarray, mask: np.ndarray | None) -> np.ndarray | None:
        pts = cv2.goodFeaturesToTrack(prev, maxCorners=FLOW_MAX_CORNERS, qualityLevel=0.01, minDistance=8,
                                      mask=mask, blockSize=3)  # fmt: skip
        if pts is None or len(pts) < FLOW_MIN_INLIERS:
            return None
        nxt, status, _ = cv2.calcOpticalFlowPyrLK(prev, cur, pts, None, winSize=(15, 15), maxLevel=2)
        ok = status.ravel() == 1
        if ok.sum() < FLOW_MIN_INLIERS:
            return None
        src, dst = pts.reshape(-1, 2)[ok], nxt.reshape(-1, 2)[ok]
        M, inl = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=FLOW_THRESHOLD_PX,
                                             maxIters=2000, confidence=0.999, refineIters=0)  # fmt: skip
        if M is None or inl is None:
            return None
        inl = inl.ravel().astype(bool)
        if inl.sum() < FLOW_MIN_INLIERS or 2 * inl.sum() < len(src):
            return None
        M = similarity_lstsq(src[inl], dst[inl])
        return M if MIN_SCALE <= scale_of(M) <= MAX_SCALE else None
