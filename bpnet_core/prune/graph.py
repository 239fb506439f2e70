"""The channel groups of a Keras functional model, for structured pruning (step 1 of :mod:`.channel_prune`).

The graph is walked once in topological order and every tensor's channels are described as segments of *groups*: a
convolution's output starts a new group; BN, activations, pooling and depthwise convolutions carry their input's
groups through; ``Concatenate`` lays its inputs' segments side by side; an element-wise ``Add``/``Multiply`` … merges
the groups of its inputs into one (union–find). Channels that reach a model output, the network input, an excluded
layer or a layer the pruner does not understand are *fixed*: they keep every channel.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from bpnet_core.errors import BpnetError

# Keras layer classes that act on each channel separately and have no weights: channels flow through unchanged.
_PASS_THROUGH = (
    "ReLU", "Activation", "LeakyReLU", "ELU", "Dropout", "SpatialDropout1D", "SpatialDropout2D",
    "SpatialDropout3D", "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization", "Identity",
    "MaxPooling2D", "AveragePooling2D", "UpSampling2D", "ZeroPadding2D", "Cropping2D",
)  # fmt: skip
# Element-wise merges: all inputs share their channels (their groups are pruned together).
_MERGE = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")
# Activations that mix channels (normalise across them): channels that feed them are fixed.
_CHANNEL_MIXING_ACTIVATIONS = ("softmax", "log_softmax")


# ---------------------------------------------------------------------------------------------------- the graph


@dataclass
class ChannelGroup:
    """Channels that must be pruned together (all members see the same channel indices)."""

    id: int
    size: int
    producers: list[str] = field(default_factory=list)  # convs whose filters are these channels
    carriers: list[str] = field(default_factory=list)  # depthwise convs and BN layers indexed by them
    fixed: list[str] = field(default_factory=list)  # reasons the channels cannot be pruned

    @property
    def prunable(self) -> bool:
        return not self.fixed and bool(self.producers)


@dataclass
class ChannelGraph:
    """The result of :func:`channel_groups`: groups plus each layer's input/output channel segments.

    ``inputs[name]`` / ``outputs[name]`` are lists of ``(group id, channels)`` segments in channel order
    (a concatenation has several), group ids already resolved to their union–find root.
    """

    groups: dict[int, ChannelGroup]
    inputs: dict[str, list[tuple[int, int]]]
    outputs: dict[str, list[tuple[int, int]]]
    layer_types: dict[str, str]

    def group_of(self, layer_name: str) -> ChannelGroup | None:
        """The group of a layer's output channels (``None`` for layers whose output is a concatenation)."""
        segs = self.outputs.get(layer_name, [])
        return self.groups[segs[0][0]] if len(segs) == 1 else None


class _UnionFind:
    def __init__(self) -> None:
        self.parent: list[int] = []

    def new(self) -> int:
        self.parent.append(len(self.parent))
        return len(self.parent) - 1

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _model_nodes(model) -> dict[int, list]:
    """``{id(operation): [nodes of this model]}`` (a layer may also have nodes from other models)."""
    out: dict[int, list] = {}
    for nodes in model._nodes_by_depth.values():  # noqa: SLF001 - Keras 3 functional internals, stable since 3.0
        for node in nodes:
            out.setdefault(id(node.operation), []).append(node)
    return out


def _is_channels_last(layer) -> bool:
    return getattr(layer, "data_format", "channels_last") == "channels_last"


def layer_kind(layer) -> str:
    """How the pruner treats a layer: conv, depthwise, bn, pass, merge, concat, input or other."""
    import keras

    L = keras.layers
    name = type(layer).__name__
    if isinstance(layer, L.InputLayer):
        return "input"
    if isinstance(layer, L.DepthwiseConv2D):
        return "depthwise" if layer.depth_multiplier == 1 and _is_channels_last(layer) else "other"
    if isinstance(layer, L.Conv2DTranspose):
        return "other"
    if isinstance(layer, L.Conv2D):
        return "conv" if getattr(layer, "groups", 1) == 1 and _is_channels_last(layer) else "other"
    if isinstance(layer, L.BatchNormalization):
        axis = layer.axis if isinstance(layer.axis, int) else (layer.axis[0] if len(layer.axis) == 1 else None)
        return "bn" if axis in (-1, 3) else "other"
    if isinstance(layer, L.Concatenate):
        return "concat" if layer.axis in (-1, 3) else "other"
    if name in _MERGE:
        return "merge"
    if name in _PASS_THROUGH:
        if name == "Activation":
            act = str(layer.get_config().get("activation", ""))
            if act in _CHANNEL_MIXING_ACTIVATIONS:
                return "other"
        if not _is_channels_last(layer):
            return "other"
        return "pass"
    return "other"


def channel_groups(model, excluded_layers: Iterable[str] = ()) -> ChannelGraph:
    """Walk a functional model and find the channel groups (see the module docstring).

    ``excluded_layers``: layer names whose output channels are kept (TAO's ``-el``). The bpnet output layers, the
    model's outputs and its input are always fixed.
    """
    import keras

    from bpnet_core.model.stages import is_output_layer

    if not isinstance(model, keras.Model) or not hasattr(model, "_nodes_by_depth"):
        raise BpnetError(f"only functional Keras models can be pruned (got {type(model).__name__})")
    nodes = _model_nodes(model)
    uf = _UnionFind()
    sizes: list[int] = []
    producers: dict[int, list[str]] = {}
    carriers: dict[int, list[str]] = {}
    fixed: dict[int, list[str]] = {}
    tensor_segs: dict[int, list[tuple[int, int]]] = {}
    layer_in: dict[str, list[tuple[int, int]]] = {}
    layer_out: dict[str, list[tuple[int, int]]] = {}
    kinds: dict[str, str] = {}

    def new_group(n: int, producer: str | None = None, reason: str | None = None) -> int:
        g = uf.new()
        sizes.append(int(n))
        if producer:
            producers.setdefault(g, []).append(producer)
        if reason:
            fixed.setdefault(g, []).append(reason)
        return g

    def fix(segs, reason: str) -> None:
        for g, _ in segs:
            fixed.setdefault(uf.find(g), []).append(reason)

    excluded = set(excluded_layers)
    for op in model.operations:
        op_nodes = nodes.get(id(op), [])
        if len(op_nodes) != 1:
            raise BpnetError(f"layer {op.name!r} is used {len(op_nodes)} times in the graph; shared layers cannot be "
                             "pruned")  # fmt: skip
        node = op_nodes[0]
        kind = layer_kind(op)
        kinds[op.name] = kind
        ins = [tensor_segs[id(t)] for t in node.arguments.keras_tensors]
        flat_in = [s for segs in ins for s in segs]
        outs = list(node.outputs)
        if kind == "input":
            out = [[(new_group(t.shape[-1], reason="network input"), int(t.shape[-1]))] for t in outs]
        elif kind == "conv":
            filters = int(outs[0].shape[-1])
            reason = "output layer (its width is the pose's)" if is_output_layer(op.name) else None
            out = [[(new_group(filters, producer=op.name, reason=reason), filters)]]
        elif kind in ("depthwise", "bn"):
            for g, _ in flat_in:
                carriers.setdefault(g, []).append(op.name)
            out = [flat_in]
        elif kind == "pass":
            out = [flat_in]
        elif kind == "merge":
            shapes = [[n for _, n in segs] for segs in ins]
            if all(s == shapes[0] for s in shapes):
                for segs in ins[1:]:
                    for (a, _), (b, _) in zip(ins[0], segs):
                        uf.union(a, b)
            else:  # broadcasting or differently split inputs: keep everything
                fix(flat_in, f"inputs of {type(op).__name__} layer {op.name!r} are not aligned")
            out = [ins[0]]
        elif kind == "concat":
            out = [flat_in]
        else:
            fix(flat_in, f"read by {type(op).__name__} layer {op.name!r}, which the pruner does not slice")
            out = [[(new_group(t.shape[-1], reason=f"output of {type(op).__name__} layer {op.name!r}"),
                     int(t.shape[-1]))] for t in outs]  # fmt: skip
        for t, segs in zip(outs, out):
            tensor_segs[id(t)] = segs
        layer_in[op.name] = flat_in
        layer_out[op.name] = out[0]
        if op.name in excluded:
            fix(out[0], "excluded (-el)")

    for t in model.outputs:
        fix(tensor_segs[id(t)], "model output")

    groups: dict[int, ChannelGroup] = {}
    for g in range(len(sizes)):
        r = uf.find(g)
        grp = groups.setdefault(r, ChannelGroup(id=r, size=sizes[r]))
        if sizes[g] != grp.size:  # pragma: no cover - merge layers guarantee equal widths
            raise BpnetError(f"channel group {r}: members of {sizes[g]} and {grp.size} channels")
        grp.producers += producers.get(g, [])
        grp.carriers += carriers.get(g, [])
        grp.fixed += fixed.get(g, [])
    resolve = {name: [(uf.find(g), n) for g, n in segs] for name, segs in layer_in.items()}
    resolve_out = {name: [(uf.find(g), n) for g, n in segs] for name, segs in layer_out.items()}
    for grp in groups.values():
        grp.fixed = list(dict.fromkeys(grp.fixed))
        grp.carriers = list(dict.fromkeys(grp.carriers))
    return ChannelGraph(groups=groups, inputs=resolve, outputs=resolve_out, layer_types=kinds)
