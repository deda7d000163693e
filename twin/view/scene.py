"""Meshes for the 3D view, built from a City without Qt or a render window.

Everything is vectorised (numpy over shapely coordinate arrays): one merged PolyData for all
buildings, one for all roads, and so on, so a city of thousands of buildings builds in well under
a second. Coordinates are shifted to a local origin (the south-west corner of the city) because
UTM coordinates (~10^6 m) lose precision in the float32 a GPU works in; ``CityScene.to_local`` and
``to_world`` convert.

Dynamic layers are updated in place, never rebuilt:
- ``FieldSurface`` drapes a GridField (a model's field: a level, a density) over the terrain; ``update``
  writes the new values into the existing scalar array.
- ``AgentCloud`` holds every agent of a Snapshot as one point cloud; ``update`` writes positions
  (z from the terrain + 1 m, plus the snapshot's per-agent height above ground: an upper floor, a
  stair) and states into the existing arrays.

Floor levels: the features of a model's layer with a ``level`` column (a station's floors,
walls and gates) are lifted to their level's height (``City.level_z``: the storey heights of
city.toml), so a station's platforms are drawn above its concourse; a field with one band per level draws each band at its height.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyvista as pv
import shapely

from twin.core.features import feature_names
from twin.core.grid import GridField
from twin.core.vocabulary import OTHER_USE
from twin.core.model_contract import LayerView
from twin.declarations import building_uses, layer_views, poi_kinds

ROAD_WIDTH_M: dict[str, float] = {
    "motorway": 14.0, "trunk": 12.0, "primary": 10.0, "secondary": 8.0, "tertiary": 7.0,
    "street": 6.0, "residential": 6.0, "service": 4.0, "footway": 2.5, "path": 2.0, "pedestrian": 4.0,
    "cycleway": 2.0, "rail": 3.0,
}

ROAD_LIFT_M = 0.35
AREA_LIFT_M = 0.15
VIEW_LIFT_M = ROAD_LIFT_M + 0.3  # a model's ribbons lie just above the roads
FIELD_LIFT_M = 0.6
AGENT_LIFT_M = 1.0


def use_codes() -> dict[str, int]:
    """Building use (the merged vocabulary, twin.declarations) → integer code (cell data ``use_code``)."""
    return {use: i for i, use in enumerate(building_uses())}


def use_colours() -> dict[str, str]:
    """Building use → its colour in the view and the legend."""
    return {name: u.colour for name, u in building_uses().items()}


def poi_kinds_order() -> tuple[str, ...]:
    """POI kinds in the order point data ``kind_code`` indexes them."""
    return tuple(poi_kinds())


def poi_colours() -> dict[str, str]:
    return {name: k.colour for name, k in poi_kinds().items()}


def use_code(use) -> int:
    codes = use_codes()
    return codes.get(str(use).lower(), codes[OTHER_USE])


def level_lift(gdf, city) -> np.ndarray:
    """Height (m) above the ground of each feature's floor level (0 without a ``level`` column)."""
    if gdf is None or not len(gdf) or "level" not in gdf.columns:
        return np.zeros(0 if gdf is None else len(gdf))
    levels = np.asarray(gdf["level"].fillna(0), dtype=np.int64)
    heights = {lv: city.level_z(lv) for lv in np.unique(levels)}
    return np.array([heights[lv] for lv in levels], dtype=np.float64)


# ----------------------------------------------------------------------------------------------
# Low-level vectorised helpers
# ----------------------------------------------------------------------------------------------
def _polygons(geoms) -> tuple[np.ndarray, np.ndarray]:
    """Single polygons of a GeoSeries/array and the index of the feature each came from."""
    arr = np.asarray(geoms, dtype=object) if not hasattr(geoms, "values") else np.asarray(geoms.values)
    parts, idx = shapely.get_parts(arr, return_index=True)
    keep = (shapely.get_type_id(parts) == 3) & ~shapely.is_empty(parts)
    return parts[keep], idx[keep]


def _triangles(polys: np.ndarray, owner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Triangulate polygons (holes respected): (m, 3, 2) xy corners and owner index per triangle."""
    if len(polys) == 0:
        return np.zeros((0, 3, 2)), np.zeros(0, np.int64)
    tris = shapely.constrained_delaunay_triangles(polys)
    parts, pidx = shapely.get_parts(tris, return_index=True)
    if len(parts) == 0:
        return np.zeros((0, 3, 2)), np.zeros(0, np.int64)
    coords = shapely.get_coordinates(parts)  # 4 coordinates per triangle (closed ring)
    coords = coords.reshape(len(parts), 4, 2)[:, :3, :]
    # Counter-clockwise so the normals point up.
    a, b, c = coords[:, 0], coords[:, 1], coords[:, 2]
    cross = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    flip = cross < 0
    coords[flip] = coords[flip][:, ::-1, :]
    return coords, owner[pidx]


def _faces(n_cells: int, per_cell: int, start: int = 0) -> np.ndarray:
    ids = np.arange(start, start + n_cells * per_cell, dtype=np.int64).reshape(n_cells, per_cell)
    return np.hstack([np.full((n_cells, 1), per_cell, np.int64), ids]).ravel()


def _tri_mesh(tri_xy: np.ndarray, z: np.ndarray) -> pv.PolyData:
    """PolyData of separate triangles; ``z`` is (m, 3)."""
    pts = np.concatenate([tri_xy, z[..., None]], axis=2).reshape(-1, 3)
    return pv.PolyData(pts, faces=_faces(len(tri_xy), 3))


@dataclass
class CityScene:
    """The static meshes of a city, in local coordinates (world minus ``origin``)."""

    origin: tuple[float, float]
    bounds_local: tuple[float, float, float, float]
    terrain: pv.StructuredGrid
    buildings: pv.PolyData
    roads: pv.PolyData
    pois: pv.PolyData
    poi_labels: list[str] = field(default_factory=list)
    # the layers the models draw (LayerView), by layer: ribbons, areas or blocks, and their labels
    views: dict[str, pv.PolyData] = field(default_factory=dict)
    view_labels: dict[str, tuple[list[str], np.ndarray]] = field(default_factory=dict)
    elevation: object = None  # callable (x_local, y_local) -> z
    z_range: tuple[float, float] = (0.0, 0.0)

    def to_local(self, x, y):
        return np.asarray(x, float) - self.origin[0], np.asarray(y, float) - self.origin[1]

    def to_world(self, x, y):
        return np.asarray(x, float) + self.origin[0], np.asarray(y, float) + self.origin[1]

    def meshes(self) -> dict[str, pv.DataSet]:
        return {"terrain": self.terrain, "buildings": self.buildings, "roads": self.roads, **self.views,
                "pois": self.pois}

    def mesh(self, layer: str) -> pv.DataSet:
        """The mesh of a layer (the platform's or a model's view)."""
        return self.meshes()[layer]


# ----------------------------------------------------------------------------------------------
# Builders
# ----------------------------------------------------------------------------------------------
def build_scene(city, terrain_max_cells: int = 400) -> CityScene:
    """All static meshes of ``city`` (see the module doc)."""
    minx, miny, maxx, maxy = city.bounds
    origin = (float(minx), float(miny))

    def elev(xl, yl):
        return np.asarray(city.elevation_at(np.asarray(xl) + origin[0], np.asarray(yl) + origin[1]), dtype=np.float64)

    terrain = build_terrain(city, origin, terrain_max_cells)
    z = terrain.points[:, 2]
    scene = CityScene(
        origin=origin,
        bounds_local=(0.0, 0.0, float(maxx - minx), float(maxy - miny)),
        terrain=terrain,
        buildings=mark_roofs(build_buildings(city.buildings, origin, elev), city),
        roads=build_roads(city.roads, origin, elev),
        pois=build_points(city.pois, origin, elev, lift=4.0),
        elevation=elev,
        z_range=(float(np.nanmin(z)), float(np.nanmax(z))) if len(z) else (0.0, 0.0),
    )
    if len(city.pois):
        names = feature_names(city, "pois")  # the name; the id beside it where missing or shared
        scene.poi_labels = [names[str(i)] for i in city.pois["id"]]
    for name, view in layer_views().items():
        gdf = city.layers.get(name)
        if gdf is None or not len(gdf):
            continue
        lift = level_lift(gdf, city)
        scene.views[name] = build_layer_view(gdf, origin, elev, view, lift=lift)
        if view.label and view.label in gdf.columns:
            labels = [str(i) for i in gdf[view.label]]
            if view.label == "id":
                names = feature_names(city, name)
                labels = [names.get(i, i) for i in labels]
            c = shapely.centroid(np.asarray(gdf.geometry.values))
            cx, cy = shapely.get_x(c) - origin[0], shapely.get_y(c) - origin[1]
            scene.view_labels[name] = (labels, np.column_stack([cx, cy, elev(cx, cy) + 3.0 + lift]))
    return scene


def _with_height(gdf, height):
    gdf = gdf.copy()
    if "height_m" not in gdf.columns:
        gdf["height_m"] = height
    if "use" not in gdf.columns:
        gdf["use"] = "other"
    return gdf


def build_terrain(city, origin, max_cells: int = 400) -> pv.StructuredGrid:
    """The ground: a StructuredGrid warped by the DEM (a flat plane without one), with normals."""
    minx, miny, maxx, maxy = city.bounds
    if city.terrain is not None:
        g = city.terrain.grid
        step = max(1, int(np.ceil(max(g.shape) / max_cells)))
        z = city.terrain._filled()[::step, ::step]
        xs, ys = g.cell_centres()
        xs, ys = xs[::step], ys[::step]
        # Stretch the outer rows/columns to the city's bounds so the ground covers everything.
        xs = xs.copy(); ys = ys.copy()
        xs[0], xs[-1] = min(xs[0], minx), max(xs[-1], maxx)
        ys[0], ys[-1] = max(ys[0], maxy), min(ys[-1], miny)
        cell = g.cell_m * step
    else:
        n = 2
        xs = np.linspace(minx, maxx, n)
        ys = np.linspace(maxy, miny, n)
        z = np.zeros((n, n))
        cell = max(maxx - minx, 1.0)
    X, Y = np.meshgrid(xs - origin[0], ys - origin[1])
    Z = np.asarray(z, dtype=np.float64)
    # PyVista ravels 2-D inputs in Fortran order: pass the transposes so the point order is
    # x fastest, then rows (north to south), the same as a C-order ravel of (rows, cols).
    grid = pv.StructuredGrid(X.T, Y.T, Z.T)
    # Normals from the gradient (row 0 is north, so y decreases with the row index).
    dzdy_rows, dzdx = np.gradient(Z, cell, cell) if min(Z.shape) > 1 else (np.zeros_like(Z), np.zeros_like(Z))
    dzdy = -dzdy_rows
    nrm = np.stack([-dzdx, -dzdy, np.ones_like(Z)], axis=-1)
    nrm /= np.linalg.norm(nrm, axis=-1, keepdims=True)
    grid.point_data["Normals"] = nrm.reshape(-1, 3)
    grid.point_data.active_normals_name = "Normals"
    grid.point_data["elevation_m"] = Z.ravel()
    return grid


def build_buildings(gdf, origin, elev, base_lift=None) -> pv.PolyData:
    """All buildings as one PolyData: triangulated roofs + quad walls, base at the terrain (plus
    ``base_lift`` metres per feature: obstacles on an upper floor).

    Cell data: ``building_id`` (row in the layer), ``height_m``, ``use_code``, ``top_m``.
    """
    if gdf is None or len(gdf) == 0:
        return pv.PolyData()
    geoms = shapely.transform(np.asarray(gdf.geometry.values), lambda c: c - np.asarray(origin))
    polys, owner = _polygons(geoms)
    if len(polys) == 0:
        return pv.PolyData()
    heights = np.nan_to_num(np.asarray(gdf["height_m"], dtype=np.float64), nan=10.0).clip(0.5, None)
    uses = np.array([use_code(u) for u in (gdf["use"] if "use" in gdf.columns else [OTHER_USE] * len(gdf))], np.int32)

    # Rings (exterior + holes) as one coordinate array.
    rings, ring_poly = shapely.get_rings(polys, return_index=True)
    rc, ring_of = shapely.get_coordinates(rings, return_index=True)
    vz = elev(rc[:, 0], rc[:, 1])
    # Base = lowest terrain under the footprint's vertices, per building.
    base = np.full(len(gdf), np.inf)
    np.minimum.at(base, owner[ring_poly[ring_of]], vz)
    base[~np.isfinite(base)] = 0.0
    if base_lift is not None and len(base_lift):
        base = base + np.asarray(base_lift, dtype=np.float64)
    top = base + heights

    # Walls: one quad per ring edge.
    same = ring_of[:-1] == ring_of[1:]
    a, b = rc[:-1][same], rc[1:][same]
    wall_owner = owner[ring_poly[ring_of[:-1][same]]]
    zb, zt = base[wall_owner], top[wall_owner]
    wall_pts = np.stack([
        np.column_stack([a, zb]), np.column_stack([b, zb]), np.column_stack([b, zt]), np.column_stack([a, zt]),
    ], axis=1).reshape(-1, 3)

    # Roofs.
    tri_xy, tri_poly = _triangles(polys, np.arange(len(polys)))
    roof_owner = owner[tri_poly]
    roof_pts = np.concatenate([tri_xy, np.repeat(top[roof_owner][:, None, None], 3, axis=1)], axis=2).reshape(-1, 3)

    n_walls, n_roofs = len(wall_owner), len(roof_owner)
    points = np.vstack([wall_pts, roof_pts])
    faces = np.concatenate([_faces(n_walls, 4), _faces(n_roofs, 3, start=4 * n_walls)])
    mesh = pv.PolyData(points, faces=faces)
    cell_owner = np.concatenate([wall_owner, roof_owner])
    mesh.cell_data["building_id"] = cell_owner.astype(np.int64)
    mesh.cell_data["height_m"] = heights[cell_owner]
    mesh.cell_data["use_code"] = uses[cell_owner]
    mesh.cell_data["top_m"] = top[cell_owner]
    mesh.field_data["n_buildings"] = np.array([len(gdf)])
    return mesh


def mark_roofs(mesh: pv.PolyData, city, share: float = 0.3) -> pv.PolyData:
    """Flag (cell data ``roof``) the buildings that stand over the features of a layer whose view
    says ``roofs_see_through`` (a station hall over its platforms): the view draws them see-through
    so the crowd under them shows."""
    if not mesh.n_cells:
        return mesh
    roof = np.zeros(mesh.n_cells, dtype=bool)
    under = [name for name, v in layer_views().items() if v.roofs_see_through and city.has(name)]
    if under and city.has("buildings"):
        covered = shapely.union_all(np.concatenate([np.asarray(city.layer(n).geometry.values) for n in under]))
        footprints = np.asarray(city.buildings.geometry.values)
        near = shapely.intersects(footprints, covered)
        over = np.zeros(len(footprints), dtype=bool)
        if near.any():
            inter = shapely.area(shapely.intersection(footprints[near], covered))
            over[near] = inter > share * shapely.area(footprints[near])
        roof = over[mesh.cell_data["building_id"]]
    mesh.cell_data["roof"] = roof
    return mesh


def drape_polygons(gdf, origin, elev, lift, segment_m: float = 25.0, ids=None) -> pv.PolyData:
    """Polygons triangulated and laid on the terrain, ``lift`` metres above it (a number, or one
    per feature: a floor level's height).

    Cell data ``feature_id`` is the row in the layer.
    """
    if gdf is None or len(gdf) == 0:
        return pv.PolyData()
    geoms = np.asarray(gdf.geometry.values) if hasattr(gdf, "geometry") else np.asarray(gdf)
    geoms = shapely.transform(geoms, lambda c: c - np.asarray(origin))
    if segment_m:
        geoms = shapely.segmentize(geoms, segment_m)
    polys, owner = _polygons(geoms)
    tri_xy, tri_owner = _triangles(polys, owner)
    if len(tri_xy) == 0:
        return pv.PolyData()
    lift = np.asarray(lift, dtype=np.float64)
    z = elev(tri_xy[..., 0].ravel(), tri_xy[..., 1].ravel()).reshape(-1, 3)
    z = z + (lift[tri_owner][:, None] if lift.ndim else lift)
    mesh = _tri_mesh(tri_xy, z)
    mesh.cell_data["feature_id"] = tri_owner.astype(np.int64) if ids is None else np.asarray(ids)[tri_owner]
    return mesh


def build_roads(gdf, origin, elev) -> pv.PolyData:
    """Roads as ribbons: lines buffered by a width per kind, draped just above the terrain."""
    if gdf is None or len(gdf) == 0:
        return pv.PolyData()
    kinds = gdf["kind"].astype(str).str.lower() if "kind" in gdf.columns else ["street"] * len(gdf)
    widths = np.array([ROAD_WIDTH_M.get(k, 6.0) for k in kinds])
    ribbons = shapely.buffer(np.asarray(gdf.geometry.values), widths / 2, quad_segs=2, cap_style="flat")
    mesh = drape_polygons(ribbons, origin, elev, ROAD_LIFT_M)
    if mesh.n_cells:
        mesh.cell_data["width_m"] = widths[mesh.cell_data["feature_id"]]
    return mesh


def build_layer_view(gdf, origin, elev, view: LayerView, lift=0.0) -> pv.PolyData:
    """A model's layer drawn as its ``LayerView`` says: ``ribbon``: lines as flat ribbons
    ``view.width_m`` wide and polygons as they are, just above the roads; ``area``: polygons filled
    and draped over the terrain (``view.lift_m`` above it); ``extruded``: polygons as blocks
    ``view.height_m`` tall on the terrain; ``lift`` metres higher still (per feature: its floor
    level). Cell data ``feature_id`` and, with a ``state_column``, that column as 1/0 (missing: 1)."""
    if gdf is None or len(gdf) == 0:
        return pv.PolyData()
    lift = np.asarray(lift, dtype=np.float64)
    if view.drawing == "extruded":
        mesh = build_buildings(_with_height(gdf, view.height_m), origin, elev, np.broadcast_to(lift, len(gdf)))
        if mesh.n_cells:
            mesh.cell_data["feature_id"] = mesh.cell_data["building_id"]
    elif view.drawing == "area":
        mesh = drape_polygons(gdf, origin, elev, (AREA_LIFT_M if view.lift_m is None else view.lift_m) + lift)
    else:
        geoms = np.asarray(gdf.geometry.values)
        lines = shapely.get_type_id(geoms) == 1
        shapes = np.where(lines, shapely.buffer(geoms, view.width_m / 2, cap_style="flat"), geoms)
        mesh = drape_polygons(shapes, origin, elev, (VIEW_LIFT_M if view.lift_m is None else view.lift_m) + lift,
                              segment_m=5.0)
    if mesh.n_cells and view.state_column:
        col = gdf[view.state_column] if view.state_column in gdf.columns else np.ones(len(gdf))
        mesh.cell_data[view.state_column] = np.asarray(col, dtype=bool)[mesh.cell_data["feature_id"]].astype(np.int8)
    return mesh


def build_points(gdf, origin, elev, lift: float = 3.0) -> pv.PolyData:
    """Points (POIs) with point data ``feature_id`` and ``kind_code``."""
    if gdf is None or len(gdf) == 0:
        return pv.PolyData()
    x = shapely.get_x(shapely.centroid(np.asarray(gdf.geometry.values))) - origin[0]
    y = shapely.get_y(shapely.centroid(np.asarray(gdf.geometry.values))) - origin[1]
    mesh = pv.PolyData(np.column_stack([x, y, elev(x, y) + lift]))
    mesh.point_data["feature_id"] = np.arange(len(gdf), dtype=np.int64)
    kinds = gdf["kind"].astype(str).tolist() if "kind" in gdf.columns else ["poi"] * len(gdf)
    order = {k: i for i, k in enumerate(poi_kinds_order())}
    mesh.point_data["kind_code"] = np.array([order.get(k, len(order)) for k in kinds], np.int32)
    return mesh


# ----------------------------------------------------------------------------------------------
# Dynamic layers, updated in place
# ----------------------------------------------------------------------------------------------
def grid_polydata(xs: np.ndarray, ys: np.ndarray, z: np.ndarray) -> pv.PolyData:
    """A quad mesh through the points (xs[c], ys[r], z[r, c]); point order is row-major."""
    rows, cols = z.shape
    X, Y = np.meshgrid(xs, ys)
    pts = np.column_stack([X.ravel(), Y.ravel(), np.asarray(z, np.float64).ravel()])
    if rows < 2 or cols < 2:
        return pv.PolyData(pts)
    r, c = np.meshgrid(np.arange(rows - 1), np.arange(cols - 1), indexing="ij")
    i0 = (r * cols + c).ravel()
    quads = np.column_stack([np.full(i0.size, 4), i0, i0 + cols, i0 + cols + 1, i0 + 1])
    return pv.PolyData(pts, faces=quads.ravel())


class FieldSurface:
    """A GridField draped over the terrain as a translucent quad mesh (one point per cell centre).

    ``update(grid)`` rewrites the scalars in place when the grid's shape and origin are unchanged,
    so a 1000 × 1000 field animates without rebuilding anything.
    """

    def __init__(self, grid: GridField, scene: CityScene, lift: float = FIELD_LIFT_M):
        self.scene = scene
        self.lift = lift
        self.name = grid.name
        self.unit = grid.unit
        self._key = None
        self.mesh = pv.PolyData()
        self._build(grid)

    def _build(self, grid: GridField) -> None:
        xs, ys = grid.cell_centres()
        xl, yl = xs - self.scene.origin[0], ys - self.scene.origin[1]
        X, Y = np.meshgrid(xl, yl)
        z = self.scene.elevation(X.ravel(), Y.ravel()).reshape(X.shape) + self.lift
        # one sheet per band (a floor level), each at its height
        mesh = grid_polydata(xl, yl, z + grid.band_z(0))
        for k in range(1, grid.n_bands):
            mesh = mesh.merge(grid_polydata(xl, yl, z + grid.band_z(k)), merge_points=False)
        mesh.point_data["value"] = np.asarray(grid.values, np.float32).ravel().copy()
        mesh.point_data.active_scalars_name = "value"
        nrm = np.zeros((mesh.n_points, 3), np.float32)
        nrm[:, 2] = 1.0  # up: the rippled_surface shader perturbs it for ripples
        mesh.point_data["Normals"] = nrm
        mesh.point_data.active_normals_name = "Normals"
        if self.mesh.n_points == 0 and self._key is None:
            self.mesh = mesh
        else:
            self.mesh.copy_from(mesh)  # same object, so actors keep it
        self._key = (grid.values.shape, grid.x0, grid.y0, grid.cell_m, grid.band_z_m)
        self._grid = grid

    def update(self, grid: GridField) -> bool:
        """New values; returns True when done in place (False: the geometry had to be rebuilt)."""
        key = (grid.values.shape, grid.x0, grid.y0, grid.cell_m, grid.band_z_m)
        if key != self._key:
            self._build(grid)
            return False
        arr = self.mesh.point_data["value"]
        np.copyto(arr, np.asarray(grid.values, np.float32).ravel())
        self.mesh.point_data.GetArray("value").Modified()
        self.mesh.Modified()
        self._grid = grid
        return True

    def value_at(self, x_local: float, y_local: float) -> float:
        wx, wy = self.scene.to_world(x_local, y_local)
        return float(self._grid.sample(np.array([wx]), np.array([wy]))[0])

    @property
    def values(self) -> np.ndarray:
        return self.mesh.point_data["value"]


class AgentCloud:
    """Every agent of a Snapshot as one point cloud, z = terrain + 1 m, point data ``state``."""

    def __init__(self, scene: CityScene, capacity: int = 0):
        self.scene = scene
        self.mesh = pv.PolyData(np.zeros((max(capacity, 1), 3)))
        self.mesh.point_data["state"] = np.zeros(self.mesh.n_points, np.int8)
        self.mesh.point_data.active_scalars_name = "state"
        self.n = 0
        self._hide_all()

    def _hide_all(self):
        # One point far below the ground: an empty cloud would break scalar ranges of some mappers.
        self.mesh.points[:] = (0.0, 0.0, -1e4)

    def update(self, positions: np.ndarray, states: np.ndarray, z: np.ndarray | None = None) -> None:
        """``z``: optional height of each agent above the terrain (m): an upper floor, a stair."""
        pos = np.asarray(positions, np.float64).reshape(-1, 2)
        st = np.asarray(states).astype(np.int8).ravel()
        above = np.zeros(len(pos)) if z is None else np.asarray(z, np.float64).ravel()
        ok = np.isfinite(pos).all(axis=1) & np.isfinite(above)
        if not ok.all():
            pos, st, above = pos[ok], st[ok], above[ok]
        n = len(pos)
        self.n = n
        if n == 0:
            self._hide_all()
            self.mesh.Modified()
            return
        xl = pos[:, 0] - self.scene.origin[0]
        yl = pos[:, 1] - self.scene.origin[1]
        z = self.scene.elevation(xl, yl) + AGENT_LIFT_M + above
        if n != self.mesh.n_points:
            fresh = pv.PolyData(np.column_stack([xl, yl, z]))
            fresh.point_data["state"] = st
            fresh.point_data.active_scalars_name = "state"
            self.mesh.copy_from(fresh)
        else:
            p = self.mesh.points
            p[:, 0] = xl
            p[:, 1] = yl
            p[:, 2] = z
            self.mesh.GetPoints().Modified()
            np.copyto(self.mesh.point_data["state"], st)
            self.mesh.point_data.GetArray("state").Modified()
        self.mesh.Modified()

    def update_from(self, snap) -> None:
        self.update(snap.positions, snap.states, getattr(snap, "z", None))

    def positions_world(self) -> np.ndarray:
        if self.n == 0:
            return np.zeros((0, 2))
        p = np.asarray(self.mesh.points[:, :2], np.float64)
        return p + np.asarray(self.scene.origin)
