"""Trajectories, written frame by frame every ``[outputs] trajectory_interval_s``.

* ``trajectories.parquet``: ``time_s, agent, x, y, state, level`` (float64 metres in the city CRS;
  ``level`` is the floor level the agent walks on, empty where the model has no levels or the agent
  is on none: on a stair, or outside); written in row groups of about a million rows.
* ``trajectories_level<k>.sqlite`` for each level ``k`` of the model's ``walkable_areas()`` (unless
  ``[outputs] trajectory_sqlite = false``): the agents walking on that level in JuPedSim's SQLite
  trajectory format, version 3, which PedPy reads (``pedpy.load_trajectory_from_jupedsim_sqlite``;
  the walkable area through ``citytwin.open_run(...).walkable_area(k)``, as PedPy 1.5.1's own loader
  of it stops at version 2): ``trajectory_data(frame, id, pos_x, pos_y)``, rows in the order of frame
  and id, ``metadata(key, value)`` with ``version``, ``fps`` (= 1 / trajectory_interval_s) and the
  level's bounds ``xmin, ymin, xmax, ymax``, ``geometry(hash, wkt)`` (the level's walkable area
  without obstacles) and ``frame_data(frame, geometry_hash)``. Frame ``k`` is at
  ``k × trajectory_interval_s``. Provenance (``twin.runs.runner.provenance``) is in the ``metadata``
  table, keys ``citytwin_*``. ``trajectory_data`` has no index (JuPedSim's writer keeps one on
  ``(frame, id)``): every row would cost about 0.1 µs more (0.34 against 0.24 µs), for readers that
  look frames up one by one; PedPy reads the whole table (docs/outputs.md).

The run only buffers each frame's arrays. Every million rows the writer thread gathers them, puts
each level's rows in the order of frame and id (one Numba kernel, without the GIL), and then the
Parquet row group and one bulk insert per SQLite file (ADBC's SQLite driver binds Arrow columns in C,
about four times the speed of ``executemany`` over Python values) go on at once, each file in a
thread of its own. These threads run at the lowest priority (on Linux a thread has its own nice
value): they take the time the run's threads leave idle instead of holding up its
threaded steps. One row group is written while the next is buffered: at most two are in memory,
and when the writer falls behind, the run waits for it at the next row group.
The writer's errors (a full disk) come out of the next ``append`` or ``close``.
"""
from __future__ import annotations

import json
import os
import threading
import time
from contextlib import contextmanager
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

import numpy as np
from numba import njit

from twin.core.files import disk_errors

ROW_GROUP_ROWS = 1_000_000
JUPEDSIM_VERSION = 3


class TrajectoryWriter:
    def __init__(self, folder: Path, interval_s: float, walkable: dict, state_names: tuple, provenance: dict,
                 sqlite: bool = True):
        self.folder, self.interval_s = Path(folder), float(interval_s)
        self.levels = list(walkable)  # their numbers are the Parquet file's level
        self.sqlite = sqlite and bool(self.levels)  # False: the Parquet file only
        self.areas = walkable  # level -> its walkable area (shapely)
        self.state_names = tuple(state_names)
        self.provenance = provenance
        self._buf: list = []  # (time_s, ids, positions, states, levels) of each frame since the last flush
        self._rows = 0
        self._pool: ThreadPoolExecutor | None = None  # the writer thread
        self._side: ThreadPoolExecutor | None = None  # the files beside the writer's own one (Parquet, other levels)
        self._pending: Future | None = None
        # touched by the writer thread only
        self._pq = None
        self._db: dict = {}  # level index -> (ADBC connection, cursor)
        # CPU seconds of the writer's threads: "frames" (gathering and ordering the rows) and each file
        self.cpu_s: dict[str, float] = {}
        self.waited_s = 0.0  # how long the run's thread waited for the writer (behind by a row group)
        self.paths: list[Path] = []  # by close(): the Parquet file, then the levels' files in order

    # -- per frame (the run's thread) -------------------------------------------------------------------
    def append(self, time_s: float, ids, positions, states, state_names, level) -> None:
        ids = np.array(ids, dtype=np.int64)  # copies: the writer reads them later
        pos = np.array(positions, dtype=np.float64).reshape(-1, 2)
        lv = np.full(len(ids), -1, np.int64) if level is None else np.array(level, dtype=np.int64)
        if tuple(state_names) != self.state_names:
            self.state_names = tuple(state_names)
        self._buf.append((float(time_s), ids, pos, np.array(states, dtype=np.int8), lv))
        self._rows += len(ids)
        if self._rows >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        self._wait()
        if not self._buf:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="citytwin-trajectories", initializer=_in_the_background)
            if self.sqlite:
                self._side = ThreadPoolExecutor(len(self.levels), thread_name_prefix="citytwin-trajectory-files",
                                                initializer=_in_the_background)
        buf, self._buf, self._rows = self._buf, [], 0
        self._pending = self._pool.submit(self._write, buf, self.state_names)

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            t = time.perf_counter()
            try:
                pending.result()  # the writer's error, if any, is raised here
            finally:
                self.waited_s += time.perf_counter() - t

    def close(self) -> list[Path]:
        """Finish every file; returns their paths."""
        self._flush()
        self._wait()
        if self._pool is None:
            self._finish()
        else:
            self._pool.submit(self._finish).result()
            for pool in (self._pool, self._side):
                if pool is not None:
                    pool.shutdown()
            self._pool = self._side = None
        levels = range(len(self.levels) if self.sqlite else 0)
        self.paths = [self.folder / "trajectories.parquet"] + [self._path(k) for k in levels]
        return self.paths

    # -- the writer thread ----------------------------------------------------------------------------
    def _write(self, buf: list, state_names: tuple) -> None:
        """One Parquet row group of the buffered frames and, per level, one bulk insert: each file in
        a thread of its own (the writer's thread takes the first level), as they have nothing in common
        but the frames."""
        with self._cpu("frames"):
            table, x, y, ids, lv, sizes = self._columns(buf, state_names)
        if not self.sqlite:
            self._parquet(table)
            return
        beside = [self._side.submit(self._parquet, table)]
        with self._cpu("frames"):
            frames = np.array([round(f[0] / self.interval_s) for f in buf], dtype=np.int64)
            starts = np.concatenate([[0], np.cumsum(sizes)])
            at, *columns = _level_rows(starts, frames, ids, x, y, lv, len(self.levels))
            rows = [[c[at[k]:at[k + 1]] for c in columns] for k in range(len(self.levels))]
        beside += [self._side.submit(self._ingest, k, frames, rows[k]) for k in range(1, len(self.levels))]
        try:
            self._ingest(0, frames, rows[0])
        finally:
            wait(beside)
        for f in beside:
            f.result()

    def _columns(self, buf: list, state_names: tuple):
        """The Parquet row group of the buffered frames, and the columns the levels' rows come from."""
        import pyarrow as pa

        sizes = np.array([len(f[1]) for f in buf])
        t = np.repeat([f[0] for f in buf], sizes)
        ids, pos, states, lv = (np.concatenate([f[i] for f in buf]) for i in range(1, 5))
        x, y = np.ascontiguousarray(pos.T)  # columns, for Arrow and for the rows of each level
        level_no = np.array([_level_number(v) for v in self.levels] or [0], dtype=np.int16)
        level = pa.array(np.where(lv >= 0, level_no[np.clip(lv, 0, None)], 0).astype(np.int16), mask=lv < 0)
        names = pa.array(list(state_names) or [""], pa.string())
        table = pa.table({"time_s": t, "agent": ids, "x": x, "y": y,
                          "state": pa.DictionaryArray.from_arrays(pa.array(states, pa.int8()), names), "level": level})
        return table, x, y, ids, lv, sizes

    @contextmanager
    def _cpu(self, key: str):
        t = time.thread_time()
        try:
            yield
        finally:
            self.cpu_s[key] = self.cpu_s.get(key, 0.0) + time.thread_time() - t

    def _ingest(self, k: int, frames: np.ndarray, columns: list) -> None:
        """Level ``k``'s rows of some frames (``columns``: frame, id, pos_x, pos_y)."""
        import pyarrow as pa

        cur = self._db[k][1] if k in self._db else self._open(k)
        with disk_errors(self._path(k)), self._cpu(self._path(k).name):
            cur.adbc_ingest("frame_data", pa.table({"frame": frames, "geometry_hash": np.zeros_like(frames)}),
                            mode="append")
            cur.adbc_ingest("trajectory_data", pa.table(dict(zip(("frame", "id", "pos_x", "pos_y"),
                                                                 columns))), mode="append")

    def _parquet(self, table) -> None:
        import pyarrow.parquet as pq

        if self._pq is None:
            path = self.folder / "trajectories.parquet"
            schema = table.schema.with_metadata({b"citytwin": json.dumps(self.provenance).encode()})
            # no dictionary for ids and coordinates (nearly all distinct: a wasted try), and the
            # coordinates byte-stream split (smaller under zstd): 2-3 times faster than the defaults
            self._pq = pq.ParquetWriter(path, schema, compression="zstd", use_dictionary=["time_s", "state", "level"],
                                        use_byte_stream_split=["x", "y"])
        with disk_errors(self.folder / "trajectories.parquet"), self._cpu("trajectories.parquet"):
            self._pq.write_table(table.replace_schema_metadata(self._pq.schema.metadata))

    def _path(self, k: int) -> Path:
        return self.folder / f"trajectories_level{_level_number(self.levels[k])}.sqlite"

    def _open(self, k: int):
        import adbc_driver_sqlite.dbapi
        import pyarrow as pa

        path = self._path(k)
        area = self.areas[self.levels[k]]
        with disk_errors(path):
            conn = adbc_driver_sqlite.dbapi.connect(str(path), autocommit=True)
            cur = conn.cursor()
            # a staging file: written once, copied into the run folder when it is complete
            for sql in ("PRAGMA page_size = 65536", "PRAGMA journal_mode = OFF", "PRAGMA synchronous = OFF",
                        "CREATE TABLE trajectory_data (frame INTEGER NOT NULL, id INTEGER NOT NULL, "
                        "pos_x REAL NOT NULL, pos_y REAL NOT NULL)",
                        "CREATE TABLE metadata(key TEXT NOT NULL UNIQUE PRIMARY KEY, value TEXT NOT NULL)",
                        "CREATE TABLE geometry(hash INTEGER NOT NULL, wkt TEXT NOT NULL)",
                        "CREATE TABLE frame_data(frame INTEGER NOT NULL, geometry_hash INTEGER NOT NULL)"):
                cur.execute(sql)
            # the bounds too, as JuPedSim writes them (its viewer frames the scene with them)
            meta = [("version", str(JUPEDSIM_VERSION)), ("fps", repr(1.0 / self.interval_s)),
                    *zip(("xmin", "ymin", "xmax", "ymax"), map(repr, area.bounds)),
                    ("citytwin_level", str(self.levels[k]))]
            meta += [(f"citytwin_{key}", str(v)) for key, v in self.provenance.items()]
            cur.adbc_ingest("metadata", pa.table({"key": [m[0] for m in meta], "value": [m[1] for m in meta]}),
                            mode="append")
            cur.adbc_ingest("geometry", pa.table({"hash": pa.array([0], pa.int64()), "wkt": [area.wkt]}),
                            mode="append")
        self._db[k] = (conn, cur)
        return cur

    def _finish(self) -> None:
        for k in range(len(self.levels) if self.sqlite else 0):
            if k not in self._db:
                self._open(k)
        if self._pq is None:  # no frame at all: an empty table with the columns
            self._empty_parquet()
        else:
            self._pq.close()
            self._pq = None
        for k, (conn, cur) in self._db.items():
            with disk_errors(self._path(k)):
                cur.close()
                conn.close()
        self._db = {}

    def _empty_parquet(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = self.folder / "trajectories.parquet"
        schema = pa.schema([("time_s", pa.float64()), ("agent", pa.int64()), ("x", pa.float64()), ("y", pa.float64()),
                            ("state", pa.dictionary(pa.int8(), pa.string())), ("level", pa.int16())],
                           metadata={b"citytwin": json.dumps(self.provenance).encode()})
        pq.write_table(schema.empty_table(), path)


def _in_the_background() -> None:
    """The writer thread takes the cores' idle time only: the lowest priority (on Linux a thread has
    its own nice value), so that it does not hold up the run's threads in their threaded steps
    (each step waits for its slowest thread). When the writer falls behind, the run waits for it
    at the next row group, and then the writer has the cores."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):  # no per-thread priority here: the writer shares the cores evenly
        pass


def _level_number(level) -> int:
    """Levels are named by their number in the city (0 the ground, 1 the floor above, -1 below)."""
    return int(level)


@njit(cache=True, nogil=True)
def _in_id_order(ids, s, e):
    """The rows ``s..e-1`` (one frame, no id twice) in the order of their ids: by the ids' slots when
    they are as dense as a model's agent numbers (linear), else by a sort."""
    if e - s < 2:
        return np.arange(s, e)
    lo, hi, in_order = ids[s], ids[s], True
    for i in range(s + 1, e):
        lo, hi = min(lo, ids[i]), max(hi, ids[i])
        in_order = in_order and ids[i] > ids[i - 1]
    if in_order:
        return np.arange(s, e)
    if hi - lo < 8 * (e - s):
        slot = np.full(hi - lo + 1, -1, np.int64)
        for i in range(s, e):
            slot[ids[i] - lo] = i
        o = np.empty(e - s, np.int64)
        c = 0
        for r in slot:
            if r >= 0:
                o[c] = r
                c += 1
        if c == e - s:  # else an id twice: the sort keeps both
            return o
    return s + np.argsort(ids[s:e], kind="mergesort")


@njit(cache=True, nogil=True)
def _level_rows(starts, frames, ids, x, y, lv, n_levels):
    """The rows of each level in the order of frame and id, in one pass without the GIL: frame ``f``
    (number ``frames[f]``) is the rows ``starts[f]:starts[f + 1]``; ``lv`` is each row's level (-1:
    none). Returns the offsets of the levels (level ``k`` is ``offsets[k]:offsets[k + 1]``) and the
    columns frame, id, x, y."""
    offsets = np.zeros(n_levels + 1, np.int64)
    for i in range(len(lv)):
        if 0 <= lv[i] < n_levels:
            offsets[lv[i] + 1] += 1
    for k in range(n_levels):
        offsets[k + 1] += offsets[k]
    m = offsets[n_levels]
    fill = offsets[:n_levels].copy()
    o_f, o_id, o_x, o_y = np.empty(m, np.int64), np.empty(m, np.int64), np.empty(m), np.empty(m)
    for f in range(len(starts) - 1):
        for r in _in_id_order(ids, starts[f], starts[f + 1]):
            k = lv[r]
            if 0 <= k < n_levels:
                p = fill[k]
                fill[k] += 1
                o_f[p], o_id[p], o_x[p], o_y[p] = frames[f], ids[r], x[r], y[r]
    return offsets, o_f, o_id, o_x, o_y
