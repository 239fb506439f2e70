"""``download_coco`` against a local HTTP server (127.0.0.1 only): Range resume, MD5 check, safe unzip, skip."""

from __future__ import annotations

import hashlib
import io
import re
import threading
import zipfile
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bpnet_core.data.download import download_coco
from bpnet_core.errors import BpnetError


class RangeHandler(BaseHTTPRequestHandler):
    """Serves ``server.files`` (URL path -> bytes) with ``Range: bytes=a-`` support.

    ``server.truncate`` (URL path -> n) makes the next full response stop after n bytes and drop the connection
    while announcing the whole length: an interrupted download.
    """

    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        data = srv.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng:
            m = re.fullmatch(r"bytes=(\d+)-", rng.strip())
            start = int(m.group(1)) if m else 0
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/zip")
        self.end_headers()
        cut = srv.truncate.pop(self.path, None)
        if cut is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    srv.daemon_threads = True
    srv.files, srv.truncate, srv.requests = {}, {}, []
    thread = threading.Thread(target=partial(srv.serve_forever, poll_interval=0.05), daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


def make_zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


VAL = {f"val2017/{i:012d}.jpg": bytes([i]) * 5000 for i in range(1, 6)}
ANN = {"annotations/person_keypoints_val2017.json": b'{"images": [], "annotations": [], "categories": []}'}


def fetch(root, server, parts, blobs: dict, **kwargs) -> dict:
    """``download_coco`` from the local server, no progress bar, each part checked against its blob's MD5."""
    checksums = {part: md5(blob) for part, blob in blobs.items()}
    return download_coco(root, base_url=server.url, parts=parts, progress=False, checksums=checksums, **kwargs)


def test_download_verify_unpack_and_skip(server, tmp_path):
    val, ann = make_zip(VAL), make_zip(ANN)
    server.files = {"/zips/val2017.zip": val, "/annotations/annotations_trainval2017.zip": ann}
    root = tmp_path / "coco"
    out = fetch(root, server, "val2017,annotations", {"val2017": val, "annotations": ann})
    assert out["parts"] == {"val2017": "downloaded", "annotations": "downloaded"}
    assert out["bytes_downloaded"] == len(val) + len(ann)
    for name, data in {**VAL, **ANN}.items():
        assert (root / name).read_bytes() == data
    assert not list(root.glob("*.zip")) and not list(root.glob("*.part"))
    spec = (root / "dataset_spec.json").read_text()
    assert str(root.resolve()) in spec

    server.requests.clear()
    again = fetch(root, server, ["val2017", "annotations"], {"val2017": val, "annotations": ann})
    assert again["parts"] == {"val2017": "skipped", "annotations": "skipped"}
    assert server.requests == []


def test_interrupted_download_resumes_with_range(server, tmp_path):
    val = make_zip(VAL)
    server.files = {"/zips/val2017.zip": val}
    server.truncate = {"/zips/val2017.zip": len(val) // 2}
    out = fetch(tmp_path, server, "val2017", {"val2017": val}, keep_zip=True, timeout=5)
    assert out["parts"]["val2017"] == "downloaded"
    assert server.requests[0] == ("/zips/val2017.zip", None)
    assert server.requests[1] == ("/zips/val2017.zip", f"bytes={len(val) // 2}-")
    assert (tmp_path / "val2017.zip").read_bytes() == val
    assert (tmp_path / "val2017" / "000000000001.jpg").read_bytes() == VAL["val2017/000000000001.jpg"]


def test_partial_file_from_an_earlier_run_is_resumed(server, tmp_path):
    ann = make_zip(ANN)
    server.files = {"/annotations/annotations_trainval2017.zip": ann}
    (tmp_path / "annotations_trainval2017.zip.part").write_bytes(ann[:100])
    fetch(tmp_path, server, "annotations", {"annotations": ann}, keep_zip=True)
    assert server.requests == [("/annotations/annotations_trainval2017.zip", "bytes=100-")]
    assert (tmp_path / "annotations_trainval2017.zip").read_bytes() == ann
    # a .part that is already complete: the server answers 416, nothing is downloaded again
    server.requests.clear()
    (tmp_path / ".bpnet_download" / "annotations.done").unlink()
    (tmp_path / "annotations_trainval2017.zip").rename(tmp_path / "annotations_trainval2017.zip.part")
    out = fetch(tmp_path, server, "annotations", {"annotations": ann})
    assert out["bytes_downloaded"] == 0 and server.requests == [
        ("/annotations/annotations_trainval2017.zip", f"bytes={len(ann)}-")
    ]


def test_checksum_mismatch_deletes_the_file(server, tmp_path):
    val = make_zip(VAL)
    server.files = {"/zips/val2017.zip": val}
    with pytest.raises(BpnetError, match=r"val2017\.zip: checksum mismatch"):
        download_coco(tmp_path, base_url=server.url, parts="val2017", progress=False, checksums={"val2017": "0" * 32})
    assert not (tmp_path / "val2017.zip").exists()
    assert not (tmp_path / "val2017.zip.part").exists()
    assert not (tmp_path / "val2017").exists()
    assert not (tmp_path / ".bpnet_download" / "val2017.done").exists()


def test_zip_member_escaping_root_is_refused(server, tmp_path):
    evil = make_zip({"val2017/ok.jpg": b"x", "../evil.txt": b"gotcha"})
    server.files = {"/zips/val2017.zip": evil}
    root = tmp_path / "root"
    with pytest.raises(BpnetError, match=r"\.\./evil\.txt"):
        download_coco(root, base_url=server.url, parts="val2017", progress=False, checksums={"val2017": md5(evil)})
    assert not (tmp_path / "evil.txt").exists()
    assert not (root / "val2017" / "ok.jpg").exists()  # nothing is unpacked from a refused archive
    assert not (root / ".bpnet_download" / "val2017.done").exists()


def test_bad_arguments_and_http_errors(server, tmp_path):
    with pytest.raises(BpnetError, match="unknown part 'val2071'.*did you mean 'val2017'"):
        download_coco(tmp_path, parts="val2071", progress=False)
    with pytest.raises(BpnetError, match="base_url"):
        download_coco(tmp_path, base_url="ftp://example.org", parts="val2017", progress=False)
    with pytest.raises(BpnetError, match="not an MD5"):
        download_coco(tmp_path, base_url=server.url, parts="val2017", checksums={"val2017": "abc"}, progress=False)
    with pytest.raises(BpnetError, match="HTTP 404"):
        download_coco(tmp_path, base_url=server.url, parts="val2017", progress=False)


def test_cli_download_coco(server, tmp_path, capsys, monkeypatch):
    from bpnet_core.cli import main
    from bpnet_core.data import download

    val = make_zip(VAL)
    server.files = {"/zips/val2017.zip": val}
    monkeypatch.setitem(download.COCO_PARTS, "val2017", ("zips/val2017.zip", md5(val)))
    rc = main(
        [
            "download_coco",
            "--root",
            str(tmp_path / "c"),
            "--base_url",
            server.url,
            "--parts",
            "val2017",
            "--no_progress",
        ]
    )
    assert rc == 0
    assert "val2017 downloaded" in capsys.readouterr().out
    assert (tmp_path / "c" / "val2017" / "000000000005.jpg").is_file()
    assert main(["download_coco", "--root", str(tmp_path / "c"), "--parts", "nope"]) == 2
