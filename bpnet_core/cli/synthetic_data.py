"""``bpnet synthetic_data``: write the embedded synthetic COCO-keypoints dataset (COCO 2017 layout, no download)."""

from __future__ import annotations


def add_parser(sub) -> None:
    from bpnet_core.cli import add_common

    p = sub.add_parser("synthetic_data", help="generate a synthetic COCO-keypoints dataset (no download needed)",
                       description="Draw articulated people on cluttered backgrounds and write them in the COCO "
                       "2017 layout: train2017/, val2017/, annotations/person_keypoints_*.json and a "
                       "dataset_spec.json pointing at the output directory.")  # fmt: skip
    p.add_argument("-o", "--output_dir", required=True, help="output directory (new, empty, or an earlier output)")
    p.add_argument("--num_train", type=int, default=1000, help="images in train2017 (default 1000)")
    p.add_argument("--num_val", type=int, default=100, help="images in val2017 (default 100)")
    p.add_argument(
        "--image_size",
        type=int,
        nargs=2,
        default=[256, 256],
        metavar=("H", "W"),
        help="image height and width in pixels (default 256 256)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives identical files")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: all CPU cores)")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--difficulty",
        default="hard",
        choices=["hard", "easy"],
        help="hard: 0-6 people in any pose, small to frame-filling, clutter; easy: 1-3 large people in "
        "everyday poses, mostly facing the camera (the demo profile)",
    )
    add_common(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from bpnet_core.data.synthetic import generate_synthetic_coco
    from bpnet_core.errors import BpnetError

    if args.overrides:
        raise BpnetError("synthetic_data reads no spec: --set is not accepted here")
    s = generate_synthetic_coco(args.output_dir, num_train=args.num_train, num_val=args.num_val,
                                image_size=tuple(args.image_size), seed=args.seed, workers=args.workers,
                                progress=not args.no_progress, difficulty=args.difficulty)  # fmt: skip
    print(
        f"{s['images']} images ({s['train_images']} train, {s['val_images']} val), {s['people']} people, "
        f"{s['crowd_regions']} crowd regions in {s['seconds']:.1f} s ({s['images_per_second']:.1f} img/s) "
        f"→ {s['out_dir']}/dataset_spec.json"
    )
    return 0
