"""Trajectories, written frame by frame every ``[outputs] trajectory_interval_s``.

* ``trajectories.parquet``: ``time_s, agent, x, y, state, level`` (float64 metres in the city CRS;
  ``level`` is the floor level the agent walks on, empty where the model has no levels or the agent
  is on none: on a stair, or outside); written in row groups of about a million rows.
* ``trajectories_level<k>.sqlite`` for each level ``k`` of the model's ``walkable_areas()`` (unless
  ``[outputs] trajectory_sqlite = false``): the agents walking on that level in JuPedSim's SQLite
  trajectory format, which PedPy reads (``pedpy.load_trajectory_from_jupedsim_sqlite``,
  ``load_walkable_area_from_jupedsim_sqlite``): ``trajectory_data(frame, id, pos_x, pos_y, ori_x,
  ori_y)`` with the primary key ``(frame, id)`` (a ``WITHOUT ROWID`` table: the rows are stored in
  that order, and the key is the index JuPedSim's ``frame_id_idx`` would be),
  ``metadata(key, value)`` with ``version``, ``fps`` (= 1 / trajectory_interval_s) and the level's
  bounds ``xmin, ymin, xmax, ymax``, ``geometry(hash, wkt)`` (the level's walkable area without
  obstacles) and ``frame_data(frame, geometry_hash)``. This is the format's version 2: version 3
  only drops the orientation columns (JuPedSim's own upgrade from 2 to 3 only rewrites the version
  number), and PedPy 1.5.1, the newest, reads the walkable area of versions 1 and 2 only. The
  orientation is the direction of walking since the previous frame, on whatever level ((0, 0) in an
  agent's first frame and while standing). Frame ``k`` is at ``k × trajectory_interval_s``.
  Provenance (``twin.runs.runner.provenance``) is in the ``metadata`` table, keys ``citytwin_*``.

The run only buffers each frame's arrays. Every million rows one writer thread turns the buffer into
a Parquet row group and one bulk insert per SQLite file (ADBC's SQLite driver binds Arrow columns in
C, about four times the speed of ``executemany`` over Python values); Arrow, ADBC, NumPy's sort and
the Numba kernel of the orientation release the GIL, so on a machine with a core to spare the writing
costs the run little. Rows go into the SQLite table in the order of its key, so nothing is left to
index at the end. One row group is written while the next is buffered: at most two are in memory.
The writer's errors (a full disk) come out of the next ``append`` or ``close``.
"""
from __future__ import annotations

import json
import math
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
from numba import njit

from twin.core.files import disk_errors

ROW_GROUP_ROWS = 1_000_000
JUPEDSIM_VERSION = 2


class TrajectoryWriter:
    def __init__(self, folder: Path, interval_s: float, walkable: dict, state_names: tuple, provenance: dict,
                 sqlite: bool = True):
        self.folder, self.interval_s = Path(folder), float(interval_s)
        self.levels = list(walkable)  # their numbers are the Parquet file's level
        self.sqlite = sqlite and bool(self.levels)  # False: the Parquet file only
        self.walkable = walkable
        self.state_names = tuple(state_names)
        self.provenance = provenance
        self._buf: list = []  # (time_s, ids, positions, states, levels) of each frame since the last flush
        self._rows = 0
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future | None = None
        # touched by the writer thread only
        self._pq = None
        self._db: dict = {}  # level index -> (ADBC connection, cursor)
        self._prev = [np.zeros(0, np.int64), np.zeros(0), np.zeros(0)]  # the last frame written: ids (sorted), x, y
        self.paths: list[Path] = []

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
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="citytwin-trajectories")
        buf, self._buf, self._rows = self._buf, [], 0
        self._pending = self._pool.submit(self._write, buf, self.state_names)

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()  # the writer's error, if any, is raised here

    def close(self) -> list[Path]:
        """Finish every file; returns their paths."""
        self._flush()
        self._wait()
        if self._pool is None:
            self._finish()
        else:
            self._pool.submit(self._finish).result()
            self._pool.shutdown()
            self._pool = None
        return self.paths

    # -- the writer thread ----------------------------------------------------------------------------
    def _write(self, buf: list, state_names: tuple) -> None:
        """One Parquet row group of the buffered frames and, per level, one bulk insert."""
        import pyarrow as pa

        sizes = np.array([len(f[1]) for f in buf])
        t = np.repeat([f[0] for f in buf], sizes)
        ids, pos, states, lv = (np.concatenate([f[i] for f in buf]) for i in range(1, 5))
        x, y = np.ascontiguousarray(pos.T)  # columns, for Arrow and for the rows of each level
        level_no = np.array([_level_number(v) for v in self.levels] or [0], dtype=np.int16)
        level = pa.array(np.where(lv >= 0, level_no[np.clip(lv, 0, None)], 0).astype(np.int16), mask=lv < 0)
        names = pa.array(list(state_names) or [""], pa.string())
        self._parquet(pa.table({"time_s": t, "agent": ids, "x": x, "y": y,
                                "state": pa.DictionaryArray.from_arrays(pa.array(states, pa.int8()), names),
                                "level": level}))
        if not self.sqlite:
            return
        frames = np.array([round(f[0] / self.interval_s) for f in buf], dtype=np.int64)
        order = _by_frame_and_id(sizes, ids)
        ori_x, ori_y, *self._prev = _heading(np.concatenate([[0], np.cumsum(sizes)]), order, ids, x, y, *self._prev)
        frame = np.repeat(frames, sizes)
        lv_ordered = lv[order]
        for k in range(len(self.levels)):
            rows = order[lv_ordered == k]
            cur = self._db[k][1] if k in self._db else self._open(k)
            with disk_errors(self._path(k)):
                cur.adbc_ingest("frame_data", pa.table({"frame": frames, "geometry_hash": np.zeros_like(frames)}),
                                mode="append")
                cur.adbc_ingest("trajectory_data", pa.table({
                    "frame": frame[rows], "id": ids[rows], "pos_x": x[rows], "pos_y": y[rows],
                    "ori_x": ori_x[rows], "ori_y": ori_y[rows]}), mode="append")

    def _parquet(self, table) -> None:
        import pyarrow.parquet as pq

        if self._pq is None:
            path = self.folder / "trajectories.parquet"
            schema = table.schema.with_metadata({b"citytwin": json.dumps(self.provenance).encode()})
            # no dictionary for ids and coordinates (nearly all distinct: a wasted try), and the
            # coordinates byte-stream split (smaller under zstd): 2-3 times faster than the defaults
            self._pq = pq.ParquetWriter(path, schema, compression="zstd", use_dictionary=["time_s", "state", "level"],
                                        use_byte_stream_split=["x", "y"])
            self.paths.append(path)
        with disk_errors(self.folder / "trajectories.parquet"):
            self._pq.write_table(table.replace_schema_metadata(self._pq.schema.metadata))

    def _path(self, k: int) -> Path:
        return self.folder / f"trajectories_level{_level_number(self.levels[k])}.sqlite"

    def _open(self, k: int):
        import adbc_driver_sqlite.dbapi
        import pyarrow as pa

        path = self._path(k)
        area = self.walkable[self.levels[k]]
        with disk_errors(path):
            conn = adbc_driver_sqlite.dbapi.connect(str(path), autocommit=True)
            cur = conn.cursor()
            # a staging file: written once, copied into the run folder when it is complete
            for sql in ("PRAGMA page_size = 65536", "PRAGMA journal_mode = OFF", "PRAGMA synchronous = OFF",
                        "CREATE TABLE trajectory_data (frame INTEGER NOT NULL, id INTEGER NOT NULL, "
                        "pos_x REAL NOT NULL, pos_y REAL NOT NULL, ori_x REAL NOT NULL, ori_y REAL NOT NULL, "
                        "PRIMARY KEY (frame, id)) WITHOUT ROWID",
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
        self.paths.append(path)
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
        self.paths.append(path)


def _level_number(level) -> int:
    """Levels are named by their number in the city (0 the ground, 1 the floor above, -1 below)."""
    return int(level)


def _by_frame_and_id(sizes: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The rows (frame after frame, ``sizes`` rows each) in the order of frame and id."""
    seq = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
    if not len(ids):
        return seq
    low, span = ids.min(), int(ids.max()) - int(ids.min()) + 1
    if len(sizes) * span >= 2**62:  # ids too far apart for one key
        return np.lexsort((ids, seq))
    return np.argsort(seq * span + (ids - low), kind="stable")


@njit(cache=True, nogil=True)
def _heading(starts, order, ids, x, y, prev_ids, prev_x, prev_y):
    """Each row's unit direction of walking (x and y) from the same agent's position in the frame
    before ((0, 0) where the agent was in none or did not move). Frame ``f`` is the rows
    ``order[starts[f]:starts[f + 1]]``, sorted by id; ``prev_*`` (sorted by id) are the frame before
    the first, and the last frame is returned the same way for the next call. One merge of two sorted
    frames per frame: linear, and without the GIL, beside the run."""
    ori_x, ori_y = np.zeros(len(ids)), np.zeros(len(ids))
    last_ids, last_x, last_y = prev_ids, prev_x, prev_y
    for f in range(len(starts) - 1):
        o = order[starts[f]:starts[f + 1]]
        j = 0
        for r in o:
            while j < len(last_ids) and last_ids[j] < ids[r]:
                j += 1
            if j < len(last_ids) and last_ids[j] == ids[r]:
                dx, dy = x[r] - last_x[j], y[r] - last_y[j]
                d = math.hypot(dx, dy)
                if d > 0:
                    ori_x[r], ori_y[r] = dx / d, dy / d
        last_ids, last_x, last_y = ids[o], x[o], y[o]
    return ori_x, ori_y, last_ids, last_x, last_y
