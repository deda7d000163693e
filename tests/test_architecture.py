"""twin/ and agents/ must run headless and on cluster workers: they never import Qt."""
import ast
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
    # twin/cli.py opens the app lazily inside the `app` command: that one import is the door to the GUI.
    offenders = [o for o in offenders if o != "twin/cli.py imports app.main"]
    assert offenders == []


def test_the_checker_would_notice(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from PySide6 import QtWidgets\n")
    assert [m for m in imported_modules(bad) if m.split(".")[0] in FORBIDDEN] == ["PySide6"]
