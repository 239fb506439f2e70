"""The input contract of a training run (:func:`training_contract`): which colour order, normalisation, preprocessing
and inference settings the data pipeline feeds, the teacher converts from, and ``bpnet train`` writes into its model.

The rule:

* ``pretrained_weights`` is a ``.keras`` model file with a bpnet contract (a trained, pruned or imported model; with
  or without ``load_graph``): **the model's contract wins** — its colour order, normalisation, preprocessing and
  recommended inference settings — because its weights were trained on that input. A spec that *explicitly* sets
  ``dataloader.normalization_params.image_scale`` / ``image_offset`` (in the file or with ``--set``) to other values
  is refused with a one-line error naming the key and both values; leaving the keys out (or setting the model's
  values) is how a spec trains such a model.
* Otherwise (built from scratch, ``imagenet``, or weights without a contract: ``.h5`` / ``.weights.h5``, a TAO 5
  ``.hdf5``, a plain Keras ``.keras``): RGB with the spec's ``normalization_params`` (TAO: 256 / 0.5), TAO's
  preprocessing, no recommended inference settings.
"""

from __future__ import annotations

import numpy as np

from bpnet_core.errors import BpnetError
from bpnet_core.meta import InputContract, Normalization, scale_offset, stored_contract

#: The spec keys of the normalisation, in ``dataloader.normalization_params``.
NORMALIZATION_KEYS = ("image_scale", "image_offset")


def spec_normalization(spec) -> Normalization:
    """The input normalisation a train spec's ``dataloader.normalization_params`` asks for."""
    norm = spec.dataloader.normalization_params
    return Normalization(tuple(float(v) for v in norm.image_scale), tuple(float(v) for v in norm.image_offset))


def explicit_normalization_keys(spec) -> list[str]:
    """The keys of :data:`NORMALIZATION_KEYS` the spec file (or ``--set``) sets itself, not left to the default."""
    dl = spec.dataloader
    if "normalization_params" not in dl.model_fields_set:
        return []
    return [k for k in NORMALIZATION_KEYS if k in dl.normalization_params.model_fields_set]


def _values(v) -> str:
    return "[" + ", ".join(f"{float(x):g}" for x in v) + "]"


def training_contract(spec) -> InputContract:
    """The input contract a run of ``spec`` trains with (see the module docstring for the rule).

    Raises a one-line :class:`BpnetError` when the spec explicitly sets a normalisation that disagrees with the
    contract of its ``pretrained_weights`` model, or when that contract is malformed."""
    weights = getattr(spec, "pretrained_weights", None)
    meta = stored_contract(weights)
    if meta is None:
        return InputContract("RGB", spec_normalization(spec))
    model_values = dict(zip(NORMALIZATION_KEYS, scale_offset(meta.normalization)))
    norm = spec.dataloader.normalization_params
    raw = ", raw 0..255 pixels" if meta.normalization is None else ""
    for key in explicit_normalization_keys(spec):
        mine, theirs = [float(v) for v in getattr(norm, key)], model_values[key]
        if not np.allclose(mine, theirs, rtol=1e-6, atol=1e-9):
            raise BpnetError(
                f"{spec.source}: dataloader.normalization_params.{key} is {_values(mine)} but pretrained_weights "
                f"{weights} was trained on {key} {_values(theirs)} (its contract: {meta.color}{raw}); the model's "
                f"contract wins: remove the key from the spec (or set it to {_values(theirs)})"
            )
    return meta.input_contract(str(weights))


def with_contract_normalization(spec, contract: InputContract):
    """``spec`` with ``dataloader.normalization_params.image_scale`` / ``image_offset`` set to the contract's
    (raw pixels: 1 / 0), so the resolved spec a run writes (``params.yaml``) says what it trained with."""
    scale, offset = scale_offset(contract.normalization)
    dl = spec.dataloader
    norm = dl.normalization_params.model_copy(update={"image_scale": list(scale), "image_offset": list(offset)})
    return spec.model_copy(update={"dataloader": dl.model_copy(update={"normalization_params": norm})})
