"""``train``: the training loop of ``bpnet train`` (TAO's ``BpNetTrainer``), resumable after a crash.

Seams: :func:`build_train_state` (strategy, data, model, optimiser, checkpoint restored) → :func:`make_step_functions`
(one optimiser step with :func:`bpnet_core.model.bpnet_loss`, one validation step) → :func:`run_epochs` (the epoch
loop) with the callbacks of :mod:`.callbacks` (status.json, checkpoints, validation, TensorBoard).
:mod:`.checkpoints` and :mod:`.cluster` hold the checkpoint files and the multi-worker helpers.

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
``<final_model_name>.keras``        the trained model (written to a temporary name, then renamed) with the training
                                    contract (below) and ``provenance.trained_from``
==================================  =================================================================================

The input contract (:func:`bpnet_core.config.training_contract`): when ``pretrained_weights`` is a ``.keras`` model
with a bpnet contract (trained, pruned or imported; with or without ``load_graph``), the model's contract wins —
the data pipeline feeds its colour order and normalisation, the teacher converts from it, and the final model
carries it with the source's preprocessing, recommended inference settings and provenance — because the weights
were trained on that input. A spec that explicitly sets ``dataloader.normalization_params.image_scale`` /
``image_offset`` to other values is refused before anything is written. Otherwise (from scratch, ``imagenet``, ``.h5``
or TAO ``.hdf5`` weights): RGB with the spec's normalisation. ``params.yaml`` records the normalisation trained with.

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

import logging
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bpnet_core.config import (
    as_train_spec,
    dump_spec,
    training_contract,
    validate_against_pose,
    with_contract_normalization,
)
from bpnet_core.costs import count_params
from bpnet_core.data.pipeline import image_folder_loader, loader_from_spec, make_dataset
from bpnet_core.errors import BpnetError
from bpnet_core.skeleton import PoseConfig
from bpnet_core.train.callbacks import (
    STATUS_FILE,
    Callback,
    Checkpoints,
    EpochEnd,
    StatusFile,
    StepEnd,
    TensorBoard,
    Validation,
    prediction_panel,
    previous_history,
    tb_image,
    tb_scalar,
)
from bpnet_core.train.checkpoints import (
    CHECKPOINT_NAME,
    CHECKPOINT_SUBDIR,
    checkpoint_prefixes,
    finetune_init,
    prepare_results_dir,
    restore_latest,
)
from bpnet_core.train.cluster import (
    choose_strategy,
    gpu_available,
    is_chief,
    num_workers,
    sync_from_chief,
    tf_config_is_chief,
)
from bpnet_core.train.distill import distillation_targets, load_teacher
from bpnet_core.verbosity import progress_bar

log = logging.getLogger(__name__)

PARAMS_FILE = "params.yaml"

__all__ = [
    "CHECKPOINT_NAME",
    "CHECKPOINT_SUBDIR",
    "PARAMS_FILE",
    "STATUS_FILE",
    "TrainState",
    "build_train_state",
    "checkpoint_prefixes",
    "choose_strategy",
    "gpu_available",
    "load_spec",
    "make_step_functions",
    "prediction_panel",
    "prepare_results_dir",
    "restore_latest",
    "run_epochs",
    "sync_from_chief",
    "tb_image",
    "tb_scalar",
    "tf_config_is_chief",
    "train",
]


def load_spec(spec, overrides=()):
    """A :class:`~bpnet_core.config.TrainSpec` from a path or a loaded spec, with ``overrides`` applied
    (:func:`bpnet_core.config.as_train_spec`)."""
    return as_train_spec(spec, overrides)


@dataclass
class TrainState:
    """Everything the epoch loop needs, built by :func:`build_train_state`."""

    spec: object
    pose: object
    results: Path
    chief: bool
    strategy: object
    replicas: int
    multi_worker: bool
    loader: object
    steps_per_epoch: int
    global_batch: int
    num_epoch: int
    use_mp: bool
    model: object
    schedule: object
    optimizer: object
    epoch_var: object
    checkpoint: object
    manager: object
    save_dir: Path
    start_epoch: int
    restored: object


def build_train_state(spec, pose, results_dir, chief: bool, strategy, loader, *, scale_lr=False,
                      use_mp=False) -> TrainState:  # fmt: skip
    """The results folder (chief only: ``params.yaml``, ``checkpoints/``), the model, LR schedule,
    optimiser and checkpoint, restored from the newest readable checkpoint (or the fine-tuning start); on a cluster
    every worker then takes the chief's state."""
    import keras
    import tensorflow as tf

    from bpnet_core.model import model_from_spec
    from bpnet_core.train.optimizers import build_optimizer
    from bpnet_core.train.schedules import schedule_from_spec

    results = prepare_results_dir(results_dir) if chief else Path(results_dir).expanduser()
    replicas = int(strategy.num_replicas_in_sync)
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    if is_chief(strategy) != chief:
        raise BpnetError("TF_CONFIG and tf.distribute disagree on which worker is the chief")
    batch = int(spec.dataloader.batch_size)
    global_batch = batch * replicas
    steps_per_epoch = len(loader) // global_batch
    if steps_per_epoch < 1:
        raise BpnetError(
            f"{spec.source}: {len(loader)} training samples are fewer than one batch of {global_batch} "
            f"(dataloader.batch_size {batch} x {replicas} device(s))"
        )
    num_epoch = int(spec.num_epoch)

    ckpt_dir = results / CHECKPOINT_SUBDIR
    save_dir = ckpt_dir if chief else Path(tempfile.mkdtemp(prefix="bpnet-worker-ckpt-"))
    if chief:
        ckpt_dir.mkdir(exist_ok=True)
        dump_spec(spec, results / PARAMS_FILE)

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
        finetune_init(model, spec.finetuning_config)
    if multi_worker:  # the others take the chief's restored (or fine-tuning) state
        facts = {"training samples": len(loader), "steps per epoch": steps_per_epoch, "num_epoch": num_epoch,
                 "global batch": global_batch, "random_seed": int(spec.random_seed)}  # fmt: skip
        sync_from_chief(strategy, [*model.weights, *optimizer.variables, epoch_var], facts)
    start_epoch = int(epoch_var.numpy())
    if not chief and start_epoch:
        restored = f"the chief's checkpoint ckpt-{start_epoch}"
    if restored is not None:
        log.info("resuming from %s (epoch %d, step %d)", restored, start_epoch, int(optimizer.iterations.numpy()))
    return TrainState(spec, pose, results, chief, strategy, replicas, multi_worker, loader, steps_per_epoch,
                      global_batch, num_epoch, use_mp, model, schedule, optimizer, epoch_var, checkpoint, manager,
                      save_dir, start_epoch, restored)  # fmt: skip


def make_step_functions(state: TrainState, teacher=None):
    """``(train_step, eval_step)``: one optimiser step on a global batch (per replica: :func:`bpnet_loss` over the
    global batch + regularisation / replicas, per-layer gradient multipliers, loss scaling under mixed precision;
    returns the loss terms per image summed over the replicas, ``regularization`` included), and the
    un-normalised loss terms of a validation batch."""
    import tensorflow as tf

    from bpnet_core.model import FocalParams, bpnet_loss, loss_terms
    from bpnet_core.train.optimizers import gradient_multipliers, scale_gradients

    spec, model, optimizer, strategy = state.spec, state.model, state.optimizer, state.strategy
    multipliers = gradient_multipliers(
        model, bool(spec.use_stagewise_lr_multipliers), spec.optimizer.grad_weights_dict,
        float(spec.optimizer.weight_default_value),
    )  # fmt: skip
    focal = FocalParams.from_spec(spec)
    heat_w, paf_w = float(spec.loss.heatmap_loss_weight), float(spec.loss.paf_loss_weight)
    variables = model.trainable_variables
    n_stages = len(model.outputs) // 2
    global_batch, replicas, use_mp = state.global_batch, state.replicas, state.use_mp

    def targets(images, labels):
        """The labels, or per-stage targets blended with the teacher's maps."""
        if teacher is None:
            return labels
        bh, bp, h, p = distillation_targets(teacher, images, labels["heatmaps"], labels["pafs"], spec.distillation)
        if spec.distillation.stages == "matching":  # stage t of the teacher for stage t of the student
            heat, paf = list(bh), list(bp)
        elif spec.distillation.stages == "last":
            heat, paf = [h] * (n_stages - 1) + [bh], [p] * (n_stages - 1) + [bp]
        else:
            heat, paf = [bh] * n_stages, [bp] * n_stages
        return {"heatmaps": heat, "pafs": paf, "mask": labels["mask"]}

    def step_fn(images, labels):
        target = targets(images, labels)
        with tf.GradientTape() as tape:
            outputs = model(images, training=True)
            reg = tf.add_n([tf.cast(x, tf.float32) for x in model.losses]) if model.losses else tf.constant(0.0)
            reg = reg / float(replicas)
            loss, terms = bpnet_loss(outputs, target, global_batch, focal, reg, heat_w, paf_w)
            scaled = optimizer.scale_loss(loss) if use_mp else loss
        grads = scale_gradients(tape.gradient(scaled, variables), multipliers)
        optimizer.apply_gradients(zip(grads, variables))
        return {**terms, "regularization": reg}

    @tf.function
    def train_step(images, labels):
        per_replica = strategy.run(step_fn, args=(images, labels))
        return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in per_replica.items()}

    @tf.function(reduce_retracing=True)  # the last validation batch may be smaller
    def eval_step(images, labels):
        return loss_terms(model(images, training=False), labels["heatmaps"], labels["pafs"], labels["mask"], focal)

    return train_step, eval_step


def run_epochs(state: TrainState, train_step, callbacks: list[Callback], history: list, *, progress: bool = True,
               max_steps: int | None = None) -> tuple[int, dict, float]:  # fmt: skip
    """The epoch loop from ``state.start_epoch`` to ``num_epoch`` (or ``max_steps``): a fresh ``tf.data`` pipeline
    per epoch (order and augmentation depend only on the seed and the epoch), the callbacks after every step and
    epoch. Appends to ``history``; returns ``(step, last epoch's figures, learning rate)``."""
    import tensorflow as tf

    spec, strategy, global_batch = state.spec, state.strategy, state.global_batch
    steps_per_epoch, num_epoch = state.steps_per_epoch, state.num_epoch
    log_every = float(spec.log_every_n_secs)
    step = int(state.optimizer.iterations.numpy())
    last = {"loss": float("nan"), "terms": {}, "seconds": 0.0, "images_per_second": 0.0}
    lr_now = float(state.schedule(step))
    if state.restored is None:
        log.info("training %s: %d epochs x %d steps, %d image(s) per step on %d device(s)",
                 spec.source, num_epoch, steps_per_epoch, global_batch, state.replicas)  # fmt: skip

    for epoch in range(state.start_epoch, num_epoch):
        if max_steps is not None and step >= max_steps:
            break
        stopped = False
        t0 = time.perf_counter()
        last_log = t0
        sums: dict[str, float] = {}
        n_steps = 0
        dataset = make_dataset(state.loader, global_batch, epoch=epoch)
        if state.multi_worker:  # each replica of each worker: its slice of every global batch
            options = tf.data.Options()
            options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
            dataset = dataset.with_options(options)
        dataset = strategy.experimental_distribute_dataset(dataset)
        bar = progress_bar(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{num_epoch}",
                           enabled=progress and state.chief, leave=False, dynamic_ncols=True)  # fmt: skip
        for images, labels in dataset:
            if max_steps is not None and step >= max_steps:
                stopped = True
                break
            terms = {k: float(v) for k, v in train_step(images, labels).items()}
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
            lr_now = float(state.schedule(step))
            bar.set_postfix(loss=f"{total:.4g}", lr=f"{lr_now:.3g}", refresh=False)  # shown by update's redraw
            bar.update(1)
            s = StepEnd(step, total, terms, lr_now, images, labels, n_steps == steps_per_epoch)
            for cb in callbacks:
                cb.on_step(state, s)
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
        state.epoch_var.assign(epoch + 1)
        entry = {
            "epoch": epoch + 1,
            "step": step,
            "loss": last["loss"],
            "lr": lr_now,
            "seconds": round(seconds, 3),
            "images_per_second": round(last["images_per_second"], 2),
        }
        e = EpochEnd(epoch + 1, entry, last, list(history))
        for cb in callbacks:
            cb.on_epoch(state, e)
        history.append(entry)
        e.history = history
        for cb in callbacks:
            cb.after_epoch(state, e)
        log.info("epoch %d/%d: loss %.5g, lr %.3g, %.1f s, %.1f img/s%s", epoch + 1, num_epoch, last["loss"],
                 lr_now, seconds, last["images_per_second"],
                 f", val loss {e.val['total']:.5g}" if e.val else "")  # fmt: skip
    return step, last, lr_now


def trained_provenance(spec, contract) -> dict:
    """The provenance a trained model records: the source model's (card, licence, ``pruned_from`` …) when the run
    took its contract, plus ``trained_from`` (the ``pretrained_weights`` it started from, if any)."""
    provenance = dict(contract.provenance)
    weights = Path(spec.pretrained_weights) if spec.pretrained_weights else None
    if weights is not None:  # a file: its absolute path; ImageNet weights: "imagenet"
        provenance["trained_from"] = str(weights.resolve()) if weights.exists() else weights.name
    return provenance


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
    import tensorflow as tf

    from bpnet_core.model import save_bpnet_model

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
    contract = training_contract(spec)  # before anything is written: a spec that contradicts the model, no files
    if contract.source is not None:  # params.yaml says which normalisation the run trained with
        spec = with_contract_normalization(spec, contract)
    teacher = load_teacher(spec, pose, contract)  # before anything is written: bad teacher, no files
    if spec.distillation.image_folder:  # label-free distillation: images only, the teacher gives every target
        if teacher is None:
            raise BpnetError(f"{spec.source}: distillation.image_folder needs a teacher (distillation.teacher_model)")
        image_folder_loader(spec, pose, spec.distillation.image_folder, contract)  # checked before anything is written
    chief = tf_config_is_chief()  # other workers of a cluster neither create nor touch results_dir
    strategy = choose_strategy(num_devices)  # before any other TensorFlow op: collectives are configured at start-up

    use_mp = bool(mixed_precision)
    if use_mp and not gpu_available():
        log.warning("mixed precision needs a GPU; training in float32")
        use_mp = False
    if spec.distillation.image_folder:
        loader = image_folder_loader(spec, pose, spec.distillation.image_folder, contract)
    else:
        loader = loader_from_spec(spec, pose, "train", contract=contract)

    previous_policy = keras.config.dtype_policy()
    if use_mp:
        keras.mixed_precision.set_dtype_policy("mixed_float16")
    state = None
    try:
        state = build_train_state(spec, pose, results_dir, chief, strategy, loader, scale_lr=scale_lr, use_mp=use_mp)
        results = state.results
        train_step, eval_step = make_step_functions(state, teacher)
        callbacks: list[Callback] = [Checkpoints(int(spec.checkpoint_n_epoch), state.num_epoch)]
        writer = None
        if chief:
            status_cb = StatusFile(results / STATUS_FILE, state.num_epoch, state.steps_per_epoch, state.replicas)
            writer = tf.summary.create_file_writer(str(results / "logs" / "train"))
            callbacks = [status_cb, *callbacks]
            if spec.validation_every_n_epoch and not spec.distillation.image_folder:
                try:
                    val_loader = loader_from_spec(spec, pose, "val", contract=contract)
                except BpnetError as exc:
                    log.info("no validation data (%s); validation loss is not computed", exc)
                else:
                    val_writer = tf.summary.create_file_writer(str(results / "logs" / "val"))
                    callbacks.append(Validation(val_loader, int(spec.dataloader.batch_size), eval_step,
                                                int(spec.validation_every_n_epoch), val_writer))  # fmt: skip
            callbacks.append(TensorBoard(writer, int(spec.summary_every_n_steps),
                                         int(spec.infrequent_summary_every_n_steps), loader.cfg))  # fmt: skip
        history = previous_history(results / STATUS_FILE, state.start_epoch)
        step, last, lr_now = run_epochs(state, train_step, callbacks, history, progress=progress, max_steps=max_steps)

        final_epoch = int(state.epoch_var.numpy())
        status = "finished" if final_epoch >= state.num_epoch else "stopped"
        final_model = results / f"{spec.final_model_name}.keras"
        if chief:
            save_bpnet_model(state.model, final_model, pose, provenance=trained_provenance(spec, contract),
                             **contract.meta_kwargs())  # fmt: skip
            entry = history[-1] if history else {"epoch": final_epoch, "step": step, "loss": last["loss"],
                                                 "lr": lr_now, "seconds": 0.0, "images_per_second": 0.0}  # fmt: skip
            entry = {**entry, "step": step}
            for cb in callbacks:
                cb.on_train_end(state, status, entry, last, history)
        if state.multi_worker:  # the chief (coordination service) leaves only once every worker is done
            sync_from_chief(state.strategy, [], {"finished epoch": final_epoch})
    finally:
        keras.config.set_dtype_policy(previous_policy)
        if state is not None and not chief:
            import shutil

            shutil.rmtree(state.save_dir, ignore_errors=True)

    return {
        "status": status,
        "chief": chief,
        "workers": num_workers(state.strategy),
        "final_model": str(final_model) if chief else None,
        "checkpoint": state.manager.latest_checkpoint if chief else None,
        "epoch": final_epoch,
        "num_epoch": state.num_epoch,
        "step": step,
        "steps_per_epoch": state.steps_per_epoch,
        "resumed_from_epoch": state.start_epoch if state.restored is not None else None,
        "loss": last["loss"],
        "loss_terms": last["terms"],
        "lr": lr_now,
        "seconds": round(time.perf_counter() - t_start, 3),
        "images_per_second": last["images_per_second"],
        "replicas": state.replicas,
        "global_batch_size": state.global_batch,
        "results_dir": str(results),
        "params_file": str(results / PARAMS_FILE),
        "status_file": str(results / STATUS_FILE),
        "log_dir": str(results / "logs"),
        "num_params": count_params(state.model),
    }
