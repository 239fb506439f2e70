"""Multi-person pose tracking over video frames (NumPy / SciPy / OpenCV only): OKS association, camera-motion
compensation (from the frames' background or from the people's joints), constant-velocity prediction,
re-identification, One Euro smoothing, and a small MOT evaluator."""

from bpnet_core.track.camera import FlowCameraEstimator, estimate_camera_motion
from bpnet_core.track.filters import OneEuroFilter
from bpnet_core.track.mot import evaluate_mot, evaluate_video_tracking, retrack
from bpnet_core.track.oks import oks, oks_matrix, sigmas_for
from bpnet_core.track.tracker import Track, Tracker
from bpnet_core.track_params import TrackParams

__all__ = [
    "FlowCameraEstimator",
    "OneEuroFilter",
    "TrackParams",
    "Track",
    "Tracker",
    "estimate_camera_motion",
    "evaluate_mot",
    "evaluate_video_tracking",
    "oks",
    "oks_matrix",
    "retrack",
    "sigmas_for",
]
