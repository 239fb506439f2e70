"""Static notebook rules: one parameters cell of literals, no outputs, no !pip, no helpers, an asserting last cell."""

import ast
import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
REQUIRED_PARAMETERS = {"WORK_DIR", "PROFILE", "SEED"}
RUNNER_PARAMETERS = {"WORK_DIR", "PROFILE"}  # bpnet tutorial run sets them in every notebook, used or not


def cells(path):
    return json.loads(path.read_text())["cells"]


def test_there_are_notebooks():
    assert [p.stem[:2] for p in NOTEBOOKS][:2] == ["00", "01"]


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_outputs_stored(nb):
    for c in cells(nb):
        if c["cell_type"] == "code":
            assert c.get("outputs", []) == [] and c.get("execution_count") is None, f"{nb.name} has stored outputs"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_one_parameters_cell_of_literals(nb):
    all_cells = cells(nb)
    params = [c for c in all_cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1, f"{nb.name}: expected exactly one cell tagged 'parameters'"
    tree = ast.parse("".join(params[0]["source"]))
    names = set()
    for node in tree.body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name), (
            f"{nb.name}: parameters cell may hold only NAME = literal lines"
        )
        ast.literal_eval(node.value)  # raises if not a literal
        assert not isinstance(node.value, ast.Tuple), f"{nb.name}: no tuples in parameters"
        names.add(node.targets[0].id)
    assert names >= REQUIRED_PARAMETERS, f"{nb.name}: missing parameters {REQUIRED_PARAMETERS - names}"
    assert params[0] is [c for c in all_cells if c["cell_type"] == "code"][0], "parameters must be the first code cell"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_parameter_is_used(nb):
    all_cells = cells(nb)
    params = next(c for c in all_cells if "parameters" in c.get("metadata", {}).get("tags", []))
    names = {node.targets[0].id for node in ast.parse("".join(params["source"])).body}
    rest = "\n".join("".join(c["source"]) for c in all_cells if c is not params)
    unused = sorted(n for n in names - RUNNER_PARAMETERS if not re.search(rf"\b{n}\b", rest))
    assert not unused, f"{nb.name}: parameters no cell uses: {unused}"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_pip_no_shell_no_helper_definitions(nb):
    for c in cells(nb):
        if c["cell_type"] != "code":
            continue
        src = "".join(c["source"])
        assert "!pip" not in src and "%pip" not in src and not src.lstrip().startswith("!"), nb.name
        tree = ast.parse(src)
        for node in ast.walk(tree):
            assert not isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)), (
                f"{nb.name}: define helpers in bpnet_core, not in notebooks"
            )
        assert len(src.splitlines()) <= 20, f"{nb.name}: code cells stay short (<= 20 lines)"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_ends_with_asserting_cell_that_writes_metrics(nb):
    last = [c for c in cells(nb) if c["cell_type"] == "code"][-1]
    src = "".join(last["source"])
    assert "assert " in src and "write_metrics(" in src, f"{nb.name}: the last cell must assert and write metrics"
    assert cells(nb)[0]["cell_type"] == "markdown" and cells(nb)[0]["source"][0].startswith("# ")
