"""What the tourist model got from a city (``citytwin city check``, twin.core.city_check): its entry
points, attractions and hotels, and where their capacity, gates and service times came from."""
from __future__ import annotations

from twin.core.city_check import CityCheck, defaulted_ids, feature_names, value_sources

from .city_import import POI_KINDS

DEFAULTS = {k.name: k for k in POI_KINDS}


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
        default_of = {"capacity": f"{d.capacity} {'rooms' if kind == 'hotel' else 'persons'}", "gates": str(d.gates),
                      "service_time_s": f"{d.service_time_s:g} s"}
        for col in cols:
            src = value_sources(city, "pois", sub, col)
            # an imported POI's gates and service time never come from OSM: the kind's defaults
            if col != "capacity" and "capacity_source" in sub.columns:
                imported = set(sub["id"].astype(str)[sub["capacity_source"].notna()])
                src["defaulted"] += [i for i in src["taken"] if i in imported]
                src["taken"] = [i for i in src["taken"] if i not in imported]
            label = f"{kind} {'rooms' if kind == 'hotel' and col == 'capacity' else col}"
            check.add("taken", label, len(src["taken"]), feature_names(sub, ids=src["taken"]))
            check.add("estimated", label, len(src["estimated"]), feature_names(sub, ids=src["estimated"]),
                      how="estimated by the import (see the capacity_source column)")
            filled = defaulted_ids(city, "pois", col)  # empty in the package: the layer's default
            by_kind = [i for i in src["defaulted"] if i not in filled]
            check.add("defaulted", label, len(by_kind), feature_names(sub, ids=by_kind),
                      how=f"the import's default for kind {kind}, {default_of[col]}; give the {col} column")
            by_reader = [i for i in src["defaulted"] if i in filled]
            check.add("defaulted", label, len(by_reader), feature_names(sub, ids=by_reader),
                      how=f"empty in the package, so the layer's default; give the {col} column")
        if kind == "attraction":
            for col, how in (("open_s", "open all day unless opening_hours_s is set"),
                             ("popularity", "chosen in proportion to capacity")):
                given = int(sub[col].notna().sum()) if col in sub.columns else 0
                check.add("defaulted", f"attraction {col}", len(sub) - given, how=f"{how}; give the {col} column")
    if not (kinds == "coach_stop").any():
        check.add("missing", "coach stops", how="no POI of kind coach_stop: tour coaches have nowhere to set down; "
                  "add them where coaches stop (optional)")
    return check
