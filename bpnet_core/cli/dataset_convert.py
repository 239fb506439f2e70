"""``bpnet dataset_convert``: COCO annotations → TFRecords (+ masks), TAO flags."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    from bpnet_core.cli import add_common

    p = sub.add_parser(
        "dataset_convert",
        help="convert a COCO-format dataset to TFRecords with loss masks",
        description="Convert one split of a COCO-format keypoint dataset to TFRecords (TAO semantics) and, with "
        "--generate_masks, write loss masks for crowds and unlabelled people.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("-d", "--dataset_spec", required=True, help="dataset spec (.json or .yaml), e.g. coco_spec.json")
    p.add_argument("-o", "--output_filename", required=True, help="output prefix, e.g. DATA/train")
    p.add_argument("-m", "--mode", default="train", choices=["train", "test"], help="which split")
    p.add_argument("-p", "--num_partitions", type=int, default=1, help="number of folds")
    p.add_argument("-s", "--num_shards", type=int, default=0, help="shards per fold (0 = one file)")
    p.add_argument("--generate_masks", action="store_true", help="write loss masks (crowd and unlabelled people)")
    p.add_argument("--check_files", action="store_true", help="decode every image; skip and report broken ones")
    p.add_argument("--embed_images", action="store_true", help="store the encoded image bytes in the records too")
    p.add_argument("-r", "--results_dir", default=None, help="where summary.json goes (default: output folder)")
    p.add_argument("-j", "--workers", type=int, default=None, help="worker processes (default: all cores)")
    add_common(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from bpnet_core.config import load_dataset_spec
    from bpnet_core.data.convert import convert_dataset

    spec = load_dataset_spec(args.dataset_spec, args.overrides)
    s = convert_dataset(
        spec, args.output_filename, mode=args.mode, num_partitions=args.num_partitions, num_shards=args.num_shards,
        generate_masks=args.generate_masks, check_files=args.check_files, results_dir=args.results_dir,
        embed_images=args.embed_images, workers=args.workers,
    )  # fmt: skip
    print(
        f"{s['records']} records from {s['images']} images ({s['people']} people, {s['masks_written']} masks, "
        f"{len(s['skipped'])} skipped) in {s['seconds']:.1f} s → " + ", ".join(x["file"] for x in s["shards"])
    )
    return 0
