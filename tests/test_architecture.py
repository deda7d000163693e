"""twin/ and agents/ must run headless and on cluster workers: they never import Qt. And every part of
twin/ has its place in the layers that import-linter holds (pyproject.toml)."""
import ast
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = ("PySide6", "pyvistaqt", "qtpy", "PyQt5", "PyQt6", "pyqtgraph", "app")


def imported_modules(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


@pytest.mark.slow
def test_core_packages_never_import_qt():
    offenders = []
    for pkg in ("twin", "agents"):
        for path in (ROOT / pkg).rglob("*.py"):
            for mod in imported_modules(path):
                if mod.split(".")[0] in FORBIDDEN:
                    offenders.append(f"{path.relative_to(ROOT)} imports {mod}")
    assert offenders == []


def test_the_checker_would_notice(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from PySide6 import QtWidgets\n")
    assert [m for m in imported_modules(bad) if m.split(".")[0] in FORBIDDEN] == ["PySide6"]


def test_every_package_of_twin_has_its_layer():
    """A new folder or module directly in twin/ needs its row in the import-linter layers, or nothing
    checks what it imports (docs/app_architecture.md, "Layers as folders")."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["type"] == "layers")["layers"]
    named = {name.strip() for row in layers for name in re.split(r"[:|]", row)}
    parts = {f"twin.{p.stem}" for p in (ROOT / "twin").iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}
    assert sorted(parts - named) == []
    assert {f"twin.{name}" for name in ("core", "gis", "scenario", "runs", "view", "cli")} <= parts
