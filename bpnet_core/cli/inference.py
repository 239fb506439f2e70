"""``bpnet inference``: run a model and the decoder over images (TAO flags)."""

from __future__ import annotations


def add_parser(sub) -> None:
    from bpnet_core.cli import add_common, add_key, add_model_flags

    p = sub.add_parser("inference", help="detect poses in an image, a directory or a COCO json of images",
                       description="Run a model (.keras, .onnx, .xml or .engine) and the PAF decoder over images; writes "
                       "detections.json (TAO layout) and, with --dump_visualizations, images_annotated/.")  # fmt: skip
    add_model_flags(p)
    p.add_argument("--input_type", default="image", choices=["image", "dir", "json"])
    p.add_argument("--input", required=True, help="an image, a directory of images, or a COCO annotation json")
    p.add_argument("--image_root_path", default=None, help="image folder for --input_type json")
    p.add_argument("-r", "--results_dir", required=True)
    p.add_argument("--dump_visualizations", action="store_true", help="write images_annotated/<idx>.png")
    p.add_argument("--dump_openpose_json", action="store_true", help="also write OpenPose-style per-image JSON")
    add_key(p)
    add_common(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from bpnet_core.cli import predictor_from_args
    from bpnet_core.infer.inference import list_inputs, run_inference

    predictor = predictor_from_args(args, lambda: list_inputs(args.input_type, args.input, args.image_root_path))
    s = run_inference(None, predictor, args.input_type, args.input, args.results_dir, args.image_root_path,
                      args.dump_visualizations, args.dump_openpose_json)  # fmt: skip
    print(f"{s['people']} people in {s['processed']}/{s['images']} images ({len(s['skipped'])} skipped); "
          f"network {s['network_ms_median'] or 0:.1f} ms, decode {s['decode_ms_median'] or 0:.1f} ms per image (median) "
          f"→ {s['results_dir']}/detections.json")  # fmt: skip
    return 0
