"""Editing a city package: add, delete and re-attribute features of the layers the models declare,
check each edit as the package reader would, undo and redo, and save atomically (docs/city_editor.md).

Qt-free: the app's Edit → City (app/city_editor.py) wraps each ``Edit`` in a ``QUndoCommand``.
The layers offered are the package's own and those the registered models declare
(``twin.core.city.layer_specs`` and every model's vector ``extra_layers``); their geometry, columns,
defaults and number checks come from those declarations, never from a layer's name.

Undo works on snapshots: an ``Edit`` holds the whole layer before and after, so applying and
reverting are exact. ``save`` writes every layer of the GeoPackage to a temporary file that then
replaces ``city.gpkg``; a state saved before (the package as it was opened, after an undo) is written
back byte for byte, so undo + save restores the file exactly.
"""
from __future__ import annotations

import hashlib
import math
import os
import tomllib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pyproj
import shapely

from twin.core.city import check_extra_layer, check_layer, layer_specs, parse_projected_crs
from twin.core.errors import UserError, nearest
from twin.core.files import atomic_file, disk_errors
from twin.core.model_contract import LayerSpec
from twin.declarations import model_classes

__all__ = ["EditableLayer", "Edit", "CityEdit", "editable_layers", "SNAP_M"]

SNAP_M = 1.0  # a click this close to an existing vertex lands on it
FAMILIES = ("Point", "LineString", "Polygon")


@dataclass(frozen=True)
class EditableLayer:
    """What the editor knows of a layer: all of it from the declarations (``LayerSpec``)."""

    spec: LayerSpec
    contract: bool  # a layer the package reader checks itself (layer_specs), else a model's extra layer

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def families(self) -> tuple[str, ...]:
        """Geometries a feature of this layer may have (``any``: lines or areas)."""
        g = self.spec.geometry
        return (g,) if g in FAMILIES else ("LineString", "Polygon")

    def columns(self, frame: gpd.GeoDataFrame | None = None) -> list[str]:
        """The form's columns: the declared ones, the defaulted ones, ``level``, then the layer's own."""
        cols = list(self.spec.columns) + [c for c, _ in self.spec.defaults]
        if self.spec.levels:
            cols.append("level")
        if frame is not None:
            cols += [c for c in frame.columns if c != frame.geometry.name and not c.endswith("_source")]
        return list(dict.fromkeys(cols))


def editable_layers() -> dict[str, EditableLayer]:
    """Every vector layer a city package may hold: the platform's, the models' city layers, then the
    models' extra layers (registry order; the first declaration of a name wins)."""
    out = {name: EditableLayer(spec, True) for name, spec in layer_specs().items() if spec.kind == "vector"}
    for cls in model_classes():
        for spec in getattr(cls, "extra_layers", ()):
            if spec.kind == "vector" and spec.name not in out:
                out[spec.name] = EditableLayer(spec, False)
    return out


@dataclass
class Edit:
    """One change of one layer: the whole layer before and after (``None``: the layer is absent)."""

    layer: str
    before: gpd.GeoDataFrame | None
    after: gpd.GeoDataFrame
    text: str  # for the undo list: "add <layer> <id>"


@dataclass
class CityEdit:
    """An open city package being edited; ``frames`` holds every layer of its GeoPackage as read."""

    root: Path
    crs: pyproj.CRS
    gpkg: Path
    frames: dict[str, gpd.GeoDataFrame]  # by the GeoPackage's layer name
    order: list[str]  # the GeoPackage's layers in file order (written back in it)
    renames: dict[str, str] = field(default_factory=dict)  # contract name -> GeoPackage layer name
    layers: dict[str, EditableLayer] = field(default_factory=editable_layers)
    _saved: dict[str, bytes] = field(default_factory=dict)  # content key -> the file written for it

    # -- opening -------------------------------------------------------------------------------------
    @classmethod
    def open(cls, root: str | Path) -> "CityEdit":
        root = Path(root)
        if root.name == "city.toml":
            root = root.parent
        toml_path = root / "city.toml"
        if not toml_path.is_file():
            raise UserError(f"{root}: city.toml is missing; open a city package folder (city.toml, city.gpkg).")
        try:
            section = tomllib.loads(toml_path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise UserError(f"{toml_path}: not valid TOML ({e}).") from None
        section = section.get("city", section)
        if "crs" not in section:
            raise UserError(f'{toml_path}: the key "crs" is missing (e.g. crs = "EPSG:32650").')
        crs = parse_projected_crs(section["crs"], f"{toml_path}: crs")
        files = section.get("files", {}) if isinstance(section.get("files", {}), dict) else {}
        gpkg = root / files.get("vector", "city.gpkg")
        renames = {str(k): str(v) for k, v in (section.get("layers", {}) or {}).items()}
        frames, order = {}, []
        if gpkg.exists():
            for name, _geom in pyogrio.list_layers(gpkg):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    frames[name] = pyogrio.read_dataframe(gpkg, layer=name)
                order.append(name)
        edit = cls(root=root, crs=crs, gpkg=gpkg, frames=frames, order=order, renames=renames)
        if gpkg.exists():
            edit._saved[edit.content_key()] = gpkg.read_bytes()
        return edit

    # -- reading -------------------------------------------------------------------------------------
    def _source(self, layer: str) -> str:
        return self.renames.get(layer, layer)

    def editable(self, layer: str) -> EditableLayer:
        if layer not in self.layers:
            raise UserError(f"layer {layer!r} is not a layer a model declares{nearest(layer, self.layers)}; "
                            f"the editable layers are {', '.join(self.layers)}.")
        return self.layers[layer]

    def frame(self, layer: str) -> gpd.GeoDataFrame:
        """The layer as it is now (an empty frame with its columns when the package lacks it)."""
        src = self._source(layer)
        if src in self.frames and isinstance(self.frames[src], gpd.GeoDataFrame):
            return self.frames[src]
        cols = self.editable(layer).columns()
        return gpd.GeoDataFrame({c: pd.Series([], dtype=object) for c in cols}, geometry=[], crs=self.crs)

    def content_key(self) -> str:
        """A digest of every layer's geometry and attributes: equal keys, equal packages."""
        h = hashlib.sha256()
        for name in self.order:
            df = self.frames[name]
            h.update(name.encode())
            h.update(repr(list(df.columns)).encode())
            h.update(repr([str(t) for t in df.dtypes]).encode())
            if isinstance(df, gpd.GeoDataFrame):
                h.update(b"".join(g or b"" for g in shapely.to_wkb(df.geometry.values, hex=False)))
                df = df.drop(columns=df.geometry.name)
            h.update(df.to_json(orient="split", date_format="iso", default_handler=str).encode())
        return h.hexdigest()

    @property
    def dirty(self) -> bool:
        """The layers differ from the file on disk."""
        return self.gpkg.exists() is False or self._saved.get(self.content_key()) != self._disk_bytes()

    def _disk_bytes(self) -> bytes | None:
        return self.gpkg.read_bytes() if self.gpkg.exists() else None

    def feature_at(self, layer: str, x: float, y: float, radius_m: float = 3.0) -> int | None:
        """The row of ``layer``'s feature nearest to (x, y) within ``radius_m`` (inside an area: 0 m)."""
        gdf = self.frame(layer)
        if not len(gdf):
            return None
        d = gdf.geometry.distance(shapely.Point(x, y)).to_numpy()
        i = int(np.nanargmin(d)) if np.isfinite(d).any() else -1
        return i if i >= 0 and d[i] <= radius_m else None

    def snap(self, x: float, y: float, tolerance_m: float = SNAP_M, layers=None) -> tuple[float, float]:
        """(x, y) moved onto the nearest vertex of the editable layers (or ``layers``) within ``tolerance_m``."""
        best, out = tolerance_m, (float(x), float(y))
        for name in layers or self.layers:
            gdf = self.frame(name)
            if not len(gdf):
                continue
            pts = shapely.get_coordinates(gdf.geometry.values)
            if not len(pts):
                continue
            d = np.hypot(pts[:, 0] - x, pts[:, 1] - y)
            i = int(np.argmin(d))
            if d[i] <= best:
                best, out = float(d[i]), (float(pts[i, 0]), float(pts[i, 1]))
        return out

    # -- building edits (checked; nothing changes until ``apply``) ------------------------------------
    def geometry_from(self, layer: str, points, family: str | None = None):
        """The geometry clicked points make on ``layer``: a Point, a LineString or a Polygon."""
        spec = self.editable(layer)
        family = family or spec.families[0]
        if family not in spec.families:
            raise UserError(f"layer {layer!r} holds {' or '.join(spec.families)} features, not {family}.")
        pts = [(float(x), float(y)) for x, y in points]
        # a double click adds the same point twice: one vertex
        pts = [p for i, p in enumerate(pts) if i == 0 or math.dist(p, pts[i - 1]) > 1e-6]
        need = {"Point": 1, "LineString": 2, "Polygon": 3}[family]
        if len(pts) < need:
            raise UserError(f"a {family} on layer {layer!r} needs at least {need} point(s); {len(pts)} clicked.")
        if family == "Point":
            return shapely.Point(pts[0])
        if family == "LineString":
            return shapely.LineString(pts)
        if math.dist(pts[0], pts[-1]) < 1e-6:
            pts = pts[:-1]
        return shapely.Polygon(pts)

    def new_id(self, layer: str) -> str:
        """The next free id: the declared prefix (or the layer's name) and a number."""
        spec = self.editable(layer).spec
        prefix = spec.id_prefix or layer
        have = set(self.frame(layer)["id"].astype(str)) if "id" in self.frame(layer).columns else set()
        n = len(have) + 1
        while f"{prefix}_{n}" in have:
            n += 1
        return f"{prefix}_{n}"

    def coerce(self, layer: str, column: str, value: Any) -> Any:
        """A form's text as the column's type: the layer's own dtype, else its declared default's,
        else a number for a declared number column; empty text is no value."""
        spec = self.editable(layer).spec
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text == "":
            return None
        gdf = self.frame(layer)
        default = dict(spec.defaults).get(column)
        dtype = gdf[column].dtype if column in gdf.columns and len(gdf) else None
        is_bool = (dtype is not None and pd.api.types.is_bool_dtype(dtype)) or isinstance(default, bool)
        if is_bool:
            if text.lower() in ("true", "yes", "1", "on"):
                return True
            if text.lower() in ("false", "no", "0", "off"):
                return False
            raise UserError(f"layer {layer!r}, column {column!r}: {text!r} is not true or false.")
        numeric = (column in spec.numbers or column in spec.counts or column == "level"
                   or isinstance(default, (int, float))
                   or (dtype is not None and pd.api.types.is_numeric_dtype(dtype)))
        if numeric:
            try:
                v = float(text)
            except ValueError:
                raise UserError(f"layer {layer!r}, column {column!r}: {text!r} is not a number.") from None
            whole = (column == "level" or (dtype is not None and pd.api.types.is_integer_dtype(dtype))
                     or (isinstance(default, int) and not isinstance(default, bool)))
            return int(v) if whole and v == int(v) else v
        return text

    def _checked(self, layer: str, gdf: gpd.GeoDataFrame, what: str) -> None:
        """The package reader's own checks on the layer as the edit leaves it."""
        spec = self.editable(layer)
        where = f"{self.root}, layer {layer!r} ({what})"
        geoms = gdf.geometry.values
        bad = ~shapely.is_valid(geoms) & ~shapely.is_missing(geoms)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            fid = gdf["id"].iloc[i] if "id" in gdf.columns else i
            raise UserError(f"{where}: feature {fid!r} is not a valid shape ({shapely.is_valid_reason(geoms[i])}); "
                            "draw its outline without crossing itself.")
        if spec.contract:
            check_layer(gdf.copy(), layer, where, self.crs)
        else:
            check_extra_layer(gdf.copy(), spec.spec, where, self.crs)
            if "id" in gdf.columns and gdf["id"].astype(str).duplicated().any():
                dup = gdf["id"].astype(str)[gdf["id"].astype(str).duplicated()].iloc[0]
                raise UserError(f"{where}: id {dup!r} is used more than once; ids must be unique.")

    def _row(self, layer: str, geometry, attrs: dict) -> dict:
        spec = self.editable(layer)
        gdf = self.frame(layer)
        row = {c: None for c in spec.columns(gdf)}
        row.update(dict(spec.spec.defaults))
        if spec.spec.levels:
            row.setdefault("level", 0)
            row["level"] = 0 if row["level"] is None else row["level"]
        if "id" in row:
            row["id"] = self.new_id(layer)
        for k, v in attrs.items():
            row[k] = self.coerce(layer, k, v)
        if "id" in row and (row["id"] is None or str(row["id"]).strip() == ""):
            row["id"] = self.new_id(layer)
        row[gdf.geometry.name if len(gdf.columns) else "geometry"] = geometry
        return row

    def add(self, layer: str, geometry, attrs: dict | None = None) -> Edit:
        """An edit that adds a feature (``geometry``: a shapely geometry or clicked points)."""
        if not isinstance(geometry, shapely.Geometry):
            geometry = self.geometry_from(layer, geometry)
        if geometry.geom_type not in self.editable(layer).families:
            raise UserError(f"layer {layer!r} holds {' or '.join(self.editable(layer).families)} features, "
                            f"not a {geometry.geom_type}.")
        before = self.frame(layer)
        row = self._row(layer, geometry, attrs or {})
        geom_col = before.geometry.name if len(before.columns) else "geometry"
        new = gpd.GeoDataFrame([row], geometry=geom_col, crs=self.crs)
        after = _concat(before, new, self.crs)
        label = row.get("id") or row.get("name") or f"feature {len(before)}"
        self._checked(layer, after, f"new feature {label}")
        return Edit(layer, self._present(layer), after, f"add {layer} {label}")

    def delete(self, layer: str, row: int) -> Edit:
        before = self.frame(layer)
        if not 0 <= row < len(before):
            raise UserError(f"layer {layer!r} has no feature {row} (it has {len(before)}).")
        label = _label(before, row)
        after = before.drop(index=before.index[row]).reset_index(drop=True)
        return Edit(layer, self._present(layer), after, f"delete {layer} {label}")

    def set_attributes(self, layer: str, row: int, attrs: dict) -> Edit:
        before = self.frame(layer)
        if not 0 <= row < len(before):
            raise UserError(f"layer {layer!r} has no feature {row} (it has {len(before)}).")
        after = before.copy()
        for k, v in attrs.items():
            v = self.coerce(layer, k, v)
            if k not in after.columns:
                after[k] = None
            if v is not None and not pd.api.types.is_object_dtype(after[k].dtype):
                try:
                    after[k] = after[k].astype(type(v)) if not isinstance(v, str) else after[k].astype(object)
                except (TypeError, ValueError):
                    after[k] = after[k].astype(object)
            after.at[after.index[row], k] = v
        label = _label(after, row)
        self._checked(layer, after, f"feature {label}")
        return Edit(layer, self._present(layer), after, f"edit {layer} {label}")

    def vertices(self, layer: str, row: int) -> list[tuple[float, float]]:
        """The vertices an edit may move: a point's, a line's, or an area's outline (without the point
        that closes it). A feature of several parts is refused: it has no one outline to edit."""
        gdf = self.frame(layer)
        if not 0 <= row < len(gdf):
            raise UserError(f"layer {layer!r} has no feature {row} (it has {len(gdf)}).")
        g = gdf.geometry.iloc[row]
        if g is None or g.is_empty:
            raise UserError(f"layer {layer!r}, feature {_label(gdf, row)!r} has no geometry; delete it and draw it.")
        if g.geom_type.startswith("Multi"):
            if len(g.geoms) != 1:
                raise UserError(f"layer {layer!r}, feature {_label(gdf, row)!r} has {len(g.geoms)} parts; only a "
                                "feature of one part can be reshaped (delete it and draw its parts one by one).")
            g = g.geoms[0]
        xy = shapely.get_coordinates(g.exterior if g.geom_type == "Polygon" else g)
        if g.geom_type == "Polygon":
            xy = xy[:-1]
        return [(float(x), float(y)) for x, y in xy]

    def reshape(self, layer: str, row: int, points) -> Edit:
        """An edit that gives feature ``row`` new vertices (those ``vertices`` lists, moved, added or
        removed); an area keeps its holes, a one-part collection stays one, the attributes stay."""
        before = self.frame(layer)
        old = before.geometry.iloc[row] if 0 <= row < len(before) else None
        self.vertices(layer, row)  # the same refusals
        part = old.geoms[0] if old.geom_type.startswith("Multi") else old
        family = part.geom_type
        g = self.geometry_from(layer, points, family)
        if family == "Polygon" and len(part.interiors):
            g = shapely.Polygon(g.exterior, [r.coords for r in part.interiors])
        if old.geom_type.startswith("Multi"):
            g = type(old)([g])
        after = before.copy()
        after.loc[after.index[row], after.geometry.name] = g
        label = _label(after, row)
        self._checked(layer, after, f"feature {label}")
        return Edit(layer, self._present(layer), after, f"reshape {layer} {label}")

    def add_hole(self, layer: str, row: int, points) -> Edit:
        """An edit that cuts a hole (the clicked ring) in area ``row``: inside its outline, clear of its
        other holes (the shape check refuses holes that cross or touch along an edge)."""
        self.vertices(layer, row)  # the same refusals
        before = self.frame(layer)
        old = before.geometry.iloc[row]
        part = old.geoms[0] if old.geom_type.startswith("Multi") else old
        if part.geom_type != "Polygon":
            raise UserError(f"layer {layer!r}, feature {_label(before, row)!r} is a {part.geom_type}; only an area "
                            "can have a hole.")
        ring = self.geometry_from(layer, points, "Polygon")
        if not shapely.Polygon(part.exterior).contains(ring):
            raise UserError(f"layer {layer!r}, feature {_label(before, row)!r}: the hole must lie inside the area's "
                            "outline; draw it again inside.")
        g = shapely.Polygon(part.exterior, [*(r.coords for r in part.interiors), ring.exterior.coords])
        if old.geom_type.startswith("Multi"):
            g = type(old)([g])
        after = before.copy()
        after.loc[after.index[row], after.geometry.name] = g
        self._checked(layer, after, f"feature {_label(after, row)}")
        return Edit(layer, self._present(layer), after, f"hole in {layer} {_label(after, row)}")

    def move_vertex(self, layer: str, row: int, index: int, x: float, y: float, snap: bool = True) -> Edit:
        """Vertex ``index`` of feature ``row`` moved to (x, y), snapped as a drawn point is."""
        pts = self.vertices(layer, row)
        if not -len(pts) <= index < len(pts):
            raise UserError(f"layer {layer!r}, feature {_label(self.frame(layer), row)!r} has no vertex {index} "
                            f"(it has {len(pts)}).")
        to = self.snap(x, y) if snap else (float(x), float(y))
        # a vertex moved less than the snapping distance would land back on itself
        pts[index] = (float(x), float(y)) if to == pts[index] else to
        return self.reshape(layer, row, pts)

    def insert_vertex(self, layer: str, row: int, x: float, y: float, snap: bool = True) -> Edit:
        """A vertex at (x, y) added to feature ``row`` in its nearest edge."""
        pts = self.vertices(layer, row)
        if len(pts) < 2:
            raise UserError(f"layer {layer!r}: a point has no edge to add a vertex to.")
        closed = self.frame(layer).geometry.iloc[row].geom_type.endswith("Polygon")
        p = shapely.Point(x, y)
        edges = list(zip(pts, pts[1:] + pts[:1])) if closed else list(zip(pts[:-1], pts[1:]))
        d = [shapely.LineString(e).distance(p) for e in edges]
        pts.insert(int(np.argmin(d)) + 1, self.snap(x, y) if snap else (float(x), float(y)))
        return self.reshape(layer, row, pts)

    def delete_vertex(self, layer: str, row: int, index: int) -> Edit:
        """Vertex ``index`` of feature ``row`` removed (refused below a line's 2 or an area's 3)."""
        pts = self.vertices(layer, row)
        if not -len(pts) <= index < len(pts):
            raise UserError(f"layer {layer!r}, feature {_label(self.frame(layer), row)!r} has no vertex {index} "
                            f"(it has {len(pts)}).")
        del pts[index]
        return self.reshape(layer, row, pts)

    def _present(self, layer: str) -> gpd.GeoDataFrame | None:
        return self.frames.get(self._source(layer))

    # -- applying --------------------------------------------------------------------------------------
    def apply(self, edit: Edit) -> None:
        src = self._source(edit.layer)
        if src not in self.frames:
            self.order.append(src)
        self.frames[src] = edit.after

    def revert(self, edit: Edit) -> None:
        src = self._source(edit.layer)
        if edit.before is None:
            self.frames.pop(src, None)
            self.order.remove(src)
        else:
            self.frames[src] = edit.before

    # -- saving -------------------------------------------------------------------------------------
    def save(self) -> Path:
        """Write the GeoPackage atomically; a state written before comes back byte for byte."""
        key = self.content_key()
        known = self._saved.get(key)
        with atomic_file(self.gpkg, "path") as tmp:
            if known is not None:
                tmp.write_bytes(known)
            else:
                # the driver makes the file (named .gpkg, as GDAL wants), then it takes the temporary's place
                made = tmp.with_name(tmp.name + ".gpkg")
                try:
                    with disk_errors(self.gpkg):
                        for name in self.order:
                            df = self.frames[name]
                            if isinstance(df, gpd.GeoDataFrame) and df.crs is None:
                                df = df.set_crs(self.crs)
                            pyogrio.write_dataframe(df, made, layer=name, driver="GPKG")
                    os.replace(made, tmp)
                finally:
                    made.unlink(missing_ok=True)
        if known is None:
            self._saved[key] = self.gpkg.read_bytes()
        return self.gpkg

    def check(self, model: str | None = None) -> list:
        """Every model's ``check_city`` of the package on disk (`citytwin city check`)."""
        from twin.gis.city_info import city_checks

        return city_checks(self.root, model)


def _concat(before: gpd.GeoDataFrame, new: gpd.GeoDataFrame, crs) -> gpd.GeoDataFrame:
    if not len(before):
        cols = list(dict.fromkeys([*before.columns, *new.columns]))
        return gpd.GeoDataFrame(new.reindex(columns=cols), geometry=new.geometry.name, crs=crs)
    new = new.rename_geometry(before.geometry.name) if new.geometry.name != before.geometry.name else new
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # all-NA columns of the new row
        out = pd.concat([before, new], ignore_index=True)
    return gpd.GeoDataFrame(out, geometry=before.geometry.name, crs=crs)


def _label(gdf: gpd.GeoDataFrame, row: int) -> str:
    for c in ("id", "name"):
        if c in gdf.columns and isinstance(gdf[c].iloc[row], str) and gdf[c].iloc[row]:
            return gdf[c].iloc[row]
    return f"feature {row}"
