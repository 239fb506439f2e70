"""``bpnet bench``: measure decode, data, training and inference speed on this machine."""

from __future__ import annotations


def add_parser(sub) -> None:
    from bpnet_core.cli import add_common

    p = sub.add_parser("bench", help="measure speed on this machine (bench.json + bench.md + plots)",
                       description="Benchmarks (not tests): decoder ms vs people, data throughput, training and "
                       "inference speed. Medians after warm-up; ratios from the same run.")  # fmt: skip
    p.add_argument("-o", "--output_dir", default="runs/bench")
    p.add_argument(
        "--only",
        nargs="+",
        default=None,
        help="parts: decode data train inference real video pruning real_pruning int8 (on request only: pruning, "
        "the demo chain for 3 seeds, ~1 h; real_pruning, the real networks pruned and retrained by distillation per "
        "seed, ~2 h; int8, FP32 / post-training / accuracy-controlled / QAT INT8 of both real networks, ~1 h)",
    )
    p.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run, not for reporting)")
    add_common(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from bpnet_core.benchmarks import markdown, run_bench

    report = run_bench(args.output_dir, args.only, args.quick)
    print(markdown(report))
    print(f"→ {args.output_dir}/bench.json, bench.md")
    return 0
