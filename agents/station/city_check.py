"""What the station crowd model got from a city (``citytwin city check``, twin.core.city_check).

The crowd geometry (walkable floors, gates, sources) is the city's own when drawn by hand; an
imported city's is derived from the streets around a station (``city_import.derive_station_area``,
recorded in city.toml as ``station_area``), which is an estimate of the real floor plan."""
from __future__ import annotations

import numpy as np

from twin.core.city_check import CityCheck, defaulted_ids, feature_names

from .geometry import ONWARD_KINDS


def check(check: CityCheck, city, connectors_spec) -> CityCheck:
    gates, sources, walk = city.layer("gates"), city.layer("sources"), city.layer("walkable")
    if len(walk):
        levels = sorted(set(walk["level"].astype(int)))
        check.add("found", "floor levels", len(levels), [str(v) for v in levels])
    if len(gates):
        for kind, n in gates["kind"].astype(str).value_counts().items():
            check.add("found", f"gates of kind {kind}", int(n), feature_names(gates[gates["kind"].astype(str) == kind]))
    conn = city.extra_layer(connectors_spec)
    if conn is not None and len(conn):
        for kind, n in conn["kind"].astype(str).value_counts().items():
            check.add("found", f"connectors: {kind}", int(n), feature_names(conn[conn["kind"].astype(str) == kind]))
    elif len(walk) and walk["level"].nunique() > 1:
        check.add("missing", "stairs or escalators between the levels",
                  how="add a connectors layer (lines from the lower to the upper level, kind stairs or escalator)")
    onward = city.pois_of(*ONWARD_KINDS.values()) if city.has("pois") else city.pois
    check.add("found", "onward transport POIs", len(onward), feature_names(onward))
    area = city.meta.get("station_area")
    own = sources[sources["drawing"].isna()] if len(sources) and "drawing" in sources.columns else sources
    if len(own) and not isinstance(area, dict):  # a drawing's sources are estimated (drawing_check)
        check.add("taken", "passengers per source (count)", len(own),
                  [f"{n}: {c:g}" for n, c in zip(feature_names(own, n=len(own)), own["count"])][:8])

    if isinstance(area, dict):
        how = (f"derived by the import from the hall, platforms and walkways within {area.get('radius_m', 0):g} m "
               f"of {area.get('station', '?')!r}; draw the station's real floor plan to replace it")
        check.add("estimated", "walkable area", len(walk), how=how)
        if area.get("platforms"):
            check.add("found", "platforms (by OSM ref)", len(area["platforms"]), list(area["platforms"])[:8])
        if area.get("lifts"):
            check.add("estimated", "lifts (capacity per trip, round trip)", len(area["lifts"]), list(area["lifts"])[:8],
                      how="OSM gives where they are, not their size: 13 persons a trip, a 60 s round trip; give each "
                      "lift's capacity and cycle_s in the connectors layer")
        exits = gates[gates["kind"].astype(str) != "ticket_gate"] if len(gates) else gates
        check.add("estimated", "exits (the station's doors and walkway ends)", len(exits),
                  feature_names(exits), how="placed at the OSM entrances on the hall's outline and where the "
                  "station's walkways leave it; check them against the station's real exits (kind exit/entrance)")
        est = gates[(gates["kind"].astype(str) == "ticket_gate") & gates.get("estimated", False).fillna(False).astype(bool)] \
            if len(gates) and "estimated" in gates.columns else gates.iloc[:0]
        if len(est):
            check.add("estimated", "ticket gates (at the platform passages)", len(est), feature_names(est),
                      how="no barrier=turnstile/fare_gate in the data: placed across the passages from the platforms; "
                      "draw the real fare lines (kind ticket_gate), or delete them for an open station"
                      + (f" ({area['ticket_gates']})" if "left out" in str(area.get("ticket_gates", "")) else ""))
        check.add("estimated", "sources (platforms)", len(sources), feature_names(sources),
                  how=f"{area.get('agents', 0)} passengers shared by platform area; give each source its count")
    drawn = [rec for rec in city.meta.get("station_drawings") or [] if isinstance(rec, dict)]
    for rec in drawn:
        drawing_check(check, city, rec, connectors_spec)
    if len(gates) and len(walk):  # the crowd model's own geometry check: a wrong plan (drawn, imported or
        # edited: a gate off the floor) shows here, not when a run starts
        from .drawing_import import crowd_refusal

        refusal = crowd_refusal(city)
        if refusal:
            check.add("missing", "a station geometry the crowd model accepts", how=refusal, blocking=True)
    for col, how in (("kind", "exit"), ("open", "open"), ("level", "level 0")):
        ids = defaulted_ids(city, "gates", col)
        check.add("defaulted", f"gate {col}", len(ids), feature_names(gates, ids=ids),
                  how=f"not in the data: {how}; add a {col} column to the gates layer")
    for col, how in (("release_s", "released at 0 s"), ("level", "level 0")):
        ids = defaulted_ids(city, "sources", col)
        check.add("defaulted", f"source {col}", len(ids), feature_names(sources, ids=ids),
                  how=f"not in the data: {how}; add a {col} column to the sources layer")
    if len(gates) and not (gates["kind"].astype(str) == "ticket_gate").any():
        check.add("missing", "ticket gates", how="none in the data: passengers walk straight out; add gates of kind "
                  "ticket_gate where the station has them")
    if len(gates) and not np.isin(gates["kind"].astype(str), ("exit", "entrance")).any():
        check.add("missing", "exits", how="no gate of kind exit or entrance: add the station's exits to the gates "
                  "layer", blocking=True)
    return check


def drawing_check(check: CityCheck, city, rec: dict, connectors_spec) -> None:
    """What a station drawing gave (agents.station.drawing_import): its features, and what was estimated."""
    from .drawing_import import ESTIMATED

    file = str(rec.get("file", "?"))
    names = []
    for name in ("walkable", "obstacles", "gates", "sources"):
        gdf = city.layer(name)
        if len(gdf) and "drawing" in gdf.columns:
            n = int((gdf["drawing"].astype(str) == file).sum())
            if n:
                names.append(f"{name} {n}")
    conn = city.extra_layer(connectors_spec)
    if conn is not None and len(conn) and "drawing" in conn.columns:
        n = int((conn["drawing"].astype(str) == file).sum())
        if n:
            names.append(f"connectors {n}")
    check.add("taken", f"station features from the drawing {file}", len(names), names)
    for key, ids in (rec.get("estimated") or {}).items():
        what, how = ESTIMATED.get(key, (key, ""))
        check.add("estimated", f"{what} ({file})", len(ids), list(ids), how=how)
    if rec.get("lifts"):
        check.add("found", f"lifts in the drawing {file} (not simulated)", len(rec["lifts"]), list(rec["lifts"]))
