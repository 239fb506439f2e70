"""Activation statistics for pruning networks whose batch norm is folded (``bpnet prune --criterion activation``).

Why: once batch norm is folded into a convolution's weights and bias, the size of a filter's kernel says little about
what the channel contributes — a channel with a small kernel and a large bias can be the most active of its layer,
and removing it shifts every layer that reads it. So the ``activation`` criterion measures instead, on calibration
photos, what each channel *delivers to the layers that read it*:

* for every convolution ``L`` that mixes channels (not a depthwise one), the mean ``μ`` and standard deviation
  ``σ`` of each of its input channels (after whatever activation, pooling, depthwise convolution or residual add
  lies in between);
* a channel's score is ``sqrt(Σ_L (σ_L · ‖W_L[:, :, c, :]‖)²)`` over the layers that read it: the size of the
  change in their pre-activations when the channel is replaced by its mean; ``-pth`` bounds the relative change a
  group's readers see (:func:`relative_error_scores`): the weakest channels go while the energy they carry stays
  below ``pth²`` of the group's;
* and the mean is what replaces it: when a channel is removed, each reader's bias gains
  ``Σ_{kh, kw} W_L[kh, kw, c, :] · μ_c`` (or, for a reader without a bias followed by batch norm, its moving mean
  drops by that amount), so a removed channel costs only its variation, not its level.

The statistics are taken at the network's input size on real photos in the model's own colour order and
normalisation (its contract), so the scores describe the data the network sees.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from bpnet_core.errors import BpnetError
from bpnet_core.fileio import list_images, read_image
from bpnet_core.paths import project_file

log = logging.getLogger(__name__)

#: Photos the activation statistics are taken on unless told otherwise.
DEFAULT_CALIBRATION_COUNT = 32


def calibration_batches(meta, image_dir: str | os.PathLike, count: int = DEFAULT_CALIBRATION_COUNT,
                        size: tuple[int, int] = (368, 368)):  # fmt: skip
    """Up to ``count`` photos of ``image_dir`` resized to ``size`` (H, W) and normalised by ``meta`` (one batch of
    one each). A folder without a readable image is a one-line error."""
    import cv2

    paths = list_images(image_dir, missing="calibration image folder not found")
    out = []
    for path in paths:
        if len(out) >= count:
            break
        try:
            img = read_image(path)
        except BpnetError:
            continue
        img = cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA)
        out.append(meta.normalize(img)[None])
    if not out:
        raise BpnetError(f"{image_dir}: no readable image for the activation statistics")
    return out


def reader_input_stats(model, readers: list[str], batches) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{layer: (mean, std)}`` of the input channels of each layer in ``readers`` over ``batches``."""
    import keras

    layers = [model.get_layer(n) for n in readers]
    probe = keras.Model(model.inputs[0], [layer.input for layer in layers])
    sums = [0.0] * len(layers)
    squares = [0.0] * len(layers)
    counts = [0] * len(layers)
    for batch in batches:
        outs = probe(batch, training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for i, out in enumerate(outs):
            a = np.asarray(out, np.float64).reshape(-1, out.shape[-1])
            sums[i] = sums[i] + a.sum(axis=0)
            squares[i] = squares[i] + (a * a).sum(axis=0)
            counts[i] += a.shape[0]
    stats = {}
    for i, layer in enumerate(layers):
        mean = sums[i] / counts[i]
        stats[layer.name] = (mean, np.sqrt(np.maximum(squares[i] / counts[i] - mean * mean, 0.0)))
    return stats


def channel_scores(graph, layers: dict, stats: dict) -> dict[int, np.ndarray]:
    """``{group id: score per channel}``: ``sqrt(Σ_L (σ_L · ‖W_L[:, :, c, :]‖)²)`` over the readers ``L`` of each
    group's channels (see the module docstring)."""
    scores: dict[int, np.ndarray] = {}
    for name, (_, std) in stats.items():
        kernel = np.asarray(layers[name].get_weights()[0], np.float64)
        contrib = (std * np.sqrt(np.sum(kernel * kernel, axis=(0, 1, 3)))) ** 2
        offset = 0
        for g, n in graph.inputs[name]:
            part = contrib[offset : offset + n]
            scores[g] = part if g not in scores else scores[g] + part
            offset += n
    return {g: np.sqrt(v) for g, v in scores.items()}


def relative_error_scores(scores: np.ndarray) -> np.ndarray:
    """Each channel's score as the relative error its readers would see if it and every weaker channel of its group
    were removed: ``sqrt(Σ_{weaker or equal} s² / Σ_all s²)``. ``-pth`` then bounds that error per group: the
    channels above it stay (a threshold of 0.1 keeps the strongest channels that carry all but 1 % of the
    energy)."""
    return channel_errors(*energy_curve(scores))


def energy_curve(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(order, curve)`` of one group: its channels weakest first and ``curve[k]``, the share of the group's score
    energy gone once the first ``k + 1`` are (zeros when the group carries no energy)."""
    e = np.asarray(scores, np.float64) ** 2
    order = np.argsort(e, kind="stable")
    total = float(e.sum())
    return order, (np.cumsum(e[order]) / total if total > 0 else np.zeros(len(e)))


def channel_errors(order: np.ndarray, curve: np.ndarray) -> np.ndarray:
    """Each channel's relative error, in channel order: its readers' error once it and every channel before it in
    ``order`` are gone (``curve``: that error squared, in removal order; ``inf`` never goes)."""
    error = np.empty(len(order))
    error[order] = np.sqrt(np.minimum(curve, 1e30))
    return error


def compensate(pruned, model, stats: dict, kept_inputs, kept_outputs) -> list[str]:
    """Give each reader of removed channels their mean contribution back: its bias (or, without a bias, the moving
    mean of the batch norm that follows it) absorbs ``Σ W[kh, kw, c, :] · μ_c`` over the removed channels ``c``.
    ``kept_inputs(name)`` / ``kept_outputs(name)`` are a layer's kept input / output channel indices. Returns the
    readers that had nowhere to put it (no bias, no batch norm after)."""
    import keras

    skipped = []
    for name, (mean, _) in stats.items():
        kernel = np.asarray(model.get_layer(name).get_weights()[0], np.float64)
        removed = np.setdiff1d(np.arange(kernel.shape[2]), kept_inputs(name))
        if removed.size == 0:
            continue
        delta = np.einsum("hwco,c->o", kernel[:, :, removed, :], mean[removed])[kept_outputs(name)]
        layer = pruned.get_layer(name)
        if layer.use_bias:
            w = layer.get_weights()
            w[1] = (w[1] + delta).astype(w[1].dtype)
            layer.set_weights(w)
            continue
        after = [node.operation for node in getattr(layer, "_outbound_nodes", [])]
        if len(after) == 1 and isinstance(after[0], keras.layers.BatchNormalization):
            bn = after[0]
            names = [v.path.split("/")[-1] for v in bn.weights]
            w = bn.get_weights()
            i = names.index("moving_mean")
            w[i] = (w[i] - delta).astype(w[i].dtype)
            bn.set_weights(w)
        else:
            skipped.append(name)
    return skipped


def activation_statistics(model, graph, batches) -> dict:
    """The readers' input statistics of ``model`` on ``batches`` (:func:`calibration_batches`; see the module
    docstring)."""
    readers = [n for n, kind in graph.layer_types.items() if kind == "conv"]
    log.info("activation statistics of %d layers on %d photos", len(readers), len(batches))
    return reader_input_stats(model, readers, batches)


def energy_order(scores: dict[int, np.ndarray]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """``{group: (order, curve)}`` (:func:`energy_curve`) of every group's scores."""
    return {gid: energy_curve(s) for gid, s in scores.items()}


def default_image_dir() -> Path:
    """The calibration photos shipped with bpnet: 80 COCO train2017 photos (not the 36 evaluation photos)."""
    return project_file("tests", "fixtures", "coco_mini_train2017")


def _layer_macs(graph, macs: dict, counts: dict[int, int]) -> float:
    """Convolution MACs of the network when group ``g`` keeps ``counts[g]`` channels (the others all of theirs)."""
    total = 0.0
    for name, m in macs.items():
        kind = graph.layer_types.get(name)
        ins = graph.inputs.get(name, [])
        outs = graph.outputs.get(name, [])
        fin = sum(counts.get(g, n) for g, n in ins) / max(1, sum(n for _, n in ins)) if ins else 1.0
        if kind == "depthwise" or not outs:
            total += m * fin
            continue
        fout = sum(counts.get(g, n) for g, n in outs) / max(1, sum(n for _, n in outs))
        total += m * fin * fout
    return total


def threshold_for_flops(graph, macs: dict, errors: dict[int, np.ndarray], target_ratio: float,
                        retained) -> tuple[float, dict[int, int]]:  # fmt: skip
    """The smallest ``-pth`` whose pruning cuts the FLOPs ``target_ratio`` times, and ``{group: channels kept}`` at
    it. ``errors[g]``: each channel's relative error (the error group ``g``'s readers see once it and every channel
    removed before it are gone); ``macs``: per-layer MACs (:func:`bpnet_core.prune.flops.conv_flops`);
    ``retained(errors, pth)``: how many channels of a group stay at ``pth`` (``-nf``, ``-pg`` applied).

    One bound for every group, as ``-pth`` gives, rather than an allocation that spends more error where channels
    cost more MACs: on human-pose-estimation-0001 that allocation scored lower at the same FLOPs (AP 0.262 vs 0.298
    at 1.41×, refitted, 32 photos), as its cheap-looking channels feed the expensive layers.
    """
    total = _layer_macs(graph, macs, {})

    def counts_at(pth):
        return {g: int(retained(e, pth)) for g, e in errors.items()}

    def ratio_at(pth):
        return total / max(_layer_macs(graph, macs, counts_at(pth)), 1.0)

    lo, hi = 0.0, 1.0
    if ratio_at(hi) < target_ratio:
        return hi, counts_at(hi)
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if ratio_at(mid) >= target_ratio else (mid, hi)
    return hi, counts_at(hi)
