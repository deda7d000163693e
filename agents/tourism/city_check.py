"""What the tourist model got from a city (``citytwin city check``, twin.core.city_check): its entry
points, attractions and hotels, and where their capacity, gates and service times came from."""
from __future__ import annotations

import pandas as pd

from twin.core.city_check import CityCheck, defaulted_ids, feature_names, value_sources

from .city_import import POI_KINDS

DEFAULTS = {k.name: k for k in POI_KINDS}
ESTIMATED_HOW = {"capacity": "floor area (footprint × floors, or the ground floor, or a park's area) ÷ m² per "
                             "visitor by class (capacity_source says which); give the capacity column"}


def check(check: CityCheck, city, entry_kinds) -> CityCheck:
    pois = city.pois
    kinds = pois["kind"].astype(str)
    entries = pois[kinds.isin(entry_kinds)]
    check.add("found", "entry points (" + ", ".join(entry_kinds) + ")", len(entries), feature_names(entries))
    if not len(entries):
        check.add("missing", "an entry point", how=f"add a POI of kind {' or '.join(entry_kinds)} where tourists "
                  "arrive", blocking=True)
    for kind, what, cols in (("attraction", "attractions", ("capacity", "gates", "service_time_s")),
                             ("hotel", "hotels", ("capacity", "gates", "service_time_s"))):
        sub = pois[kinds == kind]
        check.add("found", what, len(sub), feature_names(sub))
        if not len(sub):
            if kind == "attraction":
                check.add("missing", "attractions", how="add POIs of kind attraction (capacity, gates, "
                          "service_time_s)", blocking=True)
            continue
        d = DEFAULTS[kind]
        own = dict(d.defaults)
        default_of = {"capacity": f"{d.capacity} {'rooms' if kind == 'hotel' else 'persons'}", "gates": str(own["gates"]),
                      "service_time_s": f"{own['service_time_s']:g} s"}
        if kind == "attraction" and "class" in sub.columns:
            by_class = sub["class"].fillna("").astype(str).replace("", "unclassed").value_counts()
            check.add("found", "attraction classes", len(by_class), tuple(f"{n} {c}" for c, n in by_class.items()))
        for col in cols:
            src = value_sources(city, "pois", sub, col)
            # an imported POI's gates and service time come from its kind's defaults (or its class:
            # service_time_source "class"), never from OSM
            if col != "capacity" and "capacity_source" in sub.columns:
                imported = set(sub["id"].astype(str)[sub["capacity_source"].notna()])
                src["defaulted"] += [i for i in src["taken"] if i in imported]
                src["taken"] = [i for i in src["taken"] if i not in imported]
            by_class = []
            if col == "service_time_s" and "service_time_source" in sub.columns:
                by_class = list(sub["id"].astype(str)[sub["service_time_source"].astype(str) == "class"])
                src["defaulted"] = [i for i in src["defaulted"] if i not in set(by_class)]
            label = f"{kind} {'rooms' if kind == 'hotel' and col == 'capacity' else col}"
            check.add("taken", label, len(src["taken"]), feature_names(sub, ids=src["taken"]))
            check.add("estimated", label, len(src["estimated"]), feature_names(sub, ids=src["estimated"]),
                      how=ESTIMATED_HOW.get(col, "estimated by the import (see the capacity_source column)"))
            check.add("defaulted", label, len(by_class), feature_names(sub, ids=by_class),
                      how="0 s: free entry for parks, gardens and viewpoints (no ticket desk); give the service_time_s column")
            filled = defaulted_ids(city, "pois", col)  # empty in the package: the layer's default
            by_kind = [i for i in src["defaulted"] if i not in filled]
            check.add("defaulted", label, len(by_kind), feature_names(sub, ids=by_kind),
                      how=f"the import's default for kind {kind}, {default_of[col]}; give the {col} column")
            by_reader = [i for i in src["defaulted"] if i in filled]
            check.add("defaulted", label, len(by_reader), feature_names(sub, ids=by_reader),
                      how=f"empty in the package, so the layer's default; give the {col} column")
        if kind == "attraction":
            hours = sub["open_s_source"].notna() if "open_s_source" in sub.columns else pd.Series(False, index=sub.index)
            if "open_s_source" in sub.columns:
                check.add("taken", "attraction opening hours", int(hours.sum()), feature_names(sub[hours]),
                          how="parsed from opening_hours for the import's opening_date")
            closed = hours & (pd.to_numeric(sub.get("popularity"), errors="coerce") == 0) if "popularity" in sub.columns \
                else hours & False
            if closed.any():
                check.add("found", "attractions closed on the opening_date (popularity 0)", int(closed.sum()),
                          feature_names(sub[closed]))
            given = (sub["open_s"].notna() | hours) if "open_s" in sub.columns else hours
            check.add("defaulted", "attraction open_s", int((~given).sum()), feature_names(sub[~given]),
                      how="open all day unless opening_hours_s is set; give the open_s/close_s or opening_hours column")
            pop = int(sub["popularity"].notna().sum()) if "popularity" in sub.columns else 0
            check.add("defaulted", "attraction popularity", len(sub) - pop,
                      how="chosen in proportion to capacity; give the popularity column")
    if not (kinds == "coach_stop").any():
        check.add("missing", "coach stops", how="no POI of kind coach_stop: tour coaches have nowhere to set down; "
                  "add them where coaches stop (optional)")
    return check
