"""Fixtures shared by the export and DeepStream tests: a tiny 2-stage model (width 0.25, He initialisation so that
outputs are O(1) and differences mean something), in memory and as a .keras file with its contract."""

import pytest


@pytest.fixture(scope="module")
def keras_model(pose):
    import keras

    from bpnet_core.model import build_model

    keras.utils.set_random_seed(0)
    return build_model({"stages": 2, "width_multiplier": 0.25, "kernel_initializer": "he_normal"}, pose)


@pytest.fixture(scope="module")
def model_file(keras_model, pose, tmp_path_factory):
    from bpnet_core.model import save_bpnet_model

    return save_bpnet_model(keras_model, tmp_path_factory.mktemp("model") / "bpnet_model.keras", pose)
