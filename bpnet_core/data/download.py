"""Download and unpack COCO 2017 (images and keypoint annotations) with resume, checksums and safe unzipping.

:func:`download_coco` fetches each requested part (``train2017``, ``val2017``, ``annotations``) from
``base_url`` into ``root``:

1. the zip is streamed into ``<name>.zip.part``; an interrupted download (a dropped connection, Ctrl-C) is
   resumed with an HTTP ``Range`` request, on the next attempt or the next run;
2. the finished file's MD5 is checked against COCO's published sum; a mismatch deletes it and raises
   :class:`~bpnet_core.errors.BpnetError` naming the file;
3. the zip is unpacked under ``root`` — every member is checked first, and a member that would land outside
   ``root`` (``../``, absolute paths) refuses the whole archive;
4. a marker ``root/.bpnet_download/<part>.done`` is written and the zip removed, so re-running skips the part.

Afterwards ``root`` has COCO's layout (``train2017/``, ``val2017/``, ``annotations/``) and a
``dataset_spec.json`` (``data_pose_config/coco_spec.json`` with ``root_directory_path`` = ``root``).
Only :mod:`urllib` is used; ``base_url`` and ``checksums`` point tests at a local server.

The steps are public for other downloads (:mod:`bpnet_core.data.models` fetches pretrained networks with them):
:func:`check_base_url`, :func:`fetch` (resumable streaming into a ``.part`` file), :func:`file_digest` /
:func:`verify_file` (MD5 or SHA-256; a mismatch deletes the file) and :func:`did_you_mean`.
"""

from __future__ import annotations

import difflib
import hashlib
import http.client
import logging
import os
import re
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterable
from pathlib import Path

from bpnet_core.errors import BpnetError
from bpnet_core.fileio import make_dir, read_json, safe_join, write_json_atomic
from bpnet_core.paths import project_file
from bpnet_core.verbosity import progress_bar

log = logging.getLogger(__name__)

COCO_BASE_URL = "http://images.cocodataset.org"
# part -> (path under the base URL, MD5 of the zip)
COCO_PARTS: dict[str, tuple[str, str]] = {
    "train2017": ("zips/train2017.zip", "cced6f7f71b7629ddf16f17bbcfab6b2"),
    "val2017": ("zips/val2017.zip", "442b8da7639aecaf257c1dceb8ba8c80"),
    "annotations": ("annotations/annotations_trainval2017.zip", "f4bbac642086de4f52a3fdda2de5fa2c"),
}
DEFAULT_PARTS = ("train2017", "val2017", "annotations")
MARKER_DIR = ".bpnet_download"
_CHUNK = 1 << 20


def download_coco(
    root: str | os.PathLike,
    base_url: str = COCO_BASE_URL,
    parts: str | Iterable[str] = DEFAULT_PARTS,
    progress: bool = True,
    checksums: dict[str, str] | None = None,
    keep_zip: bool = False,
    retries: int = 3,
    timeout: float = 60.0,
) -> dict:
    """Download, verify and unpack COCO 2017 parts under ``root``; finished parts are skipped.

    Args:
        root: dataset folder (created if missing); becomes COCO's ``root_directory_path``.
        base_url: server holding ``zips/<split>.zip`` and ``annotations/annotations_trainval2017.zip``.
        parts: part names, or one comma-separated string, from ``train2017``, ``val2017``, ``annotations``.
        progress: show tqdm progress bars.
        checksums: part -> MD5 overrides (e.g. for a mirror or a test server); ``None`` uses COCO's sums.
        keep_zip: keep the verified zip after unpacking.
        retries: how many times a dropped connection is resumed within one call.
        timeout: socket timeout in seconds.

    Returns:
        ``{"root", "parts": {part: "downloaded" | "skipped"}, "bytes_downloaded", "seconds", "dataset_spec"}``.
    """
    t0 = time.perf_counter()
    names = _parse_parts(parts)
    sums = {p: COCO_PARTS[p][1] for p in names}
    for key, value in (checksums or {}).items():
        if key not in COCO_PARTS:
            raise BpnetError(f"checksums: unknown part {key!r}; known parts are {', '.join(COCO_PARTS)}")
        if not re.fullmatch(r"[0-9a-fA-F]{32}", str(value)):
            raise BpnetError(f"checksums.{key}: {value!r} is not an MD5 hex digest")
        if key in sums:
            sums[key] = str(value).lower()
    check_base_url(base_url)
    root_path = make_dir(root, "dataset directory")
    make_dir(root_path / MARKER_DIR, "dataset directory")

    status: dict[str, str] = {}
    downloaded = 0
    for part in names:
        marker = root_path / MARKER_DIR / f"{part}.done"
        if marker.is_file():
            log.info("%s: already downloaded and unpacked (%s); skipping", part, marker)
            status[part] = "skipped"
            continue
        rel, md5 = COCO_PARTS[part][0], sums[part]
        url = base_url.rstrip("/") + "/" + rel
        zip_path = root_path / Path(rel).name
        if not zip_path.is_file():
            downloaded += fetch(url, part_path(zip_path), progress, retries, timeout)
            verify_file(part_path(zip_path), md5, zip_path.name)
            os.replace(part_path(zip_path), zip_path)
        else:
            verify_file(zip_path, md5, zip_path.name)
        count = _unpack(zip_path, root_path, progress)
        write_json_atomic(marker, {"part": part, "url": url, "md5": md5, "files": count})
        if not keep_zip:
            zip_path.unlink()
        status[part] = "downloaded"

    spec = read_json(project_file("data_pose_config", "coco_spec.json"), "dataset spec")
    spec["root_directory_path"] = str(root_path)
    spec_path = write_json_atomic(root_path / "dataset_spec.json", spec)
    return {
        "root": str(root_path),
        "parts": status,
        "bytes_downloaded": downloaded,
        "seconds": round(time.perf_counter() - t0, 3),
        "dataset_spec": str(spec_path),
    }


# ------------------------------------------------------------------------------------------------ helpers
def check_base_url(base_url: str) -> str:
    """``base_url`` itself, after checking that it is an http(s) URL (else :class:`BpnetError`)."""
    if not isinstance(base_url, str) or not re.match(r"^https?://", base_url):
        raise BpnetError(f"base_url {base_url!r} must start with http:// or https://")
    return base_url


def part_path(path: Path) -> Path:
    """Where :func:`fetch` streams ``path`` before it is verified: ``<name>.part`` beside it."""
    return path.with_name(path.name + ".part")


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or ``""``."""
    hint = difflib.get_close_matches(value, list(choices), n=1)
    return f" (did you mean {hint[0]!r}?)" if hint else ""


def _parse_parts(parts: str | Iterable[str]) -> list[str]:
    items = [p.strip() for p in parts.split(",")] if isinstance(parts, str) else [str(p).strip() for p in parts]
    items = [p for p in items if p]
    if not items:
        raise BpnetError(f"parts: nothing to download; choose from {', '.join(COCO_PARTS)}")
    out = []
    for p in items:
        if p not in COCO_PARTS:
            raise BpnetError(
                f"parts: unknown part {p!r}{did_you_mean(p, COCO_PARTS)}; known parts are {', '.join(COCO_PARTS)}"
            )
        if p not in out:
            out.append(p)
    return out


def _content_range_total(value: str | None) -> int | None:
    """The total size from a ``Content-Range: bytes a-b/total`` (or ``bytes */total``) header."""
    m = re.match(r"^\s*bytes\s+(?:\d+-\d+|\*)/(\d+)\s*$", value or "")
    return int(m.group(1)) if m else None


def _content_range_start(value: str | None) -> int | None:
    m = re.match(r"^\s*bytes\s+(\d+)-\d+/(?:\d+|\*)\s*$", value or "")
    return int(m.group(1)) if m else None


def fetch(url: str, part_path: Path, progress: bool = True, retries: int = 3, timeout: float = 60.0) -> int:
    """Stream ``url`` into ``part_path``, resuming what is there with a Range request. Returns bytes received.

    A dropped connection is resumed up to ``retries`` times; an HTTP error (404, ...) raises at once; when every
    attempt fails, :class:`BpnetError` says why and keeps the partial file for the next run.
    """
    received = 0
    last_error = ""
    for attempt in range(max(0, int(retries)) + 1):
        have = part_path.stat().st_size if part_path.is_file() else 0
        headers = {"User-Agent": "bpnet-download/1", "Accept-Encoding": "identity"}
        if have:
            headers["Range"] = f"bytes={have}-"
        request = urllib.request.Request(url, headers=headers)
        try:
            response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - http(s) checked above
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and have:
                total = _content_range_total(exc.headers.get("Content-Range"))
                if total == have:
                    return received  # the partial file is already complete
                part_path.unlink()
                continue
            raise BpnetError(f"{url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            last_error = f"cannot connect: {reason}"
            log.warning("%s: %s (attempt %d)", url, last_error, attempt + 1)
            continue
        with response:
            if have and response.status == 206 and _content_range_start(response.headers.get("Content-Range")) == have:
                mode, start = "ab", have
                total = _content_range_total(response.headers.get("Content-Range"))
                log.info("%s: resuming at byte %d", url, have)
            else:
                if have:
                    log.info("%s: server ignored the range request; starting again", url)
                mode, start = "wb", 0
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
            size = start
            with open(part_path, mode) as fh, progress_bar(total=total, initial=start, unit="B", unit_scale=True,
                                                            unit_divisor=1024, desc=part_path.name[: -len(".part")],
                                                            enabled=progress) as bar:  # fmt: skip
                try:
                    while True:
                        chunk = response.read(_CHUNK)
                        if not chunk:
                            break
                        fh.write(chunk)
                        size += len(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
                except (http.client.IncompleteRead, ConnectionError, TimeoutError) as exc:
                    last_error = f"connection dropped at byte {size}: {type(exc).__name__}"
                    log.warning("%s: %s; resuming", url, last_error)
                    continue
                finally:
                    fh.flush()
                    os.fsync(fh.fileno())
        if total is not None and size < total:
            last_error = f"connection closed at byte {size} of {total}"
            log.warning("%s: %s; resuming", url, last_error)
            continue
        return received
    if not part_path.is_file():
        raise BpnetError(f"{url}: download failed ({last_error})")
    raise BpnetError(
        f"{url}: download interrupted ({last_error}); partial file kept at {part_path}, run again to resume"
    )


def file_digest(path: Path, algo: str = "md5") -> str:
    """Hex digest of a file (``algo`` is a :mod:`hashlib` name: ``md5``, ``sha256``)."""
    digest = hashlib.new(algo, usedforsecurity=False)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_file(path: Path, expected: str, name: str, algo: str = "md5") -> str:
    """Check ``path``'s digest against ``expected``; a mismatch deletes the file and raises. Returns the digest."""
    got = file_digest(path, algo)
    if got != expected.lower():
        path.unlink()
        raise BpnetError(
            f"{name}: checksum mismatch ({algo.upper().replace('SHA', 'SHA-')} {got}, expected "
            f"{expected}); the file was deleted, run again to download it afresh"
        )
    return got


def _unpack(zip_path: Path, root: Path, progress: bool) -> int:
    """Extract ``zip_path`` under ``root`` after checking that no member escapes it. Returns the file count."""
    try:
        zf = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile:
        raise BpnetError(f"{zip_path.name}: not a valid zip file") from None
    with zf:
        members = zf.infolist()
        for info in members:
            name = info.filename
            if "\\" in name or re.match(r"^[A-Za-z]:", name):
                raise BpnetError(f"{zip_path.name}: member {name!r} has a Windows path; refusing to unpack")
            safe_join(root, name, what=f"{zip_path.name}: member")
        files = 0
        for info in progress_bar(members, desc=f"unpack {zip_path.name}", unit="file", enabled=progress):
            zf.extract(info, root)
            files += 0 if info.is_dir() else 1
    return files
