"""The package's shape: one subpackage per stage, imports pointing down the data flow only, no import cycle."""

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
PACKAGE = Path(__file__).resolve().parents[2] / "src" / "transferbench"
# Stages in data-flow order; a module may import its own stage and the stages before it, never one after it.
RANKS = {"hints": 0, "atomic": 0, "seeding": 0, "metrics": 0, "predictions": 0, "inference": 0, "config": 0,
         "data": 1, "models": 2, "features": 3, "probe": 4, "train": 4, "detection": 4, "analysis": 5,
         "sweeps": 0, "footprint": 0, "checks": 6, "prefetch": 6, "failures": 6, "workflow": 7}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_imports(path: Path) -> set[str]:
    """transferbench modules `path` imports at run time (imports under `if TYPE_CHECKING:` are annotations only)."""
    tree = ast.parse(path.read_text())
    skipped = {id(n) for node in ast.walk(tree)
               if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("transferbench"):
            found |= {f"{node.module}.{a.name}" if (PACKAGE.parent / f"{node.module}.{a.name}".replace(".", "/")
                                                    ).with_suffix(".py").exists() else node.module for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("transferbench")}
    return found - {"transferbench"}


MODULES = {module_name(p): package_imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def rank(module: str) -> int:
    return RANKS[module.split(".")[1]]


def test_every_module_has_a_stage():
    assert all(m.split(".")[1] in RANKS for m in MODULES if m != "transferbench"), sorted(MODULES)


def test_imports_point_down_the_data_flow():
    upward = [(m, i) for m, imports in MODULES.items() if m != "transferbench" for i in imports if rank(i) > rank(m)]
    assert upward == []


def test_no_import_cycle():
    def visit(module, path):
        if module in path:
            raise AssertionError(" -> ".join([*path[path.index(module):], module]))
        for imported in MODULES.get(module, ()):
            visit(imported, [*path, module])

    for module in MODULES:
        visit(module, [])
