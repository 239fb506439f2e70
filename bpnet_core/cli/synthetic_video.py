"""``bpnet synthetic_video``: a synthetic clip with known identities (people walking, crossing, occluding, entering
and leaving) and its per-frame ground truth (COCO-style JSON with ``track_id``)."""

from __future__ import annotations


def add_parser(sub) -> None:
    from bpnet_core.cli import add_common

    p = sub.add_parser("synthetic_video", help="generate a synthetic video clip with ground-truth track ids",
                       description="Draw synthetic people walking across a fixed background (crossing, passing "
                       "behind a pole and each other, entering and leaving) and write the clip (cv2.VideoWriter) and "
                       "annotations.json: one image per frame, one annotation per visible person with track_id and "
                       "17 COCO keypoints.")  # fmt: skip
    p.add_argument("-o", "--output_dir", required=True, help="output directory")
    p.add_argument("--num_frames", type=int, default=90, help="frames (default 90)")
    p.add_argument(
        "--image_size",
        type=int,
        nargs=2,
        default=None,
        metavar=("H", "W"),
        help="frame height and width in pixels (default 256 256; with --from_image the photo's size)",
    )
    p.add_argument(
        "--from_image",
        default=None,
        metavar="IMAGE",
        help="instead of synthetic people: a virtual camera pans and zooms across this real photo (its "
        "people from --annotations; track_id = their annotation id)",
    )
    p.add_argument(
        "--annotations",
        default=None,
        metavar="JSON",
        help="with --from_image: the COCO person-keypoints file that lists the photo",
    )
    p.add_argument(
        "--max_zoom",
        type=float,
        default=1.4,
        help="with --from_image: the zoom at mid-clip (1 = the whole photo; default 1.4)",
    )
    p.add_argument("--fps", type=float, default=15.0, help="frames per second of the clip (default 15)")
    p.add_argument("--seed", type=int, default=0, help="random seed (looks of the people and background)")
    p.add_argument("--video_name", default="clip.avi", help="video file name: .avi (MJPG), .mp4 (mp4v) or .mkv")
    p.add_argument("--write_frames", action="store_true", help="also write frames/NNNNNN.jpg (the images' file_name)")
    add_common(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from bpnet_core.data.synthetic_video import generate_synthetic_video
    from bpnet_core.errors import BpnetError

    if args.overrides:
        raise BpnetError("synthetic_video reads no spec: --set is not accepted here")
    if (args.from_image is None) != (args.annotations is None):
        raise BpnetError("--from_image and --annotations go together (a photo and the COCO file that lists it)")
    if args.from_image is not None:
        from bpnet_core.data.pan_zoom import generate_pan_zoom_video

        if args.write_frames:
            raise BpnetError("--write_frames is for synthetic clips only (a pan/zoom clip's frames are in the video)")
        s = generate_pan_zoom_video(args.output_dir, args.from_image, args.annotations, num_frames=args.num_frames,
                                    frame_size=tuple(args.image_size) if args.image_size else None,
                                    max_zoom=args.max_zoom, fps=args.fps, video_name=args.video_name)  # fmt: skip
    else:
        s = generate_synthetic_video(args.output_dir, num_frames=args.num_frames,
                                     image_size=tuple(args.image_size or (256, 256)), fps=args.fps, seed=args.seed,
                                     video_name=args.video_name, write_frames=args.write_frames)  # fmt: skip
    print(
        f"{s['frames']} frames, {s['tracks']} people ({s['people']} person-frames) in {s['seconds']:.1f} s "
        f"→ {s['video']}, {s['annotations']}"
    )
    return 0
