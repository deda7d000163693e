"""Per-feature values over time: ``features.parquet``, one long GeoParquet table.

Every ``[outputs] feature_interval_s`` (and at the end) the recorder keeps each value the model
reports per feature of a city layer (its ``FeatureStyle`` declarations: depth per road, queue per
attraction, density per gate). The file has one row per feature, value name and time:

| column | what |
|---|---|
| ``layer`` | the city layer (``roads``, ``pois``, ``gates``, ``buildings``) |
| ``feature`` | the feature's ``id`` in that layer |
| ``name`` | the value's name, as the model declares it (``depth``, ``queue``) |
| ``unit`` | its unit |
| ``time_s`` | seconds since the start of the run |
| ``value`` | float64; for a ``state`` value the code into the declared states (the file's metadata lists them) |
| ``geometry`` | the feature's geometry in the city CRS |

The geometry is that of the feature in the city package; Parquet stores it once per feature (the
column is dictionary-encoded), so the long table costs about what a table without it would.
Features the city package does not have (a gate the model made up) get no geometry. The values are
small (a few thousand per frame), so they are kept in memory and written at the end.
"""
from __future__ import annotations

import json

import numpy as np


class FeatureRecorder:
    def __init__(self, styles):
        self.styles = {(s.layer, s.name): s for s in styles}
        self.parts: list[tuple[float, str, np.ndarray, str, np.ndarray]] = []  # (t, layer, ids, name, values)
        self.times: list[float] = []

    def append(self, time_s: float, features: dict) -> None:
        self.times.append(float(time_s))
        for layer, frame in features.items():
            ids = np.asarray(frame.ids).astype(str)
            for name, values in frame.values.items():
                self.parts.append((float(time_s), layer, ids, name, np.asarray(values, dtype=np.float64)))

    def table(self, city, crs, provenance: dict):
        import geopandas as gpd
        import pandas as pd

        cols = {"layer": [], "feature": [], "name": [], "unit": [], "time_s": [], "value": []}
        for t, layer, ids, name, values in self.parts:
            n = len(ids)
            style = self.styles.get((layer, name))
            cols["layer"].append(np.full(n, layer, dtype=object))
            cols["feature"].append(ids.astype(object))
            cols["name"].append(np.full(n, name, dtype=object))
            cols["unit"].append(np.full(n, style.unit if style else "", dtype=object))
            cols["time_s"].append(np.full(n, t))
            cols["value"].append(values)
        df = pd.DataFrame({k: np.concatenate(v) if v else np.zeros(0, float if k in ("time_s", "value") else object)
                           for k, v in cols.items()})
        geoms = np.full(len(df), None, dtype=object)
        for layer in df["layer"].unique():
            rows = np.flatnonzero(df["layer"].to_numpy() == layer)
            lookup = _layer_geometries(city, layer)
            geoms[rows] = [lookup.get(f) for f in df["feature"].to_numpy()[rows]]
        for c in ("layer", "name", "unit"):
            df[c] = df[c].astype("category")
        gdf = gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geoms, crs=crs), crs=crs)
        states = {f"{s.layer}.{s.name}": list(s.states) for s in self.styles.values() if s.states}
        gdf.attrs["citytwin"] = {**provenance, "states": states}
        return gdf

    def write(self, path, city, crs, provenance: dict) -> None:
        gdf = self.table(city, crs, provenance)
        states = gdf.attrs.pop("citytwin")["states"]
        # pyarrow dictionary-encodes the repeated geometry column: each feature's geometry is stored once
        gdf.to_parquet(path, index=False, compression="zstd", row_group_size=1_000_000)
        _add_metadata(path, {"citytwin": json.dumps({**provenance, "states": states})})


def _layer_geometries(city, layer: str) -> dict:
    try:
        gdf = city.layer(layer) if city.has(layer) else None
    except KeyError:  # a layer a model declares (LayerSpec) rather than the contract's
        gdf = None
    if gdf is None or not len(gdf) or "id" not in gdf:
        return {}
    return dict(zip(gdf["id"].astype(str), gdf.geometry.to_crs(city.crs).values))


def _add_metadata(path, extra: dict) -> None:
    """Add key/value metadata to a finished Parquet file (rewritten in place: it is a staging file)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    meta = dict(table.schema.metadata or {})
    meta.update({k.encode(): v.encode() for k, v in extra.items()})
    pq.write_table(table.replace_schema_metadata(meta), path, compression="zstd", row_group_size=1_000_000)
