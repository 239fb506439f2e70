"""INT8 calibration data: sampling images (TAO's ``sample_calibration_images.py``), batching them exactly as
inference pre-processes them, the tensor file (``--cal_data_file``) and the TensorRT calibration cache.

Nothing here imports TensorFlow, ONNX Runtime or TensorRT: the batching is a plain-Python iterator
(:class:`CalibrationBatcher`) that ONNX Runtime's ``CalibrationDataReader`` (:class:`OrtCalibrationReader`) and
TensorRT's ``IInt8EntropyCalibrator2`` (:mod:`bpnet_core.export.tensorrt`) both wrap.

Calibration batches are float32 (B, H, W, 3), built by :func:`bpnet_core.preprocess.prepare` from the model's
contract with ``pad_image_input`` at the export size (H, W) (or the resize mode the contract recommends): colour
order, normalisation, filter and padding exactly as ``bpnet inference`` feeds the model.
"""

from __future__ import annotations

import logging
import os
import random
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from bpnet_core import fileio
from bpnet_core.errors import BpnetError
from bpnet_core.fileio import atomic_path, make_dir, read_image, read_json, safe_join
from bpnet_core.meta import bpnet_meta
from bpnet_core.preprocess import prepare
from bpnet_core.skeleton import PoseConfig, default_pose_config_path

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------- images


def list_images(image_dir: str | os.PathLike) -> list[Path]:
    """The image files directly inside ``image_dir``, sorted by name; a missing or image-less folder is an error."""
    return fileio.list_images(
        image_dir, "calibration image directory not found", "no calibration images ({suffixes}) in the directory"
    )


class CalibrationBatcher:
    """Calibration batches of ``batch_size`` images, at most ``batches`` of them, pre-processed like inference.

    The source is a list of image files (decoded lazily, one batch at a time; broken files are skipped and listed
    in :attr:`skipped`) or an array (N, H, W, 3) already pre-processed (a ``--cal_data_file``). A last incomplete
    batch is dropped (TensorRT's calibrator wants full batches). Iterating again starts from the beginning.

    >>> b = CalibrationBatcher(list_images("calib/"), (288, 384), batch_size=4, batches=10)
    >>> for batch in b: ...   # float32 (4, 288, 384, 3)
    """

    def __init__(
        self,
        source: list[str | os.PathLike] | np.ndarray,
        input_hw: tuple[int, int],
        batch_size: int = 1,
        batches: int = 10,
        meta=None,
        data_format: str = "channels_last",
        mode: str = "pad_image_input",
    ):
        self.batch_size = _positive_int(batch_size, "--batch_size")
        self.max_batches = _positive_int(batches, "--batches")
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        if meta is None:  # bpnet's own models: RGB / 256 − 0.5, grey padding (TAO's convention)
            meta = bpnet_meta(PoseConfig.from_json(default_pose_config_path()), 1, ["heatmap_out", "paf_out"])
        self.meta, self.mode, self.data_format = meta, mode, data_format
        self.skipped: list[dict] = []
        if isinstance(source, np.ndarray):
            if source.ndim != 4 or source.shape[3] != 3:
                raise BpnetError(f"calibration data must be (N, H, W, 3), got shape {tuple(source.shape)}")
            if tuple(source.shape[1:3]) != self.input_hw:
                raise BpnetError(
                    f"calibration data holds {source.shape[1]}x{source.shape[2]} (HxW) tensors but the export "
                    f"size is {self.input_hw[0]}x{self.input_hw[1]}: delete the data file or export at its size"
                )
            self.array, self.files = source, None
        else:
            self.array, self.files = None, [Path(p) for p in source]
            if not self.files:
                raise BpnetError("no calibration images given")

    @property
    def num_batches(self) -> int:
        """Batches an iteration yields at most (fewer when images turn out to be broken)."""
        n = len(self.array) if self.array is not None else len(self.files)
        return min(self.max_batches, n // self.batch_size)

    @property
    def batch_shape(self) -> tuple[int, int, int, int]:
        h, w = self.input_hw
        return (self.batch_size, 3, h, w) if self.data_format == "channels_first" else (self.batch_size, h, w, 3)

    def _layout(self, batch: np.ndarray) -> np.ndarray:
        if self.data_format == "channels_first":
            batch = batch.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(batch, np.float32)

    def _images(self) -> Iterator[np.ndarray]:
        self.skipped = []
        for path in self.files:
            try:
                image = read_image(path)
                pre = prepare(image, self.meta, self.input_hw, self.mode)
            except BpnetError as exc:
                log.warning("calibration: skipped %s", exc)
                self.skipped.append({"file": str(path), "reason": str(exc)})
                continue
            yield pre.batch[0]

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.array is not None:
            for i in range(self.num_batches):
                yield self._layout(np.asarray(self.array[i * self.batch_size : (i + 1) * self.batch_size]))
            return
        buf: list[np.ndarray] = []
        done = 0
        for x in self._images():
            buf.append(x)
            if len(buf) == self.batch_size:
                yield self._layout(np.stack(buf))
                buf, done = [], done + 1
                if done >= self.max_batches:
                    return
        if done == 0:
            raise BpnetError(
                f"no usable calibration batch: {len(self.files)} image(s), {len(self.skipped)} unreadable, "
                f"batch size {self.batch_size}"
                + (f" (first problem: {self.skipped[0]['reason']})" if self.skipped else "")
            )
        if done < self.max_batches:
            log.warning("calibration: %d of %d batches (not enough readable images)", done, self.max_batches)


def make_batcher(
    input_hw: tuple[int, int],
    cal_image_dir: str | os.PathLike | None = None,
    cal_data_file: str | os.PathLike | None = None,
    batch_size: int = 1,
    batches: int = 10,
    meta=None,
    data_format: str = "channels_last",
    mode: str = "pad_image_input",
) -> CalibrationBatcher:
    """The calibration batches of an export: from ``cal_data_file`` when it exists, else from ``cal_image_dir``
    (and then the data file, when named, is written for the next export)."""
    data_path = Path(cal_data_file) if cal_data_file else None
    if data_path is not None and data_path.is_file():
        array = load_calibration_data(data_path)
        return CalibrationBatcher(array, input_hw, batch_size, batches, meta, data_format)
    if not cal_image_dir:
        raise BpnetError("INT8 needs calibration data: give --cal_image_dir (or an existing --cal_data_file)")
    batcher = CalibrationBatcher(list_images(cal_image_dir), input_hw, batch_size, batches, meta, mode=mode)
    if data_path is not None:
        save_calibration_data(batcher, data_path)
        array = load_calibration_data(data_path)
        skipped = batcher.skipped
        batcher = CalibrationBatcher(array, input_hw, batch_size, batches, meta, data_format)
        batcher.skipped = skipped
    else:
        batcher.data_format = data_format
    return batcher


# ---------------------------------------------------------------------------------------------------- tensor file


def save_calibration_data(batcher: CalibrationBatcher, path: str | os.PathLike) -> Path:
    """Write the batcher's pre-processed images to ``path`` (``.npy``, float32 (N, H, W, 3)) atomically.

    TAO writes a "tensorfile" of pre-processed batches; bpnet writes a NumPy file with the same role.
    """
    path = Path(path)
    h, w = batcher.input_hw
    layout, batcher.data_format = batcher.data_format, "channels_last"
    try:
        with atomic_path(path) as tmp:
            n_max = batcher.num_batches * batcher.batch_size
            mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n_max, h, w, 3))
            n = 0
            for batch in batcher:
                mm[n : n + len(batch)] = batch
                n += len(batch)
            mm.flush()
            if n < n_max:  # broken images: keep only the rows written
                rows = np.array(mm[:n])
                del mm
                with open(tmp, "wb") as fh:  # a file object: np.save would append ".npy" to a path
                    np.save(fh, rows)
            else:
                del mm
    finally:
        batcher.data_format = layout
    log.info("calibration data (%d images, %dx%d) → %s", n, h, w, path)
    return path


def load_calibration_data(path: str | os.PathLike) -> np.ndarray:
    """A calibration tensor file written by :func:`save_calibration_data` (memory-mapped)."""
    path = Path(path)
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise BpnetError(f"{path}: not a calibration data file (.npy of float32 (N, H, W, 3)): {exc}") from None
    if array.ndim != 4 or array.shape[3] != 3 or array.dtype != np.float32:
        raise BpnetError(f"{path}: not a calibration data file (float32 (N, H, W, 3)); got {array.dtype} {array.shape}")
    return array


# ---------------------------------------------------------------------------------------------------- ORT reader


def ort_calibration_reader(batcher: CalibrationBatcher, input_name: str):
    """An ``onnxruntime.quantization.CalibrationDataReader`` over the batcher (imports ONNX Runtime)."""
    from onnxruntime.quantization import CalibrationDataReader

    class OrtCalibrationReader(CalibrationDataReader):
        """Feeds ``{input_name: batch}`` to ``quantize_static``; ``rewind()`` starts over."""

        def __init__(self):
            self.batches = 0
            self.rewind()

        def get_next(self):
            batch = next(self._it, None)
            if batch is None:
                return None
            self.batches += 1
            return {input_name: batch}

        def rewind(self):
            self._it = iter(batcher)

    return OrtCalibrationReader()


# ---------------------------------------------------------------------------------------------------- TensorRT cache


def calibration_cache_path(
    cal_cache_file: str | os.PathLike | None,
    engine_file: str | os.PathLike | None = None,
    output_file: str | os.PathLike | None = None,
    input_hw: tuple[int, int] | None = None,
) -> Path:
    """Where the TensorRT calibration cache is read and written.

    ``--cal_cache_file`` when given; else beside the engine (or the ONNX output) as ``<stem>.cal.<H>.<W>.bin``
    (TAO names its caches ``calibration.288.384.bin``): a cache holds activation ranges for one model at one size.
    """
    if cal_cache_file:
        return Path(cal_cache_file)
    base = Path(engine_file or output_file or "model")
    size = f".{input_hw[0]}.{input_hw[1]}" if input_hw else ""
    return base.with_name(f"{base.stem}.cal{size}.bin")


_CACHE_LINE = re.compile(r"^(.+):\s*([0-9a-fA-F]{8})\s*$")


def read_calibration_cache(path: str | os.PathLike) -> dict[str, float]:
    """Parse a TensorRT calibration cache (``TRT-<version>-EntropyCalibration2`` then ``name: <hex float32>``)."""
    import struct

    path = Path(path)
    try:
        text = path.read_bytes().decode("ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise BpnetError(f"{path}: not a TensorRT calibration cache ({exc})") from None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or not lines[0].startswith("TRT-") or "Calibration" not in lines[0]:
        raise BpnetError(f"{path}: not a TensorRT calibration cache (no 'TRT-…Calibration…' header)")
    scales = {}
    for ln in lines[1:]:
        m = _CACHE_LINE.match(ln)
        if not m:
            raise BpnetError(f"{path}: not a TensorRT calibration cache (bad line {ln[:60]!r})")
        scales[m.group(1)] = struct.unpack(">f", bytes.fromhex(m.group(2)))[0]
    return scales


def check_calibration_cache(path: str | os.PathLike, tensor_names: set[str], input_name: str = "input_1") -> dict:
    """A cache must belong to this network: its tensors must be tensors of the ONNX graph, the input included.

    TensorRT would silently use the scales of a cache written for another model (wrong ranges, garbage INT8
    output); bpnet refuses it. Returns the parsed scales.
    """
    scales = read_calibration_cache(path)
    names = set(scales)
    known = names & set(tensor_names)
    if input_name not in names or len(known) < 0.5 * len(names):
        raise BpnetError(
            f"{path}: calibration cache of another model ({len(known)} of its {len(names)} tensors are in this "
            "network): delete it or use --force_ptq to recalibrate"
        )
    return scales


# ---------------------------------------------------------------------------------------------------- sampling


def sample_calibration_images(
    annotation_file: str | os.PathLike,
    image_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    num_images: int = 2000,
    min_persons: int = 1,
    randomize: bool = False,
    seed: int = 0,
) -> dict:
    """TAO's ``sample_calibration_images.py``: copy up to ``num_images`` images with at least ``min_persons``
    annotated people (non-crowd, ``num_keypoints`` > 0) from ``image_dir`` to ``output_dir``.

    Images are taken in annotation-file order, or shuffled with ``seed`` when ``randomize``. Files that are missing
    are skipped and reported. Copies are atomic (temporary name, then rename). Returns a summary.
    """
    num_images = _positive_int(num_images, "-n/--num_images")
    if isinstance(min_persons, bool) or not isinstance(min_persons, (int, np.integer)) or min_persons < 0:
        raise BpnetError(f"-pth/--min_persons must be a non-negative integer (got {min_persons!r})")
    data = read_json(annotation_file, "annotation file")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or "annotations" not in data:
        raise BpnetError(f"{annotation_file}: expected a COCO annotation file with 'images' and 'annotations'")
    image_dir, output_dir = Path(image_dir), Path(output_dir)
    if not image_dir.is_dir():
        raise BpnetError(f"{image_dir}: image directory not found")
    persons: dict[int, int] = {}
    for ann in data["annotations"]:
        if not ann.get("iscrowd", 0) and ann.get("num_keypoints", 0) > 0:
            persons[ann["image_id"]] = persons.get(ann["image_id"], 0) + 1
    candidates = [im for im in data["images"] if persons.get(im["id"], 0) >= min_persons]
    if randomize:
        random.Random(seed).shuffle(candidates)
    make_dir(output_dir, "output folder")
    copied, skipped = [], []
    for im in candidates:
        if len(copied) >= num_images:
            break
        src = safe_join(image_dir, im["file_name"])
        if not src.is_file():
            skipped.append({"file": str(src), "reason": "image not found"})
            continue
        dst = output_dir / src.name
        tmp = dst.with_name(f".{dst.name}.tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
        copied.append(dst.name)
    if not copied:
        raise BpnetError(
            f"{annotation_file}: no image has at least {min_persons} annotated person(s)"
            + (f" ({len(skipped)} listed images are missing from {image_dir})" if skipped else "")
        )
    if len(copied) < num_images:
        log.warning("only %d images qualify (asked for %d)", len(copied), num_images)
    return {"images": len(copied), "candidates": len(candidates), "skipped": skipped, "output_dir": str(output_dir),
            "files": copied}  # fmt: skip


def _positive_int(value, flag: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise BpnetError(f"{flag} must be a positive integer (got {value!r})")
    return int(value)
