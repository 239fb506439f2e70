"""Keras runner: a bpnet ``.keras`` model or a TAO 5 ``.hdf5`` (outputs ``[heat_1..heat_S, paf_1..paf_S]``, TAO
order)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bpnet_core.meta import ModelMeta
from bpnet_core.runners.base import check_batch, stage_maps


class KerasRunner:
    """Runs a Keras BodyPoseNet; ``meta`` describes its outputs (:func:`bpnet_core.model.model_meta` for an in-memory
    model)."""

    def __init__(self, model, meta: ModelMeta):
        from bpnet_core.model import output_names

        self.model, self.meta = model, meta
        self.names = output_names(model)
        self.source = meta.name

    @classmethod
    def from_file(cls, path: str | os.PathLike, train_spec: str | os.PathLike | None = None) -> KerasRunner:
        """A bpnet ``.keras`` file, or a TAO 5 ``.hdf5`` (``train_spec`` optional, see
        :func:`~bpnet_core.model.tao.load_tao_model`)."""
        from bpnet_core.model.tao import load_model_file

        model, meta = load_model_file(path, train_spec)
        runner = cls(model, meta)
        runner.source = str(Path(path))
        return runner

    def predict(self, batch: np.ndarray, stage: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        x = check_batch(batch, self.meta, self.source)
        outs = self.model(x, training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        return stage_maps(self.meta, stage, {n: np.asarray(o) for n, o in zip(self.names, outs)})
