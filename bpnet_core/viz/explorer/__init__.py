"""An interactive inference explorer (ipywidgets): pick an image and a network, move the decoder's knobs, and see
the people, any joint's heatmap, any limb's PAF and the candidate connections the decoder accepted or rejected.

```python
from bpnet_core.viz.explorer import Explorer
ex = Explorer({"rendered maps": runner}, image_paths, pose, infer_spec=spec)
ex.widget                                   # display it (the last expression of a notebook cell)
ex.controls["heatmap_threshold"].value = 0.3   # the same as moving the slider
ex.forward_passes, ex.decodes, ex.people    # counters and the decoded people
ex.timing_report()                          # decoder-only update vs full update, ms
```

Three kinds of control, three costs (the whole point of the design):

* **network controls** (image, model, input size, aspect mode, output stage, multi-scale and scales, flip test): a new
  forward pass (the maps of the last pass are cached under these settings; setting a control to the value it has
  costs nothing);
* **decoder controls** (heatmap / PAF thresholds, min parts, min person score, upsampling factor): the cached maps
  are decoded again with :func:`~bpnet_core.decode.decode_debug`; no forward pass;
* **view controls** (layer, joint, limb): only a picture is redrawn.

Pictures are PNG bytes (:func:`bpnet_core.viz.draw.to_png`) in ``ipywidgets.Image`` widgets; the people table and the
timings are ``HTML``. ipywidgets is imported only when an :class:`Explorer` is built, so importing this module needs
no widget library (and pulls in no TensorFlow).

Coordinate systems: the decoder works in network-input pixels, the people are reported in original-image pixels
(:attr:`ImageResult.keypoints <bpnet_core.infer.inference.ImageResult>`), and the pictures are drawn at display size
(the image scaled so that its longer side is ``display_size``). Map cell (i, j) is centred on input pixel
(j·s + (s − 1)/2, i·s + (s − 1)/2) (stride s); maps are resized to input pixels with that convention (OpenCV's
pixel-centre resize does exactly this), cropped to the image content (padding dropped) and resized to display size.
"""

from bpnet_core.viz.explorer.app import (
    DECODE,
    DECODER_CONTROLS,
    LAYERS,
    NETWORK,
    NETWORK_CONTROLS,
    VIEW,
    VIEW_CONTROLS,
    Explorer,
)
from bpnet_core.viz.explorer.build import build_explorer, image_list, rendered_runner
from bpnet_core.viz.explorer.views import ALL_JOINTS, ALL_LIMBS, BACKGROUND

#: the refresh levels of :meth:`Explorer.refresh` (each includes the ones below) are VIEW, DECODE and NETWORK; LAYERS,
#: ALL_JOINTS, BACKGROUND and ALL_LIMBS are values of the map-view controls
__all__ = [
    "ALL_JOINTS",
    "ALL_LIMBS",
    "BACKGROUND",
    "DECODE",
    "DECODER_CONTROLS",
    "LAYERS",
    "NETWORK",
    "NETWORK_CONTROLS",
    "VIEW",
    "VIEW_CONTROLS",
    "Explorer",
    "build_explorer",
    "image_list",
    "rendered_runner",
]
