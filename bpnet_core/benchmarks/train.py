"""Training speed: images per second of a training step (model + loss + optimiser update) for the demo and full
configs, and whether the input pipeline keeps up (pipeline images/s ÷ training images/s, both from the same run).

The step is timed on a fixed batch already in memory (the input pipeline is measured separately by the ``data``
part), as the median of ``repeats`` steps after warm-up (the first step traces the graph). The full TAO model at
256×256 is slow on a CPU, so it gets few repeats.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from bpnet_core.config import load_train_spec
from bpnet_core.costs import count_params, time_calls
from bpnet_core.paths import PROJECT_ROOT
from bpnet_core.skeleton import PoseConfig
from bpnet_core.tables import format_table

CONFIGS = {"demo": "specs/bpnet_train_m1_demo.yaml", "full": "specs/bpnet_train_m1_coco.yaml"}


def step_images_per_second(spec_path: str, repeats: int, warmup: int = 2) -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    from bpnet_core.model import bpnet_loss, build_model

    spec = load_train_spec(
        PROJECT_ROOT / spec_path,
        {"dataloader.pose_config.pose_config_path": str(PROJECT_ROOT / "model_pose_config" / "bpnet_18joints.json")},
    )
    pose = PoseConfig.from_json(spec.dataloader.pose_config.pose_config_path)
    keras.utils.set_random_seed(0)
    model = build_model(spec, pose)
    opt = keras.optimizers.Adam(1e-4)
    b = int(spec.dataloader.batch_size)
    h, w = spec.dataloader.image_config.image_dims.height, spec.dataloader.image_config.image_dims.width
    g = (h // spec.stride, w // spec.stride)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.uniform(-0.5, 0.5, (b, h, w, 3)).astype(np.float32))
    labels = {"heatmaps": tf.constant(rng.uniform(0, 1, (b, *g, pose.num_heatmap_channels)).astype(np.float32)),
              "pafs": tf.constant(rng.uniform(-1, 1, (b, *g, pose.num_paf_channels)).astype(np.float32)),
              "mask": tf.ones((b, *g, 1), tf.float32)}  # fmt: skip

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss, _ = bpnet_loss(
                model(x, training=True), labels, b, regularization=tf.add_n(model.losses) if model.losses else None
            )
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    med = statistics.median(time_calls({"step": lambda: float(step())}, warmup, repeats)["step"]) / 1000
    return {"input_hw": [h, w], "batch_size": b, "stages": int(spec.model.stages),
            "width_multiplier": float(spec.model.width_multiplier), "params": count_params(model),
            "step_seconds": round(med, 4), "images_per_second": round(b / med, 2), "repeats": repeats}  # fmt: skip


def run(work: Path, report: dict | None = None, quick: bool = False) -> dict:
    res = {"demo": step_images_per_second(CONFIGS["demo"], repeats=5 if quick else 20),
           "full": step_images_per_second(CONFIGS["full"], repeats=1 if quick else 3, warmup=1)}  # fmt: skip
    pipe = ((report or {}).get("parts", {}).get("data", {}) or {}).get("pipeline", {})
    for name in ("demo", "full"):
        if name in pipe:
            res[name]["pipeline_images_per_second"] = pipe[name]["images_per_second"]
            res[name]["pipeline_to_training_ratio"] = round(
                pipe[name]["images_per_second"] / res[name]["images_per_second"], 2
            )
    res["markdown"] = markdown(res)
    return res


def markdown(res: dict) -> str:
    lines = ["**Training** (one optimiser step on a batch in memory; "
             "pipeline ÷ training ≥ 1 means the input keeps up):",
             ""]  # fmt: skip
    rows = [[f"{name} ({r['stages']} stages, width ×{r['width_multiplier']})", f"{r['input_hw'][0]}×{r['input_hw'][1]}",
             r["batch_size"], f"{r['params'] / 1e6:.2f} M", f"{r['images_per_second']:.1f}",
             r.get("pipeline_images_per_second", "–"), r.get("pipeline_to_training_ratio", "–")]
            for name, r in ((n, res[n]) for n in ("demo", "full"))]  # fmt: skip
    header = ["config", "input", "batch", "params", "training images/s", "pipeline images/s", "ratio"]
    lines.append(format_table(header, rows))
    return "\n".join(lines)
