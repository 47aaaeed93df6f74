"""The package's files import each other without cycles, and no file imports another's private name.

Every import counts, including those inside functions (a lazy import hides a cycle from
Python, not from a reader). An edge goes from a file to the file that defines what it
imports: ``from minibn.experiments import drift`` to experiments/drift/__init__.py,
``from ..workspace import Workspace`` to workspace.py.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "minibn"


def _module_name(path):
    parts = ["minibn", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


FILES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _absolute(node, here, is_package):
    """The module an ImportFrom node names, made absolute."""
    if not node.level:
        return node.module
    base = here.split(".") if is_package else here.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports():
    """{module: [(imported module, imported name or None), ...]} for minibn's own modules."""
    graph = {}
    for name, path in FILES.items():
        edges = []
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                edges += [(a.name, None) for a in node.names if a.name.startswith("minibn")]
            elif isinstance(node, ast.ImportFrom):
                target = _absolute(node, name, path.name == "__init__.py")
                if target and target.startswith("minibn"):
                    for a in node.names:
                        sub = f"{target}.{a.name}"
                        edges.append((sub, None) if sub in FILES else (target, a.name))
        graph[name] = edges
    return graph


def _cycles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def _is_package_init(module):
    return FILES.get(module, Path()).name == "__init__.py"


def test_no_import_cycles_between_files():
    # A package's __init__ that re-exports its submodules is a table of contents, not a
    # dependency: importing a submodule through it is an edge to the submodule only.
    graph = {m: sorted({t for t, _ in edges if t in FILES and t != m and not (_is_package_init(t)
                                                                              and m.startswith(t + "."))})
             for m, edges in imports().items()}
    assert _cycles(graph) == []


def test_the_graph_sees_a_cycle_when_there_is_one():
    assert _cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c"]]


def test_no_file_imports_a_private_name_of_another_package():
    """Within one package (folder) a private helper may be shared; across folders it may not."""
    bad = []
    for module, edges in imports().items():
        folder = module if _is_package_init(module) else module.rsplit(".", 1)[0]
        for target, name in edges:
            target_folder = target if _is_package_init(target) else target.rsplit(".", 1)[0]
            if name and name.startswith("_") and not name.startswith("__") and target_folder != folder:
                bad.append(f"{module} imports {target}.{name}")
    assert bad == []
