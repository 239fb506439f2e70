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

Layout: the schemas are :mod:`.train_spec`, :mod:`.infer_spec` and :mod:`.dataset_spec`, built on the base blocks of
:mod:`.blocks` and the field types of :mod:`.fields`; :mod:`.keys` walks key paths through a schema and
:mod:`.errors` writes the one-line error text. This module gathers their public names.
"""

from bpnet_core.config.dataset_spec import (
    Category,
    DataFilteringParams,
    DatasetSpec,
    DatasetSplit,
    SplitPaths,
    VisibilityFlags,
    VisibilityName,
)
from bpnet_core.config.errors import format_validation_error
from bpnet_core.config.fields import (
    PATH,
    SHIPPED_DIRS,
    Bool,
    Float,
    Int,
    PathStr,
    PosFloat,
    PosInt,
    Prob,
    SpecValueError,
    resolve_path,
)
from bpnet_core.config.infer_spec import DecoderConfig, InferSpec, TrackingConfig
from bpnet_core.config.train_spec import (
    AugmentationConfig,
    BackboneAttributes,
    DataloaderConfig,
    DatasetConfig,
    DatasetSpecs,
    DistillationConfig,
    FinetuningConfig,
    FocalLossParams,
    ImageConfig,
    ImageDims,
    LabelProcessorConfig,
    LearningRateSchedule,
    LossConfig,
    ModelConfig,
    NormalizationParams,
    OptimizerConfig,
    PoseConfigSection,
    SpatialAugParams,
    TrainSpec,
    validate_against_pose,
)

__all__ = [
    "SHIPPED_DIRS",
    "PATH",
    "PathStr",
    "Int",
    "Bool",
    "Float",
    "PosInt",
    "PosFloat",
    "Prob",
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
    "DistillationConfig",
    "TrainSpec",
    "DecoderConfig",
    "TrackingConfig",
    "InferSpec",
    "VisibilityName",
    "DatasetSplit",
    "Category",
    "VisibilityFlags",
    "DataFilteringParams",
    "SplitPaths",
    "DatasetSpec",
    "validate_against_pose",
]
