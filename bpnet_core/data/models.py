"""Download pretrained pose networks (Intel Open Model Zoo OpenVINO IRs) with resume and checksums.

:data:`MODELS` is a small registry: model name -> :class:`ZooModel` (its files, precisions, the sha256 of each file
where one is known, licence and provenance). :func:`download_model` fetches one precision of one model into
``out_dir/<name>/<precision>/`` with the machinery of :mod:`bpnet_core.data.download`:

1. every file is streamed into ``<file>.part`` (resumed with an HTTP ``Range`` request after a dropped connection,
   on the next attempt or the next run);
2. a file with a known sha256 is verified: a mismatch deletes it and raises :class:`BpnetError` naming the file,
   so nothing is left at the destination; a file without one gets its sha256 recorded, not verified, and the
   ``.xml``/``.bin`` pair is test-loaded with ``openvino`` (when installed) before it is kept;
3. only when every file passed are they moved into place together; ``download_manifest.json`` (URLs, sizes,
   sha256s and whether each was verified) is written beside them and ``out_dir/<name>/LICENSE`` says where the
   network comes from and under which licence.

Files already in place whose sha256 matches the known (or, without one, the recorded) value are not fetched again.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from bpnet_core.data.download import (
    check_base_url,
    did_you_mean,
    fetch,
    file_digest,
    part_path,
    verify_file,
)
from bpnet_core.errors import BpnetError
from bpnet_core.fileio import make_dir, read_json, write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)

OMZ_BASE_URL = "https://storage.openvinotoolkit.org/repositories/open_model_zoo/2022.1/models_bin/3"
MANIFEST = "download_manifest.json"


@dataclass(frozen=True)
class ZooModel:
    """One downloadable network: ``<base_url>/<name>/<precision>/<file>`` for each of ``files``."""

    name: str
    files: tuple[str, ...]
    precisions: tuple[str, ...]
    default_precision: str
    licence: str
    provenance: str
    base_url: str = OMZ_BASE_URL
    # (precision, file name) -> sha256 hex digest, where one is known
    sha256: dict[tuple[str, str], str] = field(default_factory=dict)

    def url(self, base_url: str, precision: str, file: str) -> str:
        return f"{base_url.rstrip('/')}/{self.name}/{precision}/{file}"


_HPE = "human-pose-estimation-0001"
MODELS: dict[str, ZooModel] = {
    _HPE: ZooModel(
        name=_HPE,
        files=(f"{_HPE}.xml", f"{_HPE}.bin"),
        precisions=("FP32", "FP16", "FP16-INT8"),
        default_precision="FP16-INT8",
        licence="Apache-2.0",
        provenance="Intel Open Model Zoo human-pose-estimation-0001: Lightweight OpenPose (MobileNet backbone, one "
        "refinement stage; D. Osokin, 2018) trained on COCO; 18 joints + background = 19 heatmaps and 38 PAFs at "
        "stride 8, input 'data' BGR 0..255. OpenVINO IR (.xml graph + .bin weights); FP16-INT8 is quantised by Intel. "
        "https://github.com/openvinotoolkit/open_model_zoo/tree/master/models/intel/human-pose-estimation-0001",
        sha256={
            ("FP16-INT8", f"{_HPE}.xml"): "c3a47de94906e6b3256eb16af7274141b2fc9f6c7889a02d96ef430b9bc321d3",
            ("FP16-INT8", f"{_HPE}.bin"): "fc7e9dde0f4a34876cfbbd266388a59526a8c8c1bc9394ce4827b7a007d20f82",
        },
    ),
}


def get_model(name: str) -> ZooModel:
    """The registry entry of ``name``; an unknown name raises :class:`BpnetError` with the closest known one."""
    if name not in MODELS:
        raise BpnetError(f"unknown model {name!r}{did_you_mean(name, MODELS)}; known models are {', '.join(MODELS)}")
    return MODELS[name]


def _precision(model: ZooModel, precision: str | None) -> str:
    if precision is None:
        return model.default_precision
    wanted = str(precision).strip().upper()
    if wanted not in model.precisions:
        raise BpnetError(
            f"{model.name}: unknown precision {precision!r}{did_you_mean(wanted, model.precisions)}; "
            f"choose from {', '.join(model.precisions)}"
        )
    return wanted


def download_model(
    name: str,
    out_dir: str | os.PathLike,
    precision: str | None = None,
    base_url: str | None = None,
    progress: bool = True,
    retries: int = 3,
    timeout: float = 60.0,
) -> dict:
    """Download one precision of a registered network into ``out_dir/<name>/<precision>/``.

    Args:
        name: a key of :data:`MODELS` (``human-pose-estimation-0001``).
        out_dir: parent folder (created if missing).
        precision: ``FP32``, ``FP16`` or ``FP16-INT8`` (case-insensitive); ``None`` = the model's default.
        base_url: server holding ``<name>/<precision>/<file>``; ``None`` = the Open Model Zoo storage.
        progress: show tqdm progress bars.
        retries: how many times a dropped connection is resumed within one call.
        timeout: socket timeout in seconds.

    Returns:
        ``{"model", "precision", "dir", "files": {file: path}, "status": "downloaded" | "skipped", "verified"
        (every file matched a known sha256), "sha256": {file: digest}, "load_check", "bytes_downloaded",
        "seconds", "manifest", "licence"}``. ``load_check`` is ``"verified by checksum"``, ``"loaded"`` (the pair
        read with openvino) or ``"openvino not installed"``.
    """
    t0 = time.perf_counter()
    model = get_model(name)
    prec = _precision(model, precision)
    base = check_base_url(model.base_url if base_url is None else base_url)
    model_dir = make_dir(Path(out_dir) / model.name, "model directory")
    dest = make_dir(model_dir / prec, "model directory")
    manifest_path = dest / MANIFEST
    recorded = _recorded_sums(manifest_path)
    known = {f: model.sha256.get((prec, f)) for f in model.files}
    verified = all(known.values())

    targets = {f: dest / f for f in model.files}
    expected = {f: known[f] or recorded.get(f) for f in model.files}
    sums: dict[str, str] = {}
    if all(p.is_file() and expected[f] and file_digest(p, "sha256") == expected[f] for f, p in targets.items()):
        log.info("%s %s: already downloaded (%s); skipping", model.name, prec, dest)
        status, received, sums = "skipped", 0, {f: expected[f] for f in model.files}
        load_check = "verified by checksum" if verified else "recorded earlier"
    else:
        status, received = "downloaded", 0
        for f, path in targets.items():
            url = model.url(base, prec, f)
            received += fetch(url, part_path(path), progress, retries, timeout)
            sums[f] = (verify_file(part_path(path), known[f], f"{prec}/{f}", "sha256") if known[f]
                       else file_digest(part_path(path), "sha256"))  # fmt: skip
        load_check = "verified by checksum" if verified else _load_check(*(part_path(p) for p in targets.values()))
        for path in targets.values():
            os.replace(part_path(path), path)

    if status == "downloaded" or not manifest_path.is_file():
        write_json_atomic(manifest_path, {
            "model": model.name, "precision": prec, "licence": model.licence,
            "files": {f: {"url": model.url(base, prec, f), "bytes": targets[f].stat().st_size, "sha256": sums[f],
                          "verified": bool(known[f])} for f in model.files},
        })  # fmt: skip
    licence = write_text_atomic(model_dir / "LICENSE", _licence_text(model, base))
    return {"model": model.name, "precision": prec, "dir": str(dest), "files": {f: str(p) for f, p in targets.items()},
            "status": status, "verified": verified, "sha256": sums, "load_check": load_check,
            "bytes_downloaded": received, "seconds": round(time.perf_counter() - t0, 3),
            "manifest": str(manifest_path), "licence": str(licence)}  # fmt: skip


# ------------------------------------------------------------------------------------------------ helpers
def _recorded_sums(manifest_path: Path) -> dict[str, str]:
    """file -> sha256 from an earlier run's manifest (empty when there is none or it is unreadable)."""
    if not manifest_path.is_file():
        return {}
    try:
        files = read_json(manifest_path, "download manifest").get("files", {})
        return {f: str(v["sha256"]) for f, v in files.items() if isinstance(v, dict) and "sha256" in v}
    except (BpnetError, AttributeError):
        return {}


def _load_check(xml: Path, weights: Path) -> str:
    """Read the IR pair with openvino; an unreadable pair is deleted and raises. ``"loaded"`` or a skip note."""
    try:
        import openvino as ov
    except ImportError:
        log.warning("openvino is not installed: the downloaded IR was not test-loaded (pip install openvino)")
        return "openvino not installed"
    try:
        ov.Core().read_model(str(xml), str(weights))
    except Exception as exc:  # noqa: BLE001 - openvino raises RuntimeError subclasses with multi-line text
        lines = [ln for ln in str(exc).splitlines() if ln.strip() and not ln.startswith(("Exception from", "Check "))]
        for p in (xml, weights):
            p.unlink(missing_ok=True)
        name = xml.name[: -len(".part")]
        raise BpnetError(
            f"{name}: the download is not a loadable OpenVINO IR ({lines[-1] if lines else exc}); the "
            "files were deleted"
        ) from None
    return "loaded"


def _licence_text(model: ZooModel, base_url: str) -> str:
    return (
        f"{model.name}\n\nLicence: {model.licence} (Open Model Zoo, "
        "https://github.com/openvinotoolkit/open_model_zoo/blob/master/LICENSE; full text at "
        "https://www.apache.org/licenses/LICENSE-2.0).\n\n"
        f"Provenance: {model.provenance}\n\nDownloaded by bpnet download_model from {base_url.rstrip('/')}/"
        f"{model.name}/<precision>/; per-file URLs and sha256s are in <precision>/{MANIFEST}.\n"
    )
