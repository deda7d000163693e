"""While a main window is open, Python's cycle collector runs on the GUI thread only (app/gui_gc.py):
a collection set off by a simulation thread freed VTK objects there and deadlocked with a render."""
from __future__ import annotations

import gc
import threading
import weakref


def test_cycles_made_on_a_worker_thread_are_freed_on_the_gui_thread(window, qtbot):
    assert not gc.isenabled()
    freed_on = []

    def make_cycle_and_allocate():
        class Node:
            pass

        a, b = Node(), Node()
        a.b, b.a = b, a
        weakref.finalize(a, lambda: freed_on.append(threading.current_thread().name))
        junk = [[i] for i in range(50_000)]  # would have set off automatic collections on this thread
        del a, b, junk

    t = threading.Thread(target=make_cycle_and_allocate, name="simulation")
    t.start()
    t.join()
    assert freed_on == []  # nothing collected on the worker
    keep = [[] for _ in range(2 * gc.get_threshold()[0])]  # past the first threshold: the timer collects
    qtbot.waitUntil(lambda: bool(freed_on), timeout=5000)
    assert freed_on == [threading.main_thread().name]
    del keep


def test_automatic_collection_comes_back_when_the_window_closes(qapp, tmp_path):
    from PySide6.QtCore import QSettings

    from app.main_window import MainWindow

    was = gc.isenabled()
    w = MainWindow(QSettings(str(tmp_path / "x.ini"), QSettings.IniFormat))
    assert not gc.isenabled()
    w.close()
    qapp.processEvents()
    assert gc.isenabled() == was
