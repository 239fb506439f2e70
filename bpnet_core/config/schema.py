"""Typed schemas of bpnet's three spec files: train spec, inference spec and dataset spec.

The field names, nesting and ``__class_name__`` labels are TAO BodyPoseNet's (the specs of NVIDIA's tao_tutorials,
``notebooks/tao_launcher_starter_kit/bpnet/``: ``specs/bpnet_train_m1_coco.yaml``, ``specs/infer_spec.yaml``,
``data_pose_config/coco_spec.json``), so a TAO spec loads unchanged; attribute access mirrors the file
(``spec.model.stages``, ``spec.dataloader.augmentation_config.spatial_aug_params.flip_lr_prob``, ``infer.input_shape``,
``ds.train_data.images_root_dir_path``). Where a file omits a field, TAO's *code* default applies (the defaults of its
spec parser in NVIDIA's tao_tensorflow1_backend, ``nvidia_tao_tf1/cv/bpnet/``), with one documented exception:
``heatmap_gaussian_sigma`` defaults to 7.0 px, the value every TAO spec sets, because TAO's code default 0.15 is in the
wrong unit for its own label processor.

Why pydantic v2 and not plain dataclasses:

* ``extra="forbid"`` plus the error's location tuple give strict keys at every depth for free; we only add the
  "did you mean" hint (:func:`difflib.get_close_matches` over the fields at that location).
* Types, ranges and fixed list lengths are declared next to the field (``Field(ge=1, le=10)``) instead of in a
  hand-written validator that must be kept in sync with the dataclass.
* Nested blocks, ``null`` handling, aliases (``__class_name__`` is not a legal Python field name) and JSON-safe
  dumps (``model_dump(mode="json")``) come with the library.

The cost is pydantic's multi-line error text; :func:`format_validation_error` condenses the first error into the
project's one-line :class:`~bpnet_core.errors.BpnetError` (``specs/x.yaml: model.stages must be >= 1 (got 0)``).
Cross-field checks (stride, epochs, ``load_graph``) are ``model_validator(mode="after")`` methods that raise
:class:`SpecValueError`, which carries the dotted key it is about.

Numbers are strict (``true`` is not an integer, ``"3"`` is not an integer); floats also accept numeric strings,
because YAML 1.1 reads ``1e-3`` (no dot) as a string.

Paths: fields typed :data:`PathStr` are file-system paths. They are not checked for existence (TAO's files with
``/workspace/...`` load unchanged); the loaders in :mod:`bpnet_core.config.io` make them absolute with
:func:`resolve_path`.
"""

from __future__ import annotations

import difflib
import os
import re
import types
from dataclasses import MISSING
from dataclasses import fields as dc_fields
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, NamedTuple, Union, get_args, get_origin, get_type_hints

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    Strict,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from bpnet_core.decode.params import DecodeParams
from bpnet_core.errors import BpnetError
from bpnet_core.paths import PROJECT_ROOT
from bpnet_core.track_params import TrackParams

__all__ = [
    "SHIPPED_DIRS",
    "PathStr",
    "SpecValueError",
    "resolve_path",
    "format_validation_error",
    "FinetuningConfig",
    "PoseConfigSection",
    "ImageDims",
    "ImageConfig",
    "DatasetSpecs",
    "DatasetConfig",
    "NormalizationParams",
    "SpatialAugParams",
    "AugmentationConfig",
    "LabelProcessorConfig",
    "DataloaderConfig",
    "BackboneAttributes",
    "ModelConfig",
    "LearningRateSchedule",
    "OptimizerConfig",
    "FocalLossParams",
    "LossConfig",
    "TrainSpec",
    "DecoderConfig",
    "TrackingConfig",
    "InferSpec",
    "DatasetSplit",
    "Category",
    "VisibilityFlags",
    "DataFilteringParams",
    "SplitPaths",
    "DatasetSpec",
    "validate_against_pose",
]

# ---------------------------------------------------------------------------------------------------- paths

#: Relative paths that start with one of these folders name files shipped in the repository and resolve against
#: the repository root; every other relative path resolves against the folder of the spec file that holds it.
SHIPPED_DIRS = ("specs", "model_pose_config", "data_pose_config")


class _PathMarker:
    """Annotation metadata: this string field is a file-system path."""

    def __repr__(self) -> str:
        return "PATH"


PATH = _PathMarker()
PathStr = Annotated[str, PATH]


def resolve_path(spec_file: str | os.PathLike | None, value: str | os.PathLike | None) -> Path | None:
    """Make a path found in a spec absolute.

    * ``None`` stays ``None``; ``~`` is expanded; an absolute path is returned as is (normalised).
    * A relative path whose first component is ``specs``, ``model_pose_config`` or ``data_pose_config`` is a file
      shipped with bpnet and resolves against the repository root (``bpnet_core.paths.PROJECT_ROOT``), wherever the
      spec file itself lives (so a dumped ``params.yaml`` in a results folder still finds them).
    * Any other relative path resolves against the folder of ``spec_file`` (the current directory when
      ``spec_file`` is ``None``).
    """
    if value is None:
        return None
    text = os.path.expanduser(os.fspath(value))
    if os.path.isabs(text):
        return Path(os.path.normpath(text))
    first = Path(text).parts[0] if Path(text).parts else ""
    if first in SHIPPED_DIRS:
        base = PROJECT_ROOT
    elif spec_file is not None:
        base = Path(spec_file).absolute().parent
    else:
        base = Path.cwd()
    return Path(os.path.normpath(os.path.join(os.fspath(base), text)))


# ---------------------------------------------------------------------------------------------------- types


def _as_number(value: Any) -> Any:
    """Floats: refuse booleans, accept numeric strings (YAML 1.1 reads ``1e-3`` as a string)."""
    if isinstance(value, bool):
        raise PydanticCustomError("float_type", "must be a number")
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise PydanticCustomError("float_parsing", "must be a number") from None
    return value


Int = Annotated[int, Strict()]
Bool = Annotated[bool, Strict()]
Float = Annotated[float, BeforeValidator(_as_number), Strict()]
PosInt = Annotated[int, Strict(), Field(gt=0)]
PosFloat = Annotated[float, BeforeValidator(_as_number), Strict(), Field(gt=0)]
Prob = Annotated[float, BeforeValidator(_as_number), Strict(), Field(ge=0.0, le=1.0)]



class SpecValueError(ValueError):
    """A cross-field check failed. ``key`` is dotted and relative to the block whose validator raised it;
    ``related`` lists other keys (same base) whose values took part, so an override of any of them is blamed."""

    def __init__(self, key: str | None, message: str, related: tuple[str, ...] = ()):
        super().__init__(message)
        self.key = key
        self.message = message
        self.related = related


def _choices(values) -> str:
    values = [repr(v) for v in values]
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " or " + values[-1]


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------------- base block


class _Block(BaseModel):
    """One mapping of a spec file: unknown keys are errors; ``__class_name__`` is a checked label."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), arbitrary_types_allowed=False)

    #: Allowed ``__class_name__`` values; the block's own class name when TAO gives it none.
    CLASS_NAMES: ClassVar[tuple[str, ...]] = ()

    class_name: str | None = Field(default=None, alias="__class_name__")

    @classmethod
    def allowed_class_names(cls) -> tuple[str, ...]:
        return cls.CLASS_NAMES or (cls.__name__,)

    @field_validator("class_name")
    @classmethod
    def _check_class_name(cls, value: str | None) -> str | None:
        if value is None:
            return cls.model_fields["class_name"].default
        allowed = cls.allowed_class_names()
        if value not in allowed:
            raise ValueError(f"must be one of {_choices(allowed)} (got {value!r})")
        return value

    @field_validator("*", mode="before")
    @classmethod
    def _null_block_means_defaults(cls, value: Any, info: ValidationInfo) -> Any:
        """``block: null`` means "all defaults" for a block that always exists (``finetuning_config: null``);
        an optional block (``identity_spatial_aug_params: null``) keeps ``None``."""
        if value is None and info.field_name in cls.model_fields:
            ann = cls.model_fields[info.field_name].annotation
            if isinstance(ann, type) and issubclass(ann, _Block):
                return {}
        return value


class _SpecRoot(_Block):
    """A whole spec file: remembers where it was loaded from, compares by value."""

    _source: str | None = PrivateAttr(default=None)
    _spec_dir: Path | None = PrivateAttr(default=None)

    @property
    def source(self) -> str:
        """The file this spec was loaded from, as given (``"<dict>"`` when built in code)."""
        return self._source or "<dict>"

    @property
    def spec_dir(self) -> Path | None:
        """Absolute folder of the spec file (``None`` when built in code)."""
        return self._spec_dir

    def _set_origin(self, source: str | None, spec_dir: Path | None) -> None:
        self._source = source
        self._spec_dir = spec_dir

    def resolve(self, value: str | os.PathLike | None) -> Path | None:
        """:func:`resolve_path` relative to this spec's file."""
        anchor = (self._spec_dir / "spec") if self._spec_dir is not None else None
        return resolve_path(anchor, value)

    def to_dict(self) -> dict:
        """The file form: TAO key names (``__class_name__``), JSON-safe values, unset labels dropped."""
        return _drop_null_labels(self.model_dump(mode="json", by_alias=True))

    @classmethod
    def from_dict(
        cls,
        data: Any,
        source: str = "<dict>",
        spec_dir: str | os.PathLike | None = None,
        override_keys: tuple = (),
    ):
        """Validate a mapping; any problem becomes a one-line :class:`BpnetError` naming ``source`` and the key.

        ``override_keys`` (tuples of key parts) are the keys set by ``--set``: errors under them name ``--set``.
        """
        if not isinstance(data, dict):
            raise BpnetError(f"{source}: a spec must be a mapping of keys, got {type(data).__name__}")
        try:
            spec = cls.model_validate(data)
        except ValidationError as exc:
            raise BpnetError(format_validation_error(exc, cls, source, override_keys)) from None
        spec._set_origin(source, Path(spec_dir).absolute() if spec_dir is not None else None)
        return spec

    def __eq__(self, other: object) -> bool:  # by value: the same spec loaded from two files is equal
        if type(self) is not type(other):
            return NotImplemented
        return self.model_dump() == other.model_dump()  # type: ignore[union-attr]

    __hash__ = None  # type: ignore[assignment]


def _drop_null_labels(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _drop_null_labels(v) for k, v in obj.items() if not (k == "__class_name__" and v is None)}
    if isinstance(obj, list):
        return [_drop_null_labels(v) for v in obj]
    return obj


# ---------------------------------------------------------------------------------------------------- train spec


class FinetuningConfig(_Block):
    is_finetune_exp: Bool = False
    checkpoint_path: PathStr | None = None
    ckpt_epoch_num: Int = Field(0, ge=0)


class PoseConfigSection(_Block):
    """``dataloader.pose_config``: label-map size and the model pose config file (``skeleton.PoseConfig``)."""

    CLASS_NAMES = ("BpNetPoseConfig",)
    target_shape: list[PosInt] = Field(default_factory=lambda: [32, 32], min_length=2, max_length=2)
    pose_config_path: PathStr = "model_pose_config/bpnet_18joints.json"


class ImageDims(_Block):
    height: PosInt = 256
    width: PosInt = 256
    channels: Literal[3] = 3  # images are always decoded to 3-channel colour


class ImageConfig(_Block):
    image_dims: ImageDims = Field(default_factory=ImageDims)
    image_encoding: Literal["jpg", "jpeg", "png"] = "jpg"


class DatasetSpecs(_Block):
    """``dataset_config.dataset_specs``: the dataset spec file per dataset (TAO supports COCO only)."""

    coco: PathStr = "data_pose_config/coco_spec.json"


class DatasetConfig(_Block):
    """Where the converted records live. ``*_records_path`` entries are relative to their ``*_folder_path``."""

    root_data_path: PathStr | None = None
    train_records_folder_path: PathStr | None = None
    train_records_path: list[str] = Field(default_factory=lambda: ["train-fold-000-of-001"], min_length=1)
    val_records_folder_path: PathStr | None = None
    val_records_path: list[str] = Field(default_factory=lambda: ["val-fold-000-of-001"])
    dataset_specs: DatasetSpecs = Field(default_factory=DatasetSpecs)


class NormalizationParams(_Block):
    """``x_norm = x / image_scale - image_offset`` (per channel); ``mask = m / mask_scale - mask_offset``."""

    image_scale: list[PosFloat] = Field(default_factory=lambda: [256.0, 256.0, 256.0], min_length=3, max_length=3)
    image_offset: list[Float] = Field(default_factory=lambda: [0.5, 0.5, 0.5], min_length=3, max_length=3)
    mask_scale: list[PosFloat] = Field(default_factory=lambda: [255.0], min_length=1, max_length=1)
    mask_offset: list[Float] = Field(default_factory=lambda: [0.0], min_length=1, max_length=1)


class SpatialAugParams(_Block):
    """Ranges of the random affine augmentation. Defaults are TAO's code defaults (= no augmentation); a ``null``
    minimum means minus the maximum (symmetric range), as in TAO, and is filled in on load."""

    flip_lr_prob: Prob = 0.0
    flip_tb_prob: Prob = 0.0
    rotate_deg_max: Float = Field(0.0, ge=-180.0, le=180.0)
    rotate_deg_min: Float | None = Field(None, ge=-180.0, le=180.0)
    zoom_prob: Prob = 0.0
    zoom_ratio_min: PosFloat = 1.0
    zoom_ratio_max: PosFloat = 1.0
    translate_max_x: Float = 0.0
    translate_min_x: Float | None = None
    translate_max_y: Float = 0.0
    translate_min_y: Float | None = None
    use_translate_ratio: Bool = False
    translate_ratio_max: Float = 0.0
    translate_ratio_min: Float | None = 0.0
    target_person_scale: PosFloat = 0.6

    @model_validator(mode="after")
    def _ranges(self) -> SpatialAugParams:
        for lo, hi in [
            ("rotate_deg_min", "rotate_deg_max"),
            ("translate_min_x", "translate_max_x"),
            ("translate_min_y", "translate_max_y"),
            ("translate_ratio_min", "translate_ratio_max"),
        ]:
            if getattr(self, lo) is None:
                setattr(self, lo, -getattr(self, hi))
        for lo, hi in [
            ("rotate_deg_min", "rotate_deg_max"),
            ("zoom_ratio_min", "zoom_ratio_max"),
            ("translate_min_x", "translate_max_x"),
            ("translate_min_y", "translate_max_y"),
            ("translate_ratio_min", "translate_ratio_max"),
        ]:
            if getattr(self, lo) > getattr(self, hi):
                raise SpecValueError(lo, f"must be <= {hi} ({getattr(self, hi)}) (got {getattr(self, lo)})", (hi,))
        return self


class AugmentationConfig(_Block):
    CLASS_NAMES = ("AugmentationConfig",)
    spatial_augmentation_mode: Literal["person_centric", "standard", "standard_with_fixed_aspect_ratio"] = (
        "person_centric"
    )
    spatial_aug_params: SpatialAugParams = Field(default_factory=SpatialAugParams)
    identity_spatial_aug_params: SpatialAugParams | None = None  # TAO: always the identity; kept for files
    color_aug_params: dict[str, Any] | None = None  # accepted for TAO files; TAO never implemented it


class LabelProcessorConfig(_Block):
    """Target encoding: ``heatmap_gaussian_sigma`` in input pixels, ``paf_ortho_dist_thresh`` in units of the
    stride (PAF half-width), ``paf_gaussian_sigma`` unused (as in TAO)."""

    CLASS_NAMES = ("LabelProcessor", "LabelProcessorConfig")
    paf_gaussian_sigma: Float = Field(0.03, ge=0.0)
    heatmap_gaussian_sigma: PosFloat = 7.0
    paf_ortho_dist_thresh: PosFloat = 1.0


class DataloaderConfig(_Block):
    CLASS_NAMES = ("BpNetDataloader",)
    batch_size: Int = Field(10, ge=1)
    pose_config: PoseConfigSection = Field(default_factory=PoseConfigSection)
    image_config: ImageConfig = Field(default_factory=ImageConfig)
    dataset_config: DatasetConfig = Field(default_factory=DatasetConfig)
    normalization_params: NormalizationParams = Field(default_factory=NormalizationParams)
    shuffle_buffer_size: Int = Field(20000, ge=0)
    augmentation_config: AugmentationConfig = Field(default_factory=AugmentationConfig)
    label_processor_config: LabelProcessorConfig = Field(default_factory=LabelProcessorConfig)

    @model_validator(mode="after")
    def _stride(self) -> DataloaderConfig:
        dims = self.image_config.image_dims
        th, tw = self.pose_config.target_shape
        related = ("pose_config.target_shape",)
        if dims.height % th:
            raise SpecValueError(
                "image_config.image_dims.height",
                f"must be a multiple of pose_config.target_shape[0] = {th} (got {dims.height})",
                related,
            )
        if dims.width % tw:
            raise SpecValueError(
                "image_config.image_dims.width",
                f"must be a multiple of pose_config.target_shape[1] = {tw} (got {dims.width})",
                related,
            )
        sy, sx = dims.height // th, dims.width // tw
        if sy != sx:
            raise SpecValueError(
                "image_config.image_dims",
                f"must give the same stride on both axes: height/target_shape[0] = {dims.height}/{th} = {sy} but "
                f"width/target_shape[1] = {dims.width}/{tw} = {sx}",
                related,
            )
        return self

    @property
    def stride(self) -> int:
        """Input pixels per label-map cell (TAO: ``image height // target height``)."""
        return self.image_config.image_dims.height // self.pose_config.target_shape[0]


class BackboneAttributes(_Block):
    architecture: Literal["vgg", "mobilenet_v2"] = "vgg"
    mtype: str = "default"
    use_bias: Bool = False
    nlayers: Int = 19

    @model_validator(mode="after")
    def _vgg19(self) -> BackboneAttributes:
        if self.architecture == "vgg" and self.nlayers != 19:
            raise SpecValueError("nlayers", f"must be 19 for architecture 'vgg' (got {self.nlayers})")
        return self


class ModelConfig(_Block):
    CLASS_NAMES = ("BpNetLiteModel",)
    backbone_attributes: BackboneAttributes = Field(default_factory=BackboneAttributes)
    stages: Int = Field(6, ge=1, le=10)
    heat_channels: Int = Field(19, ge=2)
    paf_channels: Int = Field(38, ge=2)
    use_self_attention: Bool = False
    data_format: Literal["channels_last"] = "channels_last"
    use_bias: Bool = True
    regularization_type: Literal["l1", "l2", "l1_l2"] = "l1"
    kernel_regularization_factor: Float = Field(1e-9, ge=0.0)
    bias_regularization_factor: Float = Field(1e-9, ge=0.0)
    kernel_initializer: Literal["random_normal", "xavier", "he_normal"] = "random_normal"
    stage1_kernel_sizes: list[PosInt] = Field(default_factory=lambda: [3, 3, 3], min_length=1)
    stageT_kernel_sizes: list[PosInt] = Field(default_factory=lambda: [7, 7, 7, 7, 7], min_length=1)
    width_multiplier: Float = Field(1.0, gt=0.0, le=4.0)  # bpnet extension: scales every conv's filter count

    @model_validator(mode="after")
    def _shapes(self) -> ModelConfig:
        if self.paf_channels % 2:
            raise SpecValueError("paf_channels", f"must be even (x, y per limb) (got {self.paf_channels})")
        for name in ("stage1_kernel_sizes", "stageT_kernel_sizes"):
            for i, k in enumerate(getattr(self, name)):
                if k % 2 == 0:
                    raise SpecValueError(f"{name}[{i}]", f"must be odd (got {k})")
        return self


class LearningRateSchedule(_Block):
    """``SoftstartAnnealingLearningRateSchedule`` (TAO default): log-linear ramp from ``min_learning_rate`` to
    ``base_learning_rate`` over the first ``soft_start`` fraction of ``last_step``, flat, then log-linear annealing
    back down after the ``annealing`` fraction. ``BpNetExponentialDecayLRSchedule``: ``learning_rate`` (or
    ``base_learning_rate``) × ``decay_rate`` ^ (epoch / ``decay_epochs``), floored at ``min_learning_rate``."""

    CLASS_NAMES = ("SoftstartAnnealingLearningRateSchedule", "BpNetExponentialDecayLRSchedule")
    class_name: str | None = Field(default="SoftstartAnnealingLearningRateSchedule", alias="__class_name__")
    soft_start: Float = Field(0.05, ge=0.0, le=1.0)
    annealing: Float = Field(0.5, ge=0.0, le=1.0)
    base_learning_rate: PosFloat = 2e-5
    min_learning_rate: PosFloat = 8e-8
    last_step: Int | None = Field(None, ge=1)  # null: num_epoch × steps_per_epoch, computed by the trainer
    learning_rate: PosFloat | None = None  # exponential decay: TAO's name for the start value
    decay_epochs: PosFloat | None = None
    decay_rate: Float | None = Field(None, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _consistent(self) -> LearningRateSchedule:
        if self.min_learning_rate > self.start_learning_rate:
            raise SpecValueError(
                "min_learning_rate",
                f"must be <= base_learning_rate ({self.start_learning_rate}) (got {self.min_learning_rate})",
                ("base_learning_rate", "learning_rate"),
            )
        if self.class_name == "SoftstartAnnealingLearningRateSchedule" and self.soft_start > self.annealing:
            raise SpecValueError(
                "soft_start", f"must be <= annealing ({self.annealing}) (got {self.soft_start})", ("annealing",)
            )
        if self.class_name == "BpNetExponentialDecayLRSchedule":
            for name in ("decay_epochs", "decay_rate"):
                if getattr(self, name) is None:
                    raise SpecValueError(name, "is required by BpNetExponentialDecayLRSchedule", ("__class_name__",))
        return self

    @property
    def start_learning_rate(self) -> float:
        """``learning_rate`` when set (exponential decay), else ``base_learning_rate``."""
        return self.learning_rate if self.learning_rate is not None else self.base_learning_rate


class OptimizerConfig(_Block):
    """``__class_name__`` selects the optimizer (bpnet extension): TAO's ``WeightedMomentumOptimizer`` (SGD with
    momentum and per-layer gradient weights) or ``Adam``; ``momentum``/``use_nesterov`` only apply to the first."""

    CLASS_NAMES = ("WeightedMomentumOptimizer", "Adam")
    class_name: str | None = Field(default="WeightedMomentumOptimizer", alias="__class_name__")
    learning_rate_schedule: LearningRateSchedule = Field(default_factory=LearningRateSchedule)
    grad_weights_dict: dict[str, Float] | None = None
    weight_default_value: Float = Field(1.0, ge=0.0)
    momentum: Float = Field(0.9, ge=0.0, lt=1.0)
    use_nesterov: Bool = False


class FocalLossParams(_Block):
    use_focal_loss: Bool = False
    alpha: Float = Field(0.1, ge=0.0)
    beta: Float = Field(0.02, ge=0.0)
    bkg_thresh: Float = Field(0.01, ge=0.0)
    gamma: Float = Field(1.0, ge=0.0)


class LossConfig(_Block):
    CLASS_NAMES = ("BpNetLoss",)
    focal_loss_params: FocalLossParams = Field(default_factory=FocalLossParams)
    # bpnet extension: weights of the heatmap and PAF terms (TAO: both 1)
    heatmap_loss_weight: Float = Field(1.0, gt=0.0)
    paf_loss_weight: Float = Field(1.0, gt=0.0)


class DistillationConfig(_Block):
    """bpnet extension: supervise the student with a teacher network's maps (knowledge distillation).

    Attributes:
        teacher_model: a bpnet ``.keras`` model whose last-stage heatmaps and PAFs, computed on the same augmented
            batch as the student sees, become (part of) the target. ``null``: no distillation.
        weight: the teacher's share of the target: ``target = weight · teacher + (1 − weight) · label``
            (for the masked L2 loss this equals ``weight · ‖s − teacher‖² + (1 − weight) · ‖s − label‖²`` up to a
            constant). 0 = labels only, 1 = teacher only.
        stages: ``all`` — every student stage is pulled toward the teacher; ``last`` — only the last stage,
            earlier stages keep the labels.
        maps: ``both``, ``heatmaps`` or ``pafs``: which branch the teacher supervises.
        from_pruned: when ``teacher_model`` is not set and ``pretrained_weights`` is a model written by
            ``bpnet prune``, distil from the model it was pruned from (recorded in its contract as
            ``provenance.pruned_from``). The retrain specs set it: retraining after pruning distils by default.
        image_folder: label-free distillation: train on the images of this folder (no annotations, no TFRecords;
            augmented like training images) instead of the spec's train records. Needs ``weight: 1``.
    """

    teacher_model: PathStr | None = None
    weight: Float = Field(0.5, ge=0.0, le=1.0)
    stages: Literal["all", "last"] = "all"
    maps: Literal["both", "heatmaps", "pafs"] = "both"
    from_pruned: Bool = False
    image_folder: PathStr | None = None

    @model_validator(mode="after")
    def _cross(self) -> DistillationConfig:
        if self.image_folder and self.weight != 1.0:
            raise SpecValueError("weight", f"must be 1 for label-free distillation from image_folder (got "
                                 f"{self.weight:g}): the folder has no labels", ("image_folder",))  # fmt: skip
        if self.image_folder and not (self.teacher_model or self.from_pruned):
            raise SpecValueError("image_folder", "label-free distillation needs a teacher_model", ("teacher_model",))
        return self


class TrainSpec(_SpecRoot):
    """The experiment spec of ``bpnet train`` (TAO ``BpNetTrainer``, ``specs/bpnet_train_m1_coco.yaml``)."""

    CLASS_NAMES = ("BpNetTrainer",)
    checkpoint_dir: PathStr | None = None
    log_every_n_secs: Float = Field(1.0, ge=0.0)
    checkpoint_n_epoch: Int = Field(1, ge=1)
    num_epoch: Int = Field(2, ge=1)
    summary_every_n_steps: Int = Field(1, ge=0)
    infrequent_summary_every_n_steps: Int = Field(0, ge=0)
    validation_every_n_epoch: Int = Field(20, ge=0)  # 0: no validation during training
    max_ckpt_to_keep: Int = Field(5, ge=1)
    random_seed: Int = Field(42, ge=0)
    pretrained_weights: PathStr | None = None
    load_graph: Bool = False
    finetuning_config: FinetuningConfig = Field(default_factory=FinetuningConfig)
    use_stagewise_lr_multipliers: Bool = False
    inference_spec: PathStr | None = None
    final_model_name: str = Field("bpnet_model", min_length=1, pattern=r"^[^/\\]+$")
    dataloader: DataloaderConfig = Field(default_factory=DataloaderConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    distillation: DistillationConfig = Field(default_factory=DistillationConfig)  # bpnet extension

    @model_validator(mode="after")
    def _cross(self) -> TrainSpec:
        if self.num_epoch % self.checkpoint_n_epoch:
            raise SpecValueError(
                "num_epoch",
                f"must be a multiple of checkpoint_n_epoch = {self.checkpoint_n_epoch} (got {self.num_epoch})",
                ("checkpoint_n_epoch",),
            )
        if self.load_graph and not self.pretrained_weights:
            raise SpecValueError("load_graph", "is true but pretrained_weights is not set", ("pretrained_weights",))
        if self.finetuning_config.is_finetune_exp and not self.finetuning_config.checkpoint_path:
            raise SpecValueError(
                "finetuning_config.checkpoint_path",
                "must be set when finetuning_config.is_finetune_exp is true",
                ("finetuning_config.is_finetune_exp",),
            )
        return self

    @property
    def stride(self) -> int:
        """Input pixels per label-map cell: ``image_dims.height // target_shape[0]`` (8 for TAO's specs)."""
        return self.dataloader.stride


def validate_against_pose(spec: TrainSpec, pose) -> None:
    """Check the model's head sizes against a :class:`~bpnet_core.skeleton.PoseConfig`; one-line error if not."""
    where = pose.source or pose.name
    if spec.model.heat_channels != pose.num_heatmap_channels:
        raise BpnetError(
            f"{spec.source}: model.heat_channels is {spec.model.heat_channels} but pose config {where} needs "
            f"{pose.num_heatmap_channels} ({pose.num_joints} joints + background)"
        )
    if spec.model.paf_channels != pose.num_paf_channels:
        raise BpnetError(
            f"{spec.source}: model.paf_channels is {spec.model.paf_channels} but pose config {where} needs "
            f"{pose.num_paf_channels} (2 x {pose.num_limbs} limbs)"
        )


# ---------------------------------------------------------------------------------------------------- infer spec

#: DecodeParams fields that come from InferSpec's TAO fields, not from its ``decoder:`` block.
_TAO_DECODE_FIELDS = ("heatmap_threshold", "paf_threshold", "upsampling_factor")
_SCALAR_TYPES = {float: Float, int: Int, bool: Bool, str: str}


class _DecoderBase(_Block):
    CLASS_NAMES = ("DecodeParams", "DecoderConfig")


def _decoder_model() -> type[_Block]:
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


class _TrackingBase(_Block):
    CLASS_NAMES = ("TrackParams", "TrackingConfig")


def _tracking_model() -> type[_Block]:
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


class InferSpec(_SpecRoot):
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


# ---------------------------------------------------------------------------------------------------- dataset spec

VisibilityName = Literal["visible", "annotatable", "occluded", "truncated", "not_labeled", "not_labeled_in_dataset"]


class DatasetSplit(_Block):
    """One split; every path is relative to ``root_directory_path`` (or absolute)."""

    images_root_dir_path: str
    mask_root_dir_path: str
    annotation_root_dir_path: str


class Category(_Block):
    supercategory: str = "person"
    id: Int = 1
    name: str = "person"
    num_joints: Int = Field(ge=1)
    keypoints: list[str] = Field(min_length=1)
    skeleton: list[Annotated[list[Int], Field(min_length=2, max_length=2)]] = Field(default_factory=list)
    skeleton_edge_names: list[Annotated[list[str], Field(min_length=2, max_length=2)]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Category:
        n = len(self.keypoints)
        if self.num_joints != n:
            raise SpecValueError(
                "num_joints", f"must equal the number of keypoints ({n}) (got {self.num_joints})", ("keypoints",)
            )
        for k, (a, b) in enumerate(self.skeleton):
            if not (1 <= a <= n and 1 <= b <= n):
                raise SpecValueError(f"skeleton[{k}]", f"must be 1-based joint indices in 1..{n} (got [{a}, {b}])")
        for k, pair in enumerate(self.skeleton_edge_names):
            for name in pair:
                if name not in self.keypoints:
                    hint = difflib.get_close_matches(name, self.keypoints, n=1)
                    raise SpecValueError(
                        f"skeleton_edge_names[{k}]",
                        f"names unknown joint {name!r}" + (f" (did you mean {hint[0]!r}?)" if hint else ""),
                    )
        if self.skeleton and self.skeleton_edge_names:
            by_name = [[self.keypoints[a - 1], self.keypoints[b - 1]] for a, b in self.skeleton]
            if by_name != [list(p) for p in self.skeleton_edge_names]:
                k = next((i for i, (x, y) in enumerate(zip(by_name, self.skeleton_edge_names)) if x != list(y)), None)
                k = min(len(by_name), len(self.skeleton_edge_names)) if k is None else k
                raise SpecValueError("skeleton_edge_names", f"disagrees with skeleton at edge {k}", ("skeleton",))
        return self


class VisibilityFlags(_Block):
    """``value``: the dataset's raw flag per name; ``mapping``: dataset name → bpnet visibility class."""

    value: dict[str, Int] = Field(default_factory=lambda: {"visible": 2, "occluded": 1, "not_labeled": 0})
    mapping: dict[str, VisibilityName] = Field(
        default_factory=lambda: {"visible": "visible", "occluded": "occluded", "not_labeled": "not_labeled"}
    )

    @model_validator(mode="after")
    def _mapped_names_exist(self) -> VisibilityFlags:
        for name in self.mapping:
            if name not in self.value:
                raise SpecValueError(
                    f"mapping.{name}", f"maps a name that visibility_flags.value does not define ({sorted(self.value)})"
                )
        return self


class DataFilteringParams(_Block):
    min_acceptable_height: Float = Field(32, ge=0)
    min_acceptable_width: Float = Field(32, ge=0)
    min_acceptable_kpts: Int = Field(5, ge=0)
    min_acceptable_interperson_dist_ratio: Float = Field(0.3, ge=0)


class SplitPaths(NamedTuple):
    images_dir: Path
    masks_dir: Path
    annotation_file: Path


class DatasetSpec(_SpecRoot):
    """The dataset spec of ``bpnet dataset_convert`` (``data_pose_config/coco_spec.json``, TAO's layout)."""

    dataset: Literal["coco"] = "coco"
    root_directory_path: PathStr
    train_data: DatasetSplit
    test_data: DatasetSplit
    duplicate_data_with_each_person_as_center: Bool = True
    categories: list[Category] = Field(min_length=1)
    visibility_flags: VisibilityFlags = Field(default_factory=VisibilityFlags)
    data_filtering_params: DataFilteringParams = Field(default_factory=DataFilteringParams)

    @property
    def root(self) -> Path:
        """``root_directory_path`` made absolute (a relative one against the spec file's folder)."""
        return self.resolve(self.root_directory_path)  # type: ignore[return-value]

    def split(self, mode: str) -> SplitPaths:
        """Absolute ``(images_dir, masks_dir, annotation_file)`` of ``mode`` (``"train"`` or ``"test"``)."""
        if mode not in ("train", "test"):
            raise BpnetError(f"{self.source}: unknown split {mode!r} (choose 'train' or 'test')")
        part = self.train_data if mode == "train" else self.test_data
        root = self.root

        def join(p: str) -> Path:
            return Path(os.path.normpath(os.path.join(os.fspath(root), os.path.expanduser(p))))

        return SplitPaths(
            join(part.images_root_dir_path), join(part.mask_root_dir_path), join(part.annotation_root_dir_path)
        )


# ---------------------------------------------------------------------------------------------------- schema walking


def _unwrap(ann: Any) -> Any:
    """Strip ``Annotated`` and ``Optional`` layers."""
    while True:
        origin = get_origin(ann)
        if origin is Annotated:
            ann = get_args(ann)[0]
            continue
        if origin in (Union, types.UnionType):
            args = [a for a in get_args(ann) if a is not type(None)]
            if len(args) == 1:
                ann = args[0]
                continue
        return ann


def _has_path_marker(ann: Any, metadata: list) -> bool:
    if any(isinstance(m, _PathMarker) for m in metadata):
        return True
    while True:
        origin = get_origin(ann)
        if origin is Annotated:
            if any(isinstance(m, _PathMarker) for m in get_args(ann)[1:]):
                return True
            ann = get_args(ann)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(ann) if a is not type(None)]
            if len(args) != 1:
                return False
            ann = args[0]
        else:
            return False


def input_keys(model: type[BaseModel]) -> dict[str, Any]:
    """The keys a block accepts in a file (aliases, e.g. ``__class_name__``) → their FieldInfo."""
    return {(fi.alias or name): fi for name, fi in model.model_fields.items()}


class UnknownKey(Exception):
    def __init__(self, index: int, candidates: list[str]):
        self.index = index
        self.candidates = candidates


class NotAMapping(Exception):
    def __init__(self, index: int):
        self.index = index


def schema_lookup(root: type[BaseModel], parts: tuple) -> tuple[Any, bool]:
    """The annotation at key path ``parts`` and whether it is a path field. Raises :class:`UnknownKey` or
    :class:`NotAMapping` with the index of the offending part."""
    ann: Any = root
    metadata: list = []
    for i, part in enumerate(parts):
        base = _unwrap(ann)
        if isinstance(base, type) and issubclass(base, BaseModel):
            keys = input_keys(base)
            if part not in keys:
                raise UnknownKey(i, list(keys))
            fi = keys[part]
            ann, metadata = fi.annotation, list(fi.metadata)
        elif get_origin(base) is dict:
            ann, metadata = get_args(base)[1], []
        elif get_origin(base) is list and (isinstance(part, int) or str(part).isdigit()):
            ann, metadata = get_args(base)[0], []
        else:
            raise NotAMapping(i)
    return ann, _has_path_marker(ann, metadata)


def dotted(parts) -> str:
    """``('categories', 0, 'name')`` → ``categories[0].name``."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out


def split_key(key: str) -> tuple:
    """``"a.b[0].c"`` or ``"a.b.0.c"`` → ``('a', 'b', 0, 'c')``."""
    parts: list = []
    for chunk in key.split("."):
        m = re.fullmatch(r"([^\[\]]*)((?:\[\d+\])*)", chunk)
        if not m:
            parts.append(chunk)
            continue
        name, idx = m.groups()
        if name:
            parts.append(int(name) if name.isdigit() else name)
        parts.extend(int(x) for x in re.findall(r"\[(\d+)\]", idx))
    return tuple(parts)


def unknown_key_message(where: str, parts: tuple, candidates: list[str]) -> str:
    bad = str(parts[-1])
    visible = [c for c in candidates if c != "__class_name__"] + (["__class_name__"] if "__class_name__" in
                                                                   candidates else [])
    hint = difflib.get_close_matches(bad, visible, n=1)
    if hint:
        tail = f" (did you mean {hint[0]!r}?)"
    else:
        shown = ", ".join(visible[:15]) + (", ..." if len(visible) > 15 else "")
        tail = f" (valid keys here: {shown})"
    return f"{where}: unknown key {dotted(parts)!r}{tail}"


# ---------------------------------------------------------------------------------------------------- error text

_TYPE_TEXT = {
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be a mapping of keys",
    "model_type": "must be a mapping of keys",
    "model_attributes_type": "must be a mapping of keys",
    "finite_number": "must be a finite number",
}


def _error_text(err: dict) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "greater_than_equal":
        text = f"must be >= {ctx['ge']}"
    elif kind == "greater_than":
        text = f"must be > {ctx['gt']}"
    elif kind == "less_than_equal":
        text = f"must be <= {ctx['le']}"
    elif kind == "less_than":
        text = f"must be < {ctx['lt']}"
    elif kind == "literal_error":
        expected = str(ctx.get("expected", ""))
        text = f"must be one of {expected}" if " or " in expected else f"must be {expected}"
    elif kind == "too_short":
        text = f"must have at least {ctx.get('min_length')} items"
    elif kind == "too_long":
        text = f"must have at most {ctx.get('max_length')} items"
    elif kind == "string_pattern_mismatch":
        text = "must be a plain file name (no folders)"
    elif kind == "string_type" and isinstance(err.get("input"), bool):
        text = "must be a string: YAML reads unquoted on/off/yes/no as true/false, so quote the word"
    elif kind in _TYPE_TEXT:
        text = _TYPE_TEXT[kind]
    else:
        text = str(err.get("msg", kind))
        text = text[:1].lower() + text[1:]
    if "input" in err:
        text += f" (got {_short(err['input'])})"
    return text


def _blamed(full: tuple, related: list[tuple], override_keys: tuple) -> bool:
    for key in [full, *related]:
        for o in override_keys:
            n = min(len(o), len(key))
            if n and tuple(o[:n]) == tuple(key[:n]):
                return True
    return False


def format_validation_error(
    exc: ValidationError, model: type[BaseModel], source: str, override_keys: tuple = ()
) -> str:
    """Condense pydantic's first error into one line: ``<source>: <dotted.key> <what was expected> (got <value>)``.

    ``source`` becomes ``--set`` when the key (or a key the check relates to) was set by an override."""
    err = exc.errors(include_url=False)[0]
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-", "[key]"))))
    kind = err["type"]
    related: list[tuple] = []
    if kind == "value_error" and isinstance((err.get("ctx") or {}).get("error"), SpecValueError):
        spec_err: SpecValueError = err["ctx"]["error"]
        full = loc + (split_key(spec_err.key) if spec_err.key else ())
        related = [loc + split_key(r) for r in spec_err.related]
        text = spec_err.message
    elif kind == "value_error":
        full = loc
        text = str((err.get("ctx") or {}).get("error", err.get("msg")))
    else:
        full = loc
        text = ""
    where = "--set" if _blamed(full, related, override_keys) else source
    if kind == "extra_forbidden":
        try:
            schema_lookup(model, full)
            candidates: list[str] = []
        except UnknownKey as e:
            candidates = e.candidates
        except NotAMapping:
            candidates = []
        return unknown_key_message(where, full, candidates)
    if kind == "missing":
        return f"{where}: missing required key {dotted(full)!r}"
    if not text:
        text = _error_text(err)
    if not full:
        return " ".join(f"{where}: {text}".split())
    return " ".join(f"{where}: {dotted(full)} {text}".split())
