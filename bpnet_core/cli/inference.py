"""``bpnet inference``: run a model and the decoder over images (TAO flags)."""

from __future__ import annotations


def add_parser(sub) -> None:
    from bpnet_core.cli import add_common, add_key, add_model_flags

    p = sub.add_parser("inference", help="detect poses in an image, a directory or a COCO json of images",
                       description="Run a model (.keras, TAO 5 .hdf5, .onnx, .xml or .engine) and the PAF decoder "
                       "over images; writes "
                       "detections.json (TAO layout) and, with --dump_visualizations, images_annotated/.")  # fmt: skip
    add_model_flags(p)
    p.add_argument("--input_type", default="image", choices=["image", "dir", "json", "video"])
    p.add_argument("--input", required=True, help="an image, a directory of images, a COCO annotation json, or for "
                   "--input_type video a video file, a camera index (0) or a stream URL")  # fmt: skip
    p.add_argument("--max_frames", type=int, default=None, help="video: stop after this many processed frames")
    p.add_argument("--stride_frames", type=int, default=1, help="video: process every K-th frame (default 1)")
    p.add_argument("--image_root_path", default=None, help="image folder for --input_type json")
    p.add_argument("-r", "--results_dir", required=True)
    p.add_argument(
        "--dump_visualizations",
        action="store_true",
        help="write images_annotated/<idx>.png (video: annotated.avi, colour per track id)",
    )
    p.add_argument(
        "--dump_openpose_json",
        action="store_true",
        help="also write OpenPose-style per-image JSON (video: per frame, person_id = track id)",
    )
    add_key(p)
    add_common(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from bpnet_core.cli import predictor_from_args
    from bpnet_core.infer.inference import list_inputs, run_inference

    if args.input_type == "video":
        return _run_video(args)
    predictor = predictor_from_args(args, lambda: list_inputs(args.input_type, args.input, args.image_root_path))
    s = run_inference(None, predictor, args.input_type, args.input, args.results_dir, args.image_root_path,
                      args.dump_visualizations, args.dump_openpose_json)  # fmt: skip
    print(f"{s['people']} people in {s['processed']}/{s['images']} images ({len(s['skipped'])} skipped); "
          f"network {s['network_ms_median'] or 0:.1f} ms, decode {s['decode_ms_median'] or 0:.1f} ms "
          "per image (median) "
          f"→ {s['results_dir']}/detections.json")  # fmt: skip
    return 0


def _run_video(args) -> int:
    from bpnet_core.cli import predictor_from_args
    from bpnet_core.infer.video import check_video_args, open_video, run_video_inference

    opened = {}

    def check():
        check_video_args(args.max_frames, args.stride_frames)
        opened["src"] = open_video(args.input)

    try:
        predictor = predictor_from_args(args, check)
    except BaseException:
        if "src" in opened:
            opened["src"].release()
        raise
    s = run_video_inference(predictor, opened["src"], args.results_dir, max_frames=args.max_frames,
                            stride_frames=args.stride_frames, dump_visualizations=args.dump_visualizations,
                            dump_openpose_json=args.dump_openpose_json)  # fmt: skip
    fps = s["frames_per_second"] or 0.0
    print(
        f"{s['people']} people, {s['tracks']} tracks in {s['frames']} frames ({fps:.1f} frames/s; "
        f"{s['stopped']}) → {s['results_dir']}/detections.json"
    )
    return 0
