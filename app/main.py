"""Start the desktop app: ``main(scenario=None, city=None)`` returns the process exit code.

Opens the scenario if given, else the city, else the bundled demo city (when present).
Environment: CITYTWIN_EXIT_AFTER_LOAD=1 prints the launch time (process start → city on screen)
and quits (the launch benchmark uses it); CITYTWIN_NO_SHADERS=1 uses plain colour maps.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

T_START = time.perf_counter()


def make_app(argv=None):
    os.environ.setdefault("NUMBA_CACHE_DIR", str(Path.home() / ".cache" / "citytwin" / "numba"))
    os.environ.setdefault("QT_API", "pyside6")
    from PySide6.QtCore import QCoreApplication, Qt
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        QCoreApplication.setOrganizationName("CityTwin")
        QCoreApplication.setApplicationName("CityTwin")
        app = QApplication(list(argv) if argv is not None else sys.argv[:1])
        app.setStyle("Fusion")
    return app


def main(scenario: Path | str | None = None, city: Path | str | None = None, argv=None) -> int:
    app = make_app(argv)
    from .main_window import DEMO_CITY, MainWindow

    win = MainWindow()
    win.show()
    app.processEvents()
    ok = True
    if scenario is not None:
        ok = win.open_scenario(Path(scenario))
    elif city is not None:
        ok = win.open_city(Path(city))
    elif DEMO_CITY.is_dir():
        ok = win.open_city(DEMO_CITY)
    else:
        win.log_panel.log(f"the demo city is missing ({DEMO_CITY}); use File → Open city folder "
                          "(or `make demo-city`).")
    if os.environ.get("CITYTWIN_EXIT_AFTER_LOAD"):
        win.viewport.render_now()
        # Paint synchronously: the city is on screen now. Queued work (the default model's import,
        # deferred on purpose until after the city shows) must not count as launch time.
        win.repaint()
        elapsed = time.perf_counter() - T_START
        print(f"launch_to_city_s={elapsed:.3f} load_city_s={win.load_seconds or 0:.3f} ok={ok}", flush=True)
        app.processEvents()
        win.close()
        return 0 if ok else 2
    return int(app.exec())


if __name__ == "__main__":
    args = sys.argv[1:]
    sc = next((a for a in args if a.endswith(".toml")), None)
    ct = next((a for a in args if not a.endswith(".toml")), None)
    sys.exit(main(scenario=sc, city=ct))
