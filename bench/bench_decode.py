"""Decoder speed per crowd size: ``python -m bench.bench_decode`` (see :mod:`bpnet_core.benchmarks.decode`)."""

from bpnet_core.benchmarks.decode import main

if __name__ == "__main__":
    raise SystemExit(main())
