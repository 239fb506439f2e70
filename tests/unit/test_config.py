"""Spec schemas and loaders: shipped specs load, strict keys, overrides, validation errors, dump round-trip."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from bpnet_core.config import (
    DatasetSpec,
    InferSpec,
    TrainSpec,
    apply_overrides,
    dump_spec,
    load_dataset_spec,
    load_infer_spec,
    load_train_spec,
    resolve_path,
    validate_against_pose,
)
from bpnet_core.decode.params import DecodeParams
from bpnet_core.errors import BpnetError
from bpnet_core.paths import PROJECT_ROOT
from bpnet_core.skeleton import PoseConfig

SPECS = PROJECT_ROOT / "specs"
TRAIN_SPECS = sorted(SPECS.glob("bpnet_*.yaml"))
INFER_SPECS = sorted(SPECS.glob("infer_spec*.yaml"))
DATASET_SPECS = sorted((PROJECT_ROOT / "data_pose_config").glob("*.json"))
TAO_TRAIN = SPECS / "bpnet_train_m1_coco.yaml"
DEMO_TRAIN = SPECS / "bpnet_train_m1_demo.yaml"


def one_line_error(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    assert "Traceback" not in msg and "pydantic" not in msg.lower(), msg
    return msg


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def train_error(tmp_path: Path, text: str, overrides=()) -> str:
    path = write(tmp_path, text)
    with pytest.raises(BpnetError) as excinfo:
        load_train_spec(path, overrides)
    return one_line_error(excinfo)


# ------------------------------------------------------------------------------------------------ shipped specs


def test_all_expected_spec_files_are_shipped():
    names = {p.name for p in SPECS.glob("*.yaml")}
    assert {
        "bpnet_train_m1_coco.yaml",
        "bpnet_train_m1_demo.yaml",
        "bpnet_retrain_m1_coco.yaml",
        "infer_spec.yaml",
        "infer_spec_refine.yaml",
        "infer_spec_strict.yaml",
        "infer_spec_demo.yaml",
    } <= names


@pytest.mark.parametrize("path", TRAIN_SPECS, ids=lambda p: p.name)
def test_shipped_train_specs_load(path):
    spec = load_train_spec(path)
    assert isinstance(spec, TrainSpec)
    assert spec.stride == 8
    assert spec.model.heat_channels == 19 and spec.model.paf_channels == 38


@pytest.mark.parametrize("path", INFER_SPECS, ids=lambda p: p.name)
def test_shipped_infer_specs_load(path):
    spec = load_infer_spec(path)
    assert isinstance(spec, InferSpec)
    assert isinstance(spec.decode_params(), DecodeParams)


@pytest.mark.parametrize("path", DATASET_SPECS, ids=lambda p: p.name)
def test_shipped_dataset_specs_load(path):
    spec = load_dataset_spec(path)
    assert isinstance(spec, DatasetSpec)
    assert spec.categories[0].num_joints == 17


def test_tao_train_spec_values_and_attribute_access():
    spec = load_train_spec(TAO_TRAIN)
    assert spec.class_name == "BpNetTrainer"
    assert spec.model.stages == 3
    assert spec.num_epoch == 20 and spec.checkpoint_n_epoch == 5
    assert spec.dataloader.batch_size == 10
    assert spec.dataloader.pose_config.target_shape == [32, 32]
    assert spec.dataloader.image_config.image_dims.height == 256
    assert spec.dataloader.augmentation_config.spatial_aug_params.flip_lr_prob == 0.5
    assert spec.dataloader.augmentation_config.spatial_aug_params.rotate_deg_min == -40.0
    assert spec.dataloader.label_processor_config.heatmap_gaussian_sigma == 7.0
    assert spec.model.kernel_regularization_factor == pytest.approx(5e-4)
    assert spec.optimizer.class_name == "WeightedMomentumOptimizer"
    assert spec.optimizer.learning_rate_schedule.base_learning_rate == pytest.approx(2e-5)
    assert spec.optimizer.learning_rate_schedule.min_learning_rate == pytest.approx(8e-8)
    assert spec.loss.focal_loss_params.use_focal_loss is False
    # TAO's container paths stay as they are: nothing is checked at load time
    tao = "/workspace/tao-experiments/bpnet"
    assert spec.pretrained_weights == f"{tao}/pretrained_model/bodyposenet_vtrainable_v1.0/model.tlt"
    coco_spec = "/workspace/examples/bpnet/data_pose_config/coco_spec.json"
    assert spec.dataloader.dataset_config.dataset_specs.coco == coco_spec


def test_retrain_spec_loads_pruned_graph():
    spec = load_train_spec(SPECS / "bpnet_retrain_m1_coco.yaml")
    assert spec.load_graph is True and spec.num_epoch == 50
    assert spec.pretrained_weights.endswith(".hdf5") and "pruned" in spec.pretrained_weights


def test_demo_train_spec_is_small_and_resolves_repo_paths():
    spec = load_train_spec(DEMO_TRAIN)
    assert spec.model.width_multiplier == 0.25 and spec.model.stages == 2
    assert spec.dataloader.image_config.image_dims.height == 128 == spec.dataloader.image_config.image_dims.width
    assert spec.dataloader.pose_config.target_shape == [16, 16] and spec.stride == 8
    assert spec.dataloader.batch_size == 4 and spec.num_epoch == 11 and spec.checkpoint_n_epoch == 1
    assert spec.model.stageT_kernel_sizes == [3] * 5  # 3x3 refinement convs: faster to train from scratch (README)
    assert spec.optimizer.class_name == "Adam"
    assert spec.optimizer.learning_rate_schedule.base_learning_rate == pytest.approx(2.5e-3)
    assert spec.loss.heatmap_loss_weight == 3.0 and spec.loss.paf_loss_weight == 1.0
    assert spec.model.kernel_initializer == "xavier"
    assert spec.dataloader.label_processor_config.heatmap_gaussian_sigma == 7.0
    assert spec.dataloader.augmentation_config.spatial_augmentation_mode == "standard_with_fixed_aspect_ratio"
    pose_file = Path(spec.dataloader.pose_config.pose_config_path)
    assert pose_file == PROJECT_ROOT / "model_pose_config" / "bpnet_18joints.json" and pose_file.is_file()
    assert Path(spec.inference_spec) == SPECS / "infer_spec_demo.yaml"
    assert Path(spec.dataloader.dataset_config.root_data_path) == PROJECT_ROOT / "runs" / "data" / "synthetic"
    validate_against_pose(spec, PoseConfig.from_json(pose_file))


def test_infer_specs_match_tao_table():
    base = load_infer_spec(SPECS / "infer_spec.yaml")
    refine = load_infer_spec(SPECS / "infer_spec_refine.yaml")
    strict = load_infer_spec(SPECS / "infer_spec_strict.yaml")
    demo = load_infer_spec(SPECS / "infer_spec_demo.yaml")
    assert base.input_shape == [368, 368] and base.keep_aspect_ratio_mode == "adjust_network_input"
    assert base.multi_scale_inference is False and refine.multi_scale_inference is True
    assert strict.input_shape == [288, 384] and strict.keep_aspect_ratio_mode == "pad_image_input"
    for spec in (base, refine, strict, demo):
        assert spec.output_stage_to_use is None
        assert spec.output_upsampling_factor == [8, 8]
        assert spec.heatmap_threshold == 0.1 and spec.paf_threshold == 0.05
        assert spec.scales == [0.5, 1.0, 1.5, 2.0]
    assert demo.input_shape == [128, 128]
    # the demo infer spec names the demo train spec, which loads
    assert load_train_spec(demo.train_spec).model.stages == 2


# ------------------------------------------------------------------------------------------------ TAO-style files


TAO_STYLE = """\
    __class_name__: BpNetTrainer
    checkpoint_dir: /workspace/tao-experiments/bpnet/models/exp_m1_unpruned
    checkpoint_n_epoch: 10
    num_epoch: 120
    pretrained_weights: /workspace/models/vgg_19.hdf5
    load_graph: False
    dataloader:
      __class_name__: BpNetDataloader
      pose_config:
        __class_name__: BpNetPoseConfig
        target_shape: [32, 32]
        pose_config_path: /workspace/examples/bpnet/model_pose_config/bpnet_18joints.json
      dataset_config:
        root_data_path: /workspace/tao-experiments/bpnet/data/
        train_records_path: [pc1-train-fold-000-of-001]
        dataset_specs:
          coco: /workspace/examples/bpnet/data_pose_config/coco_spec.json
      augmentation_config:
        __class_name__: AugmentationConfig
        spatial_augmentation_mode: person_centric
        spatial_aug_params:
          flip_lr_prob: 0.5
          rotate_deg_max: 40.0
          translate_max_x: 40.0
        identity_spatial_aug_params:
          null
    model:
      __class_name__: BpNetLiteModel
      backbone_attributes:
        architecture: vgg
        mtype: default
        use_bias: False
      stages: 2
      kernel_regularization_factor: 5e-4
    optimizer:
      __class_name__: WeightedMomentumOptimizer
      learning_rate_schedule:
        __class_name__: SoftstartAnnealingLearningRateSchedule
        base_learning_rate: 12.e-5
        min_learning_rate: 8.e-08
        last_step: null
    loss:
      __class_name__: BpNetLoss
      focal_loss_params:
        use_focal_loss: False
        gamma: 1
"""


def test_tao_style_file_with_workspace_paths_and_class_names_loads_unchanged(tmp_path):
    spec = load_train_spec(write(tmp_path, TAO_STYLE))
    assert spec.checkpoint_dir == "/workspace/tao-experiments/bpnet/models/exp_m1_unpruned"
    assert spec.pretrained_weights == "/workspace/models/vgg_19.hdf5"
    assert spec.dataloader.dataset_config.root_data_path.startswith("/workspace/tao-experiments/bpnet/data")
    assert spec.dataloader.class_name == "BpNetDataloader" and spec.model.class_name == "BpNetLiteModel"
    assert spec.model.stages == 2 and spec.num_epoch == 120
    # YAML 1.1 reads 5e-4 as a string and 12.e-5 as a float: both are numbers here
    assert spec.model.kernel_regularization_factor == pytest.approx(5e-4)
    assert spec.optimizer.learning_rate_schedule.base_learning_rate == pytest.approx(12e-5)
    # omitted fields take TAO's code defaults; a null minimum is minus the maximum
    sap = spec.dataloader.augmentation_config.spatial_aug_params
    assert sap.rotate_deg_min == -40.0 and sap.translate_min_x == -40.0 and sap.translate_min_y == -0.0
    assert spec.dataloader.augmentation_config.identity_spatial_aug_params is None
    assert spec.max_ckpt_to_keep == 5 and spec.validation_every_n_epoch == 20
    assert spec.model.stage1_kernel_sizes == [3, 3, 3] and spec.model.stageT_kernel_sizes == [7] * 5


def test_minimal_spec_takes_code_defaults(tmp_path):
    spec = load_train_spec(write(tmp_path, "random_seed: 7\n"))
    assert spec.random_seed == 7
    assert spec.model.stages == 6 and spec.num_epoch == 2 and spec.checkpoint_n_epoch == 1
    assert spec.use_stagewise_lr_multipliers is False and spec.final_model_name == "bpnet_model"
    assert spec.model.width_multiplier == 1.0 and spec.model.backbone_attributes.nlayers == 19
    assert spec.optimizer.class_name == "WeightedMomentumOptimizer"
    assert spec.stride == 8


# ------------------------------------------------------------------------------------------------ overrides


def test_overrides_by_string():
    spec = load_train_spec(
        DEMO_TRAIN,
        [
            "model.stages=4",
            "dataloader.batch_size=2",
            "dataloader.augmentation_config.spatial_aug_params.flip_lr_prob=0.25",
            "dataloader.pose_config.target_shape=[8, 8]",
            "dataloader.image_config.image_dims.height=64",
            "dataloader.image_config.image_dims.width=64",
            "model.use_self_attention=true",
            "pretrained_weights=null",
            "optimizer.learning_rate_schedule.base_learning_rate=5e-4",
        ],
    )
    assert spec.model.stages == 4 and spec.dataloader.batch_size == 2
    assert spec.dataloader.augmentation_config.spatial_aug_params.flip_lr_prob == 0.25
    assert spec.dataloader.pose_config.target_shape == [8, 8] and spec.stride == 8
    assert spec.model.use_self_attention is True and spec.pretrained_weights is None
    assert spec.optimizer.learning_rate_schedule.base_learning_rate == pytest.approx(5e-4)


def test_overrides_by_dict_and_list_index():
    spec = load_train_spec(
        DEMO_TRAIN,
        {
            "model.stages": 3,
            "dataloader.batch_size": 1,
            "model.stage1_kernel_sizes[1]": 5,
            "optimizer.__class_name__": "WeightedMomentumOptimizer",
        },
    )
    assert spec.model.stages == 3 and spec.dataloader.batch_size == 1
    assert spec.model.stage1_kernel_sizes == [3, 5, 3]
    assert spec.optimizer.class_name == "WeightedMomentumOptimizer"


def test_override_relative_path_is_relative_to_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = load_train_spec(DEMO_TRAIN, ["checkpoint_dir=out/run1", "dataloader.dataset_config.root_data_path=data"])
    assert Path(spec.checkpoint_dir) == tmp_path / "out" / "run1"
    assert Path(spec.dataloader.dataset_config.root_data_path) == tmp_path / "data"


def test_apply_overrides_on_plain_dicts():
    data = {"a": {"b": 1, "c": {"d": 2}}, "l": [1, 2], "n": None}
    out = apply_overrides(data, ["a.b=3", "x.y.z=[1, 2]", "n.k=true", "l[1]=9", "a.c={e: 5}"])
    assert out == {"a": {"b": 3, "c": {"d": 2, "e": 5}}, "l": [1, 9], "n": {"k": True}, "x": {"y": {"z": [1, 2]}}}
    assert data["a"]["b"] == 1  # input untouched
    assert apply_overrides(data, {"a.b": "text"})["a"]["b"] == "text"  # dict values are used as given
    with pytest.raises(BpnetError) as excinfo:
        apply_overrides(data, ["a.b.c=1"])
    assert "--set" in one_line_error(excinfo)
    with pytest.raises(BpnetError) as excinfo:
        apply_overrides(data, ["no_equals_sign"])
    assert "KEY=VALUE" in one_line_error(excinfo)
    for bad in (["model..stages=1"], [".a=1"], ["=1"]):
        with pytest.raises(BpnetError) as excinfo:
            apply_overrides(data, bad)
        assert "malformed key" in one_line_error(excinfo)


def test_loss_weights_default_to_tao_and_must_be_positive():
    spec = load_train_spec(SPECS / "bpnet_train_m1_coco.yaml")
    assert spec.loss.heatmap_loss_weight == 1.0 and spec.loss.paf_loss_weight == 1.0
    with pytest.raises(BpnetError) as excinfo:
        load_train_spec(DEMO_TRAIN, ["loss.paf_loss_weight=0"])
    assert "loss.paf_loss_weight" in one_line_error(excinfo)


def test_unknown_override_key_names_set_and_closest_key():
    with pytest.raises(BpnetError) as excinfo:
        load_train_spec(DEMO_TRAIN, ["model.stagse=3"])
    msg = one_line_error(excinfo)
    assert msg.startswith("--set: unknown key 'model.stagse'") and "did you mean 'stages'?" in msg


def test_bad_override_value_names_set():
    with pytest.raises(BpnetError) as excinfo:
        load_train_spec(DEMO_TRAIN, ["model.stages=0"])
    assert one_line_error(excinfo) == "--set: model.stages must be >= 1 (got 0)"
    with pytest.raises(BpnetError) as excinfo:  # a cross-field check blames the override that broke it
        load_train_spec(DEMO_TRAIN, ["checkpoint_n_epoch=7"])
    assert one_line_error(excinfo).startswith("--set: num_epoch must be a multiple of checkpoint_n_epoch")


# ------------------------------------------------------------------------------------------------ strict keys, types


def test_unknown_key_gives_file_full_path_and_closest_match(tmp_path):
    msg = train_error(tmp_path, "model:\n  stagse: 3\n")
    assert msg == f"{tmp_path / 'spec.yaml'}: unknown key 'model.stagse' (did you mean 'stages'?)"
    text = "dataloader:\n  augmentation_config:\n    spatial_aug_params:\n      flip_lr_prb: 0.5\n"
    msg = train_error(tmp_path, text)
    assert "unknown key 'dataloader.augmentation_config.spatial_aug_params.flip_lr_prb'" in msg
    assert "did you mean 'flip_lr_prob'?" in msg


def test_unknown_key_without_close_match_lists_valid_keys(tmp_path):
    msg = train_error(tmp_path, "loss:\n  zzz: 1\n")
    assert "unknown key 'loss.zzz'" in msg and "focal_loss_params" in msg


@pytest.mark.parametrize(
    "text, expected",
    [
        ("model:\n  stages: three\n", "model.stages must be an integer (got 'three')"),
        ("model:\n  stages: true\n", "model.stages must be an integer (got True)"),
        ("model:\n  use_bias: 5\n", "model.use_bias must be true or false (got 5)"),
        ("dataloader:\n  batch_size: 2.5\n", "dataloader.batch_size must be an integer (got 2.5)"),
        ("model:\n  kernel_regularization_factor: lots\n", "model.kernel_regularization_factor must be a number"),
        ("model:\n  regularization_type: l3\n", "model.regularization_type must be one of 'l1', 'l2' or 'l1_l2'"),
        ("model: 5\n", "model must be a mapping of keys (got 5)"),
        ("dataloader:\n  pose_config:\n    target_shape: 32\n", "dataloader.pose_config.target_shape must be a list"),
    ],
)
def test_wrong_type(tmp_path, text, expected):
    assert expected in train_error(tmp_path, text)


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "dataloader:\n  image_config:\n    image_dims:\n      height: -256\n",
            "dataloader.image_config.image_dims.height must be > 0 (got -256)",
        ),
        ("dataloader:\n  batch_size: 0\n", "dataloader.batch_size must be >= 1 (got 0)"),
        (
            "dataloader:\n  pose_config:\n    target_shape: [0, 32]\n",
            "dataloader.pose_config.target_shape[0] must be > 0 (got 0)",
        ),
    ],
)
def test_negative_or_zero_size(tmp_path, text, expected):
    assert expected in train_error(tmp_path, text)


def test_image_dims_not_multiple_of_stride(tmp_path):
    msg = train_error(tmp_path, "dataloader:\n  image_config:\n    image_dims: {height: 250, width: 256}\n")
    assert "dataloader.image_config.image_dims.height must be a multiple of" in msg and "(got 250)" in msg
    msg = train_error(tmp_path, "dataloader:\n  image_config:\n    image_dims: {height: 256, width: 512}\n")
    assert "same stride" in msg and "8" in msg and "16" in msg


@pytest.mark.parametrize("stages, expected", [(0, "must be >= 1 (got 0)"), (11, "must be <= 10 (got 11)")])
def test_stages_out_of_range(tmp_path, stages, expected):
    msg = train_error(tmp_path, f"model:\n  stages: {stages}\n")
    assert msg == f"{tmp_path / 'spec.yaml'}: model.stages {expected}"


def test_unknown_class_name_lists_allowed(tmp_path):
    msg = train_error(tmp_path, "model:\n  __class_name__: BpNetModel\n")
    assert "model.__class_name__ must be one of 'BpNetLiteModel' (got 'BpNetModel')" in msg
    msg = train_error(tmp_path, "optimizer:\n  __class_name__: SGD\n")
    assert "'WeightedMomentumOptimizer', 'Adam' or 'RelativeAdam'" in msg
    msg = train_error(tmp_path, "optimizer:\n  learning_rate_schedule:\n    __class_name__: Cosine\n")
    assert "SoftstartAnnealingLearningRateSchedule" in msg and "BpNetExponentialDecayLRSchedule" in msg


def test_class_name_on_unlabelled_block_accepts_its_own_name(tmp_path):
    spec = load_train_spec(write(tmp_path, "dataloader:\n  image_config:\n    __class_name__: ImageConfig\n"))
    assert spec.dataloader.image_config.class_name == "ImageConfig"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("num_epoch: 7\ncheckpoint_n_epoch: 2\n", "num_epoch must be a multiple of checkpoint_n_epoch = 2 (got 7)"),
        ("load_graph: true\n", "load_graph is true but pretrained_weights is not set"),
        ("finetuning_config:\n  is_finetune_exp: true\n", "finetuning_config.checkpoint_path must be set"),
        (
            "dataloader:\n  augmentation_config:\n    spatial_aug_params: {rotate_deg_min: 10, rotate_deg_max: 5}\n",
            "spatial_aug_params.rotate_deg_min must be <= rotate_deg_max (5.0) (got 10.0)",
        ),
        (
            "dataloader:\n  augmentation_config:\n    spatial_aug_params: {flip_lr_prob: 1.5}\n",
            "spatial_aug_params.flip_lr_prob must be <= 1.0 (got 1.5)",
        ),
        (
            "model:\n  backbone_attributes: {architecture: vgg, nlayers: 16}\n",
            "model.backbone_attributes.nlayers must be 19 for architecture 'vgg' (got 16)",
        ),
        (
            "model:\n  backbone_attributes: {architecture: resnet}\n",
            "model.backbone_attributes.architecture must be one of 'vgg', 'mobilenet_v2' or 'mobilenet_v1'",
        ),
        ("model:\n  stageT_kernel_sizes: [7, 6]\n", "model.stageT_kernel_sizes[1] must be odd (got 6)"),
        ("model:\n  width_multiplier: 0\n", "model.width_multiplier must be > 0.0 (got 0)"),
        (
            "optimizer:\n  learning_rate_schedule: {soft_start: 0.6, annealing: 0.5}\n",
            "optimizer.learning_rate_schedule.soft_start must be <= annealing (0.5) (got 0.6)",
        ),
        (
            "optimizer:\n  learning_rate_schedule: {__class_name__: BpNetExponentialDecayLRSchedule}\n",
            "optimizer.learning_rate_schedule.decay_epochs is required",
        ),
        ("final_model_name: a/b\n", "final_model_name must be a plain file name"),
    ],
)
def test_cross_field_and_range_checks(tmp_path, text, expected):
    assert expected in train_error(tmp_path, text)


def test_validate_against_pose():
    pose = PoseConfig.from_json(PROJECT_ROOT / "model_pose_config" / "bpnet_18joints.json")
    spec = load_train_spec(TAO_TRAIN)
    validate_against_pose(spec, pose)
    bad = load_train_spec(TAO_TRAIN, ["model.heat_channels=18"])
    with pytest.raises(BpnetError) as excinfo:
        validate_against_pose(bad, pose)
    msg = one_line_error(excinfo)
    assert "18" in msg and "19" in msg and "bpnet_18joints.json" in msg and "heat_channels" in msg
    bad = load_train_spec(TAO_TRAIN, ["model.paf_channels=36"])
    with pytest.raises(BpnetError) as excinfo:
        validate_against_pose(bad, pose)
    assert "36" in one_line_error(excinfo) and "38" in str(excinfo.value)


# ------------------------------------------------------------------------------------------------ file problems


def test_missing_file(tmp_path):
    with pytest.raises(BpnetError) as excinfo:
        load_train_spec(tmp_path / "nope.yaml")
    assert "nope.yaml: train spec not found" in one_line_error(excinfo)


def test_empty_and_comment_only_files(tmp_path):
    with pytest.raises(BpnetError) as excinfo:
        load_train_spec(write(tmp_path, "", "empty.yaml"))
    assert "empty.yaml: train spec is empty" in one_line_error(excinfo)
    with pytest.raises(BpnetError) as excinfo:
        load_infer_spec(write(tmp_path, "# nothing here\n", "comments.yaml"))
    assert "is empty" in one_line_error(excinfo)


def test_malformed_yaml_reports_line_and_column(tmp_path):
    path = write(tmp_path, "model:\n  stages: [3\n  heat_channels: 19\n", "bad.yaml")
    with pytest.raises(BpnetError) as excinfo:
        load_train_spec(path)
    msg = one_line_error(excinfo)
    assert msg.startswith(f"{path}: malformed YAML at line ") and "column" in msg


def test_top_level_must_be_a_mapping(tmp_path):
    with pytest.raises(BpnetError) as excinfo:
        load_train_spec(write(tmp_path, "- a\n- b\n"))
    assert "must be a mapping" in one_line_error(excinfo)


def test_duplicate_key_is_an_error(tmp_path):
    with pytest.raises(BpnetError) as excinfo:
        load_train_spec(write(tmp_path, "model:\n  stages: 3\nnum_epoch: 4\nmodel:\n  stages: 2\n"))
    assert "duplicate key 'model' at line 4" in one_line_error(excinfo)


def test_malformed_override_value():
    with pytest.raises(BpnetError) as excinfo:
        load_train_spec(DEMO_TRAIN, ["model.stages=[1,"])
    assert one_line_error(excinfo).startswith("--set model.stages: cannot parse value")


# ------------------------------------------------------------------------------------------------ dump round trip


@pytest.mark.parametrize("path", TRAIN_SPECS + INFER_SPECS, ids=lambda p: p.name)
def test_dump_then_load_round_trip(tmp_path, path):
    loader = load_infer_spec if path.name.startswith("infer") else load_train_spec
    spec = loader(path)
    out = dump_spec(spec, tmp_path / "results" / "params.yaml")
    assert out.is_file() and not list(out.parent.glob(".*.tmp"))
    again = loader(out)
    assert again == spec
    assert again.to_dict() == spec.to_dict()


def test_dump_keeps_overrides_and_paths(tmp_path):
    spec = load_train_spec(DEMO_TRAIN, ["model.stages=4"])
    again = load_train_spec(dump_spec(spec, tmp_path / "params.yaml"))
    assert again.model.stages == 4
    assert again.dataloader.pose_config.pose_config_path == spec.dataloader.pose_config.pose_config_path
    assert again.source.endswith("params.yaml") and spec.source.endswith("bpnet_train_m1_demo.yaml")


def test_dump_of_spec_built_in_code(tmp_path):
    spec = TrainSpec.from_dict({"model": {"stages": 2}})
    again = load_train_spec(dump_spec(spec, tmp_path / "p.yaml"))
    assert again.model.stages == 2
    assert Path(again.dataloader.pose_config.pose_config_path) == PROJECT_ROOT / "model_pose_config/bpnet_18joints.json"


def test_dataset_spec_dump_round_trip(tmp_path):
    spec = load_dataset_spec(PROJECT_ROOT / "data_pose_config" / "coco_spec.json")
    assert load_dataset_spec(dump_spec(spec, tmp_path / "ds.yaml")) == spec


# ------------------------------------------------------------------------------------------------ inference spec


def test_decode_params_carry_spec_values(tmp_path):
    default = load_infer_spec(SPECS / "infer_spec.yaml").decode_params()
    assert default == DecodeParams()
    spec = load_infer_spec(
        SPECS / "infer_spec.yaml",
        [
            "heatmap_threshold=0.3",
            "paf_threshold=0.1",
            "output_upsampling_factor=[4, 4]",
            "decoder.nms_window=5",
            "decoder.use_distance_prior=true",
        ],
    )
    params = spec.decode_params()
    assert params.heatmap_threshold == 0.3 and params.paf_threshold == 0.1 and params.upsampling_factor == 4
    assert params.nms_window == 5 and params.use_distance_prior is True
    path = write(tmp_path, "heatmap_threshold: 0.25\ndecoder:\n  min_parts: 3\n", "infer.yaml")
    params = load_infer_spec(path).decode_params()
    assert params.heatmap_threshold == 0.25 and params.min_parts == 3 and params.paf_threshold == 0.05


def test_decoder_block_keys_are_decode_params_fields():
    from bpnet_core.config import DecoderConfig

    names = set(DecoderConfig.model_fields) - {"class_name"}
    assert names == set(DecodeParams.field_names()) - {"heatmap_threshold", "paf_threshold", "upsampling_factor"}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("input_shape: [0, 368]\n", "input_shape[0] must be > 0 (got 0)"),
        ("input_shape: [368]\n", "input_shape must have at least 2 items"),
        ("scales: [1.0, -0.5]\n", "scales[1] must be > 0 (got -0.5)"),
        ("scales: []\n", "scales must have at least 1 items"),
        ("output_upsampling_factor: [0, 0]\n", "output_upsampling_factor[0] must be >= 1 (got 0)"),
        ("output_upsampling_factor: [4, 8]\n", "output_upsampling_factor must use one factor for both axes"),
        ("output_stage_to_use: 0\n", "output_stage_to_use must be >= 1 (got 0)"),
        ("keep_aspect_ratio_mode: squash\n", "keep_aspect_ratio_mode must be one of"),
        ("heatmap_threshold: 1.5\n", "heatmap_threshold must be in [0, 1) (got 1.5)"),
        ("paf_threshold: -2\n", "paf_threshold must be in [-1, 1) (got -2.0)"),
        ("tracking:\n  max_age: -1\n", "tracking.max_age must be an integer >= 0 (got -1)"),
        ("decoder:\n  nms_window: 4\n", "decoder.nms_window must be an odd number >= 1 (got 4)"),
        ("decoder:\n  nms_windw: 5\n", "unknown key 'decoder.nms_windw' (did you mean 'nms_window'?)"),
        ("heatmap_treshold: 0.2\n", "unknown key 'heatmap_treshold' (did you mean 'heatmap_threshold'?)"),
    ],
)
def test_infer_spec_errors(tmp_path, text, expected):
    path = write(tmp_path, text, "infer.yaml")
    with pytest.raises(BpnetError) as excinfo:
        load_infer_spec(path)
    msg = one_line_error(excinfo)
    assert msg.startswith(str(path)) and expected in msg


def test_keep_aspect_ratio_mode_none(tmp_path):
    assert load_infer_spec(write(tmp_path, "keep_aspect_ratio_mode: None\n")).keep_aspect_ratio_mode is None
    assert load_infer_spec(write(tmp_path, "keep_aspect_ratio_mode: null\n")).keep_aspect_ratio_mode is None


# ------------------------------------------------------------------------------------------------ dataset spec


def _dataset_dict(root: str) -> dict:
    data = json.loads((PROJECT_ROOT / "data_pose_config" / "coco_spec.json").read_text())
    data["root_directory_path"] = root
    return data


def test_dataset_split_resolves_relative_root_against_spec_folder(tmp_path):
    folder = tmp_path / "cfg"
    folder.mkdir()
    path = folder / "ds.json"
    path.write_text(json.dumps(_dataset_dict("../data")))
    spec = load_dataset_spec(path)
    assert spec.spec_dir == folder
    images, masks, annotations = spec.split("train")
    assert images == tmp_path / "data" / "train2017"
    assert masks == tmp_path / "data" / "train_mask2017"
    assert annotations == tmp_path / "data" / "annotations" / "person_keypoints_train2017.json"
    test = spec.split("test")
    assert test.images_dir == tmp_path / "data" / "val2017" and test.images_dir.is_absolute()
    assert spec.data_filtering_params.min_acceptable_kpts == 5
    with pytest.raises(BpnetError) as excinfo:
        spec.split("val")
    assert "'train' or 'test'" in one_line_error(excinfo)


def test_dataset_split_absolute_root_and_yaml(tmp_path):
    import yaml

    path = tmp_path / "ds.yaml"
    path.write_text(yaml.safe_dump(_dataset_dict("/workspace/tao-experiments/bpnet/data")))
    spec = load_dataset_spec(path, ["test_data.images_root_dir_path=images/val"])
    assert spec.split("test").images_dir == Path("/workspace/tao-experiments/bpnet/data/images/val")
    assert spec.split("train").images_dir == Path("/workspace/tao-experiments/bpnet/data/train2017")


def test_dataset_spec_built_in_code_resolves_against_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = DatasetSpec.from_dict(_dataset_dict("data"))
    assert spec.split("train").images_dir == tmp_path / "data" / "train2017"


@pytest.mark.parametrize(
    "edit, expected",
    [
        (
            lambda d: d["visibility_flags"]["mapping"].update(visible="seen"),
            "visibility_flags.mapping.visible must be one of",
        ),
        (
            lambda d: d["data_filtering_params"].update(min_acceptable_kpts=-1),
            "data_filtering_params.min_acceptable_kpts must be >= 0 (got -1)",
        ),
        (
            lambda d: d["categories"][0].update(num_joint=17),
            "unknown key 'categories[0].num_joint' (did you mean 'num_joints'?)",
        ),
        (
            lambda d: d["categories"][0].update(num_joints=16),
            "categories[0].num_joints must equal the number of keypoints (17)",
        ),
        (lambda d: d["categories"][0]["skeleton"].__setitem__(0, [1, 18]), "categories[0].skeleton[0] must be 1-based"),
        (lambda d: d.pop("train_data"), "missing required key 'train_data'"),
        (lambda d: d.update(dataset="mpii"), "dataset must be 'coco' (got 'mpii')"),
    ],
)
def test_dataset_spec_errors(tmp_path, edit, expected):
    data = _dataset_dict("data")
    edit(data)
    path = tmp_path / "ds.json"
    path.write_text(json.dumps(data))
    with pytest.raises(BpnetError) as excinfo:
        load_dataset_spec(path)
    msg = one_line_error(excinfo)
    assert msg.startswith(str(path)) and expected in msg


def test_dataset_spec_malformed_json(tmp_path):
    path = tmp_path / "ds.json"
    path.write_text('{"dataset": "coco",\n "root_directory_path": }')
    with pytest.raises(BpnetError) as excinfo:
        load_dataset_spec(path)
    assert "line 2" in one_line_error(excinfo)


# ------------------------------------------------------------------------------------------------ paths


def test_resolve_path_rules(tmp_path):
    spec_file = tmp_path / "cfg" / "x.yaml"
    assert resolve_path(spec_file, None) is None
    assert resolve_path(spec_file, "/abs/file.json") == Path("/abs/file.json")
    assert resolve_path(spec_file, "model_pose_config/bpnet_18joints.json") == (
        PROJECT_ROOT / "model_pose_config" / "bpnet_18joints.json"
    )
    assert resolve_path(spec_file, "specs/infer_spec.yaml") == SPECS / "infer_spec.yaml"
    coco = resolve_path(spec_file, "data_pose_config/coco_spec.json")
    assert coco == PROJECT_ROOT / "data_pose_config" / "coco_spec.json"
    assert resolve_path(spec_file, "weights/model.keras") == tmp_path / "cfg" / "weights" / "model.keras"
    assert resolve_path(spec_file, "../runs/x") == tmp_path / "runs" / "x"
    assert resolve_path(None, "a/b").is_absolute()
    spec = load_infer_spec(SPECS / "infer_spec_demo.yaml")
    assert Path(spec.model_path) == PROJECT_ROOT / "runs" / "demo" / "exp_m1_unpruned" / "bpnet_model.keras"
    assert spec.resolve("x/y") == SPECS / "x" / "y"


def test_deepstream_preset_is_the_apps_post_processing():
    """specs/infer_spec_deepstream.yaml: deepstream-bodypose2d-app's constants and letterbox at 288x384."""
    from bpnet_core.decode.paf_score import required_count

    spec = load_infer_spec(SPECS / "infer_spec_deepstream.yaml")
    p = spec.decode_params()
    assert spec.input_shape == [288, 384] and spec.keep_aspect_ratio_mode == "letterbox"
    assert (p.heatmap_threshold, p.paf_threshold, p.upsampling_factor, p.nms_window) == (0.05, 0.05, 4, 7)
    assert (p.min_parts, p.min_person_score, p.line_integral_samples) == (4, 0.4, 10)
    assert required_count(p) == 8  # threshVectorCnt1: 8 of the 10 samples


def test_override_applies_to_any_loaded_spec(tmp_path):
    from bpnet_core.config import override

    spec = load_infer_spec(write(tmp_path, "heatmap_threshold: 0.2\n", "infer.yaml"))
    changed = override(spec, ["paf_threshold=0.1"])
    assert (changed.paf_threshold, changed.heatmap_threshold, spec.paf_threshold) == (0.1, 0.2, 0.05)
    assert override(spec, []) is spec
    with pytest.raises(BpnetError, match="--set"):
        override(spec, {"decoder.nms_window": 4})


def test_paths_are_absolute_once_a_spec_is_built(tmp_path, monkeypatch):
    """Resolved once, when the spec is built (loaded or from a dict): consumers use the values as they are."""
    monkeypatch.chdir(tmp_path)
    built = TrainSpec.from_dict({})
    assert Path(built.dataloader.dataset_config.dataset_specs.coco) == PROJECT_ROOT / "data_pose_config/coco_spec.json"
    folder = tmp_path / "cfg"
    folder.mkdir()
    text = "dataloader:\n  pose_config:\n    pose_config_path: my_pose.json\n"
    loaded = load_train_spec(write(folder, text, "train.yaml"))
    assert Path(loaded.dataloader.pose_config.pose_config_path) == folder / "my_pose.json"
