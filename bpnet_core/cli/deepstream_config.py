"""``bpnet deepstream_config``: DeepStream's nvinfer + bodypose2d configs for an SDK-compatible ONNX model."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    from bpnet_core.cli import add_common

    p = sub.add_parser(
        "deepstream_config",
        help="write DeepStream's nvinfer and bodypose2d configs for an SDK-compatible model",
        description="For a model exported with `bpnet export --sdk_compatible_model` (or NVIDIA's deployable model "
        "imported with the tao_bodyposenet_deployable card), write the nvinfer primary config "
        "(bodypose2d_pgie_config.txt) and the deepstream-bodypose2d-app post-processing config "
        "(bodypose2d_model_config.txt): input size, layout, colour order, normalisation, output names, letterbox, "
        "precision, batch size, joints and limbs all come from the model's contract. Nothing is written when a "
        "check fails.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("-m", "--model", required=True, help="SDK-compatible .onnx model")
    p.add_argument("-o", "--output_dir", required=True, help="folder for the two config files")
    p.add_argument(
        "-d",
        "--input_dims",
        default=None,
        help="H,W,C for infer-dims when the model's size is dynamic (default 288,384,3)",
    )
    p.add_argument("--batch_size", type=int, default=32, help="batch-size / batchSize")
    p.add_argument(
        "--network_mode",
        default=None,
        choices=["fp32", "fp16", "int8"],
        help="TensorRT precision nvinfer builds (default: int8 with --int8_calib_file or an INT8 model, else fp16)",
    )
    p.add_argument("--int8_calib_file", default=None, help="TensorRT INT8 calibration cache (int8-calib-file)")
    p.add_argument("--gpu_id", type=int, default=0, help="gpu-id")
    add_common(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from bpnet_core.export.deepstream import deepstream_config

    r = deepstream_config(args.model, args.output_dir, input_dims=args.input_dims, batch_size=args.batch_size,
                          network_mode=args.network_mode, int8_calib_file=args.int8_calib_file,
                          gpu_id=args.gpu_id)  # fmt: skip
    v = r["values"]
    print(
        f"DeepStream configs → {r['pgie']}, {r['model_config']} (infer-dims {v['infer-dims']}, {r['network_mode']}, "
        f"batch {v['batch-size']}, output-blob-names {v['output-blob-names']})"
    )
    return 0
