"""``bpnet qat``: quantisation-aware fine-tune of a float model for INT8 (label-free distillation on photos)."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    from bpnet_core.cli import add_common

    p = sub.add_parser(
        "qat",
        help="quantisation-aware fine-tune for INT8 (then `bpnet export --data_type int8`)",
        description="Rebuild a float .keras model with fake-quant layers (per-channel INT8 weights, UINT8 "
        "activations: what ONNX Runtime, OpenVINO and TensorRT compute from a QDQ file), calibrate their ranges on "
        "photos, and fine-tune it by distillation from the float model on the photos (no labels). Writes "
        "RESULTS/qat_start.keras (before training) and RESULTS/bpnet_model.keras (the QAT model); export the latter "
        "with `bpnet export --data_type int8`. --set overrides keys of specs/bpnet_qat_real.yaml.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("-m", "--model", required=True, help="float model (.keras), e.g. from bpnet import_model or train")
    p.add_argument("-r", "--results_dir", required=True, help="where the QAT model, checkpoints and logs go")
    p.add_argument("--image_dir", required=True, help="photos with people: calibration and fine-tuning data")
    p.add_argument("--epochs", type=int, default=1, help="passes over the photos")
    p.add_argument("--max_steps", type=int, default=None, help="stop after this many steps (a short budget)")
    p.add_argument("--calibration_count", type=int, default=32, help="photos that calibrate the ranges")
    p.add_argument("--learning_rate", type=float, default=1e-5,
                   help="base learning rate (RelativeAdam: a relative change per step)")  # fmt: skip
    p.add_argument("--learn_ranges", action="store_true",
                   help="train the activation ranges too (LSQ, each range scaled as a whole; default: the calibrated "
                   "ranges stay)")  # fmt: skip
    p.add_argument("--seed", type=int, default=42, help="random seed of the data order and augmentation")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    add_common(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from bpnet_core.config.io import parse_overrides
    from bpnet_core.int8.finetune import qat_finetune

    spec_overrides = {key: value for key, _, value in parse_overrides(args.overrides)}  # --set: the QAT train spec
    r = qat_finetune(args.model, args.results_dir, args.image_dir, epochs=args.epochs,
                     calibration_count=args.calibration_count, learning_rate=args.learning_rate, seed=args.seed,
                     overrides=spec_overrides, max_steps=args.max_steps, progress=not args.no_progress,
                     learn_range=args.learn_ranges)  # fmt: skip
    prep = r["prepare"]
    print(f"QAT: {prep['quantisers']} quantised tensors ({prep['batch_norm_folded']} batch norms folded, "
          f"{prep['channels_rescaled']} convolutions' channels rescaled, {prep['calibration_photos']} calibration "
          f"photos); {r['step']} steps, loss {r['loss']:.4g} → {r['model']}")  # fmt: skip
    return 0
