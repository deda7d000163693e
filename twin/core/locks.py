"""One writer per output folder, and one commit at a time.

``hold(out)`` is taken by the preflight of ``citytwin run`` and ``compare`` once every check has
passed, and held until the command ends: a second process that wants to write the same ``--out`` is
refused at once with a message naming the holder's process. Its file is ``OUT/.citytwin-lock``,
inside the folder (made for it, and removed again if the command leaves it empty), so that every
process, whatever it may write around the folder, looks for the lock in the same place.

``atomic_dir`` builds a folder beside its destination and takes ``commit(path)``, waiting for it,
around the moment the files move into place: two writers forced together (two threads, or two
processes that bypass the CLI) commit one after the other and never mix. Its file is
``.<name>.citytwin-lock`` beside the folder.

Both are files locked with ``flock``: the operating system releases the lock when its process dies,
so the lock of a killed process (kill -9, a power cut) is simply taken over by the next writer. The
file holds the holder's PID, host and command for the message; it is removed on release. Forked
children (worker processes) close their copy, so a killed parent's lock is not kept alive by them.
"""
from __future__ import annotations

import contextlib
import errno
import os
import socket
import sys
import threading
import time
from pathlib import Path

from .errors import UserError

SUFFIX = ".citytwin-lock"
WAIT_S = 120.0  # longest wait of a blocking acquire (atomic_dir commits take milliseconds)

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock; folders are then not locked between processes
    fcntl = None


class FolderBusy(UserError):
    """Another process (or thread) is writing the folder."""


def lock_path(folder: str | Path) -> Path:
    """The file of the writer's lock on ``folder`` (``hold``)."""
    return Path(os.path.abspath(folder)) / SUFFIX


def commit_lock_path(folder: str | Path) -> Path:
    """The file of the commit lock of ``folder`` (``atomic_dir``), beside it."""
    folder = Path(os.path.abspath(folder))
    return folder.parent / f".{folder.name}{SUFFIX}"


def _try_lock(fd: int) -> bool:
    if fcntl is None:  # pragma: no cover - Windows
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise


class FolderLock:
    """An exclusive lock on one output folder (see the module docstring)."""

    def __init__(self, folder: str | Path, path: Path):
        self.folder = Path(folder)
        self.path = path
        self.fd: int | None = None
        self.count = 0
        self._made: list[Path] = []  # folders created for the lock file, removed again if left empty

    def acquire(self, wait_s: float = 0.0) -> "FolderLock":
        """Take the lock, waiting up to ``wait_s`` seconds; FolderBusy names the holder otherwise."""
        self._make_parent()
        deadline = time.monotonic() + wait_s
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if _try_lock(fd):
                # The previous holder may have removed the file between our open and our lock: then
                # we hold a lock on a file nobody else can find, and must start again.
                try:
                    same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
                except FileNotFoundError:
                    same = False
                if same:
                    break
                os.close(fd)
                continue
            holder = _read_holder(fd)
            os.close(fd)
            if time.monotonic() >= deadline:
                self._remove_made()
                raise FolderBusy(self._busy_message(holder))
            time.sleep(0.05)
        self.fd = fd
        info = f"{os.getpid()}\n{socket.gethostname()}\n{time.strftime('%Y-%m-%d %H:%M:%S')}\n{_command()}\n"
        os.ftruncate(fd, 0)
        os.pwrite(fd, info.encode("utf-8", "replace"), 0)
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)  # before unlocking: a waiter then sees the file gone and retries
        with contextlib.suppress(OSError):
            os.close(self.fd)
        self.fd = None
        self._remove_made()

    def _make_parent(self) -> None:
        missing = []  # folders made for the lock file, deepest first
        p = self.path.parent
        while not p.exists() and p != p.parent:
            missing.append(p)
            p = p.parent
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._made = missing

    def _remove_made(self) -> None:
        for p in self._made:
            with contextlib.suppress(OSError):
                p.rmdir()  # only if still empty
        self._made = []

    def _busy_message(self, holder: dict) -> str:
        pid = holder.get("pid")
        who = f"process {pid}" if pid else "another process"
        if holder.get("host") and holder["host"] != socket.gethostname():
            who += f" on {holder['host']}"
        details = []
        if holder.get("command"):
            details.append(f"`{holder['command']}`")
        if holder.get("since"):
            details.append(f"since {holder['since']}")
        extra = f" ({', '.join(details)})" if details else ""
        if pid and int(pid) == os.getpid():
            who = "this process (another thread)"
        return (f"--out {self.folder}: {who}{extra} is writing to this folder; two commands writing the same "
                f"folder would lose one's results. Wait for it to finish, or give another --out. (The lock, "
                f"{self.path.name}, goes away by itself when that process ends.)")


def _read_holder(fd: int) -> dict:
    try:
        lines = os.pread(fd, 4096, 0).decode("utf-8", "replace").splitlines()
    except OSError:
        return {}
    keys = ("pid", "host", "since", "command")
    holder = dict(zip(keys, (line.strip() for line in lines)))
    if not (holder.get("pid") or "").isdigit():
        holder.pop("pid", None)
    return holder


def _command() -> str:
    args = [os.path.basename(sys.argv[0]) if sys.argv else "python", *sys.argv[1:]]
    if args[0] == "cli.py":  # python -m twin.cli
        args[0] = "citytwin"
    text = " ".join(args)
    return text if len(text) <= 200 else text[:199] + "…"


# -- held for a command ----------------------------------------------------------------------------
# Keyed by (lock file, thread): the thread that holds a lock may take it again (a command that calls
# another, like the CLI's compare calling twin.runs.experiment.compare); another thread or process may not.
_HELD: dict[tuple[str, int], FolderLock] = {}
_HELD_GUARD = threading.Lock()


def hold(folder: str | Path, wait_s: float = 0.0) -> FolderLock:
    """Take (or take again, from the same thread) the writer's lock of ``folder``; undo with ``release``."""
    return _take(folder, lock_path(folder), wait_s)


def _take(folder, path: Path, wait_s: float) -> FolderLock:
    key = (str(path), threading.get_ident())
    with _HELD_GUARD:
        lock = _HELD.get(key)
        if lock is not None:
            lock.count += 1
            return lock
    lock = FolderLock(folder, path).acquire(wait_s)
    lock.count = 1
    with _HELD_GUARD:
        _HELD[key] = lock
    return lock


def release(lock: FolderLock) -> None:
    with _HELD_GUARD:
        lock.count -= 1
        if lock.count > 0:
            return
        for key, held in list(_HELD.items()):
            if held is lock:
                del _HELD[key]
    lock.release()


@contextlib.contextmanager
def commit(folder: str | Path, wait_s: float = WAIT_S):
    """The commit lock of ``folder`` for the ``with`` block, waiting up to ``wait_s`` for it."""
    lock = _take(folder, commit_lock_path(folder), wait_s)
    try:
        yield lock
    finally:
        release(lock)


def release_all() -> None:
    """Release every lock this process holds (the CLI calls it when a command ends, however it ends)."""
    with _HELD_GUARD:
        locks = list(_HELD.values())
        _HELD.clear()
    for lock in locks:
        lock.release()


def remove_stale(folder: Path) -> int:
    """Remove lock files under ``folder`` whose process is gone (left by a kill -9). Returns how many."""
    removed = 0
    for p in Path(folder).rglob(f".*{SUFFIX[1:]}"):  # OUT/.citytwin-lock and .NAME.citytwin-lock
        try:
            fd = os.open(p, os.O_RDWR)
        except OSError:
            continue
        try:
            if _try_lock(fd):
                with contextlib.suppress(OSError):
                    os.unlink(p)
                    removed += 1
        finally:
            os.close(fd)
    return removed


def _forget_in_child() -> None:
    # A forked worker must not keep its parent's locks alive after the parent dies; the parent's own
    # descriptors keep holding them while it lives.
    global _HELD_GUARD
    _HELD_GUARD = threading.Lock()  # another thread may have held it at the fork
    for lock in _HELD.values():
        if lock.fd is not None:
            with contextlib.suppress(OSError):
                os.close(lock.fd)
            lock.fd = None
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)
