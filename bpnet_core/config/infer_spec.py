"""The inference spec's schema (TAO's ``specs/infer_spec.yaml``) with bpnet's ``decoder:`` and ``tracking:`` blocks,
built from :class:`~bpnet_core.decode.params.DecodeParams` and :class:`~bpnet_core.track_params.TrackParams`."""

from __future__ import annotations

from dataclasses import MISSING
from dataclasses import fields as dc_fields
from typing import Annotated, Any, Literal, get_type_hints

from pydantic import BeforeValidator, Field, Strict, create_model, model_validator

from bpnet_core.config.blocks import Block, SpecRoot
from bpnet_core.config.fields import Bool, Float, Int, PathStr, PosFloat, PosInt, SpecValueError
from bpnet_core.decode.params import DecodeParams
from bpnet_core.errors import ParamValueError
from bpnet_core.track_params import TrackParams

# ---------------------------------------------------------------------------------------------------- infer spec

#: DecodeParams fields that come from InferSpec's TAO fields, not from its ``decoder:`` block.
_TAO_DECODE_FIELDS = ("heatmap_threshold", "paf_threshold", "upsampling_factor")
_SCALAR_TYPES = {float: Float, int: Int, bool: Bool, str: str}


class _DecoderBase(Block):
    CLASS_NAMES = ("DecodeParams", "DecoderConfig")


class _TrackingBase(Block):
    CLASS_NAMES = ("TrackParams", "TrackingConfig")


def _block_from(params: type, name: str, base: type[Block], doc: str, skip: tuple = ()) -> type[Block]:
    """A spec block built from a parameter dataclass (its fields, types and defaults), so a new constant is
    configurable at once; the dataclass's own checks stay the one definition of its valid values."""
    hints = get_type_hints(params)
    spec: dict[str, Any] = {}
    for f in dc_fields(params):
        if f.name in skip:
            continue
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        spec[f.name] = (_SCALAR_TYPES.get(hints[f.name], hints[f.name]), default)
    model = create_model(name, __base__=base, **spec)
    model.__doc__ = doc
    model.__module__ = __name__
    return model


DecoderConfig = _block_from(
    DecodeParams, "DecoderConfig", _DecoderBase,
    "Optional ``decoder:`` block of the inference spec (bpnet extension): DecodeParams constants.",
    skip=_TAO_DECODE_FIELDS,
)  # fmt: skip
TrackingConfig = _block_from(
    TrackParams, "TrackingConfig", _TrackingBase,
    "Optional ``tracking:`` block of the inference spec (bpnet extension): TrackParams constants.",
)  # fmt: skip


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
    output_upsampling_factor: list[Annotated[int, Strict()]] = Field(
        default_factory=lambda: [8, 8], min_length=2, max_length=2
    )
    heatmap_threshold: Float = 0.1  # valid values: DecodeParams (checked once, in _cross)
    paf_threshold: Float = 0.05
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
        try:  # the decoder's and the tracker's own checks are the one definition of their valid values
            self.decode_params()
            self.track_params()
        except ParamValueError as exc:
            raise SpecValueError(self._spec_key(exc), f"must be {exc.expect} (got {exc.value!r})") from None
        return self

    def _spec_key(self, exc: ParamValueError) -> str:
        """The spec key of a decoder/tracker parameter: TAO's field, or the ``decoder:``/``tracking:`` block's."""
        if exc.group == "tracking":
            return f"tracking.{exc.name}"
        if exc.name == "upsampling_factor":
            return "output_upsampling_factor[0]"
        return exc.name if exc.name in type(self).model_fields else f"decoder.{exc.name}"

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
