"""The package's layout: imports point down only (no cycles), the longest chain of imports is at most 7 modules deep
(benchmarks included), and argparse is the command line's business alone. Measured from the source with ast."""

import ast
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "vit_replication"
MAX_DEPTH = 7


def _module_names() -> set[str]:
    return {path.stem for path in PACKAGE.glob("*.py") if path.stem != "__init__"}


def imports_of(path: Path) -> tuple[set[str], set[str]]:
    """(package modules imported anywhere in ``path``, lazy imports included; top-level names of other imports)."""
    names, internal, external = _module_names(), set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            inside = node.level > 0 or module.split(".")[0] == "vit_replication"
            if not inside:
                external.add(module.split(".")[0])
                continue
            tail = module.removeprefix("vit_replication").lstrip(".")
            if tail:
                internal.add(tail.split(".")[0])
            else:  # from . import a, b / from vit_replication import a
                internal |= {alias.name for alias in node.names if alias.name in names}
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "vit_replication" and len(parts) > 1:
                    internal.add(parts[1])
                else:
                    external.add(parts[0])
    return internal & names, external


def graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports; benchmarks as 'benchmarks/NAME'."""
    edges = {path.stem: imports_of(path)[0] - {path.stem} for path in PACKAGE.glob("*.py") if path.stem != "__init__"}
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


def test_argparse_is_imported_by_the_command_line_module_only():
    users = {path.stem for path in PACKAGE.glob("*.py") if "argparse" in imports_of(path)[1]}
    assert users == {"train"}
