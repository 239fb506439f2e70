"""Decoder constants, with TAO BodyPoseNet's defaults (``BpNetPostprocessor`` in NVIDIA's tao_tensorflow1_backend,
``nvidia_tao_tf1/cv/bpnet/inferencer/postprocessor.py``)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from bpnet_core.errors import ParamValueError


@dataclass(frozen=True)
class DecodeParams:
    """Every constant of the PAF decoder.

    ``heatmap_threshold``, ``paf_threshold`` and ``upsampling_factor`` come from the inference spec's TAO fields
    (``heatmap_threshold``, ``paf_threshold``, ``output_upsampling_factor``); the others from its optional
    ``decoder:`` block.
    """

    heatmap_threshold: float = 0.1  # a peak must exceed this (raw heatmap value)
    paf_threshold: float = 0.05  # a line-integral sample counts when its PAF·unit dot product exceeds this
    upsampling_factor: int = 8  # heatmaps are upsampled by this before peak finding (TAO: cubic, ×8)
    smooth_sigma: float = 3.0  # Gaussian smoothing of the (upsampled) heatmap before NMS; 0 = off
    nms_window: int = 3  # local-maximum window (pixels of the upsampled map)
    subpixel: bool = False  # refine peaks with a quadratic fit
    line_integral_samples: int = 10  # samples along each candidate limb, endpoints included
    min_sample_fraction: float = 0.8  # a connection needs count > fraction × samples above paf_threshold
    use_distance_prior: bool = False  # OpenPose-Python's penalty min(0.5·H/‖v‖ − 1, 0)
    min_parts: int = 4  # drop people with fewer joints
    min_person_score: float = 0.4  # drop people whose summed score / parts is below this
    max_peaks_per_joint: int = 100  # keep the strongest N candidates per joint; 0 = no limit (TAO). Bounds the
    # all-pairs cost on garbage maps (an untrained network); no real image comes near 100 people per joint type

    def __post_init__(self) -> None:
        checks = [
            ("heatmap_threshold", 0.0 <= self.heatmap_threshold < 1.0, "in [0, 1)"),
            ("paf_threshold", -1.0 <= self.paf_threshold < 1.0, "in [-1, 1)"),
            ("upsampling_factor", int(self.upsampling_factor) >= 1, ">= 1"),
            ("smooth_sigma", self.smooth_sigma >= 0, ">= 0"),
            ("nms_window", int(self.nms_window) >= 1 and int(self.nms_window) % 2 == 1, "an odd number >= 1"),
            ("line_integral_samples", int(self.line_integral_samples) >= 2, ">= 2"),
            ("min_sample_fraction", 0.0 <= self.min_sample_fraction <= 1.0, "in [0, 1]"),
            ("min_parts", int(self.min_parts) >= 1, ">= 1"),
            ("min_person_score", self.min_person_score >= 0, ">= 0"),
            ("max_peaks_per_joint", int(self.max_peaks_per_joint) >= 0, ">= 0 (0 = no limit)"),
        ]
        ParamValueError.first("decoder", self, checks)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]
