"""The declared layers of ``bpnet_core`` (:mod:`bpnet_core.layers`), enforced on the source with ``ast``.

Every ``import`` / ``from … import`` of a ``bpnet_core`` module counts, at module level and inside functions or
classes (relative imports resolved). Importing ``bpnet_core.a.b.c`` also runs the ``__init__.py`` of ``a`` and
``a.b``, so those count too (except a module's own enclosing packages, which are loading already). Checked:

* every module is placed in a layer (a new module must be added to ``LAYERS``), and every entry names a module;
* no module imports a module of a higher layer;
* no import cycle joins two modules (same layer included), with function-level imports counted: a lazy import
  keeps an optional dependency out of import time, it does not make a cycle acceptable.
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


def _imports() -> list[tuple[str, int, str]]:
    """``(importer, line, imported)`` for every import of a ``bpnet_core`` module, at any depth."""
    edges = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                source = _resolve(module, node)
                # ``from pkg import sub`` imports the submodule ``pkg.sub``; ``from mod import name`` only ``mod``
                names = [f"{source}.{a.name}" if f"{source}.{a.name}" in MODULES else source for a in node.names]
            for name in names:
                if name == "bpnet_core" or name.startswith("bpnet_core."):
                    edges.extend((module, node.lineno, target) for target in _targets(name, module))
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
    """The checks themselves: a cycle and a function-level import are found."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert not _cycles({"a": {"b"}, "b": set()})
    lazy = [(a, b) for a, _, b in EDGES if a == "bpnet_core.cli.train" and b == "bpnet_core.train"]
    assert lazy, "function-level imports are not collected"  # cli/train.py imports bpnet_core.train in a function
