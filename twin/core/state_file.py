"""State files: a model's complete dynamic state at one moment (docs/state_file.md, docs/security.md).

A state file is a NumPy ``.npz`` archive (a ZIP of ``.npy`` arrays, read with
``allow_pickle=False``, so loading one never runs code):

* one array per dynamic array of the model, named by its attribute path (``crowd.x``, ``state``);
* ``__meta__``: UTF-8 JSON (as a uint8 array) with the format tag, the versions, the scenario
  (its TOML as a table, its path, the city path and the city's fingerprint), the variant, seed and
  overrides of the run, the simulated time, and the model's JSON state (clock, random generators,
  the time series so far, scalar attributes).

The static part (navigation fields, terrain, road graph) is rebuilt from the city and parameters.

Nothing in a state file is trusted. ``read_state`` reads the ZIP directory and the ``.npy``
headers (shape, dtype) without decompressing any array, and checks the metadata against its schema
(``check_meta``). ``restore_state`` then compares every array's header with what the model built
from that metadata declares (``CityModel.state_specs``: shape, dtype, and a size bound) before the
array is decompressed, and the model checks the values (finiteness, ranges, indices) before any
kernel runs. Every refusal is a ``UserError`` naming the state file and the field.
"""
from __future__ import annotations

import io
import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UserError
from .files import atomic_file, json_default
from .limits import MAX_SEED

FORMAT = "citytwin-state/1"
META = "__meta__"
MAX_META_BYTES = 256 * 2**20  # the JSON part: a month of 10 s time-series rows with many keyed KPIs fits
MAX_MEMBERS = 4096  # entries in the archive: a model has tens of state arrays
MAX_NPY_HEADER = 65_536  # bytes of an .npy header (numpy writes 128 or a few hundred)
MAX_NDIM = 4


@dataclass
class ArrayHeader:
    """What an array's ``.npy`` header says, read without decompressing the array."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool
    file_size: int  # uncompressed bytes the ZIP directory announces for the member


@dataclass
class SavedState:
    meta: dict[str, Any]  # the run context and the model's JSON state ("model")
    headers: dict[str, ArrayHeader]
    path: Path | None = None
    source: Any = None  # the file's path or its bytes, to decompress arrays once they are checked
    name: str = "state in memory"
    _arrays: dict[str, np.ndarray] | None = field(default=None, repr=False)

    @property
    def time_s(self) -> float:
        return float(self.meta["model"]["time_s"])

    @property
    def where(self) -> str:
        """How messages name this state: ``state file PATH`` (or the in-memory state's name)."""
        return f"state file {self.path}" if self.path is not None else self.name

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """Every array, decompressed with only the header checks of ``read_state`` (tests and tools;
        a run restores through ``restore_state``, which checks each against the model first)."""
        if self._arrays is None:
            self._arrays = self.load(list(self.headers))
        return self._arrays

    def load(self, names) -> dict[str, np.ndarray]:
        """Decompress the named arrays (their headers have been checked)."""
        out = {}
        try:
            with _zip(self.source) as z:
                for name in names:
                    with z.open(name + ".npy") as f:
                        out[name] = np.lib.format.read_array(f, allow_pickle=False)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise UserError(f"{self.where}: array {name!r} cannot be read ({type(e).__name__}: {e}); the file is "
                            "damaged. Save the state again.") from None
        return out


def state_bytes(model, context: dict[str, Any]) -> bytes:
    """The state file of ``model`` now, as bytes; ``context`` describes the run (scenario, variant, …)."""
    arrays, model_meta = model.get_state()
    meta = {"format": FORMAT, "model_name": model.name, **context, "model": model_meta}
    blob = json.dumps(meta, default=json_default).encode("utf-8")
    if META in arrays:
        raise ValueError(f"a state array may not be called {META}")
    buf = io.BytesIO()
    np.savez_compressed(buf, **{META: np.frombuffer(blob, dtype=np.uint8)}, **arrays)
    return buf.getvalue()


def write_state_bytes(data: bytes, path: Path) -> None:
    with atomic_file(Path(path), "wb") as f:
        f.write(data)


def read_state(path: str | Path) -> SavedState:
    """Read a state file's metadata and array headers; anything that is not one is a UserError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--from-state {path}: no such file. State files are written by "
                        "`citytwin run --save-state-at T` into the run's states/ folder.")
    return _parse(path, f"state file {path}", path)


def state_from_bytes(data: bytes, name: str = "state in memory") -> SavedState:
    """A state held in memory (the app's branch from now), read exactly like a file."""
    return _parse(data, name, None)


def _zip(source) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source)


def _parse(source, where: str, path: Path | None) -> SavedState:
    size = len(source) if isinstance(source, (bytes, bytearray)) else source.stat().st_size
    if size == 0:
        raise UserError(f"{where}: the file is empty, not a CityTwin state file. State files are written by "
                        "`citytwin run --save-state-at T`; save the state again.")
    try:
        with _zip(source) as z:
            infos = z.infolist()
            if len(infos) > MAX_MEMBERS:
                raise UserError(f"{where}: holds {len(infos):,} entries; a state file holds at most {MAX_MEMBERS:,}.")
            members = {i.filename: i for i in infos}
            meta_info = members.get(META + ".npy")
            if meta_info is None:
                raise UserError(f"{where}: not a CityTwin state file (no {META} entry).")
            if meta_info.file_size > MAX_META_BYTES:
                raise UserError(f"{where}: the {META} entry announces {meta_info.file_size:,} bytes; a state's "
                                f"metadata holds at most {MAX_META_BYTES:,}. The file was not written by CityTwin.")
            headers = {}
            for name, info in members.items():
                if not name.endswith(".npy"):
                    raise UserError(f"{where}: entry {name!r} is not a NumPy array (.npy); the file was not written "
                                    "by CityTwin.")
                headers[name[:-4]] = _header(z, info, where)
            mh = headers.pop(META)
            if mh.dtype != np.uint8 or len(mh.shape) != 1:
                raise UserError(f"{where}: the {META} entry is not UTF-8 text (uint8 bytes).")
            with z.open(meta_info) as f:
                blob = np.lib.format.read_array(f, allow_pickle=False)
        meta = json.loads(blob.tobytes().decode("utf-8"))
    except UserError:
        raise
    except RecursionError:
        raise UserError(f"{where}: the {META} JSON is nested too deeply; the file was not written by CityTwin.") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, UnicodeDecodeError, NotImplementedError,
            RuntimeError) as e:
        raise UserError(f"{where}: not a readable CityTwin state file ({type(e).__name__}: {e}).") from None
    check_meta(meta, where)
    return SavedState(meta, headers, path, source, where)


def _header(z: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> ArrayHeader:
    """The .npy header of one member: reads (decompresses) only the header's few bytes."""
    name = info.filename[:-4]
    try:
        with z.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f, max_header_size=MAX_NPY_HEADER)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f, max_header_size=MAX_NPY_HEADER)
            else:
                raise ValueError(f"npy version {version}")
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, SyntaxError, TypeError) as e:
        raise UserError(f"{where}: array {name!r} has no readable NumPy header ({type(e).__name__}: {e}).") from None
    if dtype.hasobject or dtype.fields is not None or dtype.kind not in "biuf":
        raise UserError(f"{where}: array {name!r} has dtype {dtype}; a state holds only numbers and booleans.")
    if len(shape) > MAX_NDIM or any(not isinstance(n, int) or n < 0 for n in shape):
        raise UserError(f"{where}: array {name!r} has shape {shape}; the file was not written by CityTwin.")
    return ArrayHeader(tuple(shape), dtype, bool(fortran), int(info.file_size))


# -- the metadata's schema ------------------------------------------------------------------------------
def _bad(where: str, key: str, what: str, value) -> UserError:
    text = repr(value)
    text = text if len(text) <= 60 else text[:59] + "…"
    return UserError(f"{where}: {key} must be {what}, not {text}. The file was edited or damaged; save the state "
                     "again with `citytwin run --save-state-at T`.")


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _whole(v, lo: int = 0, hi: int = 2**53) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _kpi_value(v) -> bool:
    """A KPI value as a state records it: a number (NaN allowed: no data yet), null, or {key: number}."""
    if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)):
        return True
    return isinstance(v, dict) and all(x is None or (isinstance(x, (int, float)) and not isinstance(x, bool))
                                       for x in v.values())


def check_meta(meta, where: str) -> None:
    """The ``__meta__`` JSON against its schema (docs/state_file.md): types, finite numbers, bounds."""
    if not isinstance(meta, dict):
        raise _bad(where, META, "a JSON object", meta)
    if meta.get("format") != FORMAT:
        raise UserError(f"{where}: state format {meta.get('format')!r} is not {FORMAT!r}; it was written by another "
                        "version of CityTwin. Re-run the scenario with --save-state-at to make a new one.")
    text = {"model_name": "the model's name", "city_path": "the city folder's path", "variant": "the variant's name",
            "city_fingerprint": "the city's SHA-256 fingerprint"}
    for key, what in text.items():
        if not isinstance(meta.get(key), str):
            raise _bad(where, key, f"text ({what})", meta.get(key))
    if meta.get("scenario_path") is not None and not isinstance(meta["scenario_path"], str):
        raise _bad(where, "scenario_path", "text or null", meta["scenario_path"])
    for key in ("scenario", "overrides", "model"):
        if not isinstance(meta.get(key), dict):
            raise _bad(where, key, "a JSON object", meta.get(key))
    if not _whole(meta.get("seed"), 0, MAX_SEED):
        raise _bad(where, "seed", f"a whole number from 0 to {MAX_SEED}", meta.get("seed"))
    for key in ("duration_s", "time_s"):
        if not _number(meta.get(key)) or meta[key] < 0:
            raise _bad(where, key, "a finite number of seconds, at least 0", meta.get(key))
    m = meta["model"]
    if not _number(m.get("time_s")) or not 0 <= m["time_s"] <= meta["duration_s"]:
        raise _bad(where, "model.time_s", f"a finite number of seconds from 0 to duration_s = {meta['duration_s']:g}",
                   m.get("time_s"))
    if m["time_s"] != meta["time_s"]:
        raise _bad(where, "time_s", f"the model's time, {m['time_s']!r}", meta["time_s"])
    for key in ("steps", "report_k"):
        if not _whole(m.get(key)):
            raise _bad(where, f"model.{key}", "a whole number, at least 0", m.get(key))
    for key in ("rng", "model_vars", "kpi_cache", "params", "attrs"):
        if not isinstance(m.get(key), dict):
            raise _bad(where, f"model.{key}", "a JSON object", m.get(key))
    if not isinstance(m["rng"].get("bit_generator"), str) or not isinstance(m["rng"].get("state"), dict):
        raise _bad(where, "model.rng", "a numpy bit generator's state ({bit_generator, state, …})", m["rng"])
    r = m.get("random")
    if not (isinstance(r, list) and len(r) == 3 and _whole(r[0], 0, 10) and isinstance(r[1], list)
            and len(r[1]) == 625 and all(_whole(x, 0, 2**32) for x in r[1]) and (r[2] is None or _number(r[2]))):
        raise _bad(where, "model.random", "Python's random-generator state [version, [625 whole numbers], gauss]", r)
    times = m.get("times")
    if not isinstance(times, list) or not all(_number(t) for t in times):
        raise _bad(where, "model.times", "a list of finite times in seconds", times)
    # (a coupled run's sync points are multiples of a rational step: a member's clock may stop a
    # rounding error short of the row it recorded there)
    if any(b < a for a, b in zip(times, times[1:])) or (
            times and not 0 <= times[-1] <= m["time_s"] + 1e-9 * max(1.0, abs(m["time_s"]))):
        raise _bad(where, "model.times", f"increasing times from 0 to model.time_s = {m['time_s']:g}", times[-3:])
    for k, series in m["model_vars"].items():
        if not isinstance(series, list) or len(series) != len(times) or not all(_kpi_value(v) for v in series):
            raise _bad(where, f"model.model_vars.{k}", f"a list of {len(times)} KPI values (one per time)",
                       series if not isinstance(series, list) else series[:3])
    for k, v in m["kpi_cache"].items():
        if not _kpi_value(v):
            raise _bad(where, f"model.kpi_cache.{k}", "a KPI value (a number or {key: number})", v)


# -- restoring into a model -----------------------------------------------------------------------------
def restore_state(model, state: SavedState) -> None:
    """Put ``state`` into ``model`` (freshly built from the state's scenario, variant and seed).

    Every array's header is compared with what the model declares before the array is decompressed;
    then the model checks the values (``CityModel.set_state``). Refusals name the state and the field."""
    where = state.where
    if state.meta["model_name"] != model.name:
        raise UserError(f"{where}: the state is of model {state.meta['model_name']!r}, not {model.name!r}.")
    expected = model.state_array_bounds()  # {path: (fresh array, max shape)}
    extra = sorted(set(state.headers) - set(expected))
    if extra:
        raise UserError(f"{where}: array {extra[0]!r} is not part of model {model.name}'s state; the file was written "
                        "by another version of the model or edited.")
    try:  # arrays a state saved with other parameters holds with other rows or shapes (CityModel.saved_rows)
        rows = model.saved_rows(state.meta["model"], {p: h.shape for p, h in state.headers.items()})
    except UserError as e:
        raise UserError(f"{where}: {e}") from None
    for path, (fresh, max_shape) in expected.items():
        shape = fresh.shape
        if path in rows:
            saved = rows[path]
            shape = max_shape = (tuple(int(n) for n in saved) if isinstance(saved, (tuple, list))
                                 else (int(saved),) + fresh.shape[1:])
        h = state.headers.get(path)
        if h is None:
            if path in state.meta["model"]["attrs"]:
                continue  # an attribute that is an array in this model: set_state says what is wrong
            raise UserError(f"{where}: array {path!r} is missing; model {model.name} needs it. The file was written "
                            "by another version of the model or edited.")
        if h.dtype != fresh.dtype:
            raise UserError(f"{where}: array {path!r} has dtype {h.dtype}, model {model.name} needs {fresh.dtype}.")
        spec = model._state_spec(path)
        if not model.state_shape_allowed(spec, h.shape, shape):
            raise UserError(f"{where}: array {path!r} has shape {h.shape}, model {model.name} needs "
                            f"{model.state_shape_text(spec, shape)} here.")
        limit = int(np.prod(max_shape, dtype=np.float64) * fresh.dtype.itemsize) + MAX_NPY_HEADER
        if h.file_size > limit:  # the ZIP directory announces more than the header's shape holds
            raise UserError(f"{where}: array {path!r} announces {h.file_size:,} bytes, more than its shape {h.shape} "
                            f"holds; the file is damaged or hostile.")
    arrays = state.load([p for p in expected if p in state.headers])
    model.set_state(arrays, state.meta["model"], where=where)
