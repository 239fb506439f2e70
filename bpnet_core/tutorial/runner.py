"""Run the tutorial notebooks in order with papermill (``make demo``, ``bpnet tutorial run``, the notebook test).

Each notebook runs with the working directory ``notebooks/`` (as in JupyterLab) and the parameters ``WORK_DIR``
(absolute) and ``PROFILE``; the executed copy goes to ``WORK_DIR/<stem>/<stem>.ipynb`` next to the artefacts and the
``metrics.json`` that the notebook's last cell writes. Notebooks pass data to each other only through ``WORK_DIR``.
``bpnet tutorial init DIR`` (:func:`init_tutorial`) copies the notebooks and the files they read into DIR, in the
source checkout's layout, so an installed bpnet runs the tutorial anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bpnet_core.errors import BpnetError
from bpnet_core.fileio import make_dir
from bpnet_core.paths import PROJECT_ROOT, SHIPPED_TREES
from bpnet_core.verbosity import filtered_stderr, kernel_arguments, log_level, quiet_environment

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"


def init_tutorial(directory: str | Path, force: bool = False) -> dict:
    """Copy the shipped notebooks, specs, configs, model cards and sample data (``bpnet_core.paths.SHIPPED_TREES``)
    into ``directory`` (created), keeping their layout; an existing copy is refused unless ``force``. Each folder is
    copied to a temporary name beside it first and renamed into place. Returns ``{"directory", "copied", "files"}``."""
    dest = make_dir(directory, "tutorial folder")
    if dest == PROJECT_ROOT.resolve():
        raise BpnetError(f"{dest}: is where bpnet's shipped files live; choose another folder")
    present = [t for t in SHIPPED_TREES if (dest / t).exists()]
    if present and not force:
        raise BpnetError(f"{dest}: already holds {', '.join(present)}; give --force to overwrite them")
    stage = Path(tempfile.mkdtemp(prefix=".bpnet-tutorial-", dir=dest))
    files = 0
    try:
        for tree in SHIPPED_TREES:
            shutil.copytree(PROJECT_ROOT / tree, stage / tree,
                            ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints", "*.pyc"))  # fmt: skip
            files += sum(len(f) for _, _, f in os.walk(stage / tree))
        for tree in SHIPPED_TREES:
            target = dest / tree
            if target.exists():
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(stage / tree, target)
    except OSError as exc:
        raise BpnetError(f"{dest}: cannot copy the tutorial there: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return {"directory": str(dest), "copied": list(SHIPPED_TREES), "files": files}


def tutorial_notebooks(notebook_dir: Path = NOTEBOOK_DIR) -> list[Path]:
    """The tutorial notebooks (``NN_name.ipynb``), in order."""
    return sorted(p for p in notebook_dir.glob("[0-9][0-9]_*.ipynb"))


def run_tutorial(
    work_dir: str | Path,
    profile: str = "demo",
    notebooks: list[str] | None = None,
    extra_parameters: dict | None = None,
    kernel_name: str = "python3",
    log_output: bool = False,
    notebook_dir: str | Path = NOTEBOOK_DIR,
    level: str | None = None,
) -> dict:
    """Execute the notebooks of ``notebook_dir`` (all, or those whose stem starts with one of ``notebooks``);
    returns their metrics. ``level`` (default ``$BPNET_LOG_LEVEL`` or INFO): below DEBUG the kernels start with
    TensorFlow's C++ logs and their own start-up warnings off (``bpnet_core.verbosity``)."""
    import papermill as pm

    notebook_dir = Path(notebook_dir).resolve()
    level = log_level(level)
    quiet_environment(level)  # the kernels inherit this process's environment
    work_dir = make_dir(work_dir, "work folder")
    selected = [nb for nb in tutorial_notebooks(notebook_dir)
                if not notebooks or any(nb.stem.startswith(s) for s in notebooks)]  # fmt: skip
    if not selected:
        raise BpnetError(f"no notebooks matching {notebooks} in {notebook_dir}")
    results = {}
    for nb in selected:
        out_dir = work_dir / nb.stem
        out_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        print(f"[tutorial] {nb.name} ({profile}) ...", flush=True)
        params = {"WORK_DIR": str(work_dir), "PROFILE": profile, **(extra_parameters or {})}
        try:
            pm.execute_notebook(str(nb), str(out_dir / nb.name), parameters=params, cwd=str(notebook_dir),
                                kernel_name=kernel_name, log_output=log_output, progress_bar=False,
                                extra_arguments=kernel_arguments(level))  # fmt: skip
        except pm.PapermillExecutionError as exc:
            raise BpnetError(
                f"{nb.name} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue} (executed copy: "
                f"{out_dir / nb.name})"
            ) from None
        metrics_file = out_dir / "metrics.json"
        metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
        results[nb.stem] = {"seconds": round(time.perf_counter() - t0, 1), "metrics": metrics}
        print(f"[tutorial] {nb.name} done in {results[nb.stem]['seconds']} s", flush=True)
    return results


def summary_lines(results: dict, work_dir: Path) -> list[str]:
    lines = [f"Tutorial finished; executed notebooks and artefacts are under {work_dir}/<notebook>/"]
    for stem, r in results.items():
        flat = {}
        for k, v in r["metrics"].items():  # one level of nesting: latency_ms.ort_int8, ap.keras_fp32, ...
            items = v.items() if isinstance(v, dict) else [(None, v)]
            for sub, x in items:
                if isinstance(x, (int, float)) and not isinstance(x, bool):
                    flat[f"{k}.{sub}" if sub else k] = round(x, 3) if isinstance(x, float) else x
        shown = ", ".join(f"{k}={v}" for k, v in flat.items())
        lines.append(f"  {stem:<20} {r['seconds']:>7.1f} s  {shown[:240]}")
    return lines


def main(argv: list[str] | None = None) -> int:
    """``python -m bpnet_core.tutorial`` (the source checkout's notebooks; ``bpnet tutorial run`` is the same)."""
    ap = argparse.ArgumentParser(prog="python -m bpnet_core.tutorial", description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="demo", choices=["demo", "full"])
    ap.add_argument("--work-dir", default="runs/demo")
    ap.add_argument("--only", nargs="*", default=None, help="notebook stems (prefixes) to run, e.g. 00 01")
    args = ap.parse_args(argv)
    try:
        with filtered_stderr(log_level()):
            results = run_tutorial(args.work_dir, args.profile, args.only)
    except BpnetError as exc:
        print(f"bpnet: error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(summary_lines(results, Path(args.work_dir).resolve())))
    return 0
