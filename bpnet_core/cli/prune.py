"""``bpnet prune``: structured channel pruning of a trained model, TAO's flags."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    from bpnet_core.cli import add_common, add_key

    p = sub.add_parser(
        "prune",
        help="remove low-weight convolution filters (structured pruning) before retraining",
        description="Prune a trained BodyPoseNet model as TAO's `bpnet prune` does: score every conv filter by the "
        "L2 norm of its kernel, normalise per layer, keep filters above -pth (at least -nf per layer, in multiples "
        "of -pg), prune layers tied by element-wise adds, concatenations, BN and depthwise convs together (-eq), and "
        "write a smaller .keras model plus prune_report.json (parameters, FLOPs, kept filters per layer). Output "
        "layers are never pruned. Retrain the result with a spec that has load_graph: true.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("-m", "--model", required=True, help="trained model: .keras, or a TAO 5 .hdf5")
    p.add_argument("-o", "--output_file", required=True, help="pruned model to write (.keras)")
    p.add_argument("-n", "--normalizer", default="max", choices=["max", "L2"],
                   help="per-layer normalisation of the filter norms")  # fmt: skip
    p.add_argument("-eq", "--equalization_criterion", default="union",
                   choices=["union", "intersection", "arithmetic_mean", "geometric_mean"],
                   help="how layers that must keep the same channels combine their scores")  # fmt: skip
    p.add_argument("-pg", "--pruning_granularity", type=int, default=8, help="kept filters are multiples of this")
    p.add_argument("-pth", "--pruning_threshold", type=float, default=0.1,
                   help="filters whose normalised norm is above this stay (>= 0)")  # fmt: skip
    p.add_argument("-nf", "--min_num_filters", type=int, default=16,
                   help="never fewer filters per layer (a higher -pth is clamped to this, as in TAO)")  # fmt: skip
    p.add_argument("-el", "--excluded_layers", nargs="*", default=[], metavar="LAYER",
                   help="layers whose filters are kept (output layers always are)")  # fmt: skip
    p.add_argument("-r", "--results_dir", default=None,
                   help="where prune_report.json goes (default: the output file's folder)")  # fmt: skip
    p.add_argument("--input_sizes", nargs="+", default=["368x368", "256x256"], metavar="HxW",
                   help="input sizes the report gives FLOPs for (the first is the headline figure)")  # fmt: skip
    p.add_argument(
        "-c",
        "--criterion",
        default="auto",
        help="how channels are scored: weight (TAO's filter norms), activation (what each channel delivers "
        "to the layers that read it on calibration photos, removed channels' means folded into the next "
        "bias; -pth then bounds the relative change per group), auto (activation when the network has no "
        "batch-norm layers, i.e. batch norm folded as in the imported real networks; else weight)",
    )
    p.add_argument(
        "--calibration_images",
        default=None,
        metavar="DIR",
        help="activation criterion: folder of photos (default: the 80 COCO train photos shipped)",
    )
    p.add_argument("--calibration_count", type=int, default=32, help="activation criterion: photos used")
    p.add_argument("--flops_ratio", type=float, default=None, metavar="R",
                   help="activation criterion: prune at the smallest -pth that cuts the FLOPs R times")  # fmt: skip
    p.add_argument("--selection", default="energy", choices=["energy", "least_squares"],
                   help="activation criterion: order a group's channels by what each delivers alone (energy) or by "
                   "greedy least-squares elimination with the readers refitted (least_squares)")  # fmt: skip
    p.add_argument("--reconstruct", action="store_true",
                   help="activation criterion: refit every convolution after the first pruned one, in order, by "
                   "least squares to what the original computed on the calibration photos")  # fmt: skip
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="store_true", help="print the kept filters of every layer")
    add_key(p)
    add_common(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from bpnet_core.prune import REPORT_NAME, prune_and_save

    report_file = Path(args.results_dir) / REPORT_NAME if args.results_dir else None
    r = prune_and_save(
        args.model, args.output_file, report_file, pruning_threshold=args.pruning_threshold,
        normalizer=args.normalizer, equalization_criterion=args.equalization_criterion,
        pruning_granularity=args.pruning_granularity, min_num_filters=args.min_num_filters,
        excluded_layers=args.excluded_layers, flops_input_sizes=args.input_sizes, criterion=args.criterion,
        calibration_images=args.calibration_images, calibration_count=args.calibration_count,
        flops_target=args.flops_ratio, selection=args.selection, reconstruct=args.reconstruct,
        progress=not args.no_progress,
    )  # fmt: skip
    if args.verbose:
        for name, k in r["layers"].items():
            print(f"  {name:<32} {k['before']:>5} -> {k['after']:>5}")
    for note in r["notes"]:
        print(f"note: {note}")
    print(
        f"parameters {r['params_before']:,} -> {r['params_after']:,} ({r['params_ratio']:.2f}x smaller), "
        f"GFLOPs at {r['flops_input']} {r['flops_before'] / 1e9:.3g} -> {r['flops_after'] / 1e9:.3g} "
        f"({r['flops_ratio']:.2f}x) → {r['output_file']} (report {r['report_file']})"
    )
    return 0
