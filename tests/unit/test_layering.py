"""Imports point inward: the domain and the service know no framework and no outer layer."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
FRAMEWORKS = {
    "sqlalchemy",
    "httpx",
    "pyodbc",
    "aiohttp",
    "dependency_injector",
    "alembic",
    "psycopg",
}
OUTER_LAYERS = {"application", "adapters", "entrypoints"}


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def modules_of(layer: str) -> list[Path]:
    return sorted((SRC / layer).rglob("*.py"))


def test_the_layers_have_modules_to_check() -> None:
    assert modules_of("domain") and modules_of("application")


@pytest.mark.parametrize("layer", ["domain", "application"])
def test_the_inner_layers_import_no_framework(layer: str) -> None:
    offenders = {
        str(path.relative_to(SRC)): sorted(imported_roots(path) & FRAMEWORKS)
        for path in modules_of(layer)
        if imported_roots(path) & FRAMEWORKS
    }

    assert offenders == {}


def test_the_domain_imports_no_outer_layer() -> None:
    offenders = {
        str(path.relative_to(SRC)): sorted(imported_roots(path) & OUTER_LAYERS)
        for path in modules_of("domain")
        if imported_roots(path) & OUTER_LAYERS
    }

    assert offenders == {}


def test_the_application_imports_no_adapter_or_entrypoint() -> None:
    offenders = {
        str(path.relative_to(SRC)): sorted(imported_roots(path) & {"adapters", "entrypoints"})
        for path in modules_of("application")
        if imported_roots(path) & {"adapters", "entrypoints"}
    }

    assert offenders == {}


def test_a_function_level_import_is_caught(tmp_path: Path) -> None:
    module = tmp_path / "sneaky.py"
    module.write_text("def f():\n    import sqlalchemy.orm\n    from httpx import Client\n")

    roots = imported_roots(module)

    assert roots >= {"sqlalchemy", "httpx"}
