"""The tourist model's import hook and words: attractions, hotels and coach stops from OpenStreetMap.

POI kinds
---------
- ``hotel``: tourism=hotel/hostel/guest_house/motel; capacity = the ``rooms`` tag, else 80 rooms;
  1 desk, 120 s to check in. An unnamed one is called by its tag ("Guest house").
- ``attraction``, with a ``class`` column (scenarios select them with ``class=museum``):
  museum, gallery (tourism=museum/gallery), zoo, aquarium, theme_park, viewpoint (tourism=*),
  castle (historic=castle/fort/palace/manor), historic_site (historic=ruins/archaeological_site/
  city_gate/citywalls/monastery), park and garden (leisure=park/garden, named ones only: a nameless
  patch of green is no sight), attraction (any other tourism=attraction). Memorials and monuments
  (historic=memorial/monument/plaque/...), artworks (tourism=artwork) and graves (historic=grave/tomb)
  are left out unless the import option ``include_sights`` names them (``--include-sights
  memorial,artwork,grave``). 200 persons, 2 gates, 20 s per person by default; parks, gardens and
  viewpoints have no ticket desk: 0 s (``service_time_source`` "class").
- ``coach_stop``: amenity=bus_station, and bus stops or platforms tagged coach=yes. Where another
  model's kind already took the feature (a bus stop), the coach stop is added beside it with the id
  ``<id>_coach`` and the same name.
- ``station``: an entry point a city package may give by hand (the tourists read railway stations too).

Estimates (``derive``, marked in ``capacity_source``; ``citytwin city check`` reports them)
--------------------------------------------------------------------------------------------
- Capacity without a ``capacity`` tag: floor area ÷ area per visitor of the class (``VISITOR_AREA_M2``).
  The floor area is the footprint of the attraction's own building (the area it is drawn as, or the
  building it stands in) × its floors (``levels``, else its height ÷ the import's level height), or the
  ground floor only when the building is not the attraction's own (a gallery in an apartment block)
  → ``capacity_source`` "footprint_floors" or "footprint"; a park's or garden's area → "area". An
  attraction on no footprint keeps the kind's default ("default").
- Opening hours: the ``opening_hours`` tag (kept as a column) parsed with ``opening-hours-py`` for
  the day ``opening_date`` (import option, default ``DEFAULT_OPENING_DATE``, a summer Wednesday) into
  ``open_s``/``close_s`` (seconds after midnight; first opening to last closing that day, past
  midnight when it runs on), which the model reads; ``open_s``/``close_s`` empty = open all day
  (24/7, no tag, or a value that does not parse: the report lists those). An attraction closed that
  day gets ``popularity`` 0: nobody plans a visit.
"""
from __future__ import annotations

import datetime as dt
import math

import geopandas as gpd
import numpy as np
import pandas as pd

from twin.core.errors import UserError
from twin.core.model_contract import BuildingUse, CityImportHook, ImportOption, LayerSpec, PoiKind
from twin.core.osm_values import parse_levels

MUSEUM_LIKE = ("museum", "gallery", "zoo", "aquarium", "theme_park", "viewpoint")
CASTLES = ("castle", "fort", "palace", "manor")
HISTORIC_SITES = ("ruins", "archaeological_site", "city_gate", "citywalls", "monastery")
MEMORIALS = ("memorial", "monument", "plaque", "wayside_cross", "wayside_shrine", "stone", "memorial_stone")
GRAVES = ("grave", "tomb")
GREENS = ("park", "garden")
# Minor sights the import leaves out unless include_sights names them: option value -> class.
MINOR = ("memorial", "artwork", "grave")
FREE_ENTRY = ("park", "garden", "viewpoint")  # no ticket desk: entry takes no time
# Gross floor area (or park area) per visitor at capacity, m² (a museum shows about half its floor
# area at some 5 m² a visitor; a well-filled park or garden; zoos and theme parks spread out more).
VISITOR_AREA_M2 = {"museum": 10.0, "gallery": 10.0, "castle": 10.0, "historic_site": 10.0, "attraction": 10.0,
                   "aquarium": 10.0, "viewpoint": 4.0, "park": 25.0, "garden": 25.0, "zoo": 20.0, "theme_park": 20.0,
                   "memorial": 10.0, "artwork": 10.0, "grave": 10.0}
DEFAULT_OPENING_DATE = "2026-06-17"


def attraction_class(t: dict) -> str | None:
    """The attraction class of a feature's OSM tags, or None when it is no sight."""
    g = lambda k: str(t.get(k) or "")  # noqa: E731
    tourism, historic, leisure = g("tourism"), g("historic"), g("leisure")
    if tourism in MUSEUM_LIKE:
        return tourism
    if historic in CASTLES:
        return "castle"
    if historic in GRAVES:
        return "grave"
    if historic in MEMORIALS:
        return "memorial"
    if tourism == "artwork":
        return "artwork"
    if leisure in GREENS and (tourism == "attraction" or t.get("name")):
        return leisure
    if historic in HISTORIC_SITES:
        return "historic_site"
    if tourism == "attraction":
        return "attraction"
    return None


def is_coach_stop(t: dict) -> bool:
    g = lambda k: str(t.get(k) or "")  # noqa: E731
    return g("amenity") == "bus_station" or g("coach") == "yes"


def poi_kind(t: dict) -> str | None:
    tourism = t.get("tourism") or ""
    if tourism in ("hotel", "hostel", "guest_house", "motel"):
        return "hotel"
    if attraction_class(t) is not None:
        return "attraction"
    if is_coach_stop(t):
        return "coach_stop"
    return None


def tags_of(text) -> dict:
    """The ``osm_tags`` column ("k=v;k=v") as a dict; a value holding ';' stays whole."""
    out: dict[str, str] = {}
    last = None
    for part in str(text or "").split(";"):
        k, sep, v = part.partition("=")
        if sep and k and " " not in k:
            out[k], last = v, k
        elif last is not None:
            out[last] += ";" + part
    return out


def derive(city, options: dict):
    """Attraction classes (minor sights dropped unless asked), capacities estimated from footprints,
    opening hours for the day, coach stops beside other models' bus stops. Only imported OSM POIs
    (those with ``osm_tags``) are classified; opening hours are parsed for any POI that has them."""
    include = _include(options.get("include_sights"))
    day = _date(options.get("opening_date"))
    pois = city.layers.get("pois")
    if pois is None or not len(pois):
        return city, []
    lines = []
    pois = pois.copy()
    if "osm_tags" in pois.columns:
        pois, note = _classify(pois, include)
        lines.append(note)
        pois, note = _coach_stops(pois)
        if note:
            lines.append(note)
        pois, note = _capacities(pois, city)
        lines.append(note)
    if "opening_hours" in pois.columns:
        pois, note = _opening_hours(pois, day)
        lines.append(note)
    city.layers["pois"] = pois.reset_index(drop=True)
    return city, lines


def _include(value) -> set[str]:
    if value in (None, ""):
        return set()
    got = {v.strip().lower().rstrip("s") for v in str(value).split(",") if v.strip()}
    bad = sorted(got - set(MINOR))
    if bad:
        raise UserError(f"--include-sights: {bad[0]!r} is not a minor sight; give a comma-separated list of "
                        f"{', '.join(MINOR)} (e.g. --include-sights memorial,artwork).")
    return got


def _date(value) -> dt.datetime:
    try:
        return dt.datetime.combine(dt.date.fromisoformat(str(value or DEFAULT_OPENING_DATE)), dt.time())
    except ValueError:
        raise UserError(f"--opening-date: {value!r} is not a date; give it as YYYY-MM-DD (e.g. "
                        f"{DEFAULT_OPENING_DATE}), the day whose opening hours the attractions keep.") from None


def _classify(pois, include: set[str]):
    tags = [tags_of(v) for v in pois["osm_tags"]]
    is_attr = pois["kind"].astype(str).to_numpy() == "attraction"
    classes = np.array([attraction_class(t | {"name": n}) if a else "" for t, a, n in
                        zip(tags, is_attr, pois["name"].fillna(""))], dtype=object)
    drop = is_attr & np.isin(classes, [c for c in MINOR if c not in include])
    left_out = pd.Series(classes[drop]).value_counts()
    pois = pois.assign(**{"class": classes})[~drop]
    kept = pd.Series(pois["class"][pois["kind"] == "attraction"]).value_counts()
    # names everywhere: an unnamed sight is called by its class
    unnamed = (pois["kind"] == "attraction") & (pois["name"].fillna("").str.strip() == "")
    pois.loc[unnamed, "name"] = pois.loc[unnamed, "class"].str.replace("_", " ").str.capitalize()
    unnamed = (pois["kind"] == "hotel") & (pois["name"].fillna("").str.strip() == "")  # "Guest house"
    pois.loc[unnamed, "name"] = [tags_of(v).get("tourism", "hotel").replace("_", " ").capitalize()
                                 for v in pois.loc[unnamed, "osm_tags"]]
    free = pois["class"].isin(FREE_ENTRY).to_numpy()
    pois["service_time_s"] = np.where(free, 0.0, pois["service_time_s"].astype(float))
    pois["service_time_source"] = np.where(free, "class", np.where(pois["kind"] == "attraction", "default", None))
    note = ("tourism: attractions " + (", ".join(f"{n} {c}" for c, n in kept.items()) or "none"))
    if len(left_out):
        note += ("; left out " + ", ".join(f"{n} {c}" for c, n in left_out.items())
                 + " (--include-sights " + ",".join(left_out.index) + " to import them)")
    return pois, note


def _coach_stops(pois):
    """Coach stops where another model's kind took the feature (a bus station is a bus stop too)."""
    ids = set(pois["id"].astype(str))
    taken = pois[~pois["kind"].isin(["coach_stop", "attraction", "hotel"])
                 & pois["osm_tags"].map(lambda v: is_coach_stop(tags_of(v)))
                 & ~(pois["id"].astype(str) + "_coach").isin(ids)]  # a package imported again has them
    extra = taken.copy()
    if len(extra):
        extra["id"] = extra["id"].astype(str) + "_coach"
        extra["kind"] = "coach_stop"
        extra["capacity"], extra["capacity_source"] = 0, "default"
        extra["gates"], extra["service_time_s"] = 1, 0.0
        pois = pd.concat([pois, extra], ignore_index=True)
    stops = pois[pois["kind"] == "coach_stop"]
    unnamed = (pois["kind"] == "coach_stop") & (pois["name"].fillna("").str.strip() == "")
    pois.loc[unnamed, "name"] = "Coach stop"
    if not len(stops):
        return pois, "tourism: no coach stops (no amenity=bus_station, no coach=yes stops)"
    return pois, f"tourism: coach stops {len(stops)} ({', '.join(stops['name'].fillna('').astype(str)[:6])})"


def _capacities(pois, city):
    """Capacity of each attraction without a capacity tag from its footprint and floors."""
    attr = (pois["kind"] == "attraction") & (pois["capacity_source"] == "default")
    if not attr.any():
        return pois, "tourism: no attraction capacity to estimate"
    b = city.layers.get("buildings")
    level_h = float(city.meta.get("level_height_m", 3.0))
    area = pd.to_numeric(pois["area_m2"], errors="coerce") if "area_m2" in pois.columns else pd.Series(np.nan, index=pois.index)
    cap = pois["capacity"].to_numpy(dtype=float).copy()
    src = pois["capacity_source"].astype(str).to_numpy().copy()
    own_b, inside_b = {}, {}
    if b is not None and len(b):
        own_b = {i: k for k, i in enumerate(b["id"].astype(str))}
        # nodes (not areas) in a building: that building's footprint
        pts = pois[attr & ~pois["id"].astype(str).isin(own_b) & area.isna()]
        if len(pts):
            hit = gpd.sjoin(pts[[pts.geometry.name]], b[[b.geometry.name]], predicate="within", how="inner")
            hit = hit[~hit.index.duplicated()]
            inside_b = dict(zip(pts.loc[hit.index, "id"].astype(str), b.index.get_indexer(hit["index_right"])))
        areas = b.geometry.area.to_numpy()
        levels = pd.to_numeric(b["levels"], errors="coerce").to_numpy() if "levels" in b.columns else np.full(len(b), np.nan)
        heights = b["height_m"].to_numpy(dtype=float) if "height_m" in b.columns else np.full(len(b), np.nan)
        hsrc = b["height_source"].astype(str).to_numpy() if "height_source" in b.columns else np.full(len(b), "default")
        b_names = b["name"].fillna("").astype(str).to_numpy() if "name" in b.columns else np.full(len(b), "")
    counts = {"footprint_floors": 0, "footprint": 0, "area": 0}
    for i in np.flatnonzero(attr.to_numpy()):
        pid, cls = str(pois["id"].iloc[i]), str(pois["class"].iloc[i])
        per = VISITOR_AREA_M2.get(cls, 10.0)
        floor_area, how = None, ""
        k = own_b.get(pid, inside_b.get(pid))
        if k is not None:
            # floors count when the building is the sight's own (drawn as it, or bearing its name)
            own = pid in own_b or (b_names[k] and b_names[k] == str(pois["name"].iloc[i]))
            floors = levels[k] if np.isfinite(levels[k]) else (
                max(1.0, round(heights[k] / level_h)) if hsrc[k] == "height" else math.nan)
            if own and np.isfinite(floors):
                floor_area, how = areas[k] * max(floors, 1.0), "footprint_floors"
            else:
                floor_area, how = areas[k], "footprint"
        elif area.iloc[i] > 0:  # an area that is no building: a park, a garden, a zoo
            floor_area, how = float(area.iloc[i]), "area"
        if floor_area is None:
            continue
        cap[i] = max(1, int(round(floor_area / per)))
        src[i] = how
        counts[how] += 1
    pois["capacity"] = cap.astype(np.int64)
    pois["capacity_source"] = src
    left = int(attr.sum()) - sum(counts.values())
    return pois, (f"tourism: capacity estimated for {sum(counts.values())} attractions "
                  f"({counts['footprint_floors']} from footprint × floors, {counts['footprint']} from the ground "
                  f"floor, {counts['area']} from their area; m² per visitor by class); {left} keep the default")


def _opening_hours(pois, day: dt.datetime):
    """open_s/close_s of the day from the ``opening_hours`` text (opening-hours-py)."""
    from opening_hours import OpeningHours, ParserError, State

    text = pois["opening_hours"].fillna("").astype(str).str.strip()
    opn = pd.to_numeric(pois["open_s"], errors="coerce").to_numpy() if "open_s" in pois.columns else np.full(len(pois), np.nan)
    cls = pd.to_numeric(pois["close_s"], errors="coerce").to_numpy() if "close_s" in pois.columns else np.full(len(pois), np.nan)
    pop = pd.to_numeric(pois["popularity"], errors="coerce").to_numpy() if "popularity" in pois.columns else np.full(len(pois), np.nan)
    source = np.full(len(pois), "", dtype=object)
    bad, closed, parsed = [], [], 0
    for i, value in enumerate(text):
        if not value or np.isfinite(opn[i]) or np.isfinite(cls[i]):
            continue
        try:
            spans = [(a, b) for a, b, state, _ in OpeningHours(value).intervals(day, day + dt.timedelta(days=2))
                     if state == State.OPEN]
        except (ParserError, ValueError):
            bad.append(str(pois["name"].iloc[i] or pois["id"].iloc[i]))
            continue
        parsed += 1
        today = [(a, b) for a, b in spans if a < day + dt.timedelta(days=1)]
        if not today:  # closed all that day
            pop[i], source[i] = 0.0, "opening_hours"
            closed.append(str(pois["name"].iloc[i] or pois["id"].iloc[i]))
            continue
        start = (today[0][0] - day).total_seconds()
        end = (today[-1][1] - day).total_seconds()
        source[i] = "opening_hours"
        if start <= 0 and end >= 86400:  # open round the clock that day
            continue
        opn[i], cls[i] = start, end
    pois["open_s"], pois["close_s"], pois["popularity"] = opn, cls, pop
    pois["open_s_source"] = np.where(source == "", None, source)
    note = f"tourism: opening hours for {day.date()} parsed for {parsed} POIs"
    if closed:
        note += f" ({len(closed)} closed that day: {', '.join(closed[:5])})"
    if bad:
        note += f"; {len(bad)} not understood, open all day: {', '.join(bad[:5])}"
    return pois, note


# The POI columns the tourists read: capacity (persons, rooms for hotels), entry gates, service time.
CITY_LAYERS = (LayerSpec("pois", "vector", "capacity, gates and service time of each POI",
                         defaults=(("capacity", 0), ("gates", 1), ("service_time_s", 0.0)),
                         numbers=("capacity", "service_time_s"), counts=("capacity", "service_time_s", "gates")),)
BUILDING_USES = (
    BuildingUse("hotel", "hotels, hostels, guest houses", "#f0a35e", ("hotel",)),
    BuildingUse("attraction", "museums, temples, churches and other sights", "#ffd966",
                ("church", "cathedral", "museum", "chapel")),
)
POI_KINDS = (
    PoiKind("station", "a station, read as railway_station by the tourist model", "#8a3a70"),
    PoiKind("coach_stop", "where tour coaches set tourists down", "#a0522d"),
    PoiKind("attraction", "a sight tourists visit (capacity, entry gates, service time)", "#b03090", 200,
            defaults=(("gates", 2), ("service_time_s", 20.0))),
    PoiKind("hotel", "a hotel (capacity in rooms)", "#6040c0", 80, defaults=(("gates", 1), ("service_time_s", 120.0)),
            capacity_tag="rooms"),
)
IMPORT_HOOK = CityImportHook(
    osm_tags=("rooms", "beds"),
    poi_tags=("tourism", "historic", "leisure", "amenity", "highway", "public_transport", "bus", "coach"),
    poi_columns=("opening_hours",),
    poi_kind=poi_kind,
    options=(ImportOption("include_sights", "Also import these minor sights as attractions, comma-separated: "
                          "memorial (memorials, monuments, plaques), artwork, grave."),
             ImportOption("opening_date", "The day (YYYY-MM-DD) whose opening hours the attractions keep "
                          "(open_s, close_s).", DEFAULT_OPENING_DATE)),
    derive=derive,
)
