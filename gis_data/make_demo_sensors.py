"""The demo city's sensors (gis_data/demo_city/sensors.geojson), placed from its layers: the same file
on any machine (no randomness; coordinates rounded to centimetres).

- a counter at every exit gate and every ticket-gate bank of Central Station (people through it per
  minute);
- a people counter on every platform (density over 5 m round the middle of the train's doors);
- a counter at every attraction (visitors inside, every 5 minutes);
- three rain gauges (north hill, station, Lowtown), every 5 minutes;
- water-level gauges at the Lowtown pump stations, in the lowest cells of Lowtown's hollow and at the
  drain inlets D32 and D43 (in the hollow's east, where the drains' capacity shows most in the water
  level: what lets a filter tell blocked drains from heavier rain, docs/assimilation.md), every minute;
- the police's road reports and the railway's GTFS-realtime feed (feeds without a place of their own:
  drawn at the station).

Run: python gis_data/make_demo_sensors.py [CITY_DIR]
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from twin.core.city import City  # noqa: E402
from twin.core.sensors import Sensor, sensors_frame  # noqa: E402

LOWTOWN_BOX = (500330.0, 3400450.0, 501560.0, 3400700.0)  # the riverside hollow (generator: LOW_U, north bank)
DRAIN_GAUGES = ("D32", "D43")  # the inlets whose water level a blocked drain network changes most (10 m cells)


def lowest_points(city, box, n: int, spacing_m: float = 150.0) -> list[tuple[float, float]]:
    """The ``n`` lowest terrain cells inside ``box``, at least ``spacing_m`` apart, outside water and buildings."""
    import shapely

    g = city.terrain.grid
    xs, ys = g.cell_centres()
    X, Y = np.meshgrid(xs, ys)
    inside = (X >= box[0]) & (X <= box[2]) & (Y >= box[1]) & (Y <= box[3])
    blocked = shapely.union_all(list(city.layer("water").geometry) + list(city.buildings.geometry))
    order = np.argsort(np.where(inside, g.values, np.inf), axis=None, kind="stable")
    picked: list[tuple[float, float]] = []
    for k in order:
        if not inside.flat[k] or len(picked) == n:
            break
        x, y = float(X.flat[k]), float(Y.flat[k])
        if any(np.hypot(x - a, y - b) < spacing_m for a, b in picked):
            continue
        if blocked.distance(shapely.Point(x, y)) < 3.0:
            continue
        picked.append((x, y))
    return picked


def demo_sensors(city) -> list[Sensor]:
    out: list[Sensor] = []
    r2 = lambda v: round(float(v), 2)
    for g in city.layer("gates").itertuples():
        c = g.geometry.centroid
        if g.kind == "ticket_gate":
            out.append(Sensor(f"C-{g.id}", "gate_counter", r2(c.x), r2(c.y), "passed_by_ticket_gate", "persons",
                              "gates", g.id, 2.0, 60.0, "count", name=f"ticket gates {g.id}"))
        else:
            out.append(Sensor(f"C-{g.id}", "gate_counter", r2(c.x), r2(c.y), "exited", "persons", "gates", g.id, 2.0,
                              60.0, "count", name=f"exit {g.id}"))
    for s in city.layer("sources").itertuples():
        c = s.geometry.representative_point()
        out.append(Sensor(f"PC-{s.id}", "people_counter", r2(c.x), r2(c.y), "density", "persons/m2", noise_sd=0.2,
                          interval_s=60.0, radius_m=5.0, level=int(s.level), name=f"platform {s.id}"))
    attractions = city.pois_of("attraction")
    for a in attractions.itertuples():
        out.append(Sensor(f"AC-{a.id}", "attraction_counter", r2(a.geometry.x), r2(a.geometry.y),
                          "attraction_occupancy", "persons", "pois", a.id, 10.0, 300.0, name=str(a.name)))
    station = city.pois_of("railway_station").geometry.iloc[0]
    minx, miny, maxx, maxy = city.vector_bounds()
    gauges = [("RG1", "North Hill rain gauge", (minx + maxx) / 2, maxy - 250.0),
              ("RG2", "Central Station rain gauge", station.x + 40.0, station.y + 40.0),
              ("RG3", "Lowtown rain gauge", (LOWTOWN_BOX[0] + LOWTOWN_BOX[2]) / 2, LOWTOWN_BOX[3] - 20.0)]
    for sid, name, x, y in gauges:
        out.append(Sensor(sid, "rain_gauge", r2(x), r2(y), "rain_mm_per_h", "mm/h", noise_sd=2.0, interval_s=300.0,
                          name=name))
    for p in city.pois_of("pump").itertuples():
        out.append(Sensor(f"WL-{p.id}", "water_level", r2(p.geometry.x), r2(p.geometry.y), "depth", "m", noise_sd=0.02,
                          interval_s=60.0, radius_m=4.0, name=f"{p.name} sump gauge"))
    for k, (x, y) in enumerate(lowest_points(city, LOWTOWN_BOX, 4), start=1):
        out.append(Sensor(f"WL{k}", "water_level", r2(x), r2(y), "depth", "m", noise_sd=0.02, interval_s=60.0,
                          radius_m=4.0, name=f"Lowtown hollow gauge {k}"))
    drains = city.layer("drains").set_index("id")
    for d in DRAIN_GAUGES:
        p = drains.geometry[d]
        out.append(Sensor(f"WL-{d}", "water_level", r2(p.x), r2(p.y), "depth", "m", noise_sd=0.02, interval_s=60.0,
                          radius_m=4.0, name=f"drain {d} inlet gauge"))
    out.append(Sensor("POLICE", "road_report", r2(station.x), r2(station.y - 30.0), "road_closed", "-", "roads", "*",
                      interval_s=60.0, name="police road closures (each report names its road)"))
    out.append(Sensor("RAIL", "train_feed", r2(station.x), r2(station.y), "train_delay_s", "s", "sources", "*",
                      interval_s=30.0, name="railway GTFS-realtime (each update names its platform)"))
    out.append(Sensor("RAIL-cancelled", "train_feed", r2(station.x), r2(station.y), "cancelled_arrival_in_s", "s",
                      "sources", "*", interval_s=30.0, name="railway GTFS-realtime cancellations (each names its platform)"))
    return out


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    folder = Path(args[0]) if args else ROOT / "gis_data" / "demo_city"
    city = City.load(folder)
    gdf = sensors_frame(demo_sensors(city), city.crs)
    path = folder / "sensors.geojson"
    tmp = path.with_suffix(".tmp")
    gdf.to_file(tmp, driver="GeoJSON", COORDINATE_PRECISION=2, WRITE_NAME=False)
    tmp.replace(path)
    print(f"{path}: {len(gdf)} sensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
