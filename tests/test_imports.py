"""The import graph of src/synthlabel: no cycle between modules nor between top-level folders (imports inside
functions and under TYPE_CHECKING count too), and no function imports a synthlabel module unless listed below."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# The only function-level imports of synthlabel modules, for speed only (never to dodge a cycle: the graph checked
# below includes them): the CLI's commands import their stage modules when they run, so `synthlabel --help` does
# not load torch models, scipy and matplotlib.
SPEED_ONLY = {
    ("synthlabel.cli.chain", "synthlabel.experiment"),
    ("synthlabel.cli.chain", "synthlabel.pipeline"),
    ("synthlabel.cli.classify", "synthlabel.cls.experiment"),
    ("synthlabel.cli.classify", "synthlabel.cls.report"),
    ("synthlabel.cli.mining", "synthlabel.mining.mine"),
    ("synthlabel.cli.segment", "synthlabel.analyze"),
    ("synthlabel.cli.segment", "synthlabel.downstream.workflow"),
    ("synthlabel.cli.segment", "synthlabel.eval.distribution"),
    ("synthlabel.cli.synthesis", "synthlabel.downstream.workflow"),
    ("synthlabel.cli.synthesis", "synthlabel.generators.latent"),
    ("synthlabel.cli.synthesis", "synthlabel.latent.stage"),
    ("synthlabel.cli.synthesis", "synthlabel.generators.translation"),
    ("synthlabel.cli.synthesis", "synthlabel.generators.workflow"),
    ("synthlabel.cli.synthesis", "synthlabel.synth.class_bank"),
    ("synthlabel.cli.synthesis", "synthlabel.synth.filters"),
    ("synthlabel.cli.synthesis", "synthlabel.synth.pseudo"),
    ("synthlabel.cli.synthesis", "synthlabel.synth.recompose"),
    ("synthlabel.cli.synthesis", "synthlabel.synth.synthesize"),
    ("synthlabel.cli.synthesis", "synthlabel.synth.translate"),
    ("synthlabel.cli.synthesis", "synthlabel.synth.trust"),
}


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    in_function: bool  # the import sits inside a function (a lazy import)


def modules(src: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the package (a package is its __init__.py)."""
    found = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imported(node: ast.Import | ast.ImportFrom, name: str, is_package: bool) -> list[str]:
    """The dotted names an import statement in module `name` may refer to (modules, or names inside them)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:  # relative: strip level - 1 parts from the package that holds the module
        package = name.split(".") if is_package else name.split(".")[:-1]
        anchor = ".".join(package[: len(package) - node.level + 1])
        base = f"{anchor}.{base}" if node.module else anchor
    return [base] + [f"{base}.{alias.name}" for alias in node.names]


def _walk(node: ast.AST, in_function: bool = False):
    """(import statement, whether it sits inside a function) for every import under node."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, in_function
        inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
        yield from _walk(child, inside)


def import_edges(src: Path, package: str) -> list[Edge]:
    """Module -> module edges of the package; imports of the module itself or of its parent packages are left out."""
    known = modules(src, package)
    edges = set()
    for name, path in known.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node, in_function in _walk(tree):
            for target in _imported(node, name, path.name == "__init__.py"):
                if target in known and target != name and not name.startswith(target + "."):
                    edges.add(Edge(name, target, in_function))
    return sorted(edges, key=lambda e: (e.source, e.target, e.in_function))


def function_level_imports(src: Path, package: str) -> set[tuple[str, str]]:
    """(module, imported module or package) for every import of the package inside a function, parents included."""
    found = set()
    for name, path in modules(src, package).items():
        for node, in_function in _walk(ast.parse(path.read_text(), filename=str(path))):
            imported = _imported(node, name, path.name == "__init__.py")
            bases = imported if isinstance(node, ast.Import) else imported[:1]
            found |= {(name, b) for b in bases if in_function and (b == package or b.startswith(package + "."))}
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of nodes that reach each other (each group of two or more is a cycle), sorted."""
    reach = {}
    for start in graph:
        seen, todo = set(), list(graph[start])
        while todo:
            node = todo.pop()
            if node not in seen:
                seen.add(node)
                todo.extend(graph.get(node, ()))
        reach[start] = seen
    groups = {frozenset(u for u in graph if u in reach[v] and v in reach[u]) for v in graph if v in reach[v]}
    return sorted(sorted(g) for g in groups if len(g) > 1)


def module_graph(edges: list[Edge]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.source, set()).add(e.target)
        graph.setdefault(e.target, set())
    return graph


def folder_graph(edges: list[Edge], src: Path, package: str) -> dict[str, set[str]]:
    """Top-level folder -> folders it imports from (modules directly in the package belong to no folder)."""

    def folder(module: str) -> str | None:
        parts = module.split(".")
        if len(parts) > 2 or (len(parts) == 2 and (src / package / parts[1]).is_dir()):
            return parts[1]
        return None

    graph: dict[str, set[str]] = {}
    for e in edges:
        a, b = folder(e.source), folder(e.target)
        if a and b and a != b:
            graph.setdefault(a, set()).add(b)
            graph.setdefault(b, set())
    return graph


def test_the_checker_finds_cycles_hidden_in_functions_and_relative_imports(tmp_path):
    pkg = tmp_path / "pkg"
    for folder in ("a", "b"):
        (pkg / folder).mkdir(parents=True)
        (pkg / folder / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("from pkg.a import x\n")  # a parent package: not an edge of pkg.a.x
    (pkg / "a" / "x.py").write_text("from . import y\nfrom ..b.z import f\n")
    (pkg / "a" / "y.py").write_text("def g():\n    from pkg.a import x\n")  # x <-> y, hidden in a function
    (pkg / "a" / "w.py").write_text("")
    (pkg / "b" / "z.py").write_text("import pkg.a.w\ndef f(): ...\n")  # folder b -> a, and a -> b above
    edges = import_edges(tmp_path, "pkg")
    assert Edge("pkg.a.y", "pkg.a.x", True) in edges and Edge("pkg.a.x", "pkg.b.z", False) in edges
    assert cycles(module_graph(edges)) == [["pkg.a.x", "pkg.a.y"]]
    assert cycles(folder_graph(edges, tmp_path, "pkg")) == [["a", "b"]]
    assert function_level_imports(tmp_path, "pkg") == {("pkg.a.y", "pkg.a")}


def test_no_import_cycle_between_modules():
    found = cycles(module_graph(import_edges(SRC, "synthlabel")))
    assert not found, "module import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_no_import_cycle_between_top_level_folders():
    found = cycles(folder_graph(import_edges(SRC, "synthlabel"), SRC, "synthlabel"))
    assert not found, "folder import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_functions_import_synthlabel_modules_only_for_speed_where_listed():
    lazy = function_level_imports(SRC, "synthlabel")
    unlisted, stale = sorted(lazy - SPEED_ONLY), sorted(SPEED_ONLY - lazy)
    assert not unlisted, "imports inside functions; import at the top instead:\n" + "\n".join(map(str, unlisted))
    assert not stale, f"SPEED_ONLY entries no longer in the code: {stale}"
