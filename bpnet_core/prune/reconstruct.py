"""Least-squares reconstruction after pruning (``bpnet prune --reconstruct``).

Why: removing a channel changes what every layer that reads it computes. Replacing it by its mean
(:func:`bpnet_core.prune.activations.compensate`) gives back its level, not its variation — and in a network whose
batch norm is folded, small errors in one layer grow through the next twenty. But the channels that stay are usually
correlated with the ones that go, so a reader can recover most of what it lost by re-weighting what it still sees.
For each convolution that mixes channels, in the order the network computes them, bpnet therefore solves

    W', b' = argmin ‖ patches(X') · W' + b' − (patches(X) · W + b) ‖² + λ ‖W'‖²

on calibration photos: ``X`` is the layer's input in the *original* network, ``X'`` its input in the *pruned* network
with every layer before it already reconstructed (so the errors of earlier layers are corrected too, not only the
removed channels), ``patches`` the layer's own receptive field (kernel size, stride, dilation, padding), and the target
the original's pre-activation output for the kept output channels. It is a ridge regression per layer, solved from its
normal equations (ThiNet / He et al. 2017 “Channel pruning”, without their selection step: the channels are chosen by
the ``activation`` criterion first, or by :func:`removal_order`). λ is ``ridge`` × each input's own variance: the
inputs of a folded-BN network differ in scale by orders of magnitude.

A layer is refitted only where its input differs from the original's; layers before the first pruned one keep their
weights. Depthwise convolutions keep theirs (their channels are removed with their group); the pointwise convolution
after them is refitted.
"""

from __future__ import annotations

import numpy as np

from bpnet_core.verbosity import progress_bar

#: Ridge strength relative to each input's variance: small. 1e-3 already biased the refit enough to take mobilenet_thin
#: from AP 0.296 to 0.171 with no channel removed (1e-2: 0.061; 1e-6: 0.289), while the fits need no more to be stable.
DEFAULT_RIDGE = 1e-6
#: Positions sampled per photo and layer (all when the map is smaller).
DEFAULT_POSITIONS = 4096


def _patches(x, layer):
    """``(N, Ho, Wo, kh·kw·C)`` receptive fields of ``layer`` on ``x`` (ordering of ``kernel.reshape(-1, out)``)."""
    import tensorflow as tf

    kh, kw = (int(k) for k in layer.kernel_size)
    sh, sw = (int(s) for s in layer.strides)
    dh, dw = (int(d) for d in layer.dilation_rate)
    if (kh, kw, sh, sw) == (1, 1, 1, 1):
        return np.asarray(x)
    return np.asarray(tf.image.extract_patches(x, sizes=[1, kh, kw, 1], strides=[1, sh, sw, 1], rates=[1, dh, dw, 1],
                                               padding=layer.padding.upper()))  # fmt: skip


def _ridge(gram: np.ndarray, ridge: float) -> np.ndarray:
    """The ridge term per input of ``[X, 1]ᵀ[X, 1]``: ``ridge`` × each input's own variance × count (the inputs of a
    folded-BN network differ in scale by 10⁴, and in mean: a channel's level is the bias's job, not penalised)."""
    n = max(float(gram[-1, -1]), 1.0)
    var = np.diag(gram)[:-1] - gram[:-1, -1] ** 2 / n
    return np.concatenate([ridge * np.maximum(var, 0.0), [0.0]]) + 1e-9 * (1.0 + np.abs(np.diag(gram)).max())


def _flat(x, idx):
    a = x.reshape(-1, x.shape[-1])
    return a[idx] if idx is not None else a


def refit_layer(original_layer, pruned_layer, x_orig_batches, x_pruned_batches, out_idx,
                ridge: float = DEFAULT_RIDGE, positions: int = DEFAULT_POSITIONS, seed: int = 0) -> float:  # fmt: skip
    """Refit ``pruned_layer`` (a Conv2D) so that on its inputs ``x_pruned_batches`` it computes what
    ``original_layer`` computes (before its activation) on ``x_orig_batches``, for the output channels ``out_idx``
    (with an offset only where the layer has a bias). Returns the relative error left (‖residual‖ / ‖target −
    mean‖) on the calibration positions."""
    rng = np.random.default_rng(seed)
    w = np.asarray(original_layer.get_weights()[0], np.float64)
    b = np.asarray(original_layer.get_weights()[1], np.float64) if original_layer.use_bias else 0.0
    w_flat = w.reshape(-1, w.shape[-1])[:, out_idx]
    b_sel = b[out_idx] if original_layer.use_bias else np.zeros(len(out_idx))
    d_in = int(np.prod(pruned_layer.kernel.shape[:3]))
    a = np.zeros((d_in + 1, d_in + 1))
    c = np.zeros((d_in + 1, len(out_idx)))
    ys = 0.0
    ysq = 0.0
    count = 0
    for xo, xp in zip(x_orig_batches, x_pruned_batches):
        po, pp = _patches(xo, original_layer), _patches(xp, pruned_layer)
        n = po.shape[0] * po.shape[1] * po.shape[2]
        idx = None if n <= positions else np.sort(rng.choice(n, positions, replace=False))
        target = _flat(po, idx).astype(np.float64) @ w_flat + b_sel
        inp = np.concatenate([_flat(pp, idx).astype(np.float64), np.ones((target.shape[0], 1))], axis=1)
        if not pruned_layer.use_bias:
            inp[:, -1] = 0.0  # no offset to fit: its row and column of the normal equations stay 0 (ridge-held)
        a += inp.T @ inp
        c += inp.T @ target
        ys = ys + target.sum(axis=0)
        ysq = ysq + (target * target).sum(axis=0)
        count += target.shape[0]
    reg = np.diag(_ridge(a, ridge))
    sol = np.linalg.solve(a + reg, c)
    # residual energy from the normal equations: Σ(y − ŷ)² = Σy² − 2 solᵀc + solᵀ A sol
    resid = float(np.sum(ysq) - 2 * np.sum(sol * c) + np.sum(sol * (a @ sol)))
    spread = float(np.sum(ysq - ys * ys / max(count, 1)))
    new = [sol[:-1].reshape(tuple(pruned_layer.kernel.shape)).astype(np.float32)]
    if pruned_layer.use_bias:
        new.append(sol[-1].astype(np.float32))
    pruned_layer.set_weights(new)
    return float(np.sqrt(max(resid, 0.0) / spread)) if spread > 0 else 0.0


def reconstruct(pruned, model, kept_outputs, batches, ridge: float = DEFAULT_RIDGE,
                positions: int = DEFAULT_POSITIONS, progress: bool = False) -> dict[str, float]:  # fmt: skip
    """Refit, in order, every Conv2D of ``pruned`` whose input differs from the original ``model``'s (see the module
    docstring). ``kept_outputs(name)``: a layer's kept output channel indices;
    ``batches``: calibration photos, each a normalised ``(1, H, W, 3)`` array. Returns ``{layer: relative error}``.

    Both networks are run once, layer by layer and side by side on all the photos (each tensor freed when its last
    reader has run), so that each Conv2D is refitted on the pruned network's input *after* every layer before it was.
    """
    import keras

    stack = np.concatenate(batches, axis=0).astype(np.float32)
    nodes = [n for depth in sorted(pruned._nodes_by_depth, reverse=True) for n in pruned._nodes_by_depth[depth]]
    nodes = [n for n in nodes if n.operation is not None and not n.is_input]
    readers: dict[int, int] = {}
    for node in nodes:
        for t in node.input_tensors:
            readers[id(t)] = readers.get(id(t), 0) + 1
    kept = {id(t) for t in pruned.outputs}
    cur_p = {id(pruned.inputs[0]): stack}
    cur_o = {id(pruned.inputs[0]): stack}
    errors: dict[str, float] = {}
    convs = sum(1 for n in nodes if type(n.operation) is keras.layers.Conv2D)
    bar = progress_bar(total=convs, desc="reconstruct", unit="layer", enabled=progress)
    for i, node in enumerate(nodes):
        layer = node.operation
        orig = model.get_layer(layer.name)
        args_p, kwargs_p = node.arguments.fill_in(cur_p)
        args_o, kwargs_o = node.arguments.fill_in(cur_o)
        if type(layer) is keras.layers.Conv2D:
            xp, xo = np.asarray(args_p[0]), np.asarray(args_o[0])
            if not (xp.shape == xo.shape and np.array_equal(xp, xo)):
                errors[layer.name] = refit_layer(orig, layer, np.split(xo, len(xo)), np.split(xp, len(xp)),
                                                 kept_outputs(layer.name), ridge, positions, seed=i)  # fmt: skip
            bar.update(1)
        out_p = np.asarray(layer(*args_p, **kwargs_p))
        out_o = np.asarray(orig(*args_o, **kwargs_o))
        for t in node.input_tensors:
            readers[id(t)] -= 1
            if readers[id(t)] == 0 and id(t) not in kept:
                cur_p.pop(id(t), None)
                cur_o.pop(id(t), None)
        for t in node.outputs:
            cur_p[id(t)], cur_o[id(t)] = out_p, out_o
    bar.close()
    return errors


# ------------------------------------------------------------------------------------------- selection


def reader_grams(model, readers: list[str], batches, positions: int = DEFAULT_POSITIONS, seed: int = 0) -> dict:
    """``{reader: G}``: the Gram matrix ``[patches(X), 1]ᵀ [patches(X), 1]`` of each Conv2D in ``readers`` over its
    input ``X`` on ``batches`` (at most ``positions`` sampled positions per photo)."""
    import keras

    rng = np.random.default_rng(seed)
    layers = [model.get_layer(n) for n in readers]
    probe = keras.Model(model.inputs[0], [layer.input for layer in layers])
    grams: dict[str, np.ndarray] = {}
    for batch in batches:
        outs = probe(batch, training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for layer, out in zip(layers, outs):
            p = _patches(np.asarray(out), layer)
            n = p.shape[0] * p.shape[1] * p.shape[2]
            idx = None if n <= positions else np.sort(rng.choice(n, positions, replace=False))
            x = _flat(p, idx).astype(np.float64)
            x = np.concatenate([x, np.ones((x.shape[0], 1))], axis=1)
            g = x.T @ x
            grams[layer.name] = g if layer.name not in grams else grams[layer.name] + g
    return grams


def _rows(layer, segments, gid) -> np.ndarray:
    """Row indices of ``patches(X)`` (per channel of group ``gid``: one row per kernel tap) as ``(channels, taps)``."""
    kh, kw = (int(k) for k in layer.kernel_size)
    width = sum(n for _, n in segments)
    out, offset = [], 0
    for g, n in segments:
        if g == gid:
            ch = offset + np.arange(n)
            out.append(np.stack([t * width + ch for t in range(kh * kw)], axis=1))
        offset += n
    return np.concatenate(out, axis=0)


class _Reader:
    """One reader of a group during greedy elimination: ``P = (G + λ diag G)⁻¹`` and the weights ``W`` (bias as the
    last row), updated as channels go (optimal brain surgeon for a linear layer: removing rows ``B`` and refitting
    the rest costs ``tr(W_Bᵀ P_BB⁻¹ W_B)``; then ``W ← W − P_:B P_BB⁻¹ W_B``, ``P ← P − P_:B P_BB⁻¹ P_B:``)."""

    def __init__(self, layer, gram, rows, ridge):
        w = np.asarray(layer.get_weights()[0], np.float64)
        w = w.reshape(-1, w.shape[-1])
        b = np.asarray(layer.get_weights()[1], np.float64) if layer.use_bias else np.zeros(w.shape[1])
        self.w = np.concatenate([w, b[None]], axis=0)
        self.p = np.linalg.inv(gram + np.diag(_ridge(gram, ridge)))
        self.rows = rows
        n = gram[-1, -1]
        mean = self.w.T @ gram[:, -1] / n
        self.energy = max(float(np.sum(self.w * (gram @ self.w)) - n * float(mean @ mean)), 1e-30)

    def costs(self, cand: np.ndarray) -> np.ndarray:
        idx = self.rows[cand]  # (n, taps)
        pbb = self.p[idx[:, :, None], idx[:, None, :]]
        wb = self.w[idx]  # (n, taps, out)
        sol = np.linalg.solve(pbb, wb)
        return np.einsum("nto,nto->n", wb, sol) / self.energy

    def remove(self, c: int) -> None:
        b = self.rows[c]
        pbb = self.p[np.ix_(b, b)]
        k = np.linalg.solve(pbb, self.p[b, :]).T  # (D, taps) = P_:B P_BB⁻¹
        self.w = self.w - k @ self.w[b]
        self.p = self.p - k @ self.p[b, :]
        self.w[b] = 0.0
        self.p[b, :] = 0.0
        self.p[:, b] = 0.0
        self.p[b, b] = 1.0  # keeps P_BB invertible; these rows are never candidates again


def removal_order(graph, model, grams: dict, ridge: float = DEFAULT_RIDGE) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """``{group: (order, curve)}`` for every prunable group read by a Conv2D in ``grams``: the channels in the order
    a greedy least-squares elimination removes them (the one whose loss the readers can best make up for from the
    others first) and ``curve[k]``: the readers' summed relative error once the first ``k + 1`` are gone and the
    readers refitted."""
    out = {}
    for gid, grp in graph.groups.items():
        if not grp.prunable:
            continue
        names = [name for name in grams if any(g == gid for g, _ in graph.inputs.get(name, []))]
        readers = [_Reader(model.get_layer(n), grams[n], _rows(model.get_layer(n), graph.inputs[n], gid), ridge)
                   for n in names]  # fmt: skip
        if not readers:
            continue
        remaining = np.arange(grp.size)
        order, curve, total = [], [], 0.0
        while remaining.size > 1:
            cost = sum(r.costs(remaining) for r in readers)
            j = int(np.argmin(cost))
            c = int(remaining[j])
            total += float(cost[j])
            for r in readers:
                r.remove(c)
            order.append(c)
            curve.append(total)
            remaining = np.delete(remaining, j)
        order.append(int(remaining[0]))
        curve.append(float("inf"))
        out[gid] = (np.asarray(order), np.asarray(curve))
    return out
