"""Building an explorer from files: :func:`build_explorer` (notebook 06's explorer, from the tutorial's work folder),
an image folder's list, and a rendered-maps runner over several annotation files."""

from __future__ import annotations

from pathlib import Path

from bpnet_core.config import load_dataset_spec, load_infer_spec
from bpnet_core.errors import BpnetError
from bpnet_core.fileio import list_images
from bpnet_core.paths import PROJECT_ROOT
from bpnet_core.runners import RenderedMapsSource, load_runner
from bpnet_core.skeleton import PoseConfig
from bpnet_core.tutorial import dataset_spec_for, stage_dir, trained_model_path
from bpnet_core.viz.explorer.app import Explorer


def image_list(directory: str | Path, limit: int | None = None) -> list[Path]:
    """The image files of ``directory`` (sorted; at most ``limit``)."""
    files = list_images(directory, empty=None)
    return files[:limit] if limit else files


def rendered_runner(sources: list[tuple[str | Path, str | Path]], pose: PoseConfig, stride: int = 8):
    """One :class:`~bpnet_core.runners.RenderedMapsSource` covering several ``(annotation_file, images_dir)`` pairs
    (images of none of them get empty maps: no people)."""
    if not sources:
        raise BpnetError("rendered_runner needs at least one (annotation_file, images_dir) pair")
    runner = RenderedMapsSource(*sources[0], pose, stride=stride)
    for ann, images_dir in sources[1:]:
        runner.add(ann, images_dir)
    return runner


def build_explorer(
    work_dir: str | Path,
    pose: PoseConfig | str | Path,
    profile: str = "demo",
    infer_spec=None,
    full_dataset_spec: str | Path | None = None,
    model_path: str | Path = "",
    image_sets: list[str] = ("val", "coco_sample"),
    sample_dir: str | Path | None = None,
    max_images: int = 60,
    input_size: int | None = None,
    real_models: dict | None = None,
    **kwargs,
) -> Explorer:
    """The explorer of notebook 06, from the tutorial's files.

    Images: ``"val"`` = the validation split of the profile's dataset (the synthetic ``val2017`` notebook 00 made in
    the demo profile, COCO val2017 in the full one), ``"coco_sample"`` = the 36 real COCO images in ``sample_dir``
    (default ``tests/fixtures/coco_sample``). Models: the trained one (``model_path``, else
    ``WORK_DIR/02_train/bpnet_model.keras`` when it exists) and always ``"rendered maps"``, a stand-in that returns
    label maps rendered from those images' annotations. ``real_models`` (name → model file, e.g.
    :func:`bpnet_core.tutorial.real_networks`) come first in the model list: the explorer starts on a real network.
    Uploads go to ``WORK_DIR/06_explore/uploads``.
    """
    if not isinstance(pose, PoseConfig):
        pose = PoseConfig.from_json(pose)
    if infer_spec is not None and not hasattr(infer_spec, "decode_params"):
        overrides = {"input_shape": [int(input_size), int(input_size)]} if input_size else ()
        infer_spec = load_infer_spec(infer_spec, overrides)
    unknown = sorted(set(image_sets) - {"val", "coco_sample"})
    if unknown or not image_sets:
        raise BpnetError(f"image_sets must name 'val' and/or 'coco_sample' (got {list(image_sets)})")
    images: dict[str, Path] = {}
    sources = []
    for image_set in dict.fromkeys(image_sets):  # in the order given: the first image set holds the start image
        if image_set == "val":
            ds = load_dataset_spec(dataset_spec_for(work_dir, profile, full_dataset_spec or ""))
            images_dir, _, ann = ds.split("test")
            images.update({f"val/{p.name}": p for p in image_list(images_dir, max_images)})
            sources.append((ann, images_dir))
        else:
            sample = Path(sample_dir) if sample_dir else PROJECT_ROOT / "tests" / "fixtures" / "coco_sample"
            images.update({f"coco_sample/{p.name}": p for p in image_list(sample, max_images)})
            sources.append((sample / "person_keypoints_val2017_sample.json", sample))
    runners = {name: load_runner(p) for name, p in (real_models or {}).items()}  # real networks first: the default
    path = Path(model_path) if model_path else trained_model_path(work_dir)
    if path is not None:
        runners["trained model"] = load_runner(path)
    runners["rendered maps"] = rendered_runner(sources, pose)
    upload_dir = stage_dir(work_dir, "06_explore") / "uploads"
    return Explorer(runners, images, pose, infer_spec=infer_spec, upload_dir=upload_dir, **kwargs)
