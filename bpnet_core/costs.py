"""What a model costs to hold and to run: the one parameter counter (:func:`count_params`) and the one latency loop:
:func:`time_calls` times callables **interleaved** (each round calls every one once, so a
change of machine load during the measurement affects all of them alike and their ratios stay fair); what is timed
is a runner's ``predict`` (:func:`measure_latencies`), a compiled Keras forward pass
(:func:`bpnet_core.prune.sweep.latency_ms`), a decoder or a training step (``bpnet_core.benchmarks``).

>>> lat = measure_latencies({"FP32": runner, "INT8": runner8}, (368, 368))   # {name: {median_ms, min_ms, ...}}
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np


def count_params(model) -> int:
    """All parameters of a Keras model (or layer), trainable and BN moving statistics: what Keras' ``count_params``
    and TAO's log report."""
    return int(sum(int(np.prod(v.shape)) for v in model.weights))


def time_calls(calls: dict[str, Callable[[], object]], warmup: int = 2, repeats: int = 10) -> dict[str, list[float]]:
    """Milliseconds of each of ``repeats`` calls of every ``{name: call}``, interleaved, after ``warmup`` untimed
    rounds (tracing, memory allocation). ``{name: [ms, ...]}``."""
    for _ in range(max(0, int(warmup))):
        for call in calls.values():
            call()
    times: dict[str, list[float]] = {n: [] for n in calls}
    for _ in range(max(1, int(repeats))):
        for n, call in calls.items():
            t = time.perf_counter()
            call()
            times[n].append((time.perf_counter() - t) * 1000)
    return times


def _random_batch(meta, input_hw, batch_size: int = 1, seed: int = 0) -> np.ndarray:
    """Random pixels, normalised as the model expects (latency does not depend on the content)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (batch_size, input_hw[0], input_hw[1], 3), dtype=np.uint8)
    return meta.normalize(pixels)


def measure_latency(runner, input_hw: tuple[int, int], batch_size: int = 1, warmup: int = 2, repeats: int = 10,
                    seed: int = 0) -> dict:  # fmt: skip
    """Median milliseconds per ``predict`` call (after ``warmup`` calls) on a random normalised batch."""
    return measure_latencies({"runner": runner}, input_hw, batch_size, warmup, repeats, seed)["runner"]


def measure_latencies(runners: dict, input_hw, batch_size: int = 1, warmup: int = 2, repeats: int = 10,
                      seed: int = 0) -> dict:  # fmt: skip
    """Latency of several runners (``predict`` on a random normalised batch), interleaved (:func:`time_calls`).
    ``input_hw`` is one (H, W) for all, or ``{name: (H, W)}``. Returns ``{name: {median_ms, min_ms, repeats,
    input_hw, batch_size}}``."""
    hws = {n: tuple(input_hw[n]) if isinstance(input_hw, dict) else tuple(input_hw) for n in runners}
    batches = {n: _random_batch(r.meta, hws[n], batch_size, seed) for n, r in runners.items()}
    calls = {n: (lambda r=r, b=batches[n]: r.predict(b)) for n, r in runners.items()}
    times = time_calls(calls, warmup, repeats)
    return {n: {"median_ms": statistics.median(ts), "min_ms": min(ts), "repeats": len(ts), "input_hw": list(hws[n]),
                "batch_size": batch_size} for n, ts in times.items()}  # fmt: skip
