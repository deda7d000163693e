"""Trajectories, written frame by frame every ``[outputs] trajectory_interval_s``.

* ``trajectories.parquet``: ``time_s, agent, x, y, state, level`` (float64 metres in the city CRS;
  ``level`` is the floor level the agent walks on, empty where the model has no levels or the agent
  is on none: on a stair, or outside); written in row groups of about a million rows.
* ``trajectories_level<k>.sqlite`` for each level ``k`` of the model's ``walkable_areas()``: the
  agents walking on that level in JuPedSim's SQLite trajectory format, which PedPy reads
  (``pedpy.load_trajectory_from_jupedsim_sqlite``, ``load_walkable_area_from_jupedsim_sqlite``):
  ``trajectory_data(frame, id, pos_x, pos_y, ori_x, ori_y)``, ``metadata(key, value)`` with
  ``version`` and ``fps`` (= 1 / trajectory_interval_s), ``geometry(hash, wkt)`` (the level's
  walkable area without obstacles) and ``frame_data(frame, geometry_hash)``. This is the format's
  version 2: version 3 only drops the orientation columns, and PedPy 1.5 reads the walkable area of
  versions 1 and 2 only. The orientation is the direction of walking since the previous frame
  ((0, 0) in an agent's first frame). Frame ``k`` is at ``k × trajectory_interval_s``.
  Provenance (``twin.runs.runner.provenance``) is in the ``metadata`` table, keys ``citytwin_*``.

Nothing is kept in memory beyond the current row group and the previous frame.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np

ROW_GROUP_ROWS = 1_000_000
JUPEDSIM_VERSION = 2


class TrajectoryWriter:
    def __init__(self, folder: Path, interval_s: float, walkable: dict, state_names: tuple, provenance: dict):
        self.folder, self.interval_s = Path(folder), float(interval_s)
        self.levels = list(walkable)
        self.walkable = walkable
        self.state_names = tuple(state_names)
        self.provenance = provenance
        self._pq = None
        self._buf: list = []
        self._rows = 0
        self._db: dict[int, sqlite3.Connection] = {}
        self._sql_buf: dict[int, list] = {}  # level -> frames buffered for the next flush
        self._frames: dict[int, list] = {}
        self._prev: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # level -> (sorted ids, their positions)
        self.paths: list[Path] = []

    # -- per frame ------------------------------------------------------------------------------------
    def append(self, time_s: float, ids, positions, states, state_names, level) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        pos = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
        lv = np.full(len(ids), -1, np.int64) if level is None else np.asarray(level, dtype=np.int64)
        if tuple(state_names) != self.state_names:
            self.state_names = tuple(state_names)
        self._parquet_frame(time_s, ids, pos, np.asarray(states, dtype=np.int8), lv)
        frame = int(round(time_s / self.interval_s))
        for k in range(len(self.levels)):
            on = lv == k
            self._sqlite_frame(k, frame, ids[on], pos[on])

    def _parquet_frame(self, t, ids, pos, states, lv) -> None:
        self._buf.append((np.full(len(ids), float(t)), ids, pos, states, lv))
        self._rows += len(ids)
        if self._rows >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        """Write the buffered frames: one Parquet row group (built column by column) and, per level, one
        executemany of plain Python values into the SQLite file."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._flush_sqlite()
        if not self._buf:
            return
        t, ids, pos, states, lv = (np.concatenate(c) for c in zip(*self._buf))
        level_no = np.array([_level_number(v) for v in self.levels] or [0], dtype=np.int16)
        level = pa.array(np.where(lv >= 0, level_no[np.clip(lv, 0, None)], 0).astype(np.int16), mask=lv < 0)
        names = pa.array(list(self.state_names) or [""], pa.string())
        table = pa.table({"time_s": t, "agent": ids, "x": pos[:, 0], "y": pos[:, 1],
                          "state": pa.DictionaryArray.from_arrays(pa.array(states, pa.int8()), names), "level": level})
        if self._pq is None:
            path = self.folder / "trajectories.parquet"
            schema = table.schema.with_metadata({b"citytwin": json.dumps(self.provenance).encode()})
            self._pq = pq.ParquetWriter(path, schema, compression="zstd")
            self.paths.append(path)
        self._pq.write_table(table.replace_schema_metadata(self._pq.schema.metadata))
        self._buf, self._rows = [], 0

    def _sqlite_frame(self, k: int, frame: int, ids: np.ndarray, pos: np.ndarray) -> None:
        order = np.argsort(ids, kind="stable")
        ids, pos = ids[order], pos[order]
        ori = np.zeros_like(pos)
        prev_ids, prev_pos = self._prev.get(k, (np.zeros(0, np.int64), np.zeros((0, 2))))
        if len(prev_ids) and len(ids):
            j = np.clip(np.searchsorted(prev_ids, ids), 0, len(prev_ids) - 1)
            seen = prev_ids[j] == ids
            step = pos[seen] - prev_pos[j[seen]]
            norm = np.hypot(step[:, 0], step[:, 1])
            moved = norm > 0
            ori_seen = np.zeros_like(step)
            ori_seen[moved] = step[moved] / norm[moved, None]
            ori[seen] = ori_seen
        self._prev[k] = (ids, pos)
        self._sql_buf.setdefault(k, []).append((np.full(len(ids), frame, np.int64), ids, pos, ori))
        self._frames.setdefault(k, []).append((frame,))

    def _flush_sqlite(self) -> None:
        for k, parts in self._sql_buf.items():
            db = self._db.get(k) or self._open(k)
            db.executemany("INSERT INTO frame_data VALUES(?, 0)", self._frames[k])
            fr, ids, pos, ori = (np.concatenate(c) for c in zip(*parts))
            db.executemany("INSERT INTO trajectory_data VALUES(?, ?, ?, ?, ?, ?)",
                           zip(fr.tolist(), ids.tolist(), pos[:, 0].tolist(), pos[:, 1].tolist(),
                               ori[:, 0].tolist(), ori[:, 1].tolist()))
        self._sql_buf, self._frames = {}, {}

    def _open(self, k: int) -> sqlite3.Connection:
        path = self.folder / f"trajectories_level{_level_number(self.levels[k])}.sqlite"
        db = sqlite3.connect(path, isolation_level=None)
        # a staging file: written once, copied into the run folder when it is complete
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        db.execute("BEGIN")
        db.execute("CREATE TABLE trajectory_data (frame INTEGER NOT NULL, id INTEGER NOT NULL, pos_x REAL NOT NULL, "
                   "pos_y REAL NOT NULL, ori_x REAL NOT NULL, ori_y REAL NOT NULL)")
        db.execute("CREATE TABLE metadata(key TEXT NOT NULL UNIQUE PRIMARY KEY, value TEXT NOT NULL)")
        meta = [("version", str(JUPEDSIM_VERSION)), ("fps", repr(1.0 / self.interval_s)),
                ("citytwin_level", str(self.levels[k]))]
        meta += [(f"citytwin_{key}", str(v)) for key, v in self.provenance.items()]
        db.executemany("INSERT INTO metadata VALUES(?, ?)", meta)
        db.execute("CREATE TABLE geometry(hash INTEGER NOT NULL, wkt TEXT NOT NULL)")
        db.execute("INSERT INTO geometry VALUES(?, ?)", (0, self.walkable[self.levels[k]].wkt))
        db.execute("CREATE TABLE frame_data(frame INTEGER NOT NULL, geometry_hash INTEGER NOT NULL)")
        self._db[k] = db
        self.paths.append(path)
        return db

    def close(self) -> list[Path]:
        """Finish every file (an index per SQLite file, as JuPedSim writes); returns their paths."""
        for k in range(len(self.levels)):
            if k not in self._db:
                self._open(k)
        self._flush()
        if self._pq is None:  # no frame at all: an empty table with the columns
            self._empty_parquet()
        else:
            self._pq.close()
            self._pq = None
        for db in self._db.values():
            db.execute("CREATE INDEX frame_id_idx ON trajectory_data(frame, id)")
            db.execute("COMMIT")
            db.close()
        self._db = {}
        return self.paths

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
