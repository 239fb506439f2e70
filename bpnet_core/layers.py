"""The layers of ``bpnet_core``, declared as data: a module may import (at module level or inside a function) only
modules of its own layer or of a layer below it, and no import cycle may join two modules, whatever their layer (a
submodule that imports its own package by name, ``from pkg import x`` in ``pkg/y.py``, imports ``pkg/__init__.py``;
a sibling is imported by its full name, ``from pkg.x import f``).
``tests/unit/test_layers.py`` enforces both and fails on a module that is not placed here. It also keeps imports at
module level: a function-level import of a ``bpnet_core`` module is there only to keep a heavy optional dependency
(TensorFlow, Keras, ONNX Runtime, ONNX, OpenVINO, NNCF, TensorRT, tf2onnx, matplotlib, ipywidgets, papermill) out of
import time, except in ``cli`` (``bpnet --help`` imports every verb module, so verbs import the library in ``run``).

===  ==========  ==========================================================================================
 #   layer       modules (a name covers the module or package and everything under it; ``pkg.__init__``
                 names only the package's own ``__init__.py``)
===  ==========  ==========================================================================================
 0   base        errors, fileio, paths, skeleton, meta, env, verbosity, layers, tables, sizes, costs, workers (+ the
                 empty package inits, and ``int8``'s, which only tells where INT8 lives)
 1   core        config, decode, track_params, preprocess, cards, data.coco, data.targets, data.augment,
                 data.synthetic, data.synthetic_video, data.pan_zoom, data.download, data.models, viz.draw,
                 viz.video, int8.calibration, int8.ptq_real
 2   model       model, evaluate, data.pipeline, data.convert, int8.fakequant, int8.qat, int8.qdq
 3   runtimes    runners, track
 4   engines     infer, train
 5   products    export, prune, importer, transplant, int8.finetune, int8.ptq, int8.search
 6   workflows   tutorial, benchmarks, viz.figures, viz.explorer, viz.plots
 7   cli         cli, __main__
===  ==========  ==========================================================================================

Why this order: ``base`` is pure Python + NumPy (file I/O, the pose skeleton, the model contract, and the one table
formatter, H×W parser, parameter counter and latency loop, which every layer above shares, and the worker pool
that dies with its verb). ``core`` holds
the pieces that need only ``base``: spec schemas (``config`` embeds the decoder's and the tracker's parameter
blocks, hence ``decode`` and ``track_params`` sit here too), decoding, preprocessing, the COCO readers and synthetic
data. ``model`` builds networks and training batches from specs and scores keypoints. ``runtimes`` run a model
(Keras, ONNX Runtime, OpenVINO, TensorRT) or follow people across frames; the Predictor and the training loop
(``engines``) sit above them; ``products`` make new model files (export, pruning, imported networks) and use the
engines to check them (``prune`` retrains through ``train``, ``export`` measures agreement through ``infer``).
``workflows`` tie products together for notebooks and benchmarks; the CLI is on top.

Each package's ``sweep`` module (``infer.sweep``, ``prune.sweep``) is the top of its package: it uses the rest of
the package, nothing in the package uses it.
"""

#: Bottom to top: (layer name, module names relative to ``bpnet_core``).
# fmt: off
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("base", ("__init__", "layers", "errors", "fileio", "paths", "skeleton", "meta", "env", "verbosity",
              "tables", "sizes", "costs", "workers", "data.__init__", "viz.__init__", "int8.__init__")),
    ("core", ("config", "decode", "track_params", "preprocess", "cards", "data.coco", "data.targets",
              "data.augment", "data.synthetic", "data.synthetic_video", "data.pan_zoom", "data.download",
              "data.models", "viz.draw", "viz.video", "int8.calibration", "int8.ptq_real")),
    ("model", ("model", "evaluate", "data.pipeline", "data.convert", "int8.fakequant", "int8.qat", "int8.qdq")),
    ("runtimes", ("runners", "track")),
    ("engines", ("infer", "train")),
    ("products", ("export", "prune", "importer", "transplant", "int8.finetune", "int8.ptq", "int8.search")),
    ("workflows", ("tutorial", "benchmarks", "viz.figures", "viz.explorer", "viz.plots")),
    ("cli", ("cli", "__main__")),
)
# fmt: on


def layer_of(name: str) -> int | None:
    """Index in :data:`LAYERS` of a module named relative to ``bpnet_core`` (``"data.coco"``; a package's own
    ``__init__.py`` is ``"data.__init__"``, the top package's ``"__init__"``): the longest entry that names it or a
    package above it. ``None``: not placed."""
    entries = {entry: i for i, (_, names) in enumerate(LAYERS) for entry in names}
    if name in entries:
        return entries[name]
    parts = name.split(".")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    while parts:
        key = ".".join(parts)
        if key in entries:
            return entries[key]
        parts = parts[:-1]
    return None
