"""Synthetic-dataset speed: images per second of :func:`bpnet_core.data.synthetic.generate_synthetic_coco`.

Writes ``--num`` images (train split) at ``--size``×``--size`` into a temporary folder with ``--workers`` processes
(process start-up, JPEG encoding and the JSON write included) and prints one line; ``--out`` also saves it as JSON.

    .venv/bin/python -m bench.bench_synthetic [--num 1000] [--size 256] [--workers 2] [--out runs/bench/synthetic.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

from bpnet_core.data.synthetic import generate_synthetic_coco


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num", type=int, default=1000)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="also write the result as JSON here")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_synthetic_") as tmp:
        s = generate_synthetic_coco(Path(tmp) / "ds", num_train=args.num, num_val=0, image_size=(args.size, args.size),
                                    seed=args.seed, workers=args.workers, progress=False)  # fmt: skip
    result = {
        "images": s["images"], "size": args.size, "workers": args.workers, "seconds": s["seconds"],
        "images_per_second": s["images_per_second"], "people": s["people"], "crowd_regions": s["crowd_regions"],
        "cpu_count": os.cpu_count(), "machine": platform.processor() or platform.machine(),
    }  # fmt: skip
    print(
        f"synthetic_data: {result['images']} images at {args.size}x{args.size}, {args.workers} workers: "
        f"{result['seconds']:.1f} s = {result['images_per_second']:.1f} img/s ({result['people']} people)"
    )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
