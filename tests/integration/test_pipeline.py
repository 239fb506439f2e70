"""The training input pipeline on records converted from the real COCO sample."""

from pathlib import Path

import numpy as np
import pytest

from bpnet_core.config import load_dataset_spec, load_train_spec
from bpnet_core.data.convert import convert_dataset
from bpnet_core.data.pipeline import loader_from_spec, make_dataset, record_files

ROOT = Path(__file__).resolve().parents[2]
from tests.integration.test_convert import make_dataset as make_coco  # noqa: E402


@pytest.fixture(scope="module")
def spec_and_loader(tmp_path_factory, pose):
    tmp = tmp_path_factory.mktemp("pipe")
    ds_path = make_coco(tmp, image_ids={139, 34417, 183709, 217285, 196141, 197388, 350679})
    out = tmp / "records"
    out.mkdir()
    convert_dataset(load_dataset_spec(ds_path), out / "train", generate_masks=True, progress=False)
    spec = load_train_spec(ROOT / "specs" / "bpnet_train_m1_demo.yaml", {
        "dataloader.dataset_config.train_records_folder_path": str(out),
        "dataloader.dataset_config.train_records_path": ["train-fold-000-of-001"],
        "dataloader.dataset_config.dataset_specs.coco": str(ds_path),
    })  # fmt: skip
    return spec, loader_from_spec(spec, pose, "train")


def test_sample_shapes_and_value_ranges(spec_and_loader, pose):
    spec, loader = spec_and_loader
    s = loader.sample(0, epoch=0)
    h, w = spec.dataloader.image_config.image_dims.height, spec.dataloader.image_config.image_dims.width
    g = (h // spec.stride, w // spec.stride)
    assert s["image"].shape == (h, w, 3) and s["image"].dtype == np.float32
    assert s["image"].min() >= -0.51 and s["image"].max() <= 0.5  # rgb/256 - 0.5
    assert s["heatmaps"].shape == g + (pose.num_heatmap_channels,) and s["pafs"].shape == g + (pose.num_paf_channels,)
    assert s["mask"].shape == g + (1,) and s["mask"].min() >= 0 and s["mask"].max() <= 1
    assert s["heatmaps"][:, :, :-1].max() > 0.5  # the centre person is in the crop


def test_person_centric_crop_centres_and_scales_the_main_person(spec_and_loader):
    from bpnet_core.data.augment import AugParams, sample_transform

    spec, loader = spec_and_loader
    h = spec.dataloader.image_config.image_dims.height
    target = spec.dataloader.augmentation_config.spatial_aug_params.target_person_scale
    for rec in loader.records:
        centre, height = rec["centers"][0], float(rec["scales"][0])
        m, flipped = sample_transform(np.random.default_rng(0), AugParams.identity(), "person_centric",
                                      (rec["height"], rec["width"]), (h, h), tuple(centre), height)  # fmt: skip
        mapped = m @ np.array([centre[0], centre[1], 1.0])
        np.testing.assert_allclose(mapped, [(h - 1) / 2, (h - 1) / 2], atol=1e-6)
        assert m[1, 1] * height == pytest.approx(target * h) and not flipped


def test_deterministic_per_epoch_and_index(spec_and_loader):
    _, loader = spec_and_loader
    a, b, c = loader.sample(2, epoch=1), loader.sample(2, epoch=1), loader.sample(2, epoch=2)
    np.testing.assert_array_equal(a["image"], b["image"])
    assert not np.array_equal(a["image"], c["image"])
    assert list(loader.epoch_order(3)) == list(loader.epoch_order(3)) and sorted(loader.epoch_order(3)) == list(
        range(len(loader))
    )
    assert list(loader.epoch_order(3)) != list(loader.epoch_order(4))


def test_tf_dataset_matches_numpy_loader(spec_and_loader):
    _, loader = spec_and_loader
    ds = make_dataset(loader, batch_size=4, epoch=5)
    images, labels = next(iter(ds))
    assert images.shape[0] == 4 and labels["heatmaps"].shape[0] == 4 and labels["mask"].shape[-1] == 1
    first = loader.epoch_order(5)[0]
    np.testing.assert_allclose(images[0].numpy(), loader.sample(int(first), 5)["image"])
    np.testing.assert_allclose(labels["pafs"][0].numpy(), loader.sample(int(first), 5)["pafs"])
    n = sum(int(b[0].shape[0]) for b in make_dataset(loader, batch_size=4, epoch=0))
    assert n == (len(loader) // 4) * 4  # drop_remainder


def test_masks_reach_the_labels(spec_and_loader):
    _, loader = spec_and_loader
    masked = [i for i, r in enumerate(loader.records) if r["mask_path"]]
    assert masked, "the sample has crowd / unlabelled people, so some records carry masks"
    assert min(loader.sample(i, 0)["mask"].min() for i in masked) < 0.5


def test_missing_records_error(tmp_path):
    from bpnet_core.errors import BpnetError

    with pytest.raises(BpnetError, match="run bpnet dataset_convert first"):
        record_files(tmp_path, ["train-fold-000-of-001"])
    (tmp_path / "train-fold-000-of-002").write_bytes(b"")
    (tmp_path / "train-fold-001-of-002").write_bytes(b"")
    assert [p.name for p in record_files(tmp_path, ["train"])] == ["train-fold-000-of-002", "train-fold-001-of-002"]
