"""What happens around the training loop, as callbacks: the ``status.json`` file, TensorBoard, checkpoints and the
validation loss. :func:`bpnet_core.train.trainer.run_epochs` calls, in list order, ``on_step`` after every optimiser
step, ``on_epoch`` at the end of an epoch (before the epoch enters the history: the status file gets the epoch, then
the checkpoint is saved, then the validation loss is added to the entry), ``after_epoch`` once it is in the history,
and ``on_train_end`` once at the end. Only the chief gets the writing callbacks (:func:`default_callbacks`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from bpnet_core.data.pipeline import make_dataset
from bpnet_core.errors import BpnetError
from bpnet_core.fileio import read_json, write_json_atomic
from bpnet_core.viz.draw import grid, overlay_map, overlay_pafs, to_rgb

log = logging.getLogger(__name__)

STATUS_FILE = "status.json"


@dataclass
class EpochEnd:
    """What the callbacks see at the end of an epoch; ``checkpoint`` and ``val`` are filled in by the callbacks."""

    epoch: int  # 1-based, the epoch just finished
    entry: dict  # the history entry of the epoch (epoch, step, loss, lr, seconds, images_per_second[, val_loss])
    last: dict  # the epoch's mean loss and terms, seconds, images per second
    history: list  # the entries of the epochs before this one
    checkpoint: str | None = None
    val: dict | None = None


@dataclass
class StepEnd:
    """What the callbacks see after an optimiser step."""

    step: int
    total: float
    terms: dict
    lr: float
    images: object
    labels: object
    last_step_of_epoch: bool


class Callback:
    """A no-op training callback; override what you need."""

    def on_step(self, state, s: StepEnd) -> None:
        pass

    def on_epoch(self, state, e: EpochEnd) -> None:
        pass

    def after_epoch(self, state, e: EpochEnd) -> None:
        pass

    def on_train_end(self, state, status: str, entry: dict, last: dict, history: list) -> None:
        pass


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


def prediction_panel(image, heat_label, heat_pred, paf_label, paf_pred, contract):
    """One RGB picture: input | label heatmaps | predicted heatmaps | label PAFs | predicted PAFs (uint8); ``image``
    is a network input, turned back into pixels by the :class:`~bpnet_core.meta.InputContract` it was made with."""
    import numpy as np

    bgr = contract.denormalize(np.asarray(image))
    tiles = [
        bgr,
        overlay_map(bgr, np.max(heat_label[:, :, :-1], axis=2)),
        overlay_map(bgr, np.clip(np.max(heat_pred[:, :, :-1], axis=2), 0, 1)),
        overlay_pafs(bgr, paf_label),
        overlay_pafs(bgr, np.clip(paf_pred, -1, 1)),
    ]
    titles = ["input", "heat label", "heat pred", "PAF label", "PAF pred"]
    return to_rgb(grid(tiles, cols=5, titles=titles))


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
                             cfg.contract)  # fmt: skip
    with writer.as_default(step=step):
        tb_image("predictions", panel)


class StatusFile(Callback):
    """``status.json`` after every epoch (written twice: before the checkpoint, so a kill in between loses no
    history, and after it with the checkpoint's path) and at the end."""

    def __init__(self, path: Path, num_epoch: int, steps_per_epoch: int, replicas: int) -> None:
        self.path = Path(path)
        self.num_epoch, self.steps_per_epoch, self.replicas = num_epoch, steps_per_epoch, replicas

    def write(self, status: str, entry: dict, last: dict, history: list, checkpoint) -> None:
        write_json_atomic(
            self.path,
            {
                "status": status,
                **entry,
                "num_epoch": self.num_epoch,
                "steps_per_epoch": self.steps_per_epoch,
                "replicas": self.replicas,
                "loss_terms": last["terms"],
                "checkpoint": str(checkpoint) if checkpoint else None,
                "history": history,
            },
        )

    def on_epoch(self, state, e: EpochEnd) -> None:
        self.write("running", e.entry, e.last, e.history + [e.entry], None)

    def after_epoch(self, state, e: EpochEnd) -> None:
        self.write("running", e.entry, e.last, e.history, e.checkpoint)

    def on_train_end(self, state, status: str, entry: dict, last: dict, history: list) -> None:
        self.write(status, entry, last, history, state.manager.latest_checkpoint)


def previous_history(status_file: Path, start_epoch: int) -> list[dict]:
    """The history entries of a resumed run's ``status.json`` up to ``start_epoch`` (empty for a fresh run)."""
    if not start_epoch or not Path(status_file).is_file():
        return []
    try:
        old = read_json(status_file, "status file")
    except BpnetError:
        return []
    return [h for h in old.get("history", []) if isinstance(h, dict) and h.get("epoch", 0) <= start_epoch]


class Checkpoints(Callback):
    """``checkpoints/ckpt-<epoch>`` every ``every`` epochs and after the last one (every worker takes part in
    saving: TensorFlow's multi-worker rule; the others write into a temporary folder)."""

    def __init__(self, every: int, num_epoch: int) -> None:
        self.every, self.num_epoch = every, num_epoch

    def on_epoch(self, state, e: EpochEnd) -> None:
        if e.epoch % self.every == 0 or e.epoch == self.num_epoch:
            e.checkpoint = state.manager.save(checkpoint_number=e.epoch)


class Validation(Callback):
    """The validation loss every ``every`` epochs: mean loss terms per image over the whole validation set (no
    augmentation), into the epoch's entry (``val_loss``) and TensorBoard's ``logs/val``."""

    def __init__(self, loader, batch_size: int, eval_step, every: int, writer) -> None:
        self.loader, self.batch_size, self.eval_step = loader, batch_size, eval_step
        self.every, self.writer = every, writer

    def loss(self) -> dict:
        sums: dict[str, float] = {}
        n = 0
        for images, labels in make_dataset(self.loader, self.batch_size, epoch=0, shuffle=False, drop_remainder=False):
            for k, v in self.eval_step(images, labels).items():
                sums[k] = sums.get(k, 0.0) + float(v)
            n += int(images.shape[0])
        out = {k: v / max(n, 1) for k, v in sums.items()}
        out["total"] = sum(out.values())
        return out

    def on_epoch(self, state, e: EpochEnd) -> None:
        if e.epoch % self.every:
            return
        e.val = self.loss()
        with self.writer.as_default(step=e.entry["step"]):
            for k, v in e.val.items():
                tb_scalar(f"loss/{k}", v)
        e.entry["val_loss"] = e.val["total"]


class TensorBoard(Callback):
    """Loss terms and learning rate every ``summary_every`` steps, and a prediction panel every ``image_every``
    steps (0: at the end of every epoch), into ``logs/train``."""

    def __init__(self, writer, summary_every: int, image_every: int, cfg) -> None:
        self.writer, self.summary_every, self.image_every, self.cfg = writer, summary_every, image_every, cfg

    def on_step(self, state, s: StepEnd) -> None:
        if self.summary_every and s.step % self.summary_every == 0:
            with self.writer.as_default(step=s.step):
                tb_scalar("loss/total", s.total)
                for k, v in s.terms.items():
                    tb_scalar(f"loss/{k}", v)
                tb_scalar("learning_rate", s.lr)
        if (self.image_every and s.step % self.image_every == 0) or (not self.image_every and s.last_step_of_epoch):
            _image_summary(self.writer, state.model, state.strategy, s.images, s.labels, self.cfg, s.step)

    def after_epoch(self, state, e: EpochEnd) -> None:
        self.writer.flush()

    def on_train_end(self, state, status: str, entry: dict, last: dict, history: list) -> None:
        self.writer.flush()
