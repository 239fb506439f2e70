"""Decoder speed: median milliseconds per image for synthetic crowds, TAO's 368×432 input (46×54 maps, stride 8).

Crowds are built from the real people of the COCO sample fixture (18-joint, people with ≥ 10 joints): each one is
normalised by its box, scaled to a random height and placed at a random position, then label maps are rendered
(``targets.render_labels``, σ = 7, stride 8) and mildly noised (Gaussian, σ = 0.01, on heatmaps and PAFs). The
timing covers the whole :func:`bpnet_core.decode.decode` call (input checks, peak finding with upsampling, line
integrals, grouping).

    .venv/bin/python -m bench.bench_decode [--repeats 30] [--out runs/bench/decode.json]
    (or: bpnet bench --only decode)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
from pathlib import Path

import numpy as np

from bpnet_core.costs import time_calls
from bpnet_core.data.coco import COCO_KEYPOINTS, dataset_to_pose
from bpnet_core.data.targets import render_labels
from bpnet_core.decode import DecodeParams, decode
from bpnet_core.paths import PROJECT_ROOT as ROOT
from bpnet_core.skeleton import PoseConfig, default_pose_config_path
from bpnet_core.tables import format_table

SAMPLE_JSON = ROOT / "tests" / "fixtures" / "coco_sample" / "person_keypoints_val2017_sample.json"
INPUT_SHAPE = (368, 432)
STRIDE = 8
SIGMA = 7.0


def person_templates(pose: PoseConfig, min_joints: int = 10) -> list[np.ndarray]:
    """Sample people (J, 3) normalised to a box of height 1 with the box's top-left at the origin."""
    data = json.loads(SAMPLE_JSON.read_text())
    out = []
    for ann in data["annotations"]:
        if ann.get("iscrowd") or ann["num_keypoints"] <= 0:
            continue
        kp = dataset_to_pose(np.asarray(ann["keypoints"], np.float32).reshape(1, -1, 3), COCO_KEYPOINTS, pose)[0]
        vis = kp[:, 2] > 0
        if vis.sum() < min_joints:
            continue
        lo, hi = kp[vis, :2].min(0), kp[vis, :2].max(0)
        height = max(hi[1] - lo[1], 1.0)
        kp[vis, :2] = (kp[vis, :2] - lo) / height
        out.append(kp)
    return out


def synthetic_crowd(
    num_people: int, pose: PoseConfig, rng: np.random.Generator, input_shape: tuple[int, int] = INPUT_SHAPE
) -> np.ndarray:
    """(P, J, 3) keypoints of ``num_people`` sample people placed at random in ``input_shape`` = (H, W)."""
    templates = person_templates(pose)
    h, w = input_shape
    people = []
    # bigger crowds → smaller people (fill the frame roughly like a real crowd shot)
    top = 0.8 * h if num_people <= 1 else max(0.25 * h, 0.9 * h / np.sqrt(num_people))
    for _ in range(num_people):
        kp = templates[rng.integers(len(templates))].copy()
        vis = kp[:, 2] > 0
        size = rng.uniform(0.6, 1.0) * top
        span = kp[vis, :2].max(0) * size
        ox = rng.uniform(0, max(w - span[0], 1.0))
        oy = rng.uniform(0, max(h - span[1], 1.0))
        kp[vis, :2] = kp[vis, :2] * size + (ox, oy)
        kp[~vis] = 0.0
        people.append(kp)
    return np.stack(people).astype(np.float32)


def make_maps(num_people: int, pose: PoseConfig, seed: int = 0, noise: float = 0.01):
    rng = np.random.default_rng(seed)
    kp = synthetic_crowd(num_people, pose, rng)
    hm, pf = render_labels(kp, pose, INPUT_SHAPE, STRIDE, SIGMA)
    hm = hm + rng.normal(0, noise, hm.shape).astype(np.float32)
    pf = pf + rng.normal(0, noise, pf.shape).astype(np.float32)
    return kp, hm, pf


def bench_decode(people_counts=(1, 5, 10, 30), repeats: int = 30, upsampling=(8, 1), seed: int = 0) -> dict:
    """Median / p90 ms of ``decode`` per crowd size and upsampling factor (repeats interleaved across cases)."""
    pose = PoseConfig.from_json(default_pose_config_path())
    cases = []
    for n in people_counts:
        kp, hm, pf = make_maps(n, pose, seed=seed + n)
        for f in upsampling:
            cases.append(
                {
                    "people": n,
                    "upsampling": f,
                    "maps": (hm, pf),
                    "params": DecodeParams(upsampling_factor=f),
                    "times": [],
                }
            )
    for case in cases:  # warm-up, and the decoded count
        case["decoded"] = len(decode(*case["maps"], pose, case["params"], stride=STRIDE))
    calls = {i: (lambda c=case: decode(*c["maps"], pose, c["params"], stride=STRIDE)) for i, case in enumerate(cases)}
    times = time_calls(calls, warmup=0, repeats=repeats)  # interleaved: background load spreads over all cases alike
    for i, case in enumerate(cases):
        case["times"] = times[i]
    rows = []
    for case in cases:
        t = sorted(case["times"])
        rows.append(
            {
                "people": case["people"],
                "upsampling": case["upsampling"],
                "decoded": case["decoded"],
                "median_ms": round(statistics.median(t), 3),
                "p90_ms": round(t[int(0.9 * (len(t) - 1))], 3),
                "min_ms": round(t[0], 3),
            }
        )
    return {
        "input_shape": list(INPUT_SHAPE),
        "map_shape": [INPUT_SHAPE[0] // STRIDE, INPUT_SHAPE[1] // STRIDE],
        "stride": STRIDE,
        "repeats": repeats,
        "noise_sigma": 0.01,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "results": rows,
    }


def markdown_table(report: dict) -> str:
    ups = sorted({r["upsampling"] for r in report["results"]}, reverse=True)
    counts = sorted({r["people"] for r in report["results"]})
    cell = {(r["people"], r["upsampling"]): r for r in report["results"]}
    header = ["people", *(f"×{f} median ms (p90)" for f in ups), f"decoded (×{ups[0]})"]
    rows = [[n, *(f"{cell[n, f]['median_ms']:.1f} ({cell[n, f]['p90_ms']:.1f})" for f in ups),
             cell[n, ups[0]]["decoded"]] for n in counts]  # fmt: skip
    return format_table(header, rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--people", type=int, nargs="+", default=[1, 5, 10, 30])
    ap.add_argument("--upsampling", type=int, nargs="+", default=[8, 1])
    ap.add_argument("--out", default="runs/bench/decode.json")
    args = ap.parse_args(argv)
    report = bench_decode(tuple(args.people), args.repeats, tuple(args.upsampling))
    print(markdown_table(report))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=out.parent, delete=False, suffix=".tmp") as tmp:
        json.dump(report, tmp, indent=2)
    os.replace(tmp.name, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
