"""Adding an intervention to a scenario file as text (the app's "Add as intervention", drawn or picked
places included): the file keeps its own lines and comments, gains one ``[[interventions]]`` table at
the end, and is checked as a whole before it replaces the old one (atomically)."""
from __future__ import annotations

import os
import tempfile
import tomllib
from pathlib import Path

import tomli_w

from twin.core.errors import UserError
from twin.core.files import atomic_file

__all__ = ["add_intervention", "intervention_text"]


def intervention_text(name: str, parameters: dict) -> str:
    """The TOML of one intervention: its name and its parameter overrides."""
    return ("[[interventions]]\n" + tomli_w.dumps({"name": name})
            + "[interventions.parameters]\n" + tomli_w.dumps(parameters))


def add_intervention(path: str | Path, name: str, parameters: dict) -> Path:
    """Append intervention ``name`` with ``parameters`` to the scenario file at ``path``; the file must
    still load (``load_scenario``: its parameters are checked on the model and the city), else it is
    left as it was and the reason raised."""
    from .scenario import load_scenario

    path = Path(path)
    name = str(name).strip()
    if not name:
        raise UserError(f"{path}: an intervention needs a name.")
    if not parameters:
        raise UserError(f"{path}: intervention {name!r} changes no parameter of the baseline; change one first.")
    text = path.read_text(encoding="utf-8")
    try:
        have = tomllib.loads(text).get("interventions", [])
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path}: not valid TOML ({e}); fix the file first.") from None
    if any(isinstance(iv, dict) and iv.get("name") == name for iv in have):
        raise UserError(f"{path}: there is already an intervention named {name!r}; choose another name.")
    new = text.rstrip("\n") + "\n\n" + intervention_text(name, parameters)
    # checked beside the file (its relative paths resolve the same way), as a run would check it
    fd, trial = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".toml", dir=path.parent)
    os.close(fd)
    try:
        Path(trial).write_text(new, encoding="utf-8")
        load_scenario(trial)
    except UserError as e:
        raise UserError(str(e).replace(trial, str(path)) + f" (intervention {name!r} was not added)") from None
    finally:
        os.unlink(trial)
    with atomic_file(path, "w", encoding="utf-8") as f:
        f.write(new)
    return path
