"""``bpnet calibration_images``: TAO's ``sample_calibration_images.py`` (images with at least N people)."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    from bpnet_core.cli import add_common

    p = sub.add_parser(
        "calibration_images",
        help="sample INT8 calibration images with at least -pth people",
        description="Copy up to -n images that have at least -pth annotated people (non-crowd, with keypoints) "
        "from a COCO-format dataset to an output folder, for --cal_image_dir of bpnet export.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("-a", "--annotation_file", required=True, help="COCO keypoints annotation JSON")
    p.add_argument("-i", "--image_root_dir", required=True, help="folder of the images (e.g. train2017/)")
    p.add_argument("-o", "--output_dir", required=True, help="where the sampled images are copied")
    p.add_argument("-n", "--num_images", type=int, default=500, help="number of images")
    p.add_argument("-pth", "--min_persons", type=int, default=1, help="minimum annotated persons per image")
    p.add_argument("--randomize", action="store_true", help="sample at random (else in annotation order)")
    p.add_argument("--seed", type=int, default=0, help="random seed for --randomize")
    add_common(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from bpnet_core.int8.calibration import sample_calibration_images

    s = sample_calibration_images(args.annotation_file, args.image_root_dir, args.output_dir, args.num_images,
                                  args.min_persons, args.randomize, args.seed)  # fmt: skip
    print(
        f"{s['images']} images (of {s['candidates']} with >= {args.min_persons} people, {len(s['skipped'])} "
        f"missing) → {s['output_dir']}"
    )
    return 0
