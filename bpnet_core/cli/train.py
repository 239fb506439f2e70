"""``bpnet train``: train or resume a BodyPoseNet model from a TAO train spec."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    from bpnet_core.cli import add_common, add_key

    p = sub.add_parser(
        "train",
        help="train (or resume) a model from a train spec",
        description="Train a BodyPoseNet model as the train spec describes. Re-running the same command resumes "
        "from the newest readable checkpoint in RESULTS_DIR/checkpoints. Writes params.yaml, checkpoints/, "
        "logs/ (TensorBoard), status.json and <final_model_name>.keras. Models are stored unencrypted: -k/--key "
        "is accepted for TAO compatibility and ignored.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("-e", "--experiment_spec_file", required=True, help="train spec (.yaml), e.g. "
                   "specs/bpnet_train_m1_demo.yaml")  # fmt: skip
    p.add_argument("-r", "--results_dir", default=None, help="output folder (default: the spec's checkpoint_dir)")
    add_key(p)
    p.add_argument(
        "--gpus",
        type=int,
        default=None,
        help="use at most this many local devices (default: all; "
        "ignored when TF_CONFIG describes a cluster of several machines)",
    )
    p.add_argument(
        "--scale_lr",
        action="store_true",
        help="multiply the learning rate by the number of devices (of all workers when TF_CONFIG describes a cluster)",
    )
    p.add_argument("--mixed_precision", action="store_true", help="train in mixed_float16 (GPU only)")
    p.add_argument("--max_steps", type=int, default=None, help="stop after this many steps in total (smoke tests)")
    p.add_argument("--no_progress", action="store_true", help="no progress bar (log a line every log_every_n_secs)")
    add_common(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import logging

    from bpnet_core.train import train

    logging.getLogger("absl").setLevel(logging.WARNING)  # TF's checkpoint writer logs every save at INFO

    s = train(
        args.experiment_spec_file, args.results_dir, args.overrides, progress=not args.no_progress,
        max_steps=args.max_steps, num_devices=args.gpus, scale_lr=args.scale_lr,
        mixed_precision=args.mixed_precision,
    )  # fmt: skip
    resumed = f", resumed from epoch {s['resumed_from_epoch']}" if s["resumed_from_epoch"] is not None else ""
    where = f"{s['replicas']} device(s)" + (f" of {s['workers']} workers" if s.get("workers", 1) > 1 else "")
    output = s["final_model"] if s.get("chief", True) else "the chief writes the outputs"
    print(
        f"{s['status']}: epoch {s['epoch']}/{s['num_epoch']}, step {s['step']}{resumed}, loss {s['loss']:.5g}, "
        f"{s['images_per_second']:.1f} img/s on {where} → {output}"
    )
    return 0
