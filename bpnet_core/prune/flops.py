"""What a model costs: parameters and convolution FLOPs at a given input size.

FLOPs follow the usual convention for these networks: convolution multiply-accumulates only (Conv2D, DepthwiseConv2D,
Conv2DTranspose; no BN, activations or concatenations), and FLOPs = 2 × MACs. The spatial size of every convolution's
output at the requested input size comes from Keras' symbolic shape inference (no arrays are computed), so the
figures are exact for any graph and input size, e.g. ≈ 60.7 GMAC for TAO's 3-stage network at 368×368.

>>> conv_flops(model, (368, 368))["flops"]          # 2 × Σ conv MACs

``count_params`` is :func:`bpnet_core.costs.count_params`, ``parse_hw`` :func:`bpnet_core.sizes.parse_hw` (both
imported here for older callers). CPU latency and notebook 04's sweep, plots and tables are in
:mod:`bpnet_core.prune.sweep`.
"""

from __future__ import annotations

from collections.abc import Sequence

from bpnet_core.costs import count_params
from bpnet_core.sizes import parse_hw

#: Input sizes the prune report gives FLOPs for when none are asked: OpenPose's 368×368 and TAO's training size.
DEFAULT_FLOPS_SIZES = ((368, 368), (256, 256))


def _conv_layers(model):
    import keras

    kinds = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Conv2DTranspose)
    return [layer for layer in model.layers if isinstance(layer, kinds)]


def size_key(hw) -> str:
    """``"368x368"``: the key of an input size in reports."""
    h, w = parse_hw(hw)
    return f"{h}x{w}"


def conv_flops(model, input_hw=(368, 368)) -> dict:
    """Convolution MACs and FLOPs of ``model`` for one ``(H, W, 3)`` image.

    Returns ``{"input": "HxW", "macs": int, "flops": int, "per_layer": {layer name: MACs}}``.
    """
    import keras

    h, w = parse_hw(input_hw)
    convs = _conv_layers(model)
    if not convs:
        return {"input": f"{h}x{w}", "macs": 0, "flops": 0, "per_layer": {}}
    probe = keras.Model(model.inputs, [layer.output for layer in convs])
    channels = model.inputs[0].shape[-1]
    specs = probe.compute_output_spec(keras.KerasTensor((1, h, w, channels), dtype="float32"))
    specs = specs if isinstance(specs, (list, tuple)) else [specs]
    per_layer = {}
    for layer, spec in zip(convs, specs):
        _, oh, ow, cout = (int(d) for d in spec.shape)
        kh, kw = (int(k) for k in layer.kernel_size)
        kernel = layer.kernel.shape
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            macs = oh * ow * kh * kw * int(kernel[2]) * int(kernel[3])
        elif isinstance(layer, keras.layers.Conv2DTranspose):
            ih, iw = int(layer.input.shape[1] or 0), int(layer.input.shape[2] or 0)
            ih, iw = (ih, iw) if ih and iw else (oh // max(1, layer.strides[0]), ow // max(1, layer.strides[1]))
            macs = ih * iw * kh * kw * int(kernel[2]) * int(kernel[3])
        else:
            macs = oh * ow * kh * kw * int(kernel[2]) * cout
        per_layer[layer.name] = int(macs)
    total = int(sum(per_layer.values()))
    return {"input": f"{h}x{w}", "macs": total, "flops": 2 * total, "per_layer": per_layer}


def model_costs(model, input_sizes: Sequence = DEFAULT_FLOPS_SIZES) -> dict:
    """``{"params", "conv_params", "flops": {"HxW": FLOPs}}`` of a model."""
    from bpnet_core.model import count_conv_params

    return {
        "params": count_params(model),
        "conv_params": int(count_conv_params(model)),
        "flops": {size_key(s): conv_flops(model, s)["flops"] for s in input_sizes},
    }
