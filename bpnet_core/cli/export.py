"""``bpnet export``: a model → ONNX (FP32/FP16/INT8 for ONNX Runtime), OpenVINO IR, TensorRT engines; TAO's flags."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    from bpnet_core.cli import add_common, add_key

    p = sub.add_parser(
        "export",
        help="export a model to ONNX or OpenVINO (fp32/fp16/int8) and optionally a TensorRT engine",
        description="Convert a trained .keras model to ONNX with tf2onnx, check it against Keras (max abs difference "
        "<= 1e-3 on a real-looking image), optionally convert to FP16 or quantise to INT8 with ONNX Runtime "
        "(static, QDQ, per-channel, calibrated on --cal_image_dir), and build a TensorRT engine with --engine_file "
        "where TensorRT is installed. --backend openvino writes an OpenVINO IR (.xml + .bin; INT8 with NNCF). A bpnet "
        ".onnx or .xml model (e.g. one made by bpnet import_model) exports too: calibration then follows its model "
        "contract, and INT8 must pass a parity check against FP32. Nothing is written when a check fails.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "-m", "--model", required=True, help="model: .keras, a TAO 5 .hdf5, or a bpnet .onnx / .xml (imported) model"
    )
    p.add_argument("-o", "--output_file", required=True, help="file to write: .onnx, or .xml for --backend openvino")
    p.add_argument(
        "-t",
        "--backend",
        default="onnx",
        choices=["onnx", "tfonnx", "openvino", "uff"],
        help="onnx (ONNX Runtime; tfonnx = onnx), openvino (OpenVINO IR); uff is not supported",
    )
    p.add_argument(
        "-d",
        "--input_dims",
        default=None,
        help="H,W,C to fix the input size (multiples of 8, C=3); default: dynamic H and W "
        "(calibration and engines then use TAO's 256,256,3)",
    )
    p.add_argument(
        "-i",
        "--data_format",
        default="channels_last",
        choices=["channels_last", "channels_first"],
        help="input layout of the ONNX file (outputs stay NHWC)",
    )
    p.add_argument("--data_type", default="fp32", choices=["fp32", "fp16", "int8"], help="precision")
    p.add_argument(
        "--output_stages",
        default="all",
        choices=["all", "last"],
        help="export every stage's heatmap/PAF outputs (TAO order) or only the last stage's",
    )
    p.add_argument(
        "--sdk_compatible_model",
        action="store_true",
        help="TAO's deployable layout for DeepStream's bodypose2d app: the last stage only, the PAF "
        "upsampled by a fixed nearest-neighbour transposed convolution, input input_1:0 (NHWC), outputs "
        "conv2d_transpose_1/BiasAdd:0 and heatmap_out/BiasAdd:0 (then see bpnet deepstream_config)",
    )
    p.add_argument(
        "-u",
        "--upsample_ratio",
        default="4",
        help="with --sdk_compatible_model: PAF upsampling factor (1, 2, 4 or 8; PAF stride = 8 / ratio)",
    )
    p.add_argument("--engine_file", default=None, help="also build a TensorRT engine here (needs TensorRT)")
    p.add_argument("--cal_image_dir", default=None, help="calibration images (bpnet calibration_images)")
    p.add_argument(
        "--cal_data_file",
        default=None,
        help="pre-processed calibration tensors (.npy): read if it exists, else written from the images",
    )
    p.add_argument(
        "--cal_cache_file",
        default=None,
        help="calibration cache: TensorRT's (with --engine_file; default beside the engine) or ONNX "
        "Runtime's JSON ranges; reused when it matches the model",
    )
    p.add_argument(
        "--calibration_method",
        default="minmax",
        choices=["minmax", "entropy", "percentile"],
        help="ONNX Runtime INT8 ranges: minmax keeps heatmap peaks; entropy/percentile clip rare large "
        "values (on the demo model entropy lost all AP). TensorRT always uses its entropy calibrator 2",
    )
    p.add_argument("--batches", type=int, default=10, help="calibration batches")
    p.add_argument("--batch_size", type=int, default=1, help="calibration batch size")
    p.add_argument("--max_batch_size", type=int, default=1, help="engine: largest batch")
    p.add_argument("--opt_batch_size", type=int, default=1, help="engine: batch size to optimise for")
    p.add_argument(
        "--static_batch_size",
        type=int,
        default=-1,
        help="fixed batch size of the ONNX input and the engine (-1 = dynamic); calibration then uses it "
        "as its batch size",
    )
    p.add_argument("--max_workspace_size", type=int, default=2 << 30, help="engine builder workspace (bytes)")
    p.add_argument("-s", "--strict_type_constraints", action="store_true", help="engine: obey precision constraints")
    p.add_argument(
        "--force_ptq",
        action="store_true",
        help="recalibrate even when a calibration cache exists (bpnet has no QAT models)",
    )
    p.add_argument(
        "-e",
        "--experiment_spec",
        default=None,
        help="train spec: its pose config is checked against the model and stored in the ONNX file",
    )
    add_key(p)
    add_common(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from bpnet_core.export import ExportOptions, export_model

    pose = None
    if args.experiment_spec:
        from bpnet_core.config import load_train_spec
        from bpnet_core.skeleton import PoseConfig

        spec = load_train_spec(args.experiment_spec, args.overrides)
        pose = PoseConfig.from_json(spec.dataloader.pose_config.pose_config_path)
    options = ExportOptions(
        backend=args.backend, input_dims=args.input_dims, data_format=args.data_format, data_type=args.data_type,
        engine_file=args.engine_file, cal_image_dir=args.cal_image_dir, cal_data_file=args.cal_data_file,
        cal_cache_file=args.cal_cache_file, batches=args.batches, batch_size=args.batch_size,
        max_batch_size=args.max_batch_size, opt_batch_size=args.opt_batch_size,
        static_batch_size=args.static_batch_size, max_workspace_size=args.max_workspace_size,
        strict_type_constraints=args.strict_type_constraints, force_ptq=args.force_ptq,
        output_stages=args.output_stages, calibration_method=args.calibration_method, pose=pose,
        sdk_compatible_model=args.sdk_compatible_model, upsample_ratio=args.upsample_ratio,
    )  # fmt: skip
    r = export_model(args.model, args.output_file, options)
    if "sdk" in r and "source" in r:  # an imported network in the SDK layout
        s = r["sdk"]
        print(f"SDK-compatible ONNX of {r['source']} → {r['output_file']} ({r['bytes'] / 1e6:.1f} MB; outputs "
              f"{', '.join(r['outputs'])}; PAF x{s['upsample_ratio']} → stride {s['paf_stride']}); vs the source: "
              f"max abs diff {s['max_abs_diff']:.1e}")  # fmt: skip
        return 0
    if "onnx_vs_keras" in r or "backend" in r:  # OpenVINO, or a re-exported .onnx / .xml model
        p = r["parity"]
        line = (
            f"{r['data_type']} {r['backend']} → {r['output_file']} ({r['bytes'] / 1e6:.1f} MB); vs the FP32 source: "
            f"SNR {p['snr_db']:.1f} dB, max abs diff {p['max_abs']:.2e}"
        )
        int8 = r.get("int8", {})
        if r["data_type"] == "int8":
            groups = int8.get("search", {}).get("groups_float")
            kept = len(int8.get("kept_float") or {})
            line += (f"; kept in float: {kept} nodes"
                     + (f" in {len(groups)} layer groups ({', '.join(groups)})" if groups else "")
                     if kept else "; everything in INT8")  # fmt: skip
            if "agreement" in r:
                line += f"; its people vs FP32's on calibration photos: AP {r['agreement']['AP']:.2f}"
        print(line)
        return 0
    dims = "x".join(str(d) for d in r["input_dims"]) if r["input_dims"] else "dynamic HxW"
    line = (
        f"{r['data_type']} ONNX ({dims}, {len(r['outputs'])} outputs, {r['bytes'] / 1e6:.1f} MB) → "
        f"{r['output_file']}; ONNX vs Keras max abs diff {r['parity']['max_abs_diff']:.2e}"
    )
    if "sdk" in r:
        s = r["sdk"]
        line += (
            f"; SDK-compatible (PAF x{s['upsample_ratio']} → stride {s['paf_stride']}), vs the normal export: "
            f"max abs diff {s['max_abs_diff']:.1e}"
        )
    if "deployed_vs_keras" in r:
        line += f", {r['data_type']} vs Keras {r['deployed_vs_keras']['max_abs_diff']:.2e}"
    cal = r.get("calibration", {})
    if cal.get("skipped_images"):
        line += f"; {len(cal['skipped_images'])} broken calibration image(s) skipped"
    if "engine" in r:
        line += f"; engine → {r['engine']['engine_file']}"
    print(line)
    return 0
