"""Preflight: every check a command can make before it simulates anything or writes anything.

``citytwin run`` calls :func:`for_run`, ``citytwin compare`` (through :func:`twin.runs.experiment.compare`)
calls :func:`for_compare`; a command that writes model runs (``branch``, ``render``) calls one of them
or composes the single checks below. In order, cheapest first:

1. the scenario: parsed, every key and every variant's parameters validated, the numbers within
   their bounds (:mod:`twin.core.limits`), its path made absolute so that run hashes never depend on
   how the path was typed or on the current folder;
2. the command line: ``--seed``, ``--replications``, ``--workers``, ``--set``, ``--intervention``;
3. the output location (:func:`check_output`): not a file, not under a file, no symlink loop, names
   the file system can hold, writable;
4. the Dask scheduler (:func:`check_scheduler`): something listens there (answered in seconds), and
   it has a worker (or one joins within the timeout);
5. the city, and for ``compare`` every variant's model built once on it (without running), so that a
   gate id that does not exist fails before the baseline has run, not after;
6. last, the lock on the output folder (:mod:`twin.core.locks`): a second writer is refused.

Nothing is created before step 6, so bad input leaves ``--out`` exactly as it was. Every failure is
a :class:`~twin.core.errors.UserError` that names the file, key or option and the fix.
"""
from __future__ import annotations

import errno
import os
import re
import socket
import stat
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from twin.core import locks
from twin.core.errors import UserError
from twin.core.limits import MAX_REPLICATIONS, MAX_SEED, MAX_WORKERS, bounded_number
from twin.scenario.plan import Plan, make_plan
from twin.scenario.scenario import BASELINE, Scenario, load_scenario

# The temporary sibling of an output folder is ".<name>.<8 random>.partial" and its lock
# ".<name>.citytwin-lock": the folder's own name must leave room for those additions.
NAME_RESERVE = 20
# Room under --out for what a comparison writes (runs/<variant slug>/rep-NNN/.<file>.<random>.partial).
PATH_RESERVE = 200
SCHEDULER_CONNECT_S = 3.0
DASK_TIMEOUT_ENV = "CITYTWIN_DASK_TIMEOUT"


@dataclass
class Checked:
    """What the preflight established; ``release()`` (or the end of the CLI command) frees ``--out``."""

    scenario: Scenario | None
    out: Path
    plan: Plan | None = None  # for compare
    seed: int | None = None
    lock: locks.FolderLock | None = None

    def release(self) -> None:
        if self.lock is not None:
            locks.release(self.lock)
            self.lock = None


# -- commands ----------------------------------------------------------------------------------------
def for_run(scenario: str | Path | Scenario, *, out: str | Path, variant: str | None = None,
            seed: int | None = None, overrides: dict | None = None, lock: bool = True) -> Checked:
    """Checks of one run (``citytwin run``); returns with ``--out`` locked unless ``lock=False``."""
    sc = check_scenario(scenario)
    seed = check_seed(seed)
    sc.params_for(variant, overrides)  # the variant exists and its parameters (with --set) are valid
    out = check_output(out, parent_too=True)  # the run is moved into place from a sibling folder
    sc.load_city()
    check_features(sc, sc.variants(), overrides)  # every variant: an id or selector that matches nothing
    checked = Checked(sc, out, seed=seed)
    if lock:
        checked.lock = locks.hold(out)
    return checked


def for_compare(scenario: str | Path | Scenario, out: str | Path, *, replications: int | None = None,
                workers: int | None = None, scheduler: str | None = None, build_models: bool = True,
                lock: bool = True) -> Checked:
    """Checks of a comparison (``citytwin compare``); returns with ``--out`` locked unless ``lock=False``."""
    sc = check_scenario(scenario)
    if replications is not None:
        replications = check_count(replications, "--replications", MAX_REPLICATIONS)
    if workers is not None:
        check_count(workers, "--workers", MAX_WORKERS)
    plan = make_plan(sc, replications)  # sweep points validated; variants × replications bounded
    out = check_output(out)
    if scheduler:
        check_scheduler(scheduler)
    plan.scenario.load_city()
    check_features(plan.scenario, [v.name for v in plan.variants])
    if build_models:
        check_models(plan.scenario, [v.name for v in plan.variants])
    checked = Checked(plan.scenario, out, plan=plan)
    if lock:
        checked.lock = locks.hold(out)
    return checked


# -- single checks -----------------------------------------------------------------------------------
def check_scenario(scenario: str | Path | Scenario) -> Scenario:
    """The loaded, validated scenario, its path made absolute (run hashes include it)."""
    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    if sc.path is not None:
        sc.path = Path(sc.path).resolve()
    for warning in sc.ignored_settings():  # set, but the chosen mode ignores it: say which setting uses it
        print(f"citytwin: warning: {warning}", file=sys.stderr, flush=True)
    return sc


def check_seed(seed, what: str = "--seed") -> int | None:
    if seed is None:
        return None
    return bounded_number(seed, what, whole=True, minimum=0, maximum=MAX_SEED)


def check_count(value, what: str, maximum: int) -> int:
    return bounded_number(value, what, whole=True, minimum=1, maximum=maximum)


def check_features(sc: Scenario, variants: list[str], overrides: dict | None = None) -> None:
    """Every feature parameter (ids, names, selectors; ``Param.refers_to``) of every variant matches
    something in the city: an intervention that would run as a silent no-op fails before any run,
    listing what the city has (twin.core.features)."""
    from twin.core.features import check_params

    cls = sc.model_class()
    city = sc.load_city()
    sweep = {i.name for i in sc.interventions if i.description == "sweep point"}  # see experiment.make_plan
    for v in variants:
        label = ("the baseline [parameters]" if v == BASELINE else f'sweep point "{v}"' if v in sweep
                 else f'intervention "{v}"')
        check_params(cls, sc.params_for(v, overrides), city, f"{sc.where}: {label} (on the city {sc.city_path})")


def check_models(sc: Scenario, variants: list[str]) -> None:
    """Build each variant's model on the city once, without running it: errors that need the city
    (a gate id that does not exist, shares that do not add up) surface before any run starts."""
    cls = sc.model_class()
    city = sc.load_city()
    sweep = {i.name for i in sc.interventions if i.description == "sweep point"}  # see plan.make_plan
    for v in variants:
        try:
            model = cls(city, duration_s=sc.duration_s, seed=sc.seed, **sc.params_for(v))
        except UserError as e:
            label = ("the baseline" if v == BASELINE else f'sweep point "{v}"' if v in sweep
                     else f'intervention "{v}"')
            raise UserError(f"{sc.where}: {label}: {e}") from None
        del model


def check_output(out: str | Path, what: str = "--out", parent_too: bool = False) -> Path:
    """The output folder can be made and written, and nothing is created to find that out.

    Refused: an empty name, an existing file, a path under a file, a symlink loop or a dangling
    link, a name longer than the file system allows (less the room for the temporary sibling),
    and a folder this process cannot write (permissions, read-only file system). ``parent_too``:
    an existing folder's parent must be writable too (a run is built in a sibling folder).
    """
    text = os.fspath(out)
    if not text.strip():
        raise UserError(f"{what}: give a folder path for the outputs.")
    if "\0" in text:
        raise UserError(f"{what}: the path contains a NUL character; give an ordinary folder path.")
    path = Path(text)
    absolute = Path(os.path.abspath(text))
    _check_lengths(absolute, what, text)
    existing = Path(absolute.anchor)
    for part in absolute.parts[1:]:
        probe = existing / part
        try:
            st = os.stat(probe)
        except FileNotFoundError:
            if os.path.islink(probe):
                raise UserError(f"{what} {text}: {probe} is a symbolic link to something that does not exist "
                                f"({os.readlink(probe)}); remove the link or give another folder.") from None
            break
        except OSError as e:
            raise UserError(_stat_message(e, probe, what, text)) from None
        if not stat.S_ISDIR(st.st_mode):
            if probe == absolute:
                raise UserError(f"{what} {text}: exists and is not a folder; give a folder path.")
            raise UserError(f"{what} {text}: {probe} is a file, not a folder, so nothing can be made under it; "
                            "give another folder path.")
        existing = probe
    # Where the command will create or replace entries: the folder itself when it exists (runs,
    # tables) and, for a run, the folder above it (its temporary sibling); else the deepest
    # existing folder above it, where it will be made.
    targets = [existing] if existing != absolute else [absolute] + ([absolute.parent] if parent_too else [])
    for d in targets:
        if not os.access(d, os.W_OK | os.X_OK):
            why = "it is on a read-only file system" if _read_only(d) else "permission denied"
            raise UserError(f"{what} {text}: cannot write in {d} ({why}). Give a folder you can write to.")
    return path


def _check_lengths(absolute: Path, what: str, text: str) -> None:
    try:
        name_max = os.pathconf(_deepest_existing(absolute), "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    try:
        path_max = os.pathconf(_deepest_existing(absolute), "PC_PATH_MAX")
    except (OSError, ValueError):
        path_max = 4096
    parts = absolute.parts[1:]
    for i, part in enumerate(parts):
        limit = name_max - (NAME_RESERVE if i == len(parts) - 1 else 0)
        n = len(os.fsencode(part))
        if n > limit:
            short = part if len(part) <= 40 else part[:37] + "…"
            raise UserError(f"{what} {short if len(text) > 60 else text}: the name \"{short}\" is {n} bytes long; "
                            f"this file system allows {name_max}, and citytwin needs {NAME_RESERVE} of them for "
                            f"its temporary folder, so use at most {limit}.")
    n = len(os.fsencode(str(absolute)))
    if n > path_max - PATH_RESERVE:
        raise UserError(f"{what}: the path is {n} bytes long; outputs need up to {PATH_RESERVE} more below it and "
                        f"this system allows {path_max} in all. Give a shorter folder path.")


def _deepest_existing(path: Path) -> Path:
    p = path
    while True:
        try:
            if os.path.isdir(p):
                return p
        except (OSError, ValueError):
            pass
        if p == p.parent:
            return p
        p = p.parent


def _stat_message(e: OSError, probe: Path, what: str, text: str) -> str:
    if e.errno == errno.ELOOP:
        return (f"{what} {text}: {probe} is a loop of symbolic links (it points, through other links, back "
                "to itself); fix the links or give another folder.")
    if e.errno in (errno.EACCES, errno.EPERM):
        return f"{what} {text}: cannot look inside {probe.parent} (permission denied); give a folder you can use."
    if e.errno == errno.ENAMETOOLONG:
        return f"{what} {text}: the path is too long for this file system; give a shorter one."
    return f"{what} {text}: cannot use {probe} ({e.strerror or e}); give another folder."


def _read_only(d: Path) -> bool:
    try:
        return bool(os.statvfs(d).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


# -- Dask ------------------------------------------------------------------------------------------
ADDRESS = re.compile(r"(?:(?P<scheme>tcp|tls)://)?(?P<host>\[[0-9a-fA-F:.]+\]|[^\s:/\[\]]+):(?P<port>\d+)/?")


def dask_timeout_s() -> float:
    """``CITYTWIN_DASK_TIMEOUT`` ("20s", "1 minute", "45") in seconds: the longest wait for a
    scheduler's answer or for a worker to join."""
    raw = os.environ.get(DASK_TIMEOUT_ENV, "20s")
    try:
        from dask.utils import parse_timedelta

        value = float(parse_timedelta(raw, default="seconds"))
    except (ValueError, TypeError, KeyError):
        raise UserError(f"{DASK_TIMEOUT_ENV}={raw!r}: give a duration such as 20s or 2min.") from None
    if not 0 < value <= 3600:
        raise UserError(f"{DASK_TIMEOUT_ENV}={raw!r}: give a duration from 1 s to 1 hour.")
    return value


def check_scheduler(address: str, what: str = "--scheduler") -> str:
    """Something answers at ``address`` within seconds, and it is a Dask scheduler with a worker.

    An address where nothing listens fails at once (the Dask client itself would retry until its
    timeout); a scheduler without workers is reported while it is waited for, and fails after
    ``CITYTWIN_DASK_TIMEOUT``.
    """
    text = str(address).strip()
    m = ADDRESS.fullmatch(text)
    if not m:
        if re.match(r"[a-z][a-z0-9+.-]*://", text):  # ucx://, ws://, inproc://: left to Dask
            _wait_for_workers(text, what)
            return text
        raise UserError(f"{what} {address}: not a scheduler address; write tcp://HOST:PORT, e.g. "
                        "tcp://10.0.0.5:8786 (the address `dask scheduler` prints).")
    host, port = m["host"].strip("[]"), int(m["port"])
    if not 0 < port < 65536:
        raise UserError(f"{what} {address}: port {port} does not exist; ports go from 1 to 65535.")
    try:
        with socket.create_connection((host, port), timeout=SCHEDULER_CONNECT_S) as sock:
            if (m["scheme"] or "tcp") == "tcp":
                _check_dask_handshake(sock, address, what)
    except socket.gaierror:
        raise UserError(f"{what} {address}: cannot reach the Dask scheduler: the host {host!r} is unknown. "
                        "Check the address, or leave --scheduler out to run on this machine.") from None
    except (TimeoutError, socket.timeout):
        raise UserError(f"{what} {address}: cannot reach the Dask scheduler: no answer from {host}:{port} within "
                        f"{SCHEDULER_CONNECT_S:g} s (a firewall, or the wrong host). Leave --scheduler out to run "
                        "on this machine.") from None
    except OSError as e:
        why = "nothing listens there" if e.errno == errno.ECONNREFUSED else (e.strerror or str(e))
        raise UserError(f"{what} {address}: cannot reach the Dask scheduler at {host}:{port} ({why}). Start one "
                        "with `dask scheduler` and workers with `dask worker ADDRESS`, or leave --scheduler out "
                        "to run on this machine.") from None
    _wait_for_workers(text, what)
    return text


MAX_HANDSHAKE_BYTES = 1 << 20  # a Dask handshake is a few hundred bytes


def _check_dask_handshake(sock: socket.socket, address: str, what: str) -> None:
    """A Dask scheduler speaks first: on every new connection it sends its handshake (an 8-byte
    length, then msgpack frames). Anything else (a web server waiting for a request, a service
    answering in its own protocol) is refused here, before the Dask client would wait its whole
    timeout or read a length of 3 EiB out of an HTTP reply."""
    import struct

    def refuse(why: str) -> UserError:
        return UserError(f"{what} {address}: something answers there, but it is not a Dask scheduler ({why}). "
                         "Give the address `dask scheduler` prints (tcp://HOST:8786 by default; 8787 is its "
                         "dashboard), or leave --scheduler out to run on this machine.")

    def read(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise refuse(f"it closed the connection after {len(data)} bytes")
            data += chunk
        return data

    try:
        (n,) = struct.unpack("<Q", read(8))
        if not 0 < n <= MAX_HANDSHAKE_BYTES:
            raise refuse(f"its first bytes announce {n:,} bytes; a Dask handshake is a few hundred")
        from distributed import protocol
        from distributed.protocol.utils import unpack_frames

        frames, _ = unpack_frames(read(n), partial=True)
        info = protocol.loads(frames, deserialize=False) if frames else None
    except (TimeoutError, socket.timeout):
        raise refuse(f"it sent nothing within {SCHEDULER_CONNECT_S:g} s of connecting; a Dask scheduler greets "
                     "at once") from None
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - any decoding failure means: not Dask's protocol
        raise refuse(f"its greeting is not Dask's: {type(e).__name__}") from None
    if not isinstance(info, dict) or "python" not in info:
        raise refuse("its greeting is not Dask's handshake")


def dask_client(address: str, what: str = "--scheduler"):
    """A ``distributed.Client`` of the scheduler at ``address``, or a UserError that says how to start one."""
    from distributed import Client

    try:
        return Client(address, timeout=f"{dask_timeout_s()}s")
    except (OSError, TimeoutError, ValueError) as e:
        raise UserError(f"{what} {address}: cannot reach the Dask scheduler ({e}). Start one with `dask scheduler` "
                        "and workers with `dask worker ADDRESS`, or leave --scheduler out to run on this "
                        "machine.") from None


def _wait_for_workers(address: str, what: str) -> None:
    timeout_s = dask_timeout_s()
    client = dask_client(address, what)
    try:
        if client.scheduler_info().get("workers"):
            return
        print(f"citytwin: the Dask scheduler at {address} has no workers; waiting up to {timeout_s:g} s for one "
              f"to join (start one with `dask worker {address}`)…", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            client.wait_for_workers(1, timeout=timeout_s)
        except (TimeoutError, OSError):
            raise UserError(f"{what} {address}: the Dask scheduler is up but has no workers, and none joined in "
                            f"{time.monotonic() - started:.0f} s. Start workers with `dask worker {address}` and "
                            f"run the command again (the wait is {DASK_TIMEOUT_ENV}, now {timeout_s:g} s).") from None
    finally:
        client.close()
