"""The ``bpnet`` command line: TAO's verbs and flags, one thin module per verb.

Each module in :data:`VERBS` defines ``add_parser(subparsers)`` (which registers the verb and its flags) and
``run(args) -> int`` (which calls exactly one public library function). Every verb also accepts ``--set a.b=c``
(spec overrides) and ``-ll/--log_level``.

Errors on user input are :class:`~bpnet_core.errors.BpnetError`: printed as one line ``bpnet: error: ...``, exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from bpnet_core import __version__
from bpnet_core.errors import BpnetError

# verb module names, in the order of the tutorial
VERBS = [
    "synthetic_data",
    "synthetic_video",
    "download_coco",
    "download_model",
    "import_model",
    "import_tao",
    "dataset_convert",
    "train",
    "evaluate",
    "inference",
    "prune",
    "export",
    "deepstream_config",
    "calibration_images",
    "bench",
]


def add_common(parser: argparse.ArgumentParser) -> None:
    """Flags every verb has."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec value by its dotted key, e.g. --set dataloader.batch_size=4 (repeatable)",
    )
    parser.add_argument(
        "-ll", "--log_level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="logging level"
    )


def add_key(parser: argparse.ArgumentParser) -> None:
    """TAO's ``-k/--key``: accepted for command compatibility; bpnet stores models unencrypted."""
    parser.add_argument(
        "-k", "--key", default="", help="accepted for TAO compatibility and ignored: bpnet models are stored unencrypted"
    )


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    """``-i/--inference_spec`` (optional) and ``-m/--model_filename`` of ``inference`` / ``evaluate``."""
    parser.add_argument("-i", "--inference_spec", default=None,
                        help="inference spec (infer_spec.yaml); default: the model's recommended settings (its model "
                        "card), which --set overrides")  # fmt: skip
    parser.add_argument("-m", "--model_filename", default=None,
                        help="model file (.keras, TAO 5 .hdf5, .onnx, .xml or .engine); overrides the spec's "
                        "model_path; a .hdf5 takes its architecture from the spec's train_spec, else from the file")  # fmt: skip


def predictor_from_args(args, check=None):
    """The :class:`~bpnet_core.infer.Predictor` of ``inference`` / ``evaluate``: the model is ``-m``, else the spec's
    ``model_path``; the spec is ``-i`` (+ ``--set``), else the model's recommended settings (+ ``--set``).
    ``check`` (cheap input checks) runs after the spec is read and before the model loads. A TAO 5 ``.hdf5`` takes
    its architecture from the spec's ``train_spec`` when set (TAO's inference spec key), else from the file."""
    from bpnet_core.config import infer_spec_from_model, load_infer_spec, resolve_path
    from bpnet_core.infer import Predictor
    from bpnet_core.runners import load_runner

    spec = load_infer_spec(args.inference_spec, args.overrides) if args.inference_spec else None
    model = args.model_filename
    if not model and spec is not None and spec.model_path:
        model = resolve_path(spec.source, spec.model_path)
    if not model:
        where = args.inference_spec or "bpnet"
        raise BpnetError(f"{where}: no model: give -m/--model_filename" + (" or set model_path" if spec else ""))
    if check is not None:
        check()
    train_spec = resolve_path(spec.source, spec.train_spec) if spec is not None and spec.train_spec else None
    runner = load_runner(model, train_spec=train_spec)
    return Predictor(runner, spec if spec is not None else infer_spec_from_model(runner.meta, args.overrides))


def _available_verbs() -> list:
    modules = []
    for name in VERBS:
        try:
            modules.append(importlib.import_module(f"bpnet_core.cli.{name}"))
        except ModuleNotFoundError as exc:
            if exc.name != f"bpnet_core.cli.{name}":
                raise
    return modules


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bpnet",
        description="BodyPoseNet (TAO-compatible) multi-person 2D pose estimation: data, training, evaluation, "
        "pruning, export and inference.",
    )
    parser.add_argument("--version", action="version", version=f"bpnet {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    for module in _available_verbs():
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bpnet`` console script; returns the exit code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, getattr(args, "log_level", "INFO")),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.func(args) or 0)
    except BpnetError as exc:
        print(f"bpnet: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bpnet: interrupted", file=sys.stderr)
        return 130
