"""The declared layers of ``bpnet_core`` (:mod:`bpnet_core.layers`), enforced on the source with ``ast``.

Every ``import`` / ``from … import`` of a ``bpnet_core`` module counts, at module level and inside functions or
classes (relative imports resolved). Importing ``bpnet_core.a.b.c`` also runs the ``__init__.py`` of ``a`` and
``a.b``, so those count too (except a module's own enclosing packages, which are loading already). Checked:

* every module is placed in a layer (a new module must be added to ``LAYERS``), and every entry names a module;
* no module imports a module of a higher layer;
* no import cycle joins two modules (same layer included), with function-level imports counted: a lazy import
  keeps an optional dependency out of import time, it does not make a cycle acceptable. A submodule that imports
  its own package by name (``from pkg import x``, ``from . import x``, ``import pkg`` inside ``pkg/y.py``) reads the
  package's namespace, so it counts as importing ``pkg/__init__.py``: a loop when that ``__init__`` imports ``y``.
  A sibling is imported by its full name instead (``from pkg.x import f``, ``import pkg.x as x``);
* a function-level import of a ``bpnet_core`` module is there to keep a heavy optional dependency (:data:`HEAVY`)
  out of import time: the module it imports must load one when imported (its module-level imports, transitively
  through ``bpnet_core`` modules and package ``__init__``s). Any other is imported at module level.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from bpnet_core.layers import LAYERS, layer_of

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "bpnet_core"

#: Upward imports accepted on purpose: {(importing module, imported module): reason}. Keep it empty or short.
ALLOWED_UPWARD: dict[tuple[str, str], str] = {}


def _modules() -> dict[str, Path]:
    """Dotted module name → file, for every ``.py`` under ``bpnet_core/``."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _layer_key(module: str) -> str:
    """The name :func:`layer_of` takes: relative to ``bpnet_core``; a package's own file is ``<pkg>.__init__``."""
    rel = module.split(".", 1)[1] if "." in module else ""
    if MODULES[module].name == "__init__.py":
        return f"{rel}.__init__" if rel else "__init__"
    return rel


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if MODULES[module].name != "__init__.py":
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _targets(name: str, importer: str) -> list[str]:
    """The ``bpnet_core`` modules that importing ``name`` runs: it and its enclosing packages (except the
    importer's own enclosing packages)."""
    parts = name.split(".")
    out = []
    for i in range(1, len(parts) + 1):
        candidate = ".".join(parts[:i])
        if candidate in MODULES and candidate != importer and not importer.startswith(candidate + "."):
            out.append(candidate)
    return out


def _is_main_guard(node: ast.AST) -> bool:
    """``if __name__ == "__main__":`` (its body runs as a script, not on import)."""
    test = node.test if isinstance(node, ast.If) else None
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and len(test.comparators) == 1
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value == "__main__"
    )


def _import_nodes(tree: ast.Module) -> list[tuple[ast.Import | ast.ImportFrom, str]]:
    """Every import statement with where it runs: ``"module"`` (at import time: module level, class bodies,
    ``try``/``if`` blocks), ``"function"`` (inside a function: when it is called) or ``"script"`` (under
    ``if __name__ == "__main__":``)."""
    out = []
    work = [(tree, "module")]
    while work:
        node, where = work.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                out.append((child, where))
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                work.append((child, "function"))
            else:
                work.append((child, "script" if where == "module" and _is_main_guard(child) else where))
    return sorted(out, key=lambda item: item[0].lineno)


def _statements() -> list[tuple[str, int, str, str]]:
    """``(importer, line, imported name, where)`` for every imported name (absolute, any package) of every module."""
    out = []
    for module, path in MODULES.items():
        for node, where in _import_nodes(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                source = _resolve(module, node)
                # ``from pkg import sub`` imports the submodule ``pkg.sub``; ``from mod import name`` only ``mod``
                names = [f"{source}.{a.name}" if f"{source}.{a.name}" in MODULES else source for a in node.names]
            out.extend((module, node.lineno, name, where) for name in names)
    return out


STATEMENTS = _statements()


def _own_package_imports(module: str, tree: ast.Module) -> list[tuple[int, str]]:
    """``(line, package)`` for every statement of ``module`` that imports one of its enclosing packages by name:
    ``from pkg import x`` (relative too: ``from . import x``) or ``import pkg``. Python runs that package's
    ``__init__`` first anyway, but such a statement also reads the package's namespace (``x`` from ``pkg``), which
    is only partly there while the package's ``__init__`` is itself importing ``module``."""
    out = []
    for node, _ in _import_nodes(tree):
        from_import = isinstance(node, ast.ImportFrom)
        sources = [_resolve(module, node)] if from_import else [alias.name for alias in node.names]
        out += [(node.lineno, src) for src in sources if src in MODULES and module.startswith(src + ".")]
    return out


def _is_ours(name: str) -> bool:
    return name == "bpnet_core" or name.startswith("bpnet_core.")


def _imports() -> list[tuple[str, int, str]]:
    """``(importer, line, imported)`` for every import of a ``bpnet_core`` module, at any depth, and for every
    import of a module's own enclosing package by name (:func:`_own_package_imports`)."""
    edges = [(module, line, target) for module, line, name, _ in STATEMENTS if _is_ours(name)
             for target in _targets(name, module)]  # fmt: skip
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        edges += [(module, line, package) for line, package in _own_package_imports(module, tree)]
    return sorted(set(edges))


EDGES = _imports()


def _where(module: str, line: int) -> str:
    return f"{MODULES[module].relative_to(ROOT)}:{line}"


def test_every_module_is_placed_and_every_entry_exists():
    unplaced = [m for m in MODULES if layer_of(_layer_key(m)) is None]
    assert not unplaced, f"modules in no layer (add them to bpnet_core/layers.py LAYERS): {unplaced}"
    keys = {_layer_key(m) for m in MODULES} | {_layer_key(m).removesuffix(".__init__") for m in MODULES}
    entries = [entry for _, names in LAYERS for entry in names]
    assert len(entries) == len(set(entries)), "an entry is listed twice in LAYERS"
    stale = [e for e in entries if e not in keys]
    assert not stale, f"LAYERS entries that name no module: {stale}"


def test_no_upward_import():
    bad = []
    for importer, line, imported in EDGES:
        low, high = layer_of(_layer_key(importer)), layer_of(_layer_key(imported))
        if high > low and (importer, imported) not in ALLOWED_UPWARD:
            bad.append(f"{_where(importer, line)}: {importer} (layer {low} {LAYERS[low][0]}) imports {imported} "
                       f"(layer {high} {LAYERS[high][0]})")  # fmt: skip
    assert not bad, "upward imports:\n" + "\n".join(bad)
    unused = set(ALLOWED_UPWARD) - {(a, b) for a, _, b in EDGES}
    assert not unused, f"ALLOWED_UPWARD entries no longer needed: {sorted(unused)}"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_no_import_cycle():
    graph, lines = defaultdict(set), {}
    for importer, line, imported in EDGES:
        graph[importer].add(imported)
        graph[imported]
        lines.setdefault((importer, imported), line)
    cycles = _cycles(graph)
    report = []
    for component in cycles:
        members = set(component)
        report.append(" ↔ ".join(component))
        report += [f"    {_where(a, lines[a, b])}: {a} imports {b}"
                   for a in component for b in sorted(graph[a] & members)]  # fmt: skip
    assert not cycles, "import cycles (function-level imports included):\n" + "\n".join(report)


def test_the_checks_see_a_cycle_and_an_upward_import():
    """The checks themselves: a cycle, a function-level import and a submodule importing its own package are
    found."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert not _cycles({"a": {"b"}, "b": set()})
    module = "bpnet_core.export.sdk"  # as if it imported its package (whose __init__ imports it) by name
    own = ("from bpnet_core.export import onnx as ox\nfrom . import quantize\nimport bpnet_core.export\n"
           "import bpnet_core.export.onnx as ox2\nfrom bpnet_core.export.onnx import set_meta\n"
           "def f():\n    from bpnet_core import errors\n")  # fmt: skip
    assert _own_package_imports(module, ast.parse(own)) == [(1, "bpnet_core.export"), (2, "bpnet_core.export"),
                                                           (3, "bpnet_core.export"), (7, "bpnet_core")]  # fmt: skip
    graph = defaultdict(set, {"bpnet_core.export": {module}, module: {"bpnet_core.export"}})
    assert _cycles(graph) == [["bpnet_core.export", module]]
    assert ("bpnet_core.export", module) in {(a, b) for a, _, b in EDGES}  # the package's __init__ imports sdk
    lazy = [(a, b) for a, _, b in EDGES if a == "bpnet_core.cli.train" and b == "bpnet_core.train"]
    assert lazy, "function-level imports are not collected"  # cli/train.py imports bpnet_core.train in a function


#: Top-level packages that are heavy (seconds to import, or optional): a ``bpnet_core`` module may import another
#: inside a function only to keep one of these out of its own import time.
HEAVY = frozenset({"tensorflow", "keras", "onnxruntime", "onnx", "openvino", "nncf", "tensorrt", "tf2onnx",
                   "matplotlib", "ipywidgets", "papermill"})  # fmt: skip

#: Function-level imports of light modules kept on purpose: {(importing module, imported module): reason}. Function-
#: level imports inside ``bpnet_core/cli/`` are exempt as a rule (below). Keep it empty or short.
ALLOWED_LAZY: dict[tuple[str, str], str] = {}


def _heavy_at_import() -> dict[str, str]:
    """Module → why importing it loads a :data:`HEAVY` package (``"bpnet_core.model → keras"``), for every module
    that does: its module-level imports, transitively through ``bpnet_core`` modules and package ``__init__``s."""
    why: dict[str, str] = {}
    eager = defaultdict(set)
    for module, _, name, where in STATEMENTS:
        if where != "module":
            continue
        if _is_ours(name):
            eager[module].update(_targets(name, module))
        elif name.split(".")[0] in HEAVY:
            why.setdefault(module, name.split(".")[0])
    changed = True
    while changed:
        changed = False
        for module in sorted(eager):
            if module in why:
                continue
            heavy = sorted(t for t in eager[module] if t in why)
            if heavy:
                why[module] = f"{heavy[0]} → {why[heavy[0]]}"
                changed = True
    return why


HEAVY_AT_IMPORT = _heavy_at_import()


def _cli_exempt(module: str) -> bool:
    """``bpnet_core/cli/``: ``bpnet --help`` imports every verb module to build its parser, so a verb imports the
    library (spec schemas, NumPy, OpenCV, the runtimes) only inside ``run``: a fast start is the reason there."""
    return module == "bpnet_core.cli" or module.startswith("bpnet_core.cli.")


def _lazy_imports_of_light_modules() -> list[tuple[str, int, str]]:
    """``(importer, line, imported)`` for every function-level import of ``bpnet_core`` modules none of which is
    heavy at import time (outside ``bpnet_core/cli/``)."""
    out = []
    for module, line, name, where in STATEMENTS:
        if where != "function" or not _is_ours(name) or _cli_exempt(module):
            continue
        targets = _targets(name, module)
        if targets and not any(t in HEAVY_AT_IMPORT for t in targets):
            out.append((module, line, targets[-1]))
    return sorted(set(out))


def test_function_level_imports_keep_a_heavy_dependency_lazy():
    lazy = _lazy_imports_of_light_modules()
    bad = [f"{_where(a, line)}: {b} loads no heavy dependency at import time: import it at module level"
           for a, line, b in lazy if (a, b) not in ALLOWED_LAZY]  # fmt: skip
    assert not bad, "function-level imports of light modules:\n" + "\n".join(bad)
    unused = set(ALLOWED_LAZY) - {(a, b) for a, _, b in lazy}
    assert not unused, f"ALLOWED_LAZY entries no longer needed: {sorted(unused)}"


def test_the_heaviness_check_sees_its_cases():
    """The rule itself: Keras-backed modules are heavy, the decoder is not, and a lazy import is found."""
    assert "bpnet_core.model.bpnet" in HEAVY_AT_IMPORT  # imports keras at module level
    assert "bpnet_core.decode" not in HEAVY_AT_IMPORT and "bpnet_core.config" not in HEAVY_AT_IMPORT
    assert "bpnet_core" not in HEAVY_AT_IMPORT
    where = {w for m, _, n, w in STATEMENTS if m == "bpnet_core.cli.train" and n == "bpnet_core.train"}
    assert where == {"function"}
    scripts = {n for m, _, n, w in STATEMENTS if m == "bpnet_core.benchmarks.inference" and w == "script"}
    assert "argparse" in scripts  # imported under if __name__ == "__main__": not at import time
