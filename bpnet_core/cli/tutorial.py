"""``bpnet tutorial``: copy the tutorial (``init DIR``) and run its notebooks with papermill (``run DIR``)."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    from bpnet_core.cli import add_common

    p = sub.add_parser(
        "tutorial",
        help="copy the tutorial notebooks and their files into a folder, and run them",
        description='After `pip install "bpnet[notebooks,deploy]"`: `bpnet tutorial init DIR` then '
        "`bpnet tutorial run DIR` runs the whole tutorial (what `make demo` does in a source checkout). Both actions "
        "accept -ll/--log_level (DEBUG also shows TensorFlow's and the notebook kernels' own logs).",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    init = actions.add_parser(
        "init",
        help="copy the notebooks, specs, configs, model cards and sample data into DIR",
        description="Copy the notebooks/, specs/, model_pose_config/, data_pose_config/, model_cards/ and "
        "tests/fixtures/ (the tutorial's sample images and real networks) shipped with bpnet into DIR, in the "
        "source checkout's layout. Refuses to overwrite an earlier copy unless --force.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    init.add_argument("directory", metavar="DIR", help="folder to copy into (created if missing)")
    init.add_argument("--force", action="store_true", help="overwrite the files of an earlier copy")
    add_common(init)
    init.set_defaults(func=run_init)

    run = actions.add_parser(
        "run",
        help="run the notebooks of DIR/notebooks in order with papermill",
        description="Execute DIR/notebooks/NN_*.ipynb in order (working directory DIR/notebooks). Each executed "
        "notebook and its artefacts go to WORK_DIR/<notebook>/; a summary of their metrics is printed at the end.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    run.add_argument("directory", metavar="DIR", help="a folder made by `bpnet tutorial init` (or a source checkout)")
    run.add_argument("--profile", default="demo", choices=["demo", "full"],
                     help="demo: synthetic data, minutes on a CPU; full: COCO 2017 (download it first)")  # fmt: skip
    run.add_argument("--notebooks", default=None, help="comma-separated notebook prefixes to run, e.g. 02,03 "
                     "(default: all; later notebooks read what earlier ones wrote to WORK_DIR)")  # fmt: skip
    run.add_argument("--work_dir", default=None, help="where outputs go (default: DIR/runs/<profile>)")
    add_common(run)
    run.set_defaults(func=run_run)


def _no_overrides(args) -> None:
    from bpnet_core.errors import BpnetError

    if args.overrides:
        raise BpnetError(
            "tutorial reads no spec: --set is not accepted here (notebook parameters are in the notebooks)"
        )


def run_init(args) -> int:
    from bpnet_core.tutorial import init_tutorial

    _no_overrides(args)
    s = init_tutorial(args.directory, force=args.force)
    print(f"copied {s['files']} files ({', '.join(s['copied'])}) → {s['directory']}")
    print(f"next: bpnet tutorial run {args.directory}   (or open {s['directory']}/notebooks in JupyterLab)")
    return 0


def run_run(args) -> int:
    from pathlib import Path

    from bpnet_core.errors import BpnetError
    from bpnet_core.tutorial import run_tutorial, summary_lines

    _no_overrides(args)
    root = Path(args.directory).expanduser().resolve()
    notebook_dir = root / "notebooks"
    if not notebook_dir.is_dir():
        raise BpnetError(f"{root}: no notebooks/ folder; run `bpnet tutorial init {args.directory}` first")
    work_dir = Path(args.work_dir).expanduser().resolve() if args.work_dir else root / "runs" / args.profile
    only = [s.strip() for s in args.notebooks.split(",") if s.strip()] if args.notebooks else None
    results = run_tutorial(work_dir, args.profile, only, notebook_dir=notebook_dir, level=args.log_level)
    print("\n".join(summary_lines(results, work_dir)))
    return 0
