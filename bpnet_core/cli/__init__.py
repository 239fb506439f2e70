"""The ``bpnet`` command line: TAO's verbs and flags, one thin module per verb.

Each module in :data:`VERBS` defines ``add_parser(subparsers)`` (which registers the verb and its flags) and
``run(args) -> int`` (which calls exactly one public library function). Every verb also accepts ``--set a.b=c``
(spec overrides) and ``-ll/--log_level``.

Errors on user input are :class:`~bpnet_core.errors.BpnetError`: printed as one line ``bpnet: error: ...``, exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from bpnet_core import __version__
from bpnet_core.errors import BpnetError
from bpnet_core.verbosity import DEFAULT, ENV_VAR, LEVELS, configure, filtered_stderr, log_level, quiet_environment

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
    "qat",
    "export",
    "deepstream_config",
    "calibration_images",
    "bench",
    "tutorial",
]

#: how a file argument (-e, -i, -d, pose configs, --card) is found; shown in ``bpnet --help``
NAME_RULE = (
    "File arguments: a path that exists is used as given; otherwise a bare name such as infer_spec.yaml, "
    "bpnet_train_m1_demo.yaml, coco_spec.json or bpnet_18joints.json names the file shipped with bpnet (looked up in "
    "specs/, model_pose_config/, data_pose_config/ and model_cards/), and specs/NAME names the shipped specs/NAME. "
    "`bpnet tutorial init DIR` copies all shipped files into DIR."
)


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
        "-ll",
        "--log_level",
        default=None,
        choices=list(LEVELS),
        type=str.upper,
        help=f"logging level (default: ${ENV_VAR} or {DEFAULT}); below DEBUG bpnet prints only its own lines, DEBUG "
        "also shows TensorFlow's C++ logs and the libraries' and notebook kernels' log lines; errors always show",
    )


def add_key(parser: argparse.ArgumentParser) -> None:
    """TAO's ``-k/--key``: accepted for command compatibility; bpnet stores models unencrypted."""
    parser.add_argument(
        "-k",
        "--key",
        default="",
        help="accepted for TAO compatibility and ignored: bpnet models are stored unencrypted",
    )


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    """``-i/--inference_spec`` (optional) and ``-m/--model_filename`` of ``inference`` / ``evaluate``."""
    parser.add_argument("-i", "--inference_spec", default=None,
                        help="inference spec (infer_spec.yaml); default: the model's recommended settings (its model "
                        "card), which --set overrides")  # fmt: skip
    parser.add_argument("-m", "--model_filename", default=None,
                        help="model file (.keras, TAO 5 .hdf5, .onnx, .xml or .engine); overrides the spec's "
                        "model_path; a .hdf5 takes its architecture from the spec's train_spec, "
                        "else from the file")  # fmt: skip


def predictor_from_args(args, check=None):
    """The :class:`~bpnet_core.infer.Predictor` of ``inference`` / ``evaluate``: the model is ``-m``, else the spec's
    ``model_path``; the spec is ``-i`` (+ ``--set``), else the model's recommended settings (+ ``--set``).
    ``check`` (cheap input checks) runs after the spec is read and before the model loads. A TAO 5 ``.hdf5`` takes
    its architecture from the spec's ``train_spec`` when set (TAO's inference spec key), else from the file."""
    from bpnet_core.config import infer_spec_from_model, load_infer_spec
    from bpnet_core.infer import Predictor
    from bpnet_core.runners import load_runner

    spec = load_infer_spec(args.inference_spec, args.overrides) if args.inference_spec else None
    model = args.model_filename
    if not model and spec is not None and spec.model_path:
        model = spec.model_path  # absolute: paths are resolved when the spec loads
    if not model:
        where = args.inference_spec or "bpnet"
        raise BpnetError(f"{where}: no model: give -m/--model_filename" + (" or set model_path" if spec else ""))
    if check is not None:
        check()
    train_spec = spec.train_spec if spec is not None else None
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
        epilog=NAME_RULE + f" Output folders (-o, -r) are created when missing. Quiet by default: -ll DEBUG (or "
        f"{ENV_VAR}=DEBUG) shows TensorFlow's and the libraries' own logs.",
    )
    parser.add_argument("--version", action="version", version=f"bpnet {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    for module in _available_verbs():
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bpnet`` console script; returns the exit code."""
    quiet_environment(log_level())  # before any verb imports TensorFlow
    parser = build_parser()
    args = parser.parse_args(argv)
    args.log_level = log_level(getattr(args, "log_level", None))
    configure(args.log_level)
    try:
        return int(args.func(args) or 0)
    except BpnetError as exc:
        print(f"bpnet: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bpnet: interrupted", file=sys.stderr)
        return 130


def _level_from_argv(argv: list[str]) -> str:
    """The log level -ll/--log_level asks for (before argparse runs), else the environment's."""
    for i, arg in enumerate(argv):
        if arg in ("-ll", "--log_level") and i + 1 < len(argv):
            return log_level(argv[i + 1]) if argv[i + 1].upper() in LEVELS else log_level()
        if arg.startswith("--log_level="):
            value = arg.split("=", 1)[1]
            return log_level(value) if value.upper() in LEVELS else log_level()
    return log_level()


def console_main() -> int:
    """The ``bpnet`` console script and ``python -m bpnet_core``: :func:`main` with the libraries' C++ log lines
    filtered out of standard error below DEBUG (``bpnet_core.verbosity.filtered_stderr``)."""
    argv = sys.argv[1:]
    with filtered_stderr(_level_from_argv(argv)):
        return main(argv)
