"""Robust image reading, safe paths and atomic writes."""

import os

import cv2
import numpy as np
import pytest
from PIL import Image

from bpnet_core.errors import BpnetError
from bpnet_core.fileio import read_image, read_json, safe_join, write_json_atomic, write_text_atomic


@pytest.fixture
def jpeg(tmp_path):
    p = tmp_path / "ok.jpg"
    img = np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    cv2.imwrite(str(p), img)
    return p


def test_reads_jpeg_as_bgr8(jpeg):
    img = read_image(jpeg)
    assert img.shape == (40, 60, 3) and img.dtype == np.uint8


@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK", "I;16", "LA", "P"])
def test_odd_colour_modes_are_converted(tmp_path, mode):
    ext = "jpg" if mode in ("CMYK", "L") else "png"
    p = tmp_path / f"img_{mode.replace(';', '')}.{ext}"
    arr = np.random.default_rng(1).integers(0, 255, (30, 20, 3), dtype=np.uint8)
    im = Image.fromarray(arr).convert(mode) if mode != "I;16" else Image.fromarray(arr[:, :, 0].astype(np.uint16) * 257)
    im.save(p)
    img = read_image(p)
    assert img.shape == (30, 20, 3) and img.dtype == np.uint8


def test_missing_zero_byte_corrupt_and_truncated(tmp_path, jpeg):
    with pytest.raises(BpnetError, match="image not found"):
        read_image(tmp_path / "nope.jpg")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(BpnetError, match="empty"):
        read_image(empty)
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"this is not a jpeg at all")
    with pytest.raises(BpnetError, match="cannot decode"):
        read_image(junk)
    trunc = tmp_path / "trunc.jpg"
    trunc.write_bytes(jpeg.read_bytes()[: len(jpeg.read_bytes()) // 2])
    with pytest.raises(BpnetError, match=str(trunc)):
        read_image(trunc)


def test_safe_join_refuses_escapes(tmp_path):
    assert safe_join(tmp_path, "a/b.jpg") == (tmp_path / "a" / "b.jpg").resolve()
    assert safe_join(tmp_path, "a/../b.jpg") == tmp_path.resolve() / "b.jpg"  # collapsed as text, inside
    for bad in ["../x.jpg", "a/../../x.jpg", "..", "/etc/passwd", str(tmp_path / "x.jpg"), ""]:
        with pytest.raises(BpnetError):
            safe_join(tmp_path, bad)


def test_safe_join_follows_links_inside_the_root(tmp_path):
    """The rule is lexical: a link inside the root is the user's choice and is followed, wherever it points; a
    file_name that leaves the root as text is refused even when the file exists."""
    root, store = tmp_path / "images", tmp_path / "store"
    (store / "sub").mkdir(parents=True)
    (store / "a.jpg").write_bytes(b"a")
    (store / "sub" / "b.jpg").write_bytes(b"b")
    root.mkdir()
    (root / "a.jpg").symlink_to(store / "a.jpg")  # a linked file (DVC's symlink cache, cp -s)
    (root / "linked").symlink_to(store / "sub")  # a linked folder
    assert safe_join(root, "a.jpg") == root / "a.jpg" and safe_join(root, "a.jpg").read_bytes() == b"a"
    assert safe_join(root, "linked/b.jpg").read_bytes() == b"b"
    (tmp_path / "x.jpg").write_bytes(b"x")
    for bad in ["../x.jpg", "linked/../../x.jpg", str(tmp_path / "x.jpg")]:
        with pytest.raises(BpnetError, match="escapes the image root|must be a relative path inside"):
            safe_join(root, bad)


def test_atomic_writes_leave_no_temp_files(tmp_path):
    write_json_atomic(tmp_path / "a.json", {"x": np.float32(1.5), "y": np.arange(3)})
    assert read_json(tmp_path / "a.json") == {"x": 1.5, "y": [0, 1, 2]}
    with pytest.raises(TypeError):
        write_json_atomic(tmp_path / "b.json", {"x": object()})
    assert sorted(os.listdir(tmp_path)) == ["a.json"]  # the failed write left nothing behind
    write_text_atomic(tmp_path / "missing" / "deeper" / "c.txt", "x")  # missing folders are created
    assert (tmp_path / "missing" / "deeper" / "c.txt").read_text() == "x"
    with pytest.raises(BpnetError, match=r"a.json: exists and is not a directory"):  # a place that cannot hold it
        write_text_atomic(tmp_path / "a.json" / "c.txt", "x")


def test_read_json_errors(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('{"a": [1, 2')
    with pytest.raises(BpnetError, match=r"malformed JSON file at line 1"):
        read_json(p)
    p.write_text("  ")
    with pytest.raises(BpnetError, match="empty"):
        read_json(p)
