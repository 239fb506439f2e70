"""Training input: TFRecords → decoded image and mask → augmentation → labels → normalised batches (tf.data).

The per-sample work (decode, :mod:`~bpnet_core.data.augment`, :mod:`~bpnet_core.data.targets`) is NumPy/OpenCV
code in :class:`SampleLoader`, which tests, notebooks and the decoder's tests use directly; :func:`make_dataset`
wraps it in ``tf.data`` (parallel map, prefetch).

Determinism: the sample order of epoch ``e`` is a permutation drawn from ``(seed, e)`` and the augmentation of
sample ``i`` in epoch ``e`` from ``(seed, e, i)``, so results do not depend on thread scheduling, and a training run
resumed at epoch ``e`` sees exactly the data an uninterrupted run would have seen.

Element of the dataset: ``(image, {"heatmaps", "pafs", "mask"})`` with shapes (B, H, W, 3) float32 in the training
contract's colour order and normalisation (:func:`bpnet_core.config.training_contract`: the ``pretrained_weights``
model's contract when it has one, else RGB ``/ image_scale − image_offset`` from the spec), (B, h, w, J + 1),
(B, h, w, 2L) and (B, h, w, 1) (1 = use in the loss).
"""

from __future__ import annotations

import glob
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bpnet_core.config import load_dataset_spec, training_contract
from bpnet_core.data.augment import AugParams, augment
from bpnet_core.data.coco import dataset_to_pose
from bpnet_core.data.convert import read_records
from bpnet_core.data.targets import render_labels, resize_mask
from bpnet_core.errors import BpnetError
from bpnet_core.fileio import list_images, read_image, to_bgr8
from bpnet_core.meta import InputContract
from bpnet_core.skeleton import PoseConfig

log = logging.getLogger(__name__)


@dataclass
class PipelineConfig:
    """What the sample loader needs, collected from a train spec (see :func:`pipeline_config_from_spec`)."""

    input_hw: tuple[int, int]
    stride: int
    heatmap_sigma: float = 7.0
    paf_ortho_dist_thresh: float = 1.0
    aug_mode: str = "person_centric"
    aug_params: AugParams = field(default_factory=AugParams)
    contract: InputContract = field(default_factory=InputContract)  # colour order + normalisation of the input
    dataset_keypoints: list[str] = field(default_factory=list)
    visibility_flags: dict | None = None
    seed: int = 42


def _as_dict(obj):
    if obj is None or isinstance(obj, dict):
        return obj
    if hasattr(obj, "model_dump"):
        return obj.model_dump(by_alias=True)
    return {k: _as_dict(v) if hasattr(v, "__dict__") else v for k, v in vars(obj).items()}


def pipeline_config_from_spec(spec, dataset_spec=None, contract: InputContract | None = None) -> PipelineConfig:
    """Build a :class:`PipelineConfig` from a loaded train spec (and its dataset spec, loaded if not given); the input
    follows ``contract`` (default: the spec's :func:`~bpnet_core.config.training_contract`)."""
    dl = spec.dataloader
    if dataset_spec is None:
        dataset_spec = load_dataset_spec(dl.dataset_config.dataset_specs.coco)  # absolute since the spec loaded
    cat = dataset_spec.categories[0]
    dims = dl.image_config.image_dims
    lp = dl.label_processor_config
    return PipelineConfig(
        input_hw=(int(dims.height), int(dims.width)),
        stride=int(spec.stride),
        heatmap_sigma=float(lp.heatmap_gaussian_sigma),
        paf_ortho_dist_thresh=float(lp.paf_ortho_dist_thresh),
        aug_mode=str(dl.augmentation_config.spatial_augmentation_mode),
        aug_params=AugParams.from_spec(dl.augmentation_config.spatial_aug_params),
        contract=contract if contract is not None else training_contract(spec),
        dataset_keypoints=list(cat.keypoints),
        visibility_flags=_as_dict(dataset_spec.visibility_flags),
        seed=int(spec.random_seed),
    )


def record_files(folder: str | Path, names: list[str]) -> list[Path]:
    """Resolve TAO record names (``train-fold-000-of-001``) to files, expanding ``-shard-*`` files when sharded and
    a bare output prefix (``train``) to all of its folds."""
    files: list[Path] = []
    for name in names:
        path = Path(folder) / name if folder else Path(name)
        if path.is_file():
            files.append(path)
            continue
        shards = sorted(Path(p) for p in glob.glob(str(path) + "-shard-*") if not Path(p).name.startswith("."))
        if not shards:  # a bare prefix (``train``): every fold and shard written for it
            shards = sorted(Path(p) for p in glob.glob(str(path) + "-fold-*") if not Path(p).name.startswith("."))
        if not shards:
            raise BpnetError(f"{path}: TFRecord file not found (run bpnet dataset_convert first)")
        files.extend(shards)
    return files


class SampleLoader:
    """Turns record ``i`` of ``records`` into one training sample (NumPy)."""

    def __init__(self, records: list[dict], pose: PoseConfig, cfg: PipelineConfig, augment: bool = True):
        if not records:
            raise BpnetError("no training records (empty dataset)")
        self.records, self.pose, self.cfg, self.augment = records, pose, cfg, augment
        self.grid = (cfg.input_hw[0] // cfg.stride, cfg.input_hw[1] // cfg.stride)

    def __len__(self) -> int:
        return len(self.records)

    def rng(self, index: int, epoch: int) -> np.random.Generator:
        return np.random.default_rng([int(self.cfg.seed), int(epoch), int(index)])

    def raw(self, index: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """Original image (uint8 BGR), valid-mask (uint8 or None) and pose keypoints (P, J, 3) of record ``index``."""
        import cv2

        rec = self.records[index]
        if rec.get("image_raw"):
            img = cv2.imdecode(np.frombuffer(rec["image_raw"], np.uint8), cv2.IMREAD_UNCHANGED)
            if img is None:
                raise BpnetError(f"record {index} (image id {rec['image_id']}): embedded image cannot be decoded")
            image = to_bgr8(img)
        else:
            image = read_image(rec["image_path"])
        mask = None
        if rec.get("mask_path"):
            mask = cv2.imread(rec["mask_path"], cv2.IMREAD_GRAYSCALE)
            if mask is None:
                raise BpnetError(f"{rec['mask_path']}: mask cannot be read")
        joints = rec["joints"]
        kp = (
            dataset_to_pose(joints, self.cfg.dataset_keypoints, self.pose, self.cfg.visibility_flags)
            if len(joints)
            else np.zeros((0, self.pose.num_joints, 3), np.float32)
        )
        return image, mask, kp

    def sample(self, index: int, epoch: int = 0) -> dict:
        """One sample: ``image`` (H, W, 3) float32, ``heatmaps``, ``pafs``, ``mask`` (h, w, 1), ``keypoints``,
        ``image_uint8`` (the augmented BGR image, for pictures)."""
        rec = self.records[index]
        image, mask, kp = self.raw(index)
        idx = int(rec.get("person_idx", -1))
        center = tuple(rec["centers"][idx]) if idx >= 0 and len(rec["centers"]) > idx else None
        height = float(rec["scales"][idx]) if idx >= 0 and len(rec["scales"]) > idx else None
        params = self.cfg.aug_params if self.augment else AugParams.identity()
        img, msk, kp_t, _ = augment(image, mask, kp, self.pose, self.cfg.input_hw, self.rng(index, epoch), params,
                                    self.cfg.aug_mode, center, height)  # fmt: skip
        heat, paf = render_labels(kp_t, self.pose, self.cfg.input_hw, self.cfg.stride, self.cfg.heatmap_sigma,
                                  self.cfg.paf_ortho_dist_thresh)  # fmt: skip
        return {
            "image": self.cfg.contract.normalize(img),  # the same function inference and calibration use
            "heatmaps": heat,
            "pafs": paf,
            "mask": resize_mask(msk, self.grid)[:, :, None],
            "keypoints": kp_t,
            "image_uint8": img,
        }

    def epoch_order(self, epoch: int, shuffle: bool = True) -> np.ndarray:
        if not shuffle:
            return np.arange(len(self.records))
        return np.random.default_rng([int(self.cfg.seed), int(epoch), 7919]).permutation(len(self.records))


def make_dataset(
    loader: SampleLoader,
    batch_size: int,
    epoch: int = 0,
    shuffle: bool = True,
    drop_remainder: bool = True,
    num_parallel_calls: int | None = None,
):
    """One epoch of ``loader`` as a batched, prefetched ``tf.data.Dataset``."""
    import tensorflow as tf

    order = loader.epoch_order(epoch, shuffle)
    h, w = loader.cfg.input_hw
    gh, gw = loader.grid
    nh, npf = loader.pose.num_heatmap_channels, loader.pose.num_paf_channels

    def _load(i):
        s = loader.sample(int(i), epoch)
        return s["image"], s["heatmaps"], s["pafs"], s["mask"]

    def _map(i):
        img, heat, paf, mask = tf.numpy_function(_load, [i], [tf.float32] * 4, stateful=False)
        img.set_shape((h, w, 3))
        heat.set_shape((gh, gw, nh))
        paf.set_shape((gh, gw, npf))
        mask.set_shape((gh, gw, 1))
        return img, {"heatmaps": heat, "pafs": paf, "mask": mask}

    ds = tf.data.Dataset.from_tensor_slices(order.astype(np.int64))
    # Fixed parallelism and prefetch, autotuning off: with tf.data's autotuner an epoch's iterator sometimes ends only
    # when the autotuner's backed-off timer fires (10 ms x 2^k after the epoch started), which made 1 epoch in 3 of
    # the demo training ~45 % longer (e.g. 40.96 s instead of 28 s) on 2 CPU cores.
    parallel = int(num_parallel_calls or max(1, os.cpu_count() or 1))
    ds = ds.map(_map, num_parallel_calls=parallel, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(2)
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)


def loader_from_spec(spec, pose: PoseConfig, split: str = "train", augment: bool | None = None,
                     contract: InputContract | None = None) -> SampleLoader:  # fmt: skip
    """A :class:`SampleLoader` over the train (or val) records named in a train spec, its images in ``contract``'s
    colour order and normalisation (default: the spec's :func:`~bpnet_core.config.training_contract`)."""
    dc = spec.dataloader.dataset_config
    folder, names = (
        (dc.train_records_folder_path, dc.train_records_path) if split == "train"
        else (dc.val_records_folder_path, dc.val_records_path)
    )  # fmt: skip
    records = read_records(record_files(folder, list(names)))
    augment = (split == "train") if augment is None else augment
    return SampleLoader(records, pose, pipeline_config_from_spec(spec, contract=contract), augment=augment)


def image_folder_loader(spec, pose: PoseConfig, folder: str | Path, contract: InputContract | None = None
                        ) -> SampleLoader:  # fmt: skip
    """A :class:`SampleLoader` over the images of ``folder`` without annotations (label-free distillation): each
    image is augmented like a training image; its labels are empty maps (no person) and its mask is all ones, so
    only a teacher's maps can supervise it (``distillation.weight: 1``). Images follow ``contract`` (default: the
    spec's :func:`~bpnet_core.config.training_contract`)."""
    from types import SimpleNamespace

    paths = list_images(folder, "image folder not found", "no images ({suffixes}) for label-free distillation")
    readable, bad = [], []
    for p in paths:  # one unreadable photo must not stop a long run at its first epoch; none readable is an error
        try:
            read_image(p)
            readable.append(p)
        except BpnetError as exc:
            bad.append(str(exc))
    if not readable:
        raise BpnetError(f"{folder}: no readable image for label-free distillation ({bad[0]})")
    if bad:
        log.warning("%s: %d unreadable image(s) skipped, e.g. %s", folder, len(bad), bad[0])
    paths = readable
    empty = np.zeros(0, np.float32)
    records = [{"image_id": i, "image_path": str(p), "mask_path": "", "joints": np.zeros((0, 0, 3), np.float32),
                "scales": empty, "centers": empty.reshape(0, 2), "person_idx": -1}
               for i, p in enumerate(paths)]  # fmt: skip
    no_dataset = SimpleNamespace(categories=[SimpleNamespace(keypoints=[])], visibility_flags=None)  # no annotations
    cfg = pipeline_config_from_spec(spec, no_dataset, contract)
    if cfg.aug_mode == "person_centric":  # no person to centre on: the whole image, as the other modes treat it
        cfg.aug_mode = "standard"
    return SampleLoader(records, pose, cfg, augment=True)


def pipeline_throughput(loader: SampleLoader, batch_size: int = 8, batches: int = 10, epoch: int = 0,
                        warmup: int = 2) -> dict:  # fmt: skip
    """Measure the tf.data pipeline: images per second over ``batches`` batches after ``warmup`` batches."""
    import time

    ds = make_dataset(loader, batch_size, epoch=epoch)
    it = iter(ds.repeat())
    for _ in range(warmup):
        next(it)
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    dt = time.perf_counter() - t0
    return {"images_per_second": batches * batch_size / dt, "batch_size": batch_size, "batches": batches,
            "seconds": dt, "input_hw": list(loader.cfg.input_hw)}  # fmt: skip
