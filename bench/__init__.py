"""Benchmarks (plain scripts, importable as ``bench.<name>`` from the repository root)."""
