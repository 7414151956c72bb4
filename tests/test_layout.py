"""The package's layout: the paper's model in a folder of its own, imports that point down only (no cycles), the
longest chain of imports at most 7 modules deep (benchmarks included), no function with more than 8 parameters, and
argparse the command line's business alone. Measured from the source with ast."""

import ast
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "vit_replication"
MAX_DEPTH = 7
MAX_PARAMETERS = 8


def module_name(path: Path) -> str:
    """'model.vit' for vit_replication/model/vit.py, 'model' for its __init__.py, '' for the package's own."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def resolve(path: Path, node: ast.ImportFrom) -> str | None:
    """The dotted name inside the package that ``node`` imports from (None: outside the package)."""
    module = node.module or ""
    if node.level == 0:
        if module.split(".")[0] != "vit_replication":
            return None
        return module.removeprefix("vit_replication").lstrip(".")
    here = module_name(path).split(".") if module_name(path) else []
    package = here if path.name == "__init__.py" else here[:-1]
    base = package[:len(package) - (node.level - 1)]
    return ".".join(base + ([module] if module else []))


def runtime_nodes(tree: ast.AST):
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:`` (imports for annotations, never run)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            continue
        yield node
        yield from runtime_nodes(node)


def imports_of(path: Path) -> tuple[set[str], set[str]]:
    """(package modules imported anywhere in ``path``, lazy imports included, annotation-only ones not; top-level
    names of other imports)."""
    internal, external = set(), set()
    for node in runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            target = resolve(path, node)
            if target is None:
                external.add((node.module or "").split(".")[0])
                continue
            submodules = {f"{target}.{a.name}".lstrip(".") for a in node.names} & set(MODULES)
            internal |= submodules or {target}
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("vit_replication."):
                    internal.add(alias.name.removeprefix("vit_replication."))
                else:
                    external.add(alias.name.split(".")[0])
    return internal & set(MODULES), external


def graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports; benchmarks as 'benchmarks/NAME'."""
    edges = {name: imports_of(path)[0] - {name} for name, path in MODULES.items()}
    edges |= {f"benchmarks/{path.stem}": imports_of(path)[0] for path in (ROOT / "benchmarks").glob("*.py")}
    return edges


def longest_chain(edges: dict[str, set[str]]) -> list[str]:
    """The longest chain of imports, top module first (an import cycle raises)."""
    @cache
    def chain(module: str, visiting: frozenset = frozenset()) -> tuple[str, ...]:
        if module in visiting:
            raise AssertionError(f"import cycle through {module}")
        below = [chain(m, visiting | {module}) for m in edges.get(module, ())]
        return (module, *max(below, key=len, default=()))

    return list(max((chain(m) for m in edges), key=len))


def test_the_longest_import_chain_is_at_most_seven_modules(capsys):
    longest = longest_chain(graph())
    with capsys.disabled():
        print(f"\nlongest import chain ({len(longest)} modules): {' -> '.join(longest)}")
    assert len(longest) <= MAX_DEPTH, longest


def test_longest_chain_measures_depth_and_finds_cycles():
    assert longest_chain({"a": {"b"}, "b": {"c"}, "c": set(), "d": {"c"}}) == ["a", "b", "c"]
    try:
        longest_chain({"a": {"b"}, "b": {"a"}})
    except AssertionError as error:
        assert "import cycle" in str(error)
    else:
        raise AssertionError("a cycle went unnoticed")


def test_imports_resolve_relative_and_absolute_names():
    edges = graph()
    assert "training.config" not in edges["training.loop"]  # imported under TYPE_CHECKING only
    assert "model.embedding" in edges["model.vit"] and "model.vit" in edges["model"]
    assert "errors" in edges["data.datasets"]  # from ..errors import UserError


def test_the_papers_model_has_a_folder_of_its_own_that_imports_nothing_else_of_the_package():
    model = {name for name in MODULES if name.split(".")[0] == "model"}
    assert {"model.embedding", "model.attention", "model.mlp", "model.block", "model.vit"} <= model
    outside = {target for name in model for target in graph()[name] if target.split(".")[0] != "model"}
    assert outside <= {"errors"}, outside


def test_argparse_is_imported_by_the_command_line_module_only():
    users = {name for name, path in MODULES.items() if "argparse" in imports_of(path)[1]}
    assert users == {"train"}


def parameter_count(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    a = function.args
    count = len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs) + bool(a.vararg) + bool(a.kwarg)
    return count - bool(a.args and a.args[0].arg in ("self", "cls"))


def test_no_function_takes_more_than_eight_parameters():
    wide = [f"{name}:{node.name} ({parameter_count(node)})" for name, path in MODULES.items()
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and parameter_count(node) > MAX_PARAMETERS
            and node.name != "parser"]
    assert not wide, wide
