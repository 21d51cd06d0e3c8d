"""The house: no import cycle between its parts, no module reaching into another's private
names, seeds derived in one place, no kind string branched on outside the targets, and no
function longer than a reader can hold."""

import ast
import re
from pathlib import Path

SRC = Path(__file__).parents[1] / "src" / "topowire"


def _modules():
    for path in sorted(SRC.rglob("*.py")):
        yield ".".join(("topowire", *path.relative_to(SRC).with_suffix("").parts)).removesuffix(".__init__"), path


def _imports(tree: ast.AST, module: str):
    """Every topowire module ``module`` imports (at any depth), but those only for type checking."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            yield from ((a.name, None) for a in node.names if a.name.startswith("topowire"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("topowire"):
            for a in node.names:  # "from topowire import checks" imports the module topowire.checks
                yield (f"topowire.{a.name}", None) if node.module == "topowire" else (node.module, a.name)


def _part(module: str) -> str:
    """The part of the house a module belongs to: its package below topowire, or itself."""
    return ".".join(module.split(".")[:2])


def _cycles(edges: dict[str, set[str]]) -> dict[str, list[str]]:
    """Every node that reaches itself along ``edges``, with what it imports."""
    def reach(start):
        seen, todo = set(), [start]
        while todo:
            for nxt in edges.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    return {node: sorted(edges[node]) for node in sorted(edges) if node in reach(node)}


def test_no_import_cycle_between_the_parts_of_the_house():
    edges: dict[str, set[str]] = {}
    for module, path in _modules():
        for target, _ in _imports(ast.parse(path.read_text()), module):
            if _part(target) != _part(module):
                edges.setdefault(_part(module), set()).add(_part(target))

    assert _cycles(edges) == {}


def _module_edges() -> dict[str, set[str]]:
    """Which topowire module imports which (at any depth, lazy imports included)."""
    modules = dict(_modules())
    edges: dict[str, set[str]] = {}
    for module, path in modules.items():
        for target, name in _imports(ast.parse(path.read_text()), module):
            imported = f"{target}.{name}" if name and f"{target}.{name}" in modules else target
            if imported in modules and imported != module:
                edges.setdefault(module, set()).add(imported)
    return edges


def test_no_import_cycle_between_modules():
    assert _cycles(_module_edges()) == {}


def test_no_module_imports_another_modules_private_names():
    private = [f"{module}: from {target} import {name}" for module, path in _modules()
               for target, name in _imports(ast.parse(path.read_text()), module)
               if name and name.startswith("_") and not name.startswith("__") and target != module]
    assert private == []


def test_seeds_are_derived_in_one_place():
    calls = [module for module, path in _modules() for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "init_seed"]
    assert calls == ["topowire.seeds"]
    assert [m for m, path in _modules() if re.search(r"\bseed \+ ", path.read_text())] == []


def test_no_kind_string_is_branched_on_outside_the_targets():
    lines = [f"{path}:{i}" for module, path in _modules() if ".targets" not in module
             for i, line in enumerate(path.read_text().splitlines(), 1) if re.search(r"kind (==|!=|in) ", line)]
    assert len(lines) <= 3, lines


#: The most lines a function of src/ may span (its signature, docstring and body).
MAX_FUNCTION_LINES = 80


def test_no_function_does_five_jobs():
    long = [f"{path.relative_to(SRC)}: {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for _, path in _modules() for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert long == []


def test_no_registry_is_imported_by_string_and_checks_imports_none():
    by_string = [f"{path.relative_to(SRC)}: {node.value}" for _, path in _modules()
                 for node in ast.walk(ast.parse(path.read_text()))
                 if isinstance(node, ast.Constant) and isinstance(node.value, str)
                 and re.fullmatch(r"topowire(\.\w+)+:\w+", node.value)]
    assert by_string == []
    checks = SRC / "checks.py"
    assert {t for t, _ in _imports(ast.parse(checks.read_text()), "topowire.checks")} <= {
        "topowire.errors", "topowire.limits"}  # the option domains of registries are declared beside them
