"""``train``: the training loop of ``bpnet train`` (TAO's ``BpNetTrainer``), resumable after a crash.

What one call does::

    spec (+ overrides) → pose config check → tf.distribute strategy → tf.data per epoch
      → model (new, pretrained weights, or the whole .keras graph) → optimiser + LR schedule
      → restore RESULTS_DIR/checkpoints (latest readable one) → epochs → final model

Outputs under ``results_dir``:

==================================  =================================================================================
``params.yaml``                     the resolved spec (defaults → file → overrides), written before training
``checkpoints/ckpt-<epoch>.*``      ``tf.train.Checkpoint`` of model, optimiser (incl. step) and epoch, every
                                    ``checkpoint_n_epoch`` epochs; ``max_ckpt_to_keep`` are kept
``logs/train``, ``logs/val``        TensorBoard: loss per stage and branch, regularisation, learning rate, images
                                    (input | label / predicted heatmaps | label / predicted PAFs)
``status.json``                     after every epoch: epoch, step, loss, lr, seconds, images_per_second, history
``<final_model_name>.keras``        the trained model (written to a temporary name, then renamed)
==================================  =================================================================================

Resuming: run the same command again. The newest checkpoint that can be read is restored (a corrupt newest one is
skipped with a warning; if none can be read training stops with an error instead of silently starting over), and
training continues at the next epoch with the restored step counter, hence the same learning rate, and the same
data: the sample order and augmentation of epoch ``e`` depend only on ``(random_seed, e)``.
Checkpoint files are written by TensorFlow under temporary names and the ``checkpoint`` index is replaced
atomically, so a crash while saving leaves the previous checkpoint intact.

Loss scaling across devices: each replica's loss is ``Σ terms / global_batch + regularisation / replicas`` and the
gradients are summed across replicas (Keras' optimiser all-reduces), so the update equals TAO's Horovod average.
``dataloader.batch_size`` is per device, as in TAO; ``scale_lr=True`` multiplies the learning rates by the number
of devices (the linear scaling rule TAO's notebook recommends).

Several machines (``TF_CONFIG`` set: ``MultiWorkerMirroredStrategy``): "devices" are all replicas of all workers, so
the global batch is ``batch_size x replicas in the cluster`` and ``scale_lr`` multiplies by that replica count. Every
worker reads the whole record list in the same order (the spec's paths must exist on every machine) and
``tf.distribute`` gives each replica its slice of every global batch (auto-sharding by data), so two workers compute
exactly what one process with two devices computes. The chief (the ``chief`` task, else ``worker`` 0) alone reads
and writes ``results_dir``: it restores the checkpoint and writes params.yaml, checkpoints, TensorBoard logs,
status.json and the final model. At the start every other worker takes the chief's variables (model, optimiser,
epoch), so resuming needs no shared file system, and all workers stop with the same error if their sample count,
batch, epochs or seed differ. The other workers save their checkpoints into a temporary folder removed at the end
(TF's multi-worker rule: every worker takes part in saving) and never create or touch their ``results_dir``.
"""

from __future__ import annotations

import glob
import json
import logging
import math
import os
import re
import tempfile
import time
from pathlib import Path

from bpnet_core.errors import BpnetError
from bpnet_core.fileio import read_json, write_json_atomic

log = logging.getLogger(__name__)

CHECKPOINT_SUBDIR = "checkpoints"
CHECKPOINT_NAME = "ckpt"
PARAMS_FILE = "params.yaml"
STATUS_FILE = "status.json"


# ---------------------------------------------------------------------------------------------------- setup helpers


def load_spec(spec, overrides=()):
    """A :class:`~bpnet_core.config.TrainSpec` from a path or a loaded spec, with ``overrides`` applied
    (:func:`bpnet_core.config.as_train_spec`)."""
    from bpnet_core.config import as_train_spec

    return as_train_spec(spec, overrides)


def prepare_results_dir(path) -> Path:
    """Create ``path`` if needed and check that files can be written there (one-line error if not)."""
    path = Path(path).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BpnetError(f"{path}: results directory cannot be created ({exc.strerror or exc})") from None
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise BpnetError(f"{path}: results directory is not writable ({exc.strerror or exc})") from None
    return path


def choose_strategy(num_devices: int | None = None):
    """``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` is set; ``MirroredStrategy`` over the local GPUs (or
    logical CPUs) when there are several; else the default single-device strategy. ``num_devices`` limits the
    local devices used (the TAO launcher's ``--gpus``)."""
    import tensorflow as tf

    if os.environ.get("TF_CONFIG"):
        return tf.distribute.MultiWorkerMirroredStrategy()
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    if num_devices is not None:
        if num_devices < 1:
            raise BpnetError(f"--gpus must be >= 1 (got {num_devices})")
        if num_devices > len(devices):
            raise BpnetError(f"--gpus {num_devices} but only {len(devices)} device(s) are visible")
        devices = devices[:num_devices]
    if len(devices) > 1:
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    return tf.distribute.get_strategy()


def gpu_available() -> bool:
    """True when TensorFlow sees a GPU (mixed precision is only worth it there)."""
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))


def tf_config_is_chief() -> bool:
    """Whether this process writes the outputs, from ``TF_CONFIG`` alone (before a strategy exists): no
    ``TF_CONFIG``, the ``chief`` task, or ``worker`` 0 of a cluster without a ``chief``."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return True
    try:
        cfg = json.loads(raw)
        cluster, task = cfg.get("cluster") or {}, cfg.get("task") or {}
        task_type, index = task.get("type"), int(task.get("index", 0))
    except (ValueError, TypeError, AttributeError) as exc:
        raise BpnetError(f"TF_CONFIG is not a valid cluster description ({exc})") from None
    if not cluster:
        return True
    return task_type == "chief" or (task_type == "worker" and index == 0 and "chief" not in cluster)


def _is_chief(strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return True
    cluster = resolver.cluster_spec().as_dict()
    if not cluster:
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        return True
    return task_type == "worker" and task_id == 0 and "chief" not in cluster


def checkpoint_prefixes(ckpt_dir: Path) -> list[Path]:
    """Checkpoint prefixes in ``ckpt_dir`` (``ckpt-<n>``), newest (highest n) first."""
    found = []
    for index in glob.glob(str(Path(ckpt_dir) / f"{CHECKPOINT_NAME}-*.index")):
        m = re.search(rf"{CHECKPOINT_NAME}-(\d+)\.index$", index)
        if m:
            found.append((int(m.group(1)), Path(index[: -len(".index")])))
    return [p for _, p in sorted(found, reverse=True)]


def restore_latest(checkpoint, ckpt_dir: Path) -> Path | None:
    """Restore the newest readable checkpoint of ``ckpt_dir`` into ``checkpoint``; ``None`` when there is none.

    A checkpoint that cannot be read (truncated, corrupt, another architecture) is skipped with a warning and the
    previous one is tried; when every checkpoint fails, :class:`BpnetError` (never a silent fresh start).
    """
    candidates = checkpoint_prefixes(ckpt_dir)
    last_error = ""
    for n, prefix in enumerate(candidates):
        try:
            status = checkpoint.restore(str(prefix))
            status.assert_existing_objects_matched()
        except Exception as exc:  # noqa: BLE001 - corruption shows as OpError, IndexError, ValueError, ...
            last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
            log.warning("checkpoint %s cannot be restored (%s)%s", prefix, last_error,
                        "; falling back to the previous one" if n + 1 < len(candidates) else "")  # fmt: skip
            continue
        if n:
            log.warning("resumed from %s: the %d newer checkpoint(s) could not be read", prefix, n)
        return prefix
    if candidates:
        raise BpnetError(
            f"{ckpt_dir}: none of the {len(candidates)} checkpoints can be restored (last error: {last_error}); "
            "if the spec changed since they were written, use another results directory, or delete the folder to "
            "start over"
        )
    return None


def _finetune_init(model, fc) -> None:
    """``finetuning_config.is_finetune_exp``: start from the model weights of another run's checkpoint."""
    import tensorflow as tf

    src = Path(fc.checkpoint_path)
    if src.is_dir():
        prefixes = checkpoint_prefixes(src)
        if fc.ckpt_epoch_num:
            prefixes = [p for p in prefixes if p.name == f"{CHECKPOINT_NAME}-{fc.ckpt_epoch_num}"]
        if not prefixes:
            raise BpnetError(f"finetuning_config.checkpoint_path: no usable checkpoint in {src}")
        src = prefixes[0]
    try:
        tf.train.Checkpoint(model=model).restore(str(src)).expect_partial()
    except (tf.errors.OpError, ValueError) as exc:
        raise BpnetError(f"finetuning_config.checkpoint_path: {src} cannot be restored ({exc})") from None
    log.info("fine-tuning from the model weights of %s", src)


# ---------------------------------------------------------------------------------------------------- TensorBoard


def _metadata(plugin: str):
    from tensorflow.core.framework import summary_pb2

    md = summary_pb2.SummaryMetadata()
    md.plugin_data.plugin_name = plugin
    return md


def tb_scalar(tag: str, value: float) -> None:
    """A TensorBoard scalar in the default writer. Written with ``tf.summary.write`` and the ``scalars`` plugin
    tag, so the ``tensorboard`` package is needed only to view the logs, not to write them."""
    import tensorflow as tf

    tf.summary.write(tag, tf.constant(float(value), tf.float32), metadata=_metadata("scalars"))


def tb_image(tag: str, image_rgb) -> None:
    """A TensorBoard image (uint8 RGB, H×W×3) in the default writer (``images`` plugin format: width, height, PNG)."""
    import cv2
    import numpy as np
    import tensorflow as tf

    img = np.asarray(image_rgb, np.uint8)
    ok, png = cv2.imencode(".png", np.ascontiguousarray(img[:, :, ::-1]))
    tensor = tf.constant([str(img.shape[1]).encode(), str(img.shape[0]).encode(), png.tobytes()])
    tf.summary.write(tag, tensor, metadata=_metadata("images"))


# ---------------------------------------------------------------------------------------------------- pictures


def prediction_panel(image, heat_label, heat_pred, paf_label, paf_pred, scale, offset):
    """One RGB picture: input | label heatmaps | predicted heatmaps | label PAFs | predicted PAFs (uint8)."""
    import numpy as np

    from bpnet_core.viz.draw import grid, overlay_map, overlay_pafs, to_rgb

    rgb = np.clip((np.asarray(image) + np.asarray(offset)) * np.asarray(scale), 0, 255).astype(np.uint8)
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    tiles = [
        bgr,
        overlay_map(bgr, np.max(heat_label[:, :, :-1], axis=2)),
        overlay_map(bgr, np.clip(np.max(heat_pred[:, :, :-1], axis=2), 0, 1)),
        overlay_pafs(bgr, paf_label),
        overlay_pafs(bgr, np.clip(paf_pred, -1, 1)),
    ]
    titles = ["input", "heat label", "heat pred", "PAF label", "PAF pred"]
    return to_rgb(grid(tiles, cols=5, titles=titles))


# ---------------------------------------------------------------------------------------------------- training


def train(
    spec,
    results_dir=None,
    overrides=(),
    pose=None,
    progress: bool = True,
    max_steps: int | None = None,
    *,
    num_devices: int | None = None,
    scale_lr: bool = False,
    mixed_precision: bool = False,
) -> dict:
    """Train (or resume training) a BodyPoseNet model as a train spec describes.

    Args:
        spec: a train spec file (``specs/bpnet_train_m1_demo.yaml``) or a loaded ``TrainSpec``.
        results_dir: output folder (TAO's ``-r``; default: the spec's ``checkpoint_dir``).
        overrides: ``["a.b=c", …]`` or ``{"a.b": c}`` applied to the spec (the CLI's ``--set``).
        pose: the :class:`~bpnet_core.skeleton.PoseConfig` (default: ``dataloader.pose_config.pose_config_path``).
        progress: show a tqdm progress bar.
        max_steps: stop after this many optimiser steps in total (counting resumed ones), e.g. for smoke tests.
            The learning-rate schedule still spans ``num_epoch``; a checkpoint is only written at epoch ends.
        num_devices: use at most this many local devices (TAO launcher's ``--gpus``).
        scale_lr: multiply the learning rates by the number of devices (linear scaling rule).
        mixed_precision: train in ``mixed_float16`` (GPUs only; ignored with a warning on CPU).

    Returns:
        A summary dict: ``status`` ("finished" or "stopped"), ``final_model``, ``checkpoint``, ``epoch``,
        ``num_epoch``, ``step``, ``steps_per_epoch``, ``resumed_from_epoch``, ``loss``, ``loss_terms``, ``lr``,
        ``seconds``, ``images_per_second``, ``replicas``, ``global_batch_size``, ``results_dir``, ``params_file``,
        ``status_file``, ``log_dir``, ``chief`` (False on the other workers of a cluster, whose ``final_model`` is
        None: the chief writes every output) and ``workers``.
    """
    import keras
    import numpy as np
    import tensorflow as tf
    from tqdm.auto import tqdm

    from bpnet_core.config import dump_spec, validate_against_pose
    from bpnet_core.data.pipeline import image_folder_loader, loader_from_spec, make_dataset
    from bpnet_core.model import (
        FocalParams,
        loss_terms,
        model_from_spec,
        save_bpnet_model,
        spec_normalization,
        weighted_sum,
    )
    from bpnet_core.skeleton import PoseConfig
    from bpnet_core.train.distill import distillation_targets, load_teacher, staged_loss_terms
    from bpnet_core.train.optimizers import build_optimizer, gradient_multipliers, scale_gradients
    from bpnet_core.train.schedules import schedule_from_spec

    t_start = time.perf_counter()
    spec = load_spec(spec, overrides)
    if results_dir is None:
        if not spec.checkpoint_dir:
            raise BpnetError(f"{spec.source}: no results directory given (-r) and checkpoint_dir is not set")
        results_dir = spec.checkpoint_dir
    if max_steps is not None and (isinstance(max_steps, bool) or int(max_steps) < 1):
        raise BpnetError(f"max_steps must be a positive integer (got {max_steps!r})")
    if pose is None:
        pose = PoseConfig.from_json(spec.dataloader.pose_config.pose_config_path)
    validate_against_pose(spec, pose)
    teacher = load_teacher(spec, pose, spec_normalization(spec))  # before anything is written: bad teacher, no files
    if spec.distillation.image_folder:  # label-free distillation: images only, the teacher gives every target
        if teacher is None:
            raise BpnetError(f"{spec.source}: distillation.image_folder needs a teacher (distillation.teacher_model)")
        folder = spec.distillation.image_folder
        image_folder_loader(spec, pose, folder)  # checked before anything is written (no folder, no images)
    chief = tf_config_is_chief()  # other workers of a cluster neither create nor touch results_dir
    results = prepare_results_dir(results_dir) if chief else Path(results_dir).expanduser()

    strategy = choose_strategy(num_devices)
    replicas = int(strategy.num_replicas_in_sync)
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    if _is_chief(strategy) != chief:
        raise BpnetError("TF_CONFIG and tf.distribute disagree on which worker is the chief")
    batch = int(spec.dataloader.batch_size)
    global_batch = batch * replicas
    if spec.distillation.image_folder:
        loader = image_folder_loader(spec, pose, folder)
    else:
        loader = loader_from_spec(spec, pose, "train")
    steps_per_epoch = len(loader) // global_batch
    if steps_per_epoch < 1:
        raise BpnetError(
            f"{spec.source}: {len(loader)} training samples are fewer than one batch of {global_batch} "
            f"(dataloader.batch_size {batch} x {replicas} device(s))"
        )
    num_epoch = int(spec.num_epoch)
    ckpt_every = int(spec.checkpoint_n_epoch)

    use_mp = bool(mixed_precision)
    if use_mp and not gpu_available():
        log.warning("mixed precision needs a GPU; training in float32")
        use_mp = False

    ckpt_dir = results / CHECKPOINT_SUBDIR
    save_dir = ckpt_dir if chief else Path(tempfile.mkdtemp(prefix="bpnet-worker-ckpt-"))
    params_file = results / PARAMS_FILE
    if chief:
        ckpt_dir.mkdir(exist_ok=True)
        dump_spec(spec, params_file)

    previous_policy = keras.config.dtype_policy()
    if use_mp:
        keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        keras.utils.set_random_seed(int(spec.random_seed))
        with strategy.scope():
            model = model_from_spec(spec, pose)
            lr_scale = float(replicas) if scale_lr else 1.0
            schedule = schedule_from_spec(spec.optimizer.learning_rate_schedule, steps_per_epoch, num_epoch, lr_scale)
            optimizer = build_optimizer(spec.optimizer, schedule, use_mp)
            optimizer.build(model.trainable_variables)
            epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
            checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch_var)
        manager = tf.train.CheckpointManager(checkpoint, str(save_dir), max_to_keep=int(spec.max_ckpt_to_keep),
                                             checkpoint_name=CHECKPOINT_NAME)  # fmt: skip
        restored = restore_latest(checkpoint, ckpt_dir) if chief else None
        if chief and restored is None and spec.finetuning_config.is_finetune_exp:
            _finetune_init(model, spec.finetuning_config)
        if multi_worker:  # the others take the chief's restored (or fine-tuning) state
            facts = {"training samples": len(loader), "steps per epoch": steps_per_epoch, "num_epoch": num_epoch,
                     "global batch": global_batch, "random_seed": int(spec.random_seed)}  # fmt: skip
            sync_from_chief(strategy, [*model.weights, *optimizer.variables, epoch_var], facts)
        start_epoch = int(epoch_var.numpy())
        if not chief and start_epoch:
            restored = f"the chief's checkpoint ckpt-{start_epoch}"
        if restored is not None:
            log.info("resuming from %s (epoch %d, step %d)", restored, start_epoch, int(optimizer.iterations.numpy()))

        multipliers = gradient_multipliers(
            model, bool(spec.use_stagewise_lr_multipliers), spec.optimizer.grad_weights_dict,
            float(spec.optimizer.weight_default_value),
        )  # fmt: skip
        focal = FocalParams.from_spec(spec)
        heat_w, paf_w = float(spec.loss.heatmap_loss_weight), float(spec.loss.paf_loss_weight)
        variables = model.trainable_variables
        n_stages = len(model.outputs) // 2

        def targets(images, labels):
            """Per-stage heatmap and PAF targets: the labels, or blended with the teacher's maps."""
            if teacher is None:
                return [labels["heatmaps"]] * n_stages, [labels["pafs"]] * n_stages
            bh, bp, h, p = distillation_targets(teacher, images, labels["heatmaps"], labels["pafs"], spec.distillation)
            if spec.distillation.stages == "last":
                return [h] * (n_stages - 1) + [bh], [p] * (n_stages - 1) + [bp]
            return [bh] * n_stages, [bp] * n_stages

        def step_fn(images, labels):
            heat_t, paf_t = targets(images, labels)
            with tf.GradientTape() as tape:
                outputs = model(images, training=True)
                raw = staged_loss_terms(outputs, heat_t, paf_t, labels["mask"], focal)
                data_loss = weighted_sum(raw, heat_w, paf_w) / float(global_batch)
                reg = tf.add_n([tf.cast(x, tf.float32) for x in model.losses]) if model.losses else tf.constant(0.0)
                reg = reg / float(replicas)
                loss = data_loss + reg
                scaled = optimizer.scale_loss(loss) if use_mp else loss
            grads = scale_gradients(tape.gradient(scaled, variables), multipliers)
            optimizer.apply_gradients(zip(grads, variables))
            raw["regularization"] = reg
            return raw

        @tf.function
        def train_step(images, labels):
            per_replica = strategy.run(step_fn, args=(images, labels))
            return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in per_replica.items()}

        @tf.function(reduce_retracing=True)  # the last validation batch may be smaller
        def eval_step(images, labels):
            return loss_terms(model(images, training=False), labels["heatmaps"], labels["pafs"], labels["mask"], focal)

        val_loader = None
        if spec.validation_every_n_epoch and chief and not spec.distillation.image_folder:
            try:
                val_loader = loader_from_spec(spec, pose, "val")
            except BpnetError as exc:
                log.info("no validation data (%s); validation loss is not computed", exc)

        log_dir = results / "logs"
        writer = tf.summary.create_file_writer(str(log_dir / "train")) if chief else tf.summary.create_noop_writer()
        val_writer = tf.summary.create_file_writer(str(log_dir / "val")) if chief and val_loader else None
        status_file = results / STATUS_FILE
        history = _previous_history(status_file, start_epoch)

        step = int(optimizer.iterations.numpy())
        cfg = loader.cfg
        summary_every = int(spec.summary_every_n_steps)
        image_every = int(spec.infrequent_summary_every_n_steps)
        log_every = float(spec.log_every_n_secs)
        stopped = False
        last = {"loss": float("nan"), "terms": {}, "seconds": 0.0, "images_per_second": 0.0}
        lr_now = float(schedule(step))
        if restored is None:
            log.info("training %s: %d epochs x %d steps, %d image(s) per step on %d device(s)",
                     spec.source, num_epoch, steps_per_epoch, global_batch, replicas)  # fmt: skip

        for epoch in range(start_epoch, num_epoch):
            if max_steps is not None and step >= max_steps:
                stopped = True
                break
            t0 = time.perf_counter()
            last_log = t0
            sums: dict[str, float] = {}
            n_steps = 0
            dataset = make_dataset(loader, global_batch, epoch=epoch)
            if multi_worker:  # each replica of each worker: its slice of every global batch
                options = tf.data.Options()
                options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
                dataset = dataset.with_options(options)
            dataset = strategy.experimental_distribute_dataset(dataset)
            bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{num_epoch}", disable=not (progress and chief),
                       leave=False, dynamic_ncols=True)  # fmt: skip
            for images, labels in dataset:
                if max_steps is not None and step >= max_steps:
                    stopped = True
                    break
                out = {k: float(v) for k, v in train_step(images, labels).items()}
                terms = {k: (v if k == "regularization" else v / global_batch) for k, v in out.items()}
                total = sum(terms.values())
                if not math.isfinite(total):
                    raise BpnetError(
                        f"loss became {total} at step {step + 1} (epoch {epoch + 1}); lower the learning rate or "
                        "check the data"
                    )
                step += 1
                n_steps += 1
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + v
                sums["total"] = sums.get("total", 0.0) + total
                lr_now = float(schedule(step))
                bar.update(1)
                bar.set_postfix(loss=f"{total:.4g}", lr=f"{lr_now:.3g}")
                if chief and summary_every and step % summary_every == 0:
                    with writer.as_default(step=step):
                        tb_scalar("loss/total", total)
                        for k, v in terms.items():
                            tb_scalar(f"loss/{k}", v)
                        tb_scalar("learning_rate", lr_now)
                last_step_of_epoch = n_steps == steps_per_epoch
                if chief and ((image_every and step % image_every == 0) or (not image_every and last_step_of_epoch)):
                    _image_summary(writer, model, strategy, images, labels, cfg, step)
                now = time.perf_counter()
                if log_every and now - last_log >= log_every and not progress:
                    log.info("epoch %d step %d: loss %.5g lr %.3g (%.1f img/s)", epoch + 1, step, total, lr_now,
                             n_steps * global_batch / (now - t0))  # fmt: skip
                    last_log = now
            bar.close()
            seconds = time.perf_counter() - t0
            if n_steps:
                last = {
                    "loss": sums["total"] / n_steps,
                    "terms": {k: v / n_steps for k, v in sums.items() if k != "total"},
                    "seconds": seconds,
                    "images_per_second": n_steps * global_batch / max(seconds, 1e-9),
                }
            if stopped:
                break
            epoch_var.assign(epoch + 1)
            entry = {
                "epoch": epoch + 1,
                "step": step,
                "loss": last["loss"],
                "lr": lr_now,
                "seconds": round(seconds, 3),
                "images_per_second": round(last["images_per_second"], 2),
            }
            ckpt_path = None
            if chief:  # the epoch's entry is on disk before its checkpoint: a kill in between loses no history
                _write_status(status_file, "running", entry, num_epoch, steps_per_epoch, replicas, last,
                              history + [entry], None)  # fmt: skip
            if (epoch + 1) % ckpt_every == 0 or epoch + 1 == num_epoch:
                ckpt_path = manager.save(checkpoint_number=epoch + 1)
            val = None
            if val_loader is not None and (epoch + 1) % int(spec.validation_every_n_epoch) == 0:
                val = _validation_loss(val_loader, batch, eval_step)
                with val_writer.as_default(step=step):
                    for k, v in val.items():
                        tb_scalar(f"loss/{k}", v)
            if val is not None:
                entry["val_loss"] = val["total"]
            history.append(entry)
            if chief:
                writer.flush()
                _write_status(status_file, "running", entry, num_epoch, steps_per_epoch, replicas, last, history,
                              ckpt_path)  # fmt: skip
            log.info("epoch %d/%d: loss %.5g, lr %.3g, %.1f s, %.1f img/s%s", epoch + 1, num_epoch, last["loss"],
                     lr_now, seconds, last["images_per_second"],
                     f", val loss {val['total']:.5g}" if val else "")  # fmt: skip

        final_epoch = int(epoch_var.numpy())
        status = "finished" if final_epoch >= num_epoch else "stopped"
        final_model = results / f"{spec.final_model_name}.keras"
        if chief:
            save_bpnet_model(model, final_model, pose, spec_normalization(spec))
            writer.flush()
            entry = history[-1] if history else {"epoch": final_epoch, "step": step, "loss": last["loss"],
                                                 "lr": lr_now, "seconds": 0.0, "images_per_second": 0.0}
            entry = {**entry, "step": step}
            _write_status(status_file, status, entry, num_epoch, steps_per_epoch, replicas, last, history,
                          manager.latest_checkpoint)  # fmt: skip
        if multi_worker:  # the chief (coordination service) leaves only once every worker is done
            sync_from_chief(strategy, [], {"finished epoch": final_epoch})
    finally:
        keras.config.set_dtype_policy(previous_policy)
        if not chief:
            import shutil

            shutil.rmtree(save_dir, ignore_errors=True)

    return {
        "status": status,
        "chief": chief,
        "workers": _num_workers(strategy),
        "final_model": str(final_model) if chief else None,
        "checkpoint": manager.latest_checkpoint if chief else None,
        "epoch": final_epoch,
        "num_epoch": num_epoch,
        "step": step,
        "steps_per_epoch": steps_per_epoch,
        "resumed_from_epoch": start_epoch if restored is not None else None,
        "loss": last["loss"],
        "loss_terms": last["terms"],
        "lr": lr_now,
        "seconds": round(time.perf_counter() - t_start, 3),
        "images_per_second": last["images_per_second"],
        "replicas": replicas,
        "global_batch_size": global_batch,
        "results_dir": str(results),
        "params_file": str(params_file),
        "status_file": str(results / STATUS_FILE),
        "log_dir": str(results / "logs"),
        "num_params": int(np.sum([np.prod(v.shape) for v in model.weights])),
    }


def _num_workers(strategy) -> int:
    resolver = getattr(strategy, "cluster_resolver", None)
    cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
    return max(1, sum(len(cluster.get(kind, ())) for kind in ("chief", "worker")))


def sync_from_chief(strategy, variables, facts: dict[str, int]) -> None:
    """Start of a multi-worker run: every worker takes the chief's values of ``variables`` (the checkpoint or
    fine-tuning start that only the chief reads), and all workers stop with the same error when any of them has
    other ``facts`` (sample count, steps, batch, ...: different data or spec would hang the collectives later).

    A broadcast as a cross-replica sum to which only replica 0 (the chief's first device) contributes: exact."""
    import numpy as np
    import tensorflow as tf

    variables = list({id(v): v for v in variables}.values())
    mine = np.array(list(facts.values()), np.int64)
    SUM = tf.distribute.ReduceOp.SUM

    def from_replica0(x):
        first = tf.equal(tf.distribute.get_replica_context().replica_id_in_sync_group, 0)
        return tf.where(first, x, tf.zeros_like(x))

    @tf.function
    def broadcast():
        per_replica = strategy.run(lambda: [from_replica0(tf.convert_to_tensor(v)) for v in variables]
                                   + [from_replica0(tf.constant(mine))])  # fmt: skip
        return [strategy.reduce(SUM, x, axis=None) for x in per_replica]

    @tf.function
    def count(flag):
        return strategy.reduce(SUM, strategy.run(lambda: tf.constant(flag, tf.int64)), axis=None)

    values = broadcast()
    chief_facts = values.pop().numpy()
    differ = [f"{k} {int(a)} (chief: {int(b)})" for k, a, b in zip(facts, mine, chief_facts) if a != b]
    if int(count(int(bool(differ)))):
        raise BpnetError(
            "the workers of TF_CONFIG's cluster do not train the same thing: "
            + (", ".join(differ) if differ else "another worker has other data or spec")
            + "; give every worker the same spec and the same TFRecords"
        )
    for v, value in zip(variables, values):
        v.assign(value)


def _previous_history(status_file: Path, start_epoch: int) -> list[dict]:
    if not start_epoch or not status_file.is_file():
        return []
    try:
        old = read_json(status_file, "status file")
    except BpnetError:
        return []
    return [h for h in old.get("history", []) if isinstance(h, dict) and h.get("epoch", 0) <= start_epoch]


def _write_status(path, status, entry, num_epoch, steps_per_epoch, replicas, last, history, ckpt) -> None:
    write_json_atomic(
        path,
        {
            "status": status,
            **entry,
            "num_epoch": num_epoch,
            "steps_per_epoch": steps_per_epoch,
            "replicas": replicas,
            "loss_terms": last["terms"],
            "checkpoint": str(ckpt) if ckpt else None,
            "history": history,
        },
    )


def _validation_loss(val_loader, batch_size: int, eval_step) -> dict:
    """Mean loss terms per image over the whole validation set (no augmentation)."""
    from bpnet_core.data.pipeline import make_dataset

    sums: dict[str, float] = {}
    n = 0
    for images, labels in make_dataset(val_loader, batch_size, epoch=0, shuffle=False, drop_remainder=False):
        for k, v in eval_step(images, labels).items():
            sums[k] = sums.get(k, 0.0) + float(v)
        n += int(images.shape[0])
    out = {k: v / max(n, 1) for k, v in sums.items()}
    out["total"] = sum(out.values())
    return out


def _image_summary(writer, model, strategy, images, labels, cfg, step: int) -> None:
    """Input, label and predicted maps of the first image of the batch, as one TensorBoard image."""
    import numpy as np

    local = strategy.experimental_local_results
    img = np.asarray(local(images)[0][:1])
    heat = np.asarray(local(labels["heatmaps"])[0][0])
    paf = np.asarray(local(labels["pafs"])[0][0])
    outs = model(img, training=False)
    s = len(outs) // 2
    panel = prediction_panel(img[0], heat, np.asarray(outs[s - 1][0]), paf, np.asarray(outs[-1][0]),
                             cfg.image_scale, cfg.image_offset)  # fmt: skip
    with writer.as_default(step=step):
        tb_image("predictions", panel)
