"""The train spec's schema (TAO ``BpNetTrainer``, ``specs/bpnet_train_m1_coco.yaml``): its blocks and their fields,
cross-field checks, and :func:`validate_against_pose`."""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import Field, model_validator

from bpnet_core.config.blocks import Block, SpecRoot
from bpnet_core.config.fields import Bool, Float, Int, PathStr, PosFloat, PosInt, Prob, SpecValueError
from bpnet_core.errors import BpnetError

# ---------------------------------------------------------------------------------------------------- train spec


class FinetuningConfig(Block):
    is_finetune_exp: Bool = False
    checkpoint_path: PathStr | None = None
    ckpt_epoch_num: Int = Field(0, ge=0)


class PoseConfigSection(Block):
    """``dataloader.pose_config``: label-map size and the model pose config file (``skeleton.PoseConfig``)."""

    CLASS_NAMES = ("BpNetPoseConfig",)
    target_shape: list[PosInt] = Field(default_factory=lambda: [32, 32], min_length=2, max_length=2)
    pose_config_path: PathStr = "model_pose_config/bpnet_18joints.json"


class ImageDims(Block):
    height: PosInt = 256
    width: PosInt = 256
    channels: Literal[3] = 3  # images are always decoded to 3-channel colour


class ImageConfig(Block):
    image_dims: ImageDims = Field(default_factory=ImageDims)
    image_encoding: Literal["jpg", "jpeg", "png"] = "jpg"


class DatasetSpecs(Block):
    """``dataset_config.dataset_specs``: the dataset spec file per dataset (TAO supports COCO only)."""

    coco: PathStr = "data_pose_config/coco_spec.json"


class DatasetConfig(Block):
    """Where the converted records live. ``*_records_path`` entries are relative to their ``*_folder_path``."""

    root_data_path: PathStr | None = None
    train_records_folder_path: PathStr | None = None
    train_records_path: list[str] = Field(default_factory=lambda: ["train-fold-000-of-001"], min_length=1)
    val_records_folder_path: PathStr | None = None
    val_records_path: list[str] = Field(default_factory=lambda: ["val-fold-000-of-001"])
    dataset_specs: DatasetSpecs = Field(default_factory=DatasetSpecs)


class NormalizationParams(Block):
    """``x_norm = x / image_scale - image_offset`` (per channel); ``mask = m / mask_scale - mask_offset``.

    ``image_scale`` / ``image_offset`` apply to a model built from scratch or from weights without a contract
    (``imagenet``, ``.h5``, TAO ``.hdf5``), fed RGB. When ``pretrained_weights`` is a ``.keras`` model with a bpnet
    contract, the model's contract (colour order and normalisation) wins; setting these keys to other values is an
    error (:func:`bpnet_core.config.training_contract`)."""

    image_scale: list[PosFloat] = Field(default_factory=lambda: [256.0, 256.0, 256.0], min_length=3, max_length=3)
    image_offset: list[Float] = Field(default_factory=lambda: [0.5, 0.5, 0.5], min_length=3, max_length=3)
    mask_scale: list[PosFloat] = Field(default_factory=lambda: [255.0], min_length=1, max_length=1)
    mask_offset: list[Float] = Field(default_factory=lambda: [0.0], min_length=1, max_length=1)


class SpatialAugParams(Block):
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


class AugmentationConfig(Block):
    CLASS_NAMES = ("AugmentationConfig",)
    spatial_augmentation_mode: Literal["person_centric", "standard", "standard_with_fixed_aspect_ratio"] = (
        "person_centric"
    )
    spatial_aug_params: SpatialAugParams = Field(default_factory=SpatialAugParams)
    identity_spatial_aug_params: SpatialAugParams | None = None  # TAO: always the identity; kept for files
    color_aug_params: dict[str, Any] | None = None  # accepted for TAO files; TAO never implemented it


class LabelProcessorConfig(Block):
    """Target encoding: ``heatmap_gaussian_sigma`` in input pixels, ``paf_ortho_dist_thresh`` in units of the
    stride (PAF half-width), ``paf_gaussian_sigma`` unused (as in TAO)."""

    CLASS_NAMES = ("LabelProcessor", "LabelProcessorConfig")
    paf_gaussian_sigma: Float = Field(0.03, ge=0.0)
    heatmap_gaussian_sigma: PosFloat = 7.0
    paf_ortho_dist_thresh: PosFloat = 1.0


class DataloaderConfig(Block):
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


Architecture = Literal["vgg", "mobilenet_v2", "mobilenet_v1"]
ARCHITECTURES: tuple[str, ...] = get_args(Architecture)  # the backbones bpnet builds, defined once
#: The prediction stages bpnet builds (``model.head``): TAO's, tf-pose's separable two-branch stages, and Lightweight
#: OpenPose's CPM + residual refinement stages.
Head = Literal["openpose", "openpose_separable", "lightweight_openpose"]
HEADS: tuple[str, ...] = get_args(Head)
#: Convolutions of MobileNetV1 (``Conv2d_0`` … ``Conv2d_13``): (filters before the width multiplier, stride).
MOBILENET_V1_LAYERS = (
    (32, 2), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)  # fmt: skip


class BackboneAttributes(Block):
    """``model.backbone_attributes``. TAO's keys (``architecture``, ``mtype``, ``use_bias``, ``nlayers``) and, for
    ``mobilenet_v1`` only, how the MobileNetV1 is cut and laid out (bpnet extension):

    * ``width_multiplier``: the backbone's own width (``null``: ``model.width_multiplier``);
    * ``last_layer``: the last ``Conv2d_n`` kept (0…13);
    * ``strides`` / ``dilations``: one value per kept layer (``Conv2d_0`` … ``Conv2d_last``); ``null`` strides:
      MobileNetV1's own with every stride past output stride 8 set to 1; ``null`` dilations: all 1;
    * ``padding``: ``same`` (TensorFlow's, asymmetric at stride 2) or ``symmetric`` (k // 2 · dilation on each
      side, as PyTorch/Caffe networks pad);
    * ``batch_norm``: convolution → BN → ReLU (for training from scratch) or convolution with a bias → ReLU (batch
      norm folded into the weights, as the shipped real networks are);
    * ``depthwise_bn_relu``: BN (or a bias) and ReLU after each depthwise convolution (MobileNetV1's); ``false``:
      a bare depthwise convolution straight into its pointwise one (tf-pose's ``mobilenet_thin``);
    * ``feature_layers``: the layers whose outputs are concatenated into the features (``null``: the last one);
      layers at stride 4 go through a 2×2 max-pool first.
    """

    architecture: Architecture = "vgg"
    mtype: str = "default"
    use_bias: Bool = False
    nlayers: Int = 19
    width_multiplier: Float | None = Field(None, gt=0.0, le=4.0)
    last_layer: Int = Field(11, ge=0, le=len(MOBILENET_V1_LAYERS) - 1)
    strides: list[Literal[1, 2]] | None = None
    dilations: list[PosInt] | None = None
    padding: Literal["same", "symmetric"] = "same"
    batch_norm: Bool = True
    depthwise_bn_relu: Bool = True
    feature_layers: list[Int] | None = None

    @model_validator(mode="after")
    def _vgg19(self) -> BackboneAttributes:
        if self.architecture == "vgg" and self.nlayers != 19:
            raise SpecValueError("nlayers", f"must be 19 for architecture 'vgg' (got {self.nlayers})")
        n = self.last_layer + 1
        for key in ("strides", "dilations"):
            values = getattr(self, key)
            if values is not None and len(values) != n:
                raise SpecValueError(key, f"must have one value per layer Conv2d_0..Conv2d_{self.last_layer} ({n}) "
                                     f"(got {len(values)})", ("last_layer",))  # fmt: skip
        if self.architecture == "mobilenet_v1":
            stride = 1
            for i, s in enumerate(self.layer_strides()):
                stride *= s
                if stride > 8:
                    raise SpecValueError("strides", f"take the output stride past 8 at Conv2d_{i} (bpnet predicts "
                                         "at stride 8)")  # fmt: skip
            if stride != 8:
                raise SpecValueError("strides", f"give output stride {stride}; bpnet predicts at stride 8")
            for i in self.feature_layers or []:
                if not 0 <= i <= self.last_layer:
                    raise SpecValueError("feature_layers", f"must name layers 0..{self.last_layer} (got {i})",
                                         ("last_layer",))  # fmt: skip
                if self.layer_stride(i) < 4:
                    raise SpecValueError("feature_layers", f"Conv2d_{i} is at stride {self.layer_stride(i)}; "
                                         "feature layers must be at stride 4 or 8")  # fmt: skip
        return self

    def layer_strides(self) -> list[int]:
        """The stride of each kept MobileNetV1 layer (``strides``, or MobileNetV1's capped at output stride 8)."""
        if self.strides is not None:
            return [int(s) for s in self.strides]
        out, total = [], 1
        for _, s in MOBILENET_V1_LAYERS[: self.last_layer + 1]:
            s = s if total * s <= 8 else 1
            total *= s
            out.append(s)
        return out

    def layer_dilations(self) -> list[int]:
        return [int(d) for d in self.dilations] if self.dilations is not None else [1] * (self.last_layer + 1)

    def layer_stride(self, index: int) -> int:
        """The output stride after ``Conv2d_index``."""
        total = 1
        for s in self.layer_strides()[: index + 1]:
            total *= s
        return total


#: Most stages a BodyPoseNet model may have (the ``model.stages`` bound).
MAX_STAGES = 10


class ModelConfig(Block):
    CLASS_NAMES = ("BpNetLiteModel",)
    backbone_attributes: BackboneAttributes = Field(default_factory=BackboneAttributes)
    stages: Int = Field(6, ge=1, le=MAX_STAGES)
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
    head: Head = "openpose"  # bpnet extension: which stages (see HEADS and bpnet_core.model.stages / lightweight)
    refinement_blocks: Int = Field(5, ge=1, le=10)  # lightweight_openpose: residual blocks per refinement stage
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


class LearningRateSchedule(Block):
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


class OptimizerConfig(Block):
    """``__class_name__`` selects the optimizer (bpnet extension): TAO's ``WeightedMomentumOptimizer`` (SGD with
    momentum and per-layer gradient weights) or ``Adam``; ``momentum``/``use_nesterov`` only apply to the first."""

    CLASS_NAMES = ("WeightedMomentumOptimizer", "Adam", "RelativeAdam")
    class_name: str | None = Field(default="WeightedMomentumOptimizer", alias="__class_name__")
    learning_rate_schedule: LearningRateSchedule = Field(default_factory=LearningRateSchedule)
    grad_weights_dict: dict[str, Float] | None = None
    weight_default_value: Float = Field(1.0, ge=0.0)
    momentum: Float = Field(0.9, ge=0.0, lt=1.0)
    use_nesterov: Bool = False


class FocalLossParams(Block):
    use_focal_loss: Bool = False
    alpha: Float = Field(0.1, ge=0.0)
    beta: Float = Field(0.02, ge=0.0)
    bkg_thresh: Float = Field(0.01, ge=0.0)
    gamma: Float = Field(1.0, ge=0.0)


class LossConfig(Block):
    CLASS_NAMES = ("BpNetLoss",)
    focal_loss_params: FocalLossParams = Field(default_factory=FocalLossParams)
    # bpnet extension: weights of the heatmap and PAF terms (TAO: both 1)
    heatmap_loss_weight: Float = Field(1.0, gt=0.0)
    paf_loss_weight: Float = Field(1.0, gt=0.0)


class DistillationConfig(Block):
    """bpnet extension: supervise the student with a teacher network's maps (knowledge distillation).

    Attributes:
        teacher_model: a bpnet ``.keras`` model whose last-stage heatmaps and PAFs, computed on the same augmented
            batch as the student sees, become (part of) the target. ``null``: no distillation.
        weight: the teacher's share of the target: ``target = weight · teacher + (1 − weight) · label``
            (for the masked L2 loss this equals ``weight · ‖s − teacher‖² + (1 − weight) · ‖s − label‖²`` up to a
            constant). 0 = labels only, 1 = teacher only.
        stages: ``all`` — every student stage is pulled toward the teacher's last stage; ``last`` — only the last
            stage, earlier stages keep the labels; ``matching`` — stage t toward the teacher's stage t (a ``.keras``
            teacher with as many stages: a network distilled from itself, e.g. pruned or fine-tuned, keeps what each
            of its stages did).
        maps: ``both``, ``heatmaps`` or ``pafs``: which branch the teacher supervises.
        from_pruned: when ``teacher_model`` is not set and ``pretrained_weights`` is a model written by
            ``bpnet prune``, distil from the model it was pruned from (recorded in its contract as
            ``provenance.pruned_from``). The retrain specs set it: retraining after pruning distils by default.
        image_folder: label-free distillation: train on the images of this folder (no annotations, no TFRecords;
            augmented like training images) instead of the spec's train records. Needs ``weight: 1``.
    """

    teacher_model: PathStr | None = None
    weight: Float = Field(0.5, ge=0.0, le=1.0)
    stages: Literal["all", "last", "matching"] = "all"
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


class TrainSpec(SpecRoot):
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
    pose_channels(spec.model, pose, spec.source)


def pose_channels(model: ModelConfig, pose, source: str = "model") -> tuple[int, int]:
    """The (heatmap, PAF) output widths of a ``model:`` block, which must be the pose config's (the one check)."""
    where = pose.source or pose.name
    if model.heat_channels != pose.num_heatmap_channels:
        raise BpnetError(
            f"{source}: model.heat_channels is {model.heat_channels} but pose config {where} needs "
            f"{pose.num_heatmap_channels} ({pose.num_joints} joints + background)"
        )
    if model.paf_channels != pose.num_paf_channels:
        raise BpnetError(
            f"{source}: model.paf_channels is {model.paf_channels} but pose config {where} needs "
            f"{pose.num_paf_channels} (2 x {pose.num_limbs} limbs)"
        )
    return pose.num_heatmap_channels, pose.num_paf_channels
