"""``bpnet download_model`` against a local HTTP server (127.0.0.1 only), serving the committed real IR.

The FP16-INT8 pair in ``tests/fixtures/realmodels`` has known sha256s (verified); the same bytes served under FP32
stand in for a precision without a published checksum (sha256 recorded, the pair test-loaded with openvino).
"""

from __future__ import annotations

import json
import socket
import sys

import pytest

from bpnet_core.cli import main
from bpnet_core.data.models import MODELS, download_model
from bpnet_core.errors import BpnetError
from tests.conftest import FIXTURES
from tests.integration.test_download import server  # noqa: F401 - the local Range-capable HTTP server fixture

NAME = "human-pose-estimation-0001"
SRC = FIXTURES / "realmodels" / NAME / "FP16-INT8"
XML, BIN = f"{NAME}.xml", f"{NAME}.bin"


def serve(srv, precision: str, xml: bytes | None = None, weights: bytes | None = None) -> dict[str, bytes]:
    files = {XML: xml if xml is not None else (SRC / XML).read_bytes(),
             BIN: weights if weights is not None else (SRC / BIN).read_bytes()}  # fmt: skip
    for f, data in files.items():
        srv.files[f"/{NAME}/{precision}/{f}"] = data
    return files


def cli(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(["download_model", *args, "--no_progress"])
    out, err = capsys.readouterr()
    return rc, out, err


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("bpnet: error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_fixture_checksums_are_the_registered_ones():
    from bpnet_core.data.download import file_digest

    for f in (XML, BIN):
        assert file_digest(SRC / f, "sha256") == MODELS[NAME].sha256[("FP16-INT8", f)]


def test_download_verifies_checksums_and_skips_a_rerun(server, tmp_path, capsys):  # noqa: F811
    files = serve(server, "FP16-INT8")
    out_dir = tmp_path / "new" / "models"  # missing folders are created
    rc, out, _ = cli(capsys, NAME, "-o", str(out_dir), "--base_url", server.url)
    assert rc == 0
    assert "FP16-INT8 downloaded" in out and "sha256 verified" in out
    dest = out_dir / NAME / "FP16-INT8"
    for f, data in files.items():
        assert (dest / f).read_bytes() == data
    assert not list(dest.glob("*.part"))
    manifest = json.loads((dest / "download_manifest.json").read_text())
    assert manifest["files"][BIN]["verified"] is True
    assert manifest["files"][BIN]["url"] == f"{server.url}/{NAME}/FP16-INT8/{BIN}"
    licence = (out_dir / NAME / "LICENSE").read_text()
    assert "Apache-2.0" in licence and "Open Model Zoo" in licence

    server.requests.clear()
    rc, out, _ = cli(capsys, NAME, "--precision", "fp16-int8", "-o", str(out_dir), "--base_url", server.url)
    assert rc == 0 and "FP16-INT8 skipped" in out
    assert server.requests == []


def test_interrupted_download_resumes_with_range(server, tmp_path, capsys):  # noqa: F811
    files = serve(server, "FP16-INT8")
    half = len(files[BIN]) // 2
    server.truncate = {f"/{NAME}/FP16-INT8/{BIN}": half}
    rc, out, _ = cli(capsys, NAME, "-o", str(tmp_path), "--base_url", server.url)
    assert rc == 0 and "sha256 verified" in out
    bin_requests = [r for r in server.requests if r[0].endswith(".bin")]
    assert bin_requests == [(f"/{NAME}/FP16-INT8/{BIN}", None), (f"/{NAME}/FP16-INT8/{BIN}", f"bytes={half}-")]
    assert (tmp_path / NAME / "FP16-INT8" / BIN).read_bytes() == files[BIN]


def test_tampered_file_fails_and_leaves_nothing(server, tmp_path, capsys):  # noqa: F811
    weights = bytearray((SRC / BIN).read_bytes())
    weights[1000] ^= 0xFF
    serve(server, "FP16-INT8", weights=bytes(weights))
    rc, out, err = cli(capsys, NAME, "-o", str(tmp_path), "--base_url", server.url)
    assert rc == 2 and out == ""
    line = one_error_line(err)
    assert f"FP16-INT8/{BIN}: checksum mismatch" in line and "fc7e9dde" in line
    dest = tmp_path / NAME / "FP16-INT8"
    assert not (dest / XML).exists() and not (dest / BIN).exists() and not (dest / f"{BIN}.part").exists()
    assert not (dest / "download_manifest.json").exists()


def test_precision_without_checksum_records_a_manifest(server, tmp_path, capsys):  # noqa: F811
    files = serve(server, "FP32")
    rc, out, _ = cli(capsys, NAME, "--precision", "FP32", "-o", str(tmp_path), "--base_url", server.url)
    assert rc == 0
    assert "FP32 downloaded" in out and "recorded" in out and "not verified" in out
    dest = tmp_path / NAME / "FP32"
    manifest = json.loads((dest / "download_manifest.json").read_text())
    assert manifest["precision"] == "FP32"
    for f in (XML, BIN):
        assert manifest["files"][f]["verified"] is False
        assert manifest["files"][f]["sha256"] == MODELS[NAME].sha256[("FP16-INT8", f)]
        assert manifest["files"][f]["bytes"] == len(files[f])
    # a re-run compares the files with the recorded sha256 and skips them
    server.requests.clear()
    again = download_model(NAME, tmp_path, precision="FP32", base_url=server.url, progress=False)
    assert again["status"] == "skipped" and server.requests == []


def test_unverified_pair_is_test_loaded_with_openvino(server, tmp_path, monkeypatch):  # noqa: F811
    pytest.importorskip("openvino")
    serve(server, "FP16")
    s = download_model(NAME, tmp_path, precision="FP16", base_url=server.url, progress=False)
    assert s["load_check"] == "loaded" and s["verified"] is False

    # a pair openvino cannot read is refused and removed
    serve(server, "FP32", weights=(SRC / BIN).read_bytes()[:1000])
    with pytest.raises(BpnetError, match=r"^human-pose-estimation-0001\.xml: the download is not a loadable OpenVINO"):
        download_model(NAME, tmp_path, precision="FP32", base_url=server.url, progress=False)
    assert not [p.name for p in (tmp_path / NAME / "FP32").iterdir()]

    # without openvino the check is skipped, and said so
    monkeypatch.setitem(sys.modules, "openvino", None)
    serve(server, "FP32")
    s = download_model(NAME, tmp_path, precision="FP32", base_url=server.url, progress=False)
    assert s["load_check"] == "openvino not installed" and (tmp_path / NAME / "FP32" / BIN).is_file()


def test_bad_name_precision_and_http_errors(server, tmp_path, capsys):  # noqa: F811
    rc, _, err = cli(capsys, "human-pose-estimation-001", "-o", str(tmp_path))
    assert rc == 2 and "did you mean 'human-pose-estimation-0001'" in one_error_line(err)
    rc, _, err = cli(capsys, NAME, "--precision", "FP8", "-o", str(tmp_path))
    assert rc == 2 and "unknown precision 'FP8'" in one_error_line(err) and "FP16-INT8" in err
    rc, _, err = cli(capsys, NAME, "-o", str(tmp_path), "--base_url", "ftp://example.org")
    assert rc == 2 and "base_url" in one_error_line(err)
    rc, _, err = cli(capsys, NAME, "-o", str(tmp_path), "--base_url", server.url)  # nothing served: 404
    assert rc == 2 and "HTTP 404" in one_error_line(err)

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    rc, _, err = cli(capsys, NAME, "-o", str(tmp_path), "--base_url", f"http://127.0.0.1:{port}")
    line = one_error_line(err)
    assert rc == 2 and "cannot connect" in line and "partial file" not in line
    assert not list((tmp_path / NAME / "FP16-INT8").iterdir())
