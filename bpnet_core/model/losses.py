"""TAO's BodyPoseNet loss: masked L2 on every stage's heatmaps (background included) and PAFs.

For stage ``t`` and branch ``b`` ∈ {heatmap, paf}::

    term[b, t] = ½ · Σ_{n,i,j,c} ((pred[b, t] − label[b]) · mask · w)²        (tf.nn.l2_loss)
    loss       = Σ_{b,t} weight[b] · term[b, t] / batch_size + Σ regularisation penalties

``mask`` (N, h, w, 1) is 1 where the loss applies and 0 over crowds and unlabelled people; ``w`` is 1, or the focal
factor below. The terms are returned one by one (``heatmap_stage1`` … ``paf_stage3``) for logging, unweighted.

``weight[b]`` is 1 in TAO. bpnet extension (``loss.heatmap_loss_weight``, ``loss.paf_loss_weight``): the PAF terms
are ~4/5 of the loss early in training while it is the heatmaps that limit accuracy (joints found but placed
coarsely), so the demo spec weights the heatmap terms ×3 (both measured in demo-profile training runs).

Focal weighting (TAO ``BpNetLoss.focal_loss``; ``loss.focal_loss_params``): a cell whose label exceeds
``bkg_thresh`` is foreground, and

    w = |1 − (pred − alpha)|^gamma          on foreground   (large while the prediction is still low)
    w = |1 − (1 − pred − beta)|^gamma       on background   = |pred + beta|^gamma (large for false positives)

so well-predicted cells count less. TAO multiplies ``w`` inside the square, and so do we. One documented change
for PAFs: their labels are signed unit-vector components, and TAO's ``label > bkg_thresh`` test makes negative
components "background". We use ``|label| > bkg_thresh`` and compare the prediction in the label's direction
(``pred · sign(label)``; ``|pred|`` on background); for heatmaps (labels ≥ 0) this is exactly TAO's formula.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf


@dataclass(frozen=True)
class FocalParams:
    """``loss.focal_loss_params`` (TAO's names and defaults)."""

    alpha: float = 0.1
    beta: float = 0.02
    bkg_thresh: float = 0.01
    gamma: float = 1.0

    @classmethod
    def from_spec(cls, spec) -> FocalParams | None:
        """The focal parameters of a train spec, or ``None`` when ``use_focal_loss`` is false."""
        loss = getattr(spec, "loss", spec)
        fp = getattr(loss, "focal_loss_params", None)
        if fp is None or not getattr(fp, "use_focal_loss", False):
            return None
        return cls(float(fp.alpha), float(fp.beta), float(fp.bkg_thresh), float(fp.gamma))


def focal_factor(pred, label, params: FocalParams, signed: bool = False):
    """The per-cell focal weight ``w`` (see the module docstring); ``signed`` for PAFs."""
    if signed:
        fg = tf.abs(label) > params.bkg_thresh
        along = pred * tf.sign(label)
        adjusted = tf.where(fg, along - params.alpha, 1.0 - tf.abs(pred) - params.beta)
    else:
        fg = label > params.bkg_thresh
        adjusted = tf.where(fg, pred - params.alpha, 1.0 - pred - params.beta)
    return tf.pow(tf.abs(1.0 - adjusted), params.gamma)


def masked_l2(pred, label, mask, weight=None):
    """½ Σ ((pred − label) · mask · weight)² over the whole batch (TAO: ``tf.nn.l2_loss``)."""
    diff = (tf.cast(pred, tf.float32) - label) * mask
    if weight is not None:
        diff = diff * weight
    return 0.5 * tf.reduce_sum(tf.square(diff))


def _per_stage(targets, stages: int, what: str) -> list:
    """One float32 target per stage: ``targets`` itself for every stage, or its items when it is a list/tuple."""
    if isinstance(targets, (list, tuple)):
        if len(targets) != stages:
            raise ValueError(f"{len(targets)} {what} targets for {stages} stages")
        return [tf.cast(t, tf.float32) for t in targets]
    return [tf.cast(targets, tf.float32)] * stages


def loss_terms(outputs, heatmaps, pafs, mask, focal: FocalParams | None = None) -> dict:
    """Un-normalised loss of every stage and branch: ``{"heatmap_stage1": …, …, "paf_stage1": …}``.

    ``outputs`` is the model's output list ``[heatmap_1 … heatmap_S, paf_1 … paf_S]``; ``heatmaps`` (N, h, w, J+1),
    ``pafs`` (N, h, w, 2L) and ``mask`` (N, h, w, 1) are the labels of :func:`bpnet_core.data.pipeline.make_dataset`.
    ``heatmaps`` and ``pafs`` may also be lists with one target per stage (distillation blends the teacher's maps
    into the last stage's target only, ``distillation.stages: last``).
    """
    outputs = list(outputs)
    if len(outputs) < 2 or len(outputs) % 2:
        raise ValueError(f"expected [heatmaps…, pafs…] outputs, got {len(outputs)} tensors")
    stages = len(outputs) // 2
    heat_t = _per_stage(heatmaps, stages, "heatmap")
    paf_t = _per_stage(pafs, stages, "PAF")
    mask = tf.cast(mask, tf.float32)
    terms = {}
    for t in range(stages):
        pred = tf.cast(outputs[t], tf.float32)
        w = focal_factor(pred, heat_t[t], focal) if focal else None
        terms[f"heatmap_stage{t + 1}"] = masked_l2(pred, heat_t[t], mask, w)
    for t in range(stages):
        pred = tf.cast(outputs[stages + t], tf.float32)
        w = focal_factor(pred, paf_t[t], focal, signed=True) if focal else None
        terms[f"paf_stage{t + 1}"] = masked_l2(pred, paf_t[t], mask, w)
    return terms


def weighted_sum(terms: dict, heatmap_weight: float = 1.0, paf_weight: float = 1.0):
    """``Σ weight[b] · term[b, t]`` over the terms of :func:`loss_terms`."""
    return tf.add_n([v * (heatmap_weight if k.startswith("heatmap") else paf_weight) for k, v in terms.items()])


def bpnet_loss(outputs, labels: dict, batch_size, focal: FocalParams | None = None, regularization=None,
               heatmap_weight: float = 1.0, paf_weight: float = 1.0):  # fmt: skip
    """Total loss ``Σ weight · terms / batch_size + regularization`` and the terms (each divided by batch_size,
    unweighted). The training step of :func:`bpnet_core.train.train` calls this.

    ``labels`` is the label dict of the dataset (``heatmaps``, ``pafs``, ``mask``; ``heatmaps``/``pafs`` may be
    lists with one target per stage, see :func:`loss_terms`); ``batch_size`` the number of images the sum is divided
    by (the global batch across devices in training); ``regularization`` a scalar (e.g. ``tf.add_n(model.losses)``)
    or ``None``.
    """
    raw = loss_terms(outputs, labels["heatmaps"], labels["pafs"], labels["mask"], focal)
    batch = tf.cast(batch_size, tf.float32)
    total = weighted_sum(raw, heatmap_weight, paf_weight) / batch
    if regularization is not None:
        total = total + tf.cast(regularization, tf.float32)
    return total, {k: v / batch for k, v in raw.items()}
