"""State files: a model's complete dynamic state at one moment, safe to share (docs/state_file.md).

A state file is a NumPy ``.npz`` archive (a ZIP of ``.npy`` arrays, read with
``allow_pickle=False``, so loading one never runs code):

* one array per dynamic array of the model, named by its attribute path (``crowd.x``, ``state``);
* ``__meta__``: UTF-8 JSON (as a uint8 array) with the format tag, the versions, the scenario
  (its TOML as a table, its path, the city path and the city's fingerprint), the variant, seed and
  overrides of the run, the simulated time, and the model's JSON state (clock, random generators,
  the time series so far, scalar attributes).

The static part (navigation fields, terrain, road graph) is rebuilt from the city and parameters.
"""
from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UserError
from .files import atomic_file, json_default

FORMAT = "citytwin-state/1"
META = "__meta__"


@dataclass
class SavedState:
    meta: dict[str, Any]  # the run context and the model's JSON state ("model")
    arrays: dict[str, np.ndarray]
    path: Path | None = None

    @property
    def time_s(self) -> float:
        return float(self.meta["model"]["time_s"])


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
    """Read a state file; anything that is not one is a UserError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--from-state {path}: no such file. State files are written by "
                        "`citytwin run --save-state-at T` into the run's states/ folder.")
    return _parse(path, path)


def state_from_bytes(data: bytes, name: str = "state in memory") -> SavedState:
    """A state held in memory (the app's branch from now), read exactly like a file."""
    return _parse(io.BytesIO(data), name)


def _parse(source, path) -> SavedState:
    try:
        with np.load(source, allow_pickle=False) as z:
            if META not in z.files:
                raise UserError(f"{path}: not a CityTwin state file (no {META} entry).")
            meta = json.loads(bytes(z[META]).decode("utf-8"))
            arrays = {k: z[k] for k in z.files if k != META}
    except UserError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: not a readable CityTwin state file ({type(e).__name__}: {e}).") from None
    if meta.get("format") != FORMAT:
        raise UserError(f"{path}: state format {meta.get('format')!r} is not {FORMAT!r}; it was written by another "
                        "version of CityTwin. Re-run the scenario with --save-state-at to make a new one.")
    return SavedState(meta, arrays, path if isinstance(path, Path) else None)
