"""The package is laid out by role, and the library never imports its test data."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "craft_modules"
ROLES = {
    "nn",
    "features",
    "models",
    "augment",
    "data",
    "training",
    "weights",
    "inference",
    "testing",
}
TOP_LEVEL = {
    "__init__.py",
    "losses.py",
    "metrics.py",
    "distributed.py",
    "plots.py",
    "atomic_files.py",
}


def imported_modules(path):
    """Every module an ``import`` / ``from ... import`` of ``path`` names."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_package_holds_role_folders_and_five_top_level_modules():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name[0] != "_"}
    files = {p.name for p in PACKAGE.glob("*.py")}
    assert folders == ROLES
    assert files == TOP_LEVEL
    for folder in folders:
        doc = ast.get_docstring(
            ast.parse((PACKAGE / folder / "__init__.py").read_text())
        )
        assert doc, f"craft_modules/{folder}/__init__.py has no docstring"


def test_the_library_never_imports_the_synthetic_datasets():
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "testing" not in path.relative_to(PACKAGE).parts
        and any(
            name.startswith("craft_modules.testing") for name in imported_modules(path)
        )
    ]
    assert offenders == []
