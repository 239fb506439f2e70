"""bpnet: an open re-creation of NVIDIA TAO BodyPoseNet (bottom-up 2D pose: heatmaps + PAFs, stride 8)."""

__version__ = "0.1.0"

from bpnet_core.errors import BpnetError  # noqa: E402  (re-exported: the one user-facing error type)

__all__ = ["BpnetError", "__version__"]
