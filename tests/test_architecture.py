"""The apps depend one way (docs/architecture.md §2), checked on the source itself.

training and marketdata → operations ← hostagents, and backtest, evaluation → training,
marketdata, operations: nothing in training/ or marketdata/ imports hostagents, no app imports
backtest or evaluation (nor each other),
operations imports no other app of the project, hostagents knows no kind of work (it reads the
kinds from the registry), and inside operations the modules import each other in one direction
only.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APPS = ("operations", "marketdata", "training", "hostagents", "backtest", "evaluation")


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, at any depth, except under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def sources(app: str) -> list[Path]:
    return sorted(p for p in (ROOT / app).rglob("*.py") if "migrations" not in p.parts)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def app_of(module: str) -> str:
    return module.split(".", maxsplit=1)[0]


@pytest.mark.parametrize("app", ["training", "marketdata"])
def test_training_and_marketdata_never_import_hostagents(app):
    offenders = {
        module_name(p): sorted(m for m in imports_of(p) if app_of(m) == "hostagents")
        for p in sources(app)
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_operations_imports_no_other_app_of_the_project():
    offenders = {
        module_name(p): sorted(m for m in imports_of(p) if app_of(m) in set(APPS) - {"operations"})
        for p in sources("operations")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


@pytest.mark.parametrize(
    "app", ["operations", "marketdata", "training", "hostagents", "evaluation"]
)
def test_no_app_imports_backtest(app):
    offenders = {
        module_name(p): sorted(m for m in imports_of(p) if app_of(m) == "backtest")
        for p in sources(app)
    }
    assert {k: v for k, v in offenders.items() if v} == {}


@pytest.mark.parametrize("app", ["operations", "marketdata", "training", "hostagents", "backtest"])
def test_no_app_imports_evaluation(app):
    offenders = {
        module_name(p): sorted(m for m in imports_of(p) if app_of(m) == "evaluation")
        for p in sources(app)
    }
    assert {k: v for k, v in offenders.items() if v} == {}


@pytest.mark.parametrize("app", ["backtest", "evaluation"])
def test_backtest_and_evaluation_import_only_training_marketdata_and_operations(app):
    others = set(APPS) - {app, "training", "marketdata", "operations"}
    offenders = {
        module_name(p): sorted(m for m in imports_of(p) if app_of(m) in others)
        for p in sources(app)
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_hostagents_knows_no_kind_of_work():
    offenders = {
        module_name(p): sorted(
            m
            for m in imports_of(p)
            if app_of(m) in {"training", "marketdata", "backtest", "evaluation"}
        )
        for p in sources("hostagents")
    }
    assert {k: v for k, v in offenders.items() if v} == {}
    for path in sources("hostagents"):
        text = path.read_text()
        for table in ("WORK_TYPES", "START_PATHS", "KIND_CAPABILITY", "completion_hook"):
            assert table not in text, f"{module_name(path)} keeps a table of operation types"
        assert '"data_load"' not in text, f"{module_name(path)} names an operation type"


def test_modules_inside_operations_import_each_other_in_one_direction():
    graph = {
        module_name(p): {m for m in imports_of(p) if m in MODULES} for p in sources("operations")
    }
    graph = {name: deps - {name} for name, deps in graph.items()}

    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for dep in graph.get(node, ()):
                if dep == start:
                    return [*path, dep]
                if dep not in path:
                    stack.append((dep, [*path, dep]))
        return None

    cycles = [c for name in graph if (c := cycle_from(name))]
    assert cycles == []


MODULES = {module_name(p) for p in sources("operations")}
