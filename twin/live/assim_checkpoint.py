"""The checkpoint that lets ``citytwin assimilate`` resume where it stopped (docs/assimilation.md).

One ZIP file, ``checkpoint.zip`` in ``--out``, written whole (``twin.core.files.atomic_file``) after
every forecast issue, and removed when the run is complete:

- ``checkpoint.json``: the options the run was started with (``Assimilation.options``: a resumed
  run must be the same command), where it got to, the filter's counters, weights, adaptive
  errors and forcings, each member's seed, parameters and count-sensor ticks, and the rows of
  its tables so far;
- ``<ensemble>/<k>.npz``: member k's state (``Run.state_bytes``; read back through the state
  file's checks, ``state_from_bytes``);
- ``<table>.parquet``: the forecasts' quantiles and members' values so far.

Floats go through JSON as their shortest repr and through Parquet as they are: a resumed run
continues with the very numbers the interrupted one had.
"""
from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path

import pandas as pd

from twin.core.errors import UserError
from twin.core.files import atomic_file, json_default

CHECKPOINT = "checkpoint.zip"
FORMAT = "citytwin-assimilate-checkpoint/1"
DOC = "checkpoint.json"
MAX_ENTRIES = 100_000  # members of both ensembles and two tables: far below


def write_checkpoint(path: Path, doc: dict, states: dict[str, bytes], frames: dict[str, pd.DataFrame]) -> None:
    """``doc`` (JSON), the members' ``states`` and the ``frames`` as one file, replaced whole."""
    with atomic_file(path, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:
        z.writestr(DOC, json.dumps({"format": FORMAT, **doc}, default=json_default))
        for name, data in states.items():  # state files are compressed already
            z.writestr(f"{name}.npz", data)
        for name, df in frames.items():
            buf = io.BytesIO()
            df.to_parquet(buf, index=False)
            z.writestr(f"{name}.parquet", buf.getvalue())


def read_checkpoint(path: Path) -> tuple[dict, dict[str, bytes], dict[str, pd.DataFrame]]:
    """What ``write_checkpoint`` wrote; a file that is not one is a UserError naming it."""
    fix = f"remove {path.name} from {path.parent} to start afresh, or give another --out"
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            if len(infos) > MAX_ENTRIES:
                raise UserError(f"{path}: holds {len(infos):,} entries, not an assimilation's checkpoint; {fix}.")
            doc = json.loads(z.read(DOC).decode("utf-8"))
            if not isinstance(doc, dict) or doc.get("format") != FORMAT:
                raise UserError(f"{path}: not a checkpoint of `citytwin assimilate` ({FORMAT}); {fix}.")
            states, frames = {}, {}
            for info in infos:
                if info.filename.endswith(".npz"):
                    states[info.filename[:-4]] = z.read(info)
                elif info.filename.endswith(".parquet"):
                    frames[info.filename[:-8]] = pd.read_parquet(io.BytesIO(z.read(info)))
    except UserError:
        raise
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
        raise UserError(f"{path}: the checkpoint cannot be read ({e}); {fix}.") from None
    return doc, states, frames


def differences(saved: dict, now: dict, prefix: str = "") -> list[str]:
    """What differs between a checkpoint's options and this run's, each as 'NAME: A then, B now'
    (a table's keys one by one: 'scenario.parameters.cell_size_m: 10.0 then, 20.0 now')."""
    out = []
    for key in sorted(set(saved) | set(now)):
        a, b = saved.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f"{prefix}{key}.")
        elif not _same(a, b):
            out.append(f"{prefix}{key}: {_text(a)} then, {_text(b)} now")
    return out


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return json.dumps(a, sort_keys=True, default=json_default) == json.dumps(b, sort_keys=True, default=json_default)


def _text(v) -> str:
    if v is None:
        return "none"
    text = json.dumps(v, sort_keys=True, default=json_default) if isinstance(v, (dict, list)) else str(v)
    return text if len(text) <= 80 else text[:77] + "…"
