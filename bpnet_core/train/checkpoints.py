"""Training checkpoints: the results folder, the ``ckpt-<epoch>`` files, restoring the newest readable one, and
the fine-tuning start from another run's checkpoint."""

from __future__ import annotations

import glob
import logging
import re
import tempfile
from pathlib import Path

from bpnet_core.errors import BpnetError

log = logging.getLogger(__name__)

CHECKPOINT_SUBDIR = "checkpoints"
CHECKPOINT_NAME = "ckpt"


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


def finetune_init(model, fc) -> None:
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
