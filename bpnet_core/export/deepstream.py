"""``bpnet deepstream_config``: DeepStream's configs for an SDK-compatible model, every value from its contract.

>>> report = deepstream_config("bodypose_ds.onnx", "deepstream/", batch_size=32, network_mode="int8",
...                            int8_calib_file="cal.txt")

Two files (the layout of deepstream_tao_apps' ``deepstream-bodypose2d-app``, DeepStream 6.x–7.0):

``bodypose2d_pgie_config.txt`` — the nvinfer primary config (INI, section ``[property]``):

==========================  =====================================================================================
key                         value (from)
==========================  =====================================================================================
``onnx-file``               the model, relative to the config's folder
``model-engine-file``       where nvinfer caches the engine it builds (``<model>.onnx_b<batch>_gpu0_<mode>.engine``)
``infer-dims``              ``3;H;W`` (the model's fixed size, else ``-d``, else 288;384)
``network-input-order``     1 for NHWC, 0 for NCHW (contract ``input.layout``)
``model-color-format``      0 RGB, 1 BGR (contract ``input.color``)
``net-scale-factor``        1 / scale (contract normalisation x / scale − offset; one scale for all channels)
``offsets``                 offset × scale per channel (TAO: 128;128;128)
``output-blob-names``       ``<PAF output>;<heatmap output>`` (TAO's order)
``maintain-aspect-ratio``   1, ``symmetric-padding`` 1, ``scaling-filter`` 1 (DeepStream's centred letterbox,
                            bilinear — bpnet's ``letterbox`` mode)
``network-mode``            0 FP32, 1 INT8, 2 FP16
``batch-size``              ``--batch_size`` (TAO: 32)
``int8-calib-file``         ``--int8_calib_file`` (INT8 with a float ONNX file); omitted otherwise
``network-type``            100 (other), ``output-tensor-meta`` 1 (the app decodes the raw tensors)
==========================  =====================================================================================

``bodypose2d_model_config.txt`` — the app's post-processing, ``key=value`` lines as the app parses them (repeated
``jointEdges=a,b`` / ``connections=a,b`` lines, 0-based): ``numJoints`` and ``jointEdges`` from the pose config (in
PAF channel order), ``featUpsamplingFactor`` = heatmap stride / PAF stride, ``batchSize`` = ``batch-size``, and the
app's constants (:data:`DEEPSTREAM_POSTPROCESS`). ``connections`` (what the app draws) are the pose config's limbs.

Not written: ``tlt-model-key`` (only for encrypted ``.etlt`` files; bpnet writes plain ONNX). Padding differs from
bpnet's training preprocessing: DeepStream pads with black (pixel 0).
"""

from __future__ import annotations

import configparser
import os
from pathlib import Path

from bpnet_core.errors import BpnetError
from bpnet_core.export.onnx import parse_input_dims
from bpnet_core.fileio import write_text_atomic
from bpnet_core.meta import check_encrypted, read_meta

PGIE_NAME = "bodypose2d_pgie_config.txt"
MODEL_CONFIG_NAME = "bodypose2d_model_config.txt"
NETWORK_MODES = {"fp32": 0, "int8": 1, "fp16": 2}
DEFAULT_DIMS = (288, 384)
#: the bodypose2d app's post-processing constants (deepstream_tao_apps' sample model config)
DEEPSTREAM_POSTPROCESS = {"nmsWindowSize": 7, "featUpsamplingFactor": 4, "threshHeat": 0.05,
                          "threshVectorScore": 0.05, "threshVectorCnt1": 8, "threshPartCnt": 4,
                          "threshHumanScore": 0.4}  # fmt: skip


def _fmt(v) -> str:
    return repr(float(v)).rstrip("0").rstrip(".") if isinstance(v, float) else str(v)


def _values(meta, model: Path, input_dims, batch_size: int, network_mode: str | None, int8_calib_file):
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise BpnetError(f"--batch_size must be a positive integer (got {batch_size!r})")
    heat, paf = meta.heatmaps(), meta.pafs()
    if paf.stride >= heat.stride or heat.stride % paf.stride or meta.stage().stage != meta.num_stages:
        raise BpnetError(f"{model}: not an SDK-compatible model (PAF stride {paf.stride}, heatmap stride "
                         f"{heat.stride}); export it with `bpnet export --sdk_compatible_model`")  # fmt: skip
    if heat.name == paf.name or heat.start or paf.start or heat.layout != "NHWC" or paf.layout != "NHWC":
        raise BpnetError(
            f"{model}: DeepStream's bodypose2d app needs the heatmap and the PAF as two whole NHWC outputs"
        )
    dims = parse_input_dims(input_dims) if input_dims else None
    if meta.input_hw and dims and tuple(dims) != tuple(meta.input_hw):
        raise BpnetError(f"-d/--input_dims {dims[0]},{dims[1]},3: {model} is built for "
                         f"{meta.input_hw[0]}x{meta.input_hw[1]}")  # fmt: skip
    h, w = meta.input_hw or dims or DEFAULT_DIMS
    if meta.normalization is None:
        scale, offsets = 1.0, (0.0, 0.0, 0.0)
    else:
        if len(set(meta.normalization.scale)) != 1:
            raise BpnetError(f"{model}: per-channel scales {list(meta.normalization.scale)}: nvinfer's "
                             "net-scale-factor is one number")  # fmt: skip
        scale = 1.0 / meta.normalization.scale[0]
        offsets = tuple(o * s for o, s in zip(meta.normalization.offset, meta.normalization.scale))
    mode = (network_mode or ("int8" if int8_calib_file or meta.precision == "int8" else "fp16")).lower()
    if mode not in NETWORK_MODES:
        raise BpnetError(f"--network_mode must be one of {', '.join(NETWORK_MODES)} (got {network_mode!r})")
    if int8_calib_file and mode != "int8":
        raise BpnetError(f"--int8_calib_file is for --network_mode int8 (got {mode})")
    if mode == "int8" and meta.precision != "int8" and not int8_calib_file:
        raise BpnetError(
            f"--network_mode int8: {model} is a float model; give --int8_calib_file (a TensorRT "
            "calibration cache, e.g. from `bpnet export --engine_file ... --data_type int8`)"
        )
    if int8_calib_file and not Path(int8_calib_file).is_file():
        raise BpnetError(f"{int8_calib_file}: --int8_calib_file not found")
    if mode != "int8" and meta.precision == "int8":
        raise BpnetError(f"{model}: an INT8 (QDQ) model; use --network_mode int8")
    return h, w, scale, offsets, mode


def deepstream_config(model: str | os.PathLike, output_dir: str | os.PathLike, input_dims=None, batch_size: int = 32,
                      network_mode: str | None = None, int8_calib_file: str | os.PathLike | None = None,
                      gpu_id: int = 0) -> dict:  # fmt: skip
    """Write the nvinfer primary config and the bodypose2d model config for an SDK-compatible ``model`` (``.onnx``)
    into ``output_dir``. Returns ``pgie`` / ``model_config`` (paths) and ``values`` (the pgie keys written)."""
    model, out = Path(model), Path(output_dir)
    check_encrypted(model)
    if model.suffix.lower() != ".onnx":
        raise BpnetError(f"{model}: DeepStream configs are written for an ONNX model (got {model.suffix or 'none'})")
    meta = read_meta(model)
    h, w, scale, offsets, mode = _values(meta, model, input_dims, batch_size, network_mode, int8_calib_file)
    if out.exists() and not out.is_dir():
        raise BpnetError(f"{out}: -o/--output_dir is a file")
    heat, paf = meta.heatmaps(), meta.pafs()

    def rel(p) -> str:
        return os.path.relpath(Path(p).resolve(), out.resolve())

    values = {
        "gpu-id": gpu_id,
        "net-scale-factor": _fmt(scale),
        "offsets": ";".join(_fmt(o) for o in offsets),
        "model-color-format": 0 if meta.color == "RGB" else 1,
        "onnx-file": rel(model),
        "model-engine-file": rel(model) + f"_b{batch_size}_gpu{gpu_id}_{mode}.engine",
        "infer-dims": f"3;{h};{w}",
        "network-input-order": 1 if meta.layout == "NHWC" else 0,
        "batch-size": batch_size,
        "network-mode": NETWORK_MODES[mode],
        "num-detected-classes": 1,
        "interval": 0,
        "gie-unique-id": 1,
        "network-type": 100,
        "output-tensor-meta": 1,
        "output-blob-names": f"{paf.name};{heat.name}",
        "maintain-aspect-ratio": 1,
        "symmetric-padding": 1,
        "scaling-filter": 1,
    }
    if int8_calib_file:
        values["int8-calib-file"] = rel(int8_calib_file)
    cp = configparser.ConfigParser(interpolation=None)
    cp.optionxform = str
    cp["property"] = {k: str(v) for k, v in values.items()}
    lines = [f"# nvinfer primary config for {model.name} "
             "(written by bpnet deepstream_config from the model's contract)",
             f"# input {meta.input_name} {meta.layout} {meta.color}; normalisation (x - offsets) * net-scale-factor; "
             f"DeepStream letterboxes ({h}x{w}, centred, black bands)"]  # fmt: skip
    import io

    buf = io.StringIO()
    cp.write(buf)
    pgie_text = "\n".join(lines) + "\n" + buf.getvalue()

    post = {"numJoints": meta.pose.num_joints, **DEEPSTREAM_POSTPROCESS,
            "featUpsamplingFactor": heat.stride // paf.stride, "batchSize": batch_size}  # fmt: skip
    mc = [
        f"# bodypose2d post-processing for {model.name} (bpnet deepstream_config); pose config {meta.pose.name}",
        f"# jointEdges: the {meta.pose.num_limbs} limbs in PAF channel order, 0-based joints",
    ]
    mc += [f"{k}={_fmt(v)}" for k, v in post.items()]
    mc += [f"jointEdges={a},{b}" for a, b in meta.pose.limbs]
    mc += [f"connections={a},{b}" for a, b in meta.pose.limbs]
    pgie = write_text_atomic(out / PGIE_NAME, pgie_text)  # creates a missing output folder
    model_config = write_text_atomic(out / MODEL_CONFIG_NAME, "\n".join(mc) + "\n")
    return {"pgie": str(pgie), "model_config": str(model_config), "values": values, "postprocess": post,
            "network_mode": mode}  # fmt: skip


def read_model_config(path: str | os.PathLike) -> dict:
    """Parse a bodypose2d model config as the app does (``key=value`` lines; ``jointEdges`` / ``connections`` repeat
    and collect ``(a, b)`` pairs; lines without ``=`` are ignored)."""
    out: dict = {"jointEdges": [], "connections": []}
    for line in Path(path).read_text().splitlines():
        parts = line.split("=")
        if len(parts) < 2 or not parts[0] or not parts[1]:
            continue
        key, value = parts[0], parts[1]
        if key in ("jointEdges", "connections"):
            a, b = value.split(",")[:2]
            out[key].append((int(a), int(b)))
        else:
            out[key] = float(value)
    return out
