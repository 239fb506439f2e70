"""The inference spec's schema (TAO's ``specs/infer_spec.yaml``) with bpnet's ``decoder:`` and ``tracking:`` blocks,
built from :class:`~bpnet_core.decode.params.DecodeParams` and :class:`~bpnet_core.track_params.TrackParams`."""

from __future__ import annotations

import re
from dataclasses import MISSING
from dataclasses import fields as dc_fields
from typing import Annotated, Any, Literal, get_type_hints

from pydantic import BeforeValidator, Field, Strict, create_model, model_validator

from bpnet_core.config.blocks import Block, SpecRoot
from bpnet_core.config.fields import Bool, Float, Int, PathStr, PosFloat, PosInt, SpecValueError
from bpnet_core.decode.params import DecodeParams
from bpnet_core.errors import BpnetError
from bpnet_core.track_params import TrackParams

# ---------------------------------------------------------------------------------------------------- infer spec

#: DecodeParams fields that come from InferSpec's TAO fields, not from its ``decoder:`` block.
_TAO_DECODE_FIELDS = ("heatmap_threshold", "paf_threshold", "upsampling_factor")
_SCALAR_TYPES = {float: Float, int: Int, bool: Bool, str: str}


class _DecoderBase(Block):
    CLASS_NAMES = ("DecodeParams", "DecoderConfig")


def _decoder_model() -> type[Block]:
    """``decoder:`` block built from :class:`DecodeParams`, so a new decoder constant is configurable at once."""
    hints = get_type_hints(DecodeParams)
    spec: dict[str, Any] = {}
    for f in dc_fields(DecodeParams):
        if f.name in _TAO_DECODE_FIELDS:
            continue
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        spec[f.name] = (_SCALAR_TYPES.get(hints[f.name], hints[f.name]), default)
    model = create_model("DecoderConfig", __base__=_DecoderBase, **spec)
    model.__doc__ = "Optional ``decoder:`` block of the inference spec (bpnet extension): DecodeParams constants."
    model.__module__ = __name__
    return model


DecoderConfig = _decoder_model()


class _TrackingBase(Block):
    CLASS_NAMES = ("TrackParams", "TrackingConfig")


def _tracking_model() -> type[Block]:
    """``tracking:`` block built from :class:`~bpnet_core.track.TrackParams` (video inference)."""
    hints = get_type_hints(TrackParams)
    spec: dict[str, Any] = {}
    for f in dc_fields(TrackParams):
        spec[f.name] = (_SCALAR_TYPES.get(hints[f.name], hints[f.name]), f.default)
    model = create_model("TrackingConfig", __base__=_TrackingBase, **spec)
    model.__doc__ = "Optional ``tracking:`` block of the inference spec (bpnet extension): TrackParams constants."
    model.__module__ = __name__
    return model


TrackingConfig = _tracking_model()
_TRACK_MSG = re.compile(r"tracking parameter (\w+)=(.*?) must be (.*)$")

_DECODE_MSG = re.compile(r"decoder parameter (\w+)=(.*?) must be (.*)$")


def _keep_ratio_none(value: Any) -> Any:
    return None if isinstance(value, str) and value.strip() in ("None", "none", "null", "") else value


class InferSpec(SpecRoot):
    """The inference spec of ``bpnet inference`` / ``evaluate`` (TAO's ``specs/infer_spec.yaml``), plus the
    ``decoder:`` block."""

    model_path: PathStr | None = None
    train_spec: PathStr | None = None
    input_shape: list[PosInt] = Field(default_factory=lambda: [256, 256], min_length=2, max_length=2)
    keep_aspect_ratio_mode: Annotated[
        Literal["adjust_network_input", "pad_image_input", "fixed_height", "stretch", "letterbox"] | None,
        BeforeValidator(_keep_ratio_none),
    ] = "adjust_network_input"
    output_stage_to_use: Int | None = Field(None, ge=1)  # null: the last stage
    output_upsampling_factor: list[Annotated[int, Strict(), Field(ge=1)]] = Field(
        default_factory=lambda: [8, 8], min_length=2, max_length=2
    )
    heatmap_threshold: Float = Field(0.1, ge=0.0, lt=1.0)
    paf_threshold: Float = Field(0.05, ge=-1.0, lt=1.0)
    multi_scale_inference: Bool = False
    scales: list[PosFloat] = Field(default_factory=lambda: [1.0], min_length=1)
    flip_test: Bool = False  # bpnet extension: also run the mirrored image and average the maps
    decoder: DecoderConfig = Field(default_factory=DecoderConfig)  # type: ignore[valid-type]
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _cross(self) -> InferSpec:
        a, b = self.output_upsampling_factor
        if a != b:
            raise SpecValueError("output_upsampling_factor", f"must use one factor for both axes (got [{a}, {b}])")
        try:
            self.decode_params()
        except BpnetError as exc:
            m = _DECODE_MSG.match(str(exc))
            if not m:
                raise SpecValueError(None, str(exc)) from None
            name, got, expect = m.groups()
            key = {"upsampling_factor": "output_upsampling_factor"}.get(name, name)
            key = key if key in type(self).model_fields else f"decoder.{key}"
            raise SpecValueError(key, f"must be {expect} (got {got})") from None
        try:
            self.track_params()
        except BpnetError as exc:
            m = _TRACK_MSG.match(str(exc))
            if not m:
                raise SpecValueError(None, str(exc)) from None
            name, got, expect = m.groups()
            raise SpecValueError(f"tracking.{name}", f"must be {expect} (got {got})") from None
        return self

    def track_params(self) -> TrackParams:
        """The tracker constants of the ``tracking:`` block (video inference)."""
        return TrackParams(**self.tracking.model_dump(exclude={"class_name"}))

    def decode_params(self) -> DecodeParams:
        """The decoder constants this spec asks for: TAO's ``heatmap_threshold``, ``paf_threshold``,
        ``output_upsampling_factor[0]`` plus every field of the ``decoder:`` block."""
        extra = self.decoder.model_dump(exclude={"class_name"})
        return DecodeParams(
            heatmap_threshold=self.heatmap_threshold,
            paf_threshold=self.paf_threshold,
            upsampling_factor=self.output_upsampling_factor[0],
            **extra,
        )
