"""TAO's learning-rate schedules as serialisable ``keras.optimizers.schedules.LearningRateSchedule`` objects.

``SoftstartAnnealingLearningRateSchedule`` (TAO's default)::

      lr
      ^      ______________  <- base_lr
      |     /              \\
      |    /                \\          progress p = step / last_step (clipped to [0, 1])
      |   /                  \\___      ramps are linear in log(lr)
      +------------------------------> step
           ^ soft_start      ^ annealing

    t  = p / soft_start                      while p < soft_start   (t = 1 when soft_start = 0)
    t  = (1 − p) / (1 − annealing)           otherwise              (t = 1 when annealing = 1)
    lr = min_lr · (base_lr / min_lr) ^ clip(t, 0, 1)

so the rate starts at ``min_lr``, reaches ``base_lr`` at ``soft_start · last_step``, stays there until
``annealing · last_step`` and is back at ``min_lr`` at ``last_step``.

``BpNetExponentialDecayLRSchedule``: ``max(lr · decay_rate ^ (step / decay_steps), min_lr)`` with
``decay_steps = decay_epochs × steps_per_epoch`` (continuous, or stepwise with ``staircase``).
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from bpnet_core.errors import BpnetError


@keras.saving.register_keras_serializable(package="bpnet")
class SoftstartAnnealingLearningRateSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Log-linear warm-up, plateau and log-linear annealing (TAO semantics; see the module docstring)."""

    def __init__(self, base_lr: float, min_lr: float, soft_start: float, annealing: float, last_step: int):
        if not 0.0 < float(min_lr) <= float(base_lr):
            raise BpnetError(f"learning rates must satisfy 0 < min_learning_rate <= base_learning_rate "
                             f"(got {min_lr}, {base_lr})")  # fmt: skip
        if not 0.0 <= float(soft_start) <= float(annealing) <= 1.0:
            raise BpnetError(f"need 0 <= soft_start <= annealing <= 1 (got {soft_start}, {annealing})")
        if int(last_step) < 1:
            raise BpnetError(f"last_step must be >= 1 (got {last_step})")
        self.base_lr = float(base_lr)
        self.min_lr = float(min_lr)
        self.soft_start = float(soft_start)
        self.annealing = float(annealing)
        self.last_step = int(last_step)

    def __call__(self, step):
        p = tf.cast(step, tf.float32) / float(self.last_step)
        p = tf.clip_by_value(p, 0.0, 1.0)
        t_soft = p / self.soft_start if self.soft_start > 0 else tf.ones_like(p)
        t_anneal = (1.0 - p) / (1.0 - self.annealing) if self.annealing < 1 else tf.ones_like(p)
        t = tf.clip_by_value(tf.where(p < self.soft_start, t_soft, t_anneal), 0.0, 1.0)
        return self.min_lr * tf.exp(t * math.log(self.base_lr / self.min_lr))

    def value(self, step: int) -> float:
        """The rate at ``step`` as a Python float (NumPy-free reference used by tests and logs)."""
        return float(self(step))

    def get_config(self) -> dict:
        return {
            "base_lr": self.base_lr,
            "min_lr": self.min_lr,
            "soft_start": self.soft_start,
            "annealing": self.annealing,
            "last_step": self.last_step,
        }


@keras.saving.register_keras_serializable(package="bpnet")
class BpNetExponentialDecayLRSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """``max(learning_rate · decay_rate ^ (step / decay_steps), min_lr)`` (TAO's exponential decay)."""

    def __init__(self, learning_rate: float, decay_steps: float, decay_rate: float, min_lr: float = 0.0,
                 staircase: bool = False):  # fmt: skip
        if float(decay_steps) <= 0:
            raise BpnetError(f"decay_steps must be > 0 (got {decay_steps})")
        if not 0.0 < float(decay_rate) <= 1.0:
            raise BpnetError(f"decay_rate must be in (0, 1] (got {decay_rate})")
        self.learning_rate = float(learning_rate)
        self.decay_steps = float(decay_steps)
        self.decay_rate = float(decay_rate)
        self.min_lr = float(min_lr)
        self.staircase = bool(staircase)

    def __call__(self, step):
        e = tf.cast(step, tf.float32) / self.decay_steps
        if self.staircase:
            e = tf.floor(e)
        lr = self.learning_rate * tf.pow(self.decay_rate, e)
        return tf.maximum(lr, self.min_lr)

    def value(self, step: int) -> float:
        return float(self(step))

    def get_config(self) -> dict:
        return {
            "learning_rate": self.learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "min_lr": self.min_lr,
            "staircase": self.staircase,
        }


def schedule_from_spec(lr_spec, steps_per_epoch: int, num_epoch: int, lr_scale: float = 1.0):
    """The schedule of ``optimizer.learning_rate_schedule``.

    ``last_step`` defaults to ``num_epoch × steps_per_epoch``; ``lr_scale`` multiplies the rates (linear scaling
    with the number of devices; the floor ``min_learning_rate`` is scaled too).
    """
    kind = getattr(lr_spec, "class_name", None) or "SoftstartAnnealingLearningRateSchedule"
    if kind == "BpNetExponentialDecayLRSchedule":
        start = lr_spec.learning_rate if lr_spec.learning_rate is not None else lr_spec.base_learning_rate
        return BpNetExponentialDecayLRSchedule(
            learning_rate=float(start) * lr_scale,
            decay_steps=float(lr_spec.decay_epochs) * max(1, steps_per_epoch),
            decay_rate=float(lr_spec.decay_rate),
            min_lr=float(lr_spec.min_learning_rate) * lr_scale,
        )
    last_step = lr_spec.last_step or max(1, num_epoch * steps_per_epoch)
    return SoftstartAnnealingLearningRateSchedule(
        base_lr=float(lr_spec.base_learning_rate) * lr_scale,
        min_lr=float(lr_spec.min_learning_rate) * lr_scale,
        soft_start=float(lr_spec.soft_start),
        annealing=float(lr_spec.annealing),
        last_step=int(last_step),
    )
