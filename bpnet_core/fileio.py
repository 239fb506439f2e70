"""Small, safe file helpers shared by every step: atomic writes, safe paths, robust image reading.

* Outputs are written to a temporary file in the destination folder and renamed into place (``os.replace``), so a
  crash never leaves a truncated file under its final name.
* Paths taken from annotation files are resolved under their root and may not escape it (``../``).
* Images are decoded with OpenCV; grey, RGBA, CMYK/16-bit files are converted to 8-bit BGR instead of crashing.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bpnet_core.errors import BpnetError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``, on failure removed. A missing
    folder is created; a place that cannot be written is a one-line error."""
    path = Path(path)
    parent = make_dir(path.parent, "output folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    except OSError as exc:
        raise BpnetError(f"{parent}: cannot write {path.name} there: {exc.strerror}") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


def make_dir(path: str | os.PathLike, what: str = "results directory") -> Path:
    """Create the directory ``path`` (and its parents) if missing; returns it resolved. A file in the way or an
    unwritable place is a one-line error."""
    out = Path(path).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise BpnetError(f"{out}: exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BpnetError(f"{out}: cannot create {what}: {exc.strerror}") from None
    return out


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def save_model_atomic(model, path: str | os.PathLike, members: dict[str, str] | None = None) -> Path:
    """``model.save`` to a temporary ``.keras`` name beside ``path``, add ``members`` (archive name → text, e.g. the
    model contract) to the archive, then ``os.replace`` (never a partial file)."""
    path = Path(path)
    make_dir(path.parent, "output folder")
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.keras")
    try:
        model.save(str(tmp))
        if members:
            with zipfile.ZipFile(tmp, "a") as zf:
                for name, text in members.items():
                    zf.writestr(name, text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json_atomic(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    """Serialise ``obj`` (NumPy scalars/arrays allowed) as JSON to ``path`` atomically."""
    return write_text_atomic(path, json.dumps(obj, indent=indent, default=_json_default) + "\n")


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """Load a JSON file; a missing, empty or malformed file raises a one-line :class:`BpnetError`."""
    path = Path(path)
    if not path.is_file():
        raise BpnetError(f"{path}: {what} not found")
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise BpnetError(f"{path}: cannot read {what}: {exc.strerror}") from None
    if not data.strip():
        raise BpnetError(f"{path}: {what} is empty")
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        line = getattr(exc, "lineno", "?")
        col = getattr(exc, "colno", "?")
        raise BpnetError(f"{path}: malformed {what} at line {line} column {col}: {getattr(exc, 'msg', exc)}") from None


def safe_join(root: str | os.PathLike, relative: str, what: str = "file_name") -> Path:
    """``root`` (resolved) joined with ``relative``, which must stay inside it. The rule is lexical: ``relative``
    must be a relative path that does not leave ``root`` once ``.`` and ``..`` are collapsed as text (``a/../b.jpg``
    is ``b.jpg``; ``../x.jpg``, ``a/../../x.jpg`` and an absolute path are refused). Symbolic links are not judged:
    a file or folder inside ``root`` that is a link (DVC's symlink cache, ``cp -s``, a shared-storage layout) is
    followed when it is read, wherever it points, since whoever put it there chose its target; ``root`` itself may
    be a link too. The collapsed path is what is returned, and so what is opened: a ``..`` after a link is never
    resolved through the link's target."""
    root_path = Path(root).resolve()
    rel = str(relative)
    if not rel or os.path.isabs(rel) or rel.startswith(("\\", "/")):
        raise BpnetError(f"{what} {relative!r} must be a relative path inside {root}")
    norm = os.path.normpath(rel)
    if Path(norm).parts[:1] == (os.pardir,):
        raise BpnetError(f"{what} {relative!r} escapes the image root {root}")
    return root_path if norm == os.curdir else root_path / norm


def to_bgr8(img: np.ndarray) -> np.ndarray:
    """Convert a decoded image of any common layout (grey, grey+alpha, BGR, BGRA; 8 or 16 bit, float) to uint8 BGR."""
    import cv2

    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype in (np.float32, np.float64):
        img = np.clip(img * (255.0 if img.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    channels = img.shape[2]
    if channels == 1:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if channels == 2:
        return cv2.cvtColor(np.ascontiguousarray(img[:, :, 0]), cv2.COLOR_GRAY2BGR)
    if channels == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(img[:, :, :3])


#: the image files bpnet lists in a folder (inference ``dir`` input, calibration, label-free distillation, explorer)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def list_images(folder: str | os.PathLike, missing: str = "image directory not found",
                empty: str | None = "no images ({suffixes}) in the directory") -> list[Path]:  # fmt: skip
    """The image files directly inside ``folder`` (by suffix, hidden files skipped), sorted by name. A missing folder
    is the one-line error ``folder: missing``; an image-less one ``folder: empty`` (``{suffixes}`` filled in), or an
    empty list when ``empty`` is ``None``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BpnetError(f"{folder}: {missing}")
    files = sorted(p for p in folder.iterdir()
                   if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file())  # fmt: skip
    if not files and empty is not None:
        raise BpnetError(f"{folder}: " + empty.format(suffixes=", ".join(IMAGE_SUFFIXES)))
    return files


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as uint8 BGR (H, W, 3).

    Grey, RGBA, CMYK and 16-bit files are converted. A missing, empty, truncated or undecodable file raises a
    one-line :class:`BpnetError` naming the file.
    """
    import cv2

    path = Path(path)
    if not path.is_file():
        raise BpnetError(f"{path}: image not found")
    data = path.read_bytes()
    if not data:
        raise BpnetError(f"{path}: image file is empty (0 bytes)")
    if _looks_truncated(data, path):
        raise BpnetError(f"{path}: image file is truncated")
    buf = np.frombuffer(data, np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    if img is None or img.size == 0:
        img = _read_with_pillow(path)
    if img is None:
        raise BpnetError(f"{path}: cannot decode image (corrupt or not an image)")
    return to_bgr8(img)


def _looks_truncated(data: bytes, path: Path) -> bool:
    """A JPEG must end with the EOI marker (FFD9); PNG with IEND. OpenCV silently grey-fills truncated JPEGs."""
    if data[:2] == b"\xff\xd8":
        return not data.rstrip(b"\x00").endswith(b"\xff\xd9")
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return b"IEND" not in data[-16:]
    return False


def _read_with_pillow(path: Path) -> np.ndarray | None:
    """Fallback decoder (CMYK JPEGs and other modes OpenCV rejects)."""
    try:
        from PIL import Image

        with Image.open(path) as im:
            im.load()
            rgb = np.asarray(im.convert("RGB"))
    except Exception:  # noqa: BLE001 - any decoder failure means "not an image" here
        return None
    return np.ascontiguousarray(rgb[:, :, ::-1])
