"""GUI tests: they need a display with OpenGL (run under Xvfb, see scripts/test.sh)."""
import os

import pytest

os.environ.setdefault("CITYTWIN_NO_DIALOGS", "1")
os.environ.setdefault("CITYTWIN_NO_ANIMATION", "1")


def _has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


@pytest.fixture(scope="session")
def qapp(tmp_path_factory):
    """The app as app.main makes it (organisation name, style), with QSettings in a temp folder."""
    if not _has_display():
        pytest.fail("GUI tests need a display: run them under Xvfb "
                    "(xvfb-run -a -s '-screen 0 1920x1080x24' ..., as scripts/test.sh does)")
    os.environ["CITYTWIN_RUNS_DIR"] = str(tmp_path_factory.mktemp("runs"))
    from PySide6.QtCore import QSettings

    from app.main import make_app

    QSettings.setPath(QSettings.IniFormat, QSettings.UserScope, str(tmp_path_factory.mktemp("settings")))
    QSettings.setDefaultFormat(QSettings.IniFormat)
    return make_app([])


@pytest.fixture(scope="module")
def window(qapp, tmp_path_factory):
    from PySide6.QtCore import QSettings

    from app.main_window import MainWindow

    ini = tmp_path_factory.mktemp("win") / "citytwin.ini"
    w = MainWindow(QSettings(str(ini), QSettings.IniFormat))
    w.resize(1600, 900)
    w.show()
    qapp.processEvents()
    yield w
    w.cancel_run(wait_s=3)
    w.close()
    qapp.processEvents()
