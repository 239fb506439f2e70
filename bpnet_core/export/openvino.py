"""OpenVINO IR export: an ONNX graph (bpnet's own export, or an imported network) → ``.xml`` + ``.bin``.

``openvino.convert_model`` reads the ONNX graph; FP32 keeps the weights as they are, FP16 compresses them
(``save_model(compress_to_fp16=True)``: weights in float16, computation as the CPU plugin decides), INT8 is NNCF
post-training quantisation on the same calibration images and preprocessing as ONNX Runtime's path. The model
contract goes into the IR's ``rt_info['bpnet_meta']``; files appear atomically (``.bin`` first, then ``.xml``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bpnet_core.errors import BpnetError
from bpnet_core.meta import write_ir  # noqa: F401 - the export modules' name for it


def import_openvino():
    try:
        import openvino as ov
    except ImportError:
        raise BpnetError("--backend openvino needs the openvino package (pip install 'bpnet[deploy]')") from None
    return ov


def onnx_to_openvino(proto_or_path):
    """An ``openvino.Model`` from an ONNX proto or file."""
    ov = import_openvino()
    if isinstance(proto_or_path, (str, os.PathLike)):
        return ov.convert_model(str(proto_or_path))
    import onnx

    with tempfile.TemporaryDirectory(prefix="bpnet_ov_") as tmp:
        path = Path(tmp) / "model.onnx"
        onnx.save(proto_or_path, str(path))
        return ov.convert_model(str(path))


def ir_bytes(path: str | os.PathLike) -> int:
    """Size of an IR (``.xml`` + ``.bin``) or of any other model file."""
    path = Path(path)
    n = path.stat().st_size
    if path.suffix.lower() == ".xml" and path.with_suffix(".bin").is_file():
        n += path.with_suffix(".bin").stat().st_size
    return n
