"""What a model needs from a city and what it got there (`citytwin city check`, docs/city_package.md).

Every model answers ``check_city(city) -> CityCheck`` (``CityModel.check_city``; the base class
checks the declared layers, a model adds what it knows about its inputs). The platform only
renders the answer: the CLI, the app's City → Check panel and a run's ``summary.json``
(``city_check``) never know what a model reads.

A ``CityCheck`` sorts what a model reads into five lists of ``CheckItem``:

- ``found``: features the model uses (counts and a few names);
- ``taken``: values read from the data as they are;
- ``estimated``: values derived from other data, with how (``how``);
- ``defaulted``: values that are a default, not the city's (``how``: which default);
- ``missing``: what the city lacks, with what to add (``how``); ``blocking`` when the model cannot
  run without it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

__all__ = ["CheckItem", "CityCheck", "KINDS", "defaulted_ids", "feature_names", "value_sources"]

KINDS = ("found", "taken", "estimated", "defaulted", "missing")


@dataclass(frozen=True)
class CheckItem:
    what: str  # what the model looked for, in its words
    count: int = 0  # features concerned
    names: tuple[str, ...] = ()  # a few of them, for people
    how: str = ""  # estimated/defaulted: how; missing: what to add
    blocking: bool = False  # missing: the model cannot run without it

    def text(self, limit: int = 6) -> str:
        s = f"{self.what}: {self.count}" if self.count else f"{self.what}: none" if self.how == "" else self.what
        if self.names:
            shown = ", ".join(self.names[:limit])
            s += f" ({shown}{', …' if len(self.names) > limit or self.count > len(self.names[:limit]) else ''})"
        if self.how:
            s += f" — {self.how}"
        return s


@dataclass
class CityCheck:
    model: str
    title: str = ""
    found: list[CheckItem] = field(default_factory=list)
    taken: list[CheckItem] = field(default_factory=list)
    estimated: list[CheckItem] = field(default_factory=list)
    defaulted: list[CheckItem] = field(default_factory=list)
    missing: list[CheckItem] = field(default_factory=list)

    @property
    def can_run(self) -> bool:
        return not any(m.blocking for m in self.missing)

    def add(self, kind: str, what: str, count: int = 0, names=(), how: str = "", blocking: bool = False) -> None:
        """Add an item; an estimated or defaulted item for no feature is left out (nothing to say)."""
        if kind not in KINDS:
            raise ValueError(f"check item kind {kind!r} is not one of {KINDS}")
        if kind in ("estimated", "defaulted", "taken") and count == 0 and names == ():
            return
        getattr(self, kind).append(CheckItem(what, int(count), tuple(str(n) for n in names), how, blocking))

    def to_dict(self) -> dict:
        out = {"model": self.model, "title": self.title, "can_run": self.can_run}
        for k in KINDS:
            out[k] = [asdict(i) | {"names": list(i.names)} for i in getattr(self, k)]
        return out

    def summary_entry(self) -> dict:
        """What a run's summary.json records (``city_check``): the inputs that are not the city's own."""
        return {k: [i.text() for i in getattr(self, k)] for k in ("estimated", "defaulted") if getattr(self, k)}

    def text(self) -> str:
        lines = [f"{self.model}" + (f" — {self.title}" if self.title else "")
                 + ("" if self.can_run else "   CANNOT RUN: add what is missing (marked !)")]
        labels = {"found": "Found", "taken": "Taken from the data", "estimated": "Estimated",
                  "defaulted": "Defaulted", "missing": "Missing"}
        for k in KINDS:
            items = getattr(self, k)
            if not items:
                continue
            lines.append(f"  {labels[k]}")
            for i in items:
                lines.append(f"    {'! ' if i.blocking else '- '}{i.text()}")
        return "\n".join(lines)


def defaulted_ids(city, layer: str, column: str) -> set[str]:
    """Ids of the features of ``layer`` whose ``column`` the package reader filled with its default
    (``twin.core.city``: a column absent or empty in the file)."""
    return set(map(str, (getattr(city, "defaulted", {}) or {}).get(layer, {}).get(column, ())))


def value_sources(city, layer: str, gdf, column: str, source: str = "") -> dict[str, list[str]]:
    """Where the ``column`` of each feature of ``gdf`` (features of ``layer``) came from: ``{"taken"|"estimated"|"defaulted": [ids]}``.

    The importer's ``<column>_source`` column (or ``source``) says it for imported features ("tag", "height"… =
    taken; "default" = defaulted; anything else, e.g. "levels" or "footprint", = estimated); the
    package reader's record says which it filled with a default; the rest is the file's own value."""
    out: dict[str, list[str]] = {"taken": [], "estimated": [], "defaulted": []}
    if gdf is None or not len(gdf):
        return out
    ids = gdf["id"].astype(str).to_numpy() if "id" in gdf.columns else np.arange(len(gdf)).astype(str)
    filled = defaulted_ids(city, layer, column)
    src_col = source or f"{column}_source"
    src = gdf[src_col] if src_col in gdf.columns else pd.Series([None] * len(gdf), index=gdf.index)
    for fid, s in zip(ids, src):
        s = None if s is None or (isinstance(s, float) and s != s) else str(s)
        if fid in filled or s == "default":
            out["defaulted"].append(fid)
        elif s is None or s in ("tag", "data", "given", column, column.removesuffix("_m")):
            out["taken"].append(fid)
        else:
            out["estimated"].append(fid)
    return out


def feature_names(gdf, n: int = 8, ids=None) -> tuple[str, ...]:
    """Up to ``n`` features of ``gdf`` (those with ``ids`` when given) for people: the name, else the id."""
    if gdf is None or not len(gdf):
        return ()
    if ids is not None:
        gdf = gdf[gdf["id"].astype(str).isin(set(map(str, ids)))]
    names = gdf["name"] if "name" in gdf.columns else pd.Series([""] * len(gdf), index=gdf.index)
    keys = gdf["id"].astype(str) if "id" in gdf.columns else pd.Series([""] * len(gdf), index=gdf.index)
    named = [str(nm).strip() if isinstance(nm, str) else "" for nm in names]
    seen = pd.Series(named).value_counts()
    # the name; with the id where the name is shared or missing
    out = [k if not nm else f"{nm} ({k})" if seen[nm] > 1 and k else nm for nm, k in zip(named, keys)]
    return tuple(o for o in out if o)[:n]
