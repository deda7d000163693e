"""Trajectories, written frame by frame every ``[outputs] trajectory_interval_s``.

* ``trajectories.parquet``: ``time_s, agent, x, y, state, level`` (float64 metres in the city CRS;
  ``level`` is the floor level the agent walks on, empty where the model has no levels or the agent
  is on none: on a stair, or outside); written in row groups of about a million rows.
* ``trajectories_level<k>.sqlite`` for each level ``k`` of the model's ``walkable_areas()``: the
  agents walking on that level in JuPedSim's SQLite trajectory format, which PedPy reads
  (``pedpy.load_trajectory_from_jupedsim_sqlite``, ``load_walkable_area_from_jupedsim_sqlite``):
  ``trajectory_data(frame, id, pos_x, pos_y, ori_x, ori_y)`` (rows in the order of frame and id),
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
C, about four times the speed of ``executemany`` over Python values); Arrow, ADBC and NumPy's sort
release the GIL, so on a machine with a core to spare the writing costs the run little. One row group
is written while the next is buffered: at most two are in memory. The writer's errors (a full disk)
come out of the next ``append`` or ``close``.
"""
from __future__ import annotations

import json
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from twin.core.files import disk_errors

ROW_GROUP_ROWS = 1_000_000
JUPEDSIM_VERSION = 2


class TrajectoryWriter:
    def __init__(self, folder: Path, interval_s: float, walkable: dict, state_names: tuple, provenance: dict):
        self.folder, self.interval_s = Path(folder), float(interval_s)
        self.levels = list(walkable)
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
        self._prev = (np.zeros(0, np.int64), np.zeros((0, 2)))  # the last frame written: ids, positions
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
        """Finish every file (an index per SQLite file, as JuPedSim writes); returns their paths."""
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
        level_no = np.array([_level_number(v) for v in self.levels] or [0], dtype=np.int16)
        level = pa.array(np.where(lv >= 0, level_no[np.clip(lv, 0, None)], 0).astype(np.int16), mask=lv < 0)
        names = pa.array(list(state_names) or [""], pa.string())
        self._parquet(pa.table({"time_s": t, "agent": ids, "x": pos[:, 0], "y": pos[:, 1],
                                "state": pa.DictionaryArray.from_arrays(pa.array(states, pa.int8()), names),
                                "level": level}))
        if not self.levels:
            return
        frames = np.array([round(f[0] / self.interval_s) for f in buf], dtype=np.int64)
        seq = np.repeat(np.arange(len(buf)), sizes)
        ori = self._orientation(seq, ids, pos)
        order = np.lexsort((ids, seq))  # frame by frame, each in the order of the ids
        for k in range(len(self.levels)):
            rows = order[lv[order] == k]
            cur = self._db[k][1] if k in self._db else self._open(k)
            with disk_errors(self._path(k)):
                cur.adbc_ingest("frame_data", pa.table({"frame": frames, "geometry_hash": np.zeros_like(frames)}),
                                mode="append")
                cur.adbc_ingest("trajectory_data", pa.table({
                    "frame": frames[seq[rows]], "id": ids[rows], "pos_x": pos[rows, 0], "pos_y": pos[rows, 1],
                    "ori_x": ori[rows, 0], "ori_y": ori[rows, 1]}), mode="append")

    def _orientation(self, seq: np.ndarray, ids: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """Unit direction from each agent's position in the frame before (the last frame of the previous
        buffer included) to this one; (0, 0) where there was none or the agent stood still."""
        prev_ids, prev_pos = self._prev
        last = seq == seq[-1] if len(seq) else np.zeros(0, bool)
        self._prev = (ids[last], pos[last])
        s = np.concatenate([np.full(len(prev_ids), -1), seq])
        i = np.concatenate([prev_ids, ids])
        p = np.concatenate([prev_pos, pos])
        by_agent = np.lexsort((s, i))  # each agent's rows in frame order
        s, i, p = s[by_agent], i[by_agent], p[by_agent]
        step = np.zeros_like(p)
        follows = (i[1:] == i[:-1]) & (s[1:] == s[:-1] + 1)
        step[1:][follows] = p[1:][follows] - p[:-1][follows]
        norm = np.hypot(step[:, 0], step[:, 1])
        moved = norm > 0
        step[moved] /= norm[moved, None]
        ori = np.empty_like(p)
        ori[by_agent] = step
        return ori[len(prev_ids):]

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
                        "pos_x REAL NOT NULL, pos_y REAL NOT NULL, ori_x REAL NOT NULL, ori_y REAL NOT NULL)",
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
        for k in range(len(self.levels)):
            if k not in self._db:
                self._open(k)
        if self._pq is None:  # no frame at all: an empty table with the columns
            self._empty_parquet()
        else:
            self._pq.close()
            self._pq = None
        # the run waits for these: one thread per file (SQLite builds the index without the GIL)
        with ThreadPoolExecutor(max(1, len(self._db)), thread_name_prefix="citytwin-index") as pool:
            for done in [pool.submit(self._index, k) for k in self._db]:
                done.result()
        self._db = {}

    def _index(self, k: int) -> None:
        conn, cur = self._db[k]
        with disk_errors(self._path(k)):
            cur.execute("CREATE INDEX frame_id_idx ON trajectory_data(frame, id)")
            cur.close()
            conn.close()

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
