"""Where training runs: the ``tf.distribute`` strategy, which process is the chief, and keeping the workers of a
cluster (``TF_CONFIG``) in step (the start state and the facts every worker must agree on)."""

from __future__ import annotations

import json
import os

from bpnet_core.errors import BpnetError


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


def is_chief(strategy) -> bool:
    """Whether this replica's worker is the chief of the strategy's cluster (always True without a cluster)."""
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


def num_workers(strategy) -> int:
    """Number of worker processes of the strategy's cluster (1 without a cluster)."""
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
