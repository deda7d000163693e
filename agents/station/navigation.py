"""Navigation fields on a fine raster: free space, wall distance, gate zones and floor fields.

* ``free``: cells whose centre lies in walkable minus obstacles (rasterio, centre rule).
* ``wall_d``: signed distance (m) from a cell centre to the nearest wall (positive in free space).
  It is exact (shapely, nearest boundary segment through an STRtree) in a band of ``band_m``
  around the walls and a Euclidean distance transform further away, where only its sign matters.
  ``wall_nx, wall_ny`` is its unit gradient (pointing away from walls).
* ``width``: the local clear width (m, capped at ``2 * WIDTH_CAP_M``): the diameter of the
  largest free disc covering the point; blocked cells take their nearest free cell's value. The
  crowd model walks closer in passages too narrow for two abreast.
* ``zone``: for each exit gate, the free cells within ``zone_m`` of the gate geometry, on its side
  of any wall beside it (the parts of the free space in reach nearest the gate). An agent whose
  centre enters the zone of an open gate has crossed that gate.
* ``floor[g]``: geodesic distance (m) to gate ``g``'s zone by fast marching (scikit-fmm) through
  free cells, with travel slowed near walls (``wall_speed``) so that paths keep clear of walls and
  round corners (so it is an "equivalent" distance, slightly above the true one near walls); blocked cells get the value of the nearest free cell plus their distance to it, so
  the gradient points away from walls. ``dir_x, dir_y`` = ``-grad floor`` normalised: the
  desired direction. Unreachable cells hold ``UNREACHABLE``. The fields do not run through the
  cells touched by walls thinner than a cell (all that is not free, where an opening by half a
  cell removes it), which the centre rule may leave free.

Fields depend only on geometry (not on which gates are open), so they are cached in memory and
on disk (``$CITYTWIN_CACHE_DIR`` or ``~/.cache/citytwin/station``), keyed by a hash of the
geometry and the grid settings.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import shapely
from scipy import ndimage

UNREACHABLE = 1.0e9
_MEMO: dict[str, "NavGrid"] = {}
_PACKED: dict[tuple, "Floors"] = {}  # Floors.shared
_VERSION = "nav-v7"
WIDTH_CAP_M = 0.75


@dataclass
class NavGrid:
    x0: float  # west edge
    y0: float  # north edge
    cell_m: float
    free: np.ndarray  # (rows, cols) bool
    wall_d: np.ndarray  # float32
    wall_nx: np.ndarray
    wall_ny: np.ndarray
    gate_ids: list[str]
    zone: np.ndarray  # int32, -1 or gate index
    floor: np.ndarray  # (G, rows, cols) float32
    dir_x: np.ndarray
    dir_y: np.ndarray
    width: np.ndarray  # float32, local clear width (m)
    meta: dict = field(default_factory=dict)

    @property
    def shape(self):
        return self.free.shape

    @property
    def inv_h(self) -> float:
        return 1.0 / self.cell_m

    @property
    def bounds(self):
        rows, cols = self.free.shape
        return (self.x0, self.y0 - rows * self.cell_m, self.x0 + cols * self.cell_m, self.y0)

    def cell_centres(self):
        rows, cols = self.free.shape
        xs = self.x0 + (np.arange(cols) + 0.5) * self.cell_m
        ys = self.y0 - (np.arange(rows) + 0.5) * self.cell_m
        return xs, ys

    def index_of(self, x, y):
        c = np.floor((np.asarray(x) - self.x0) / self.cell_m).astype(np.int64)
        r = np.floor((self.y0 - np.asarray(y)) / self.cell_m).astype(np.int64)
        return r, c

    def sample(self, F, x, y) -> np.ndarray:
        from .kernels import sample_field

        return sample_field(F, self.x0, self.y0, self.inv_h, np.asarray(x, float).ravel(),
                            np.asarray(y, float).ravel())

    def reachable(self, g: int) -> np.ndarray:
        return self.free & (self.floor[g] < UNREACHABLE * 0.5)


def _cache_dir() -> Path | None:
    d = os.environ.get("CITYTWIN_CACHE_DIR")
    path = Path(d) / "station" if d else Path.home() / ".cache" / "citytwin" / "station"
    try:
        path.mkdir(parents=True, exist_ok=True)
        return path
    except OSError:
        return None


def geometry_key(free_geom, gates, cell_m, zone_m, band_m) -> str:
    h = hashlib.sha256(_VERSION.encode())
    h.update(shapely.to_wkb(shapely.normalize(free_geom), output_dimension=2))
    for gid, geom in gates:
        h.update(str(gid).encode())
        h.update(shapely.to_wkb(geom, output_dimension=2))
    h.update(np.array([cell_m, zone_m, band_m], dtype=np.float64).tobytes())
    return h.hexdigest()[:32]


def build_navigation(free_geom, gates: list[tuple[str, object]], cell_m: float = 0.25,
                     zone_m: float = 0.3, band_m: float = 1.5, cache: bool = True) -> NavGrid:
    """Fields for the free space ``free_geom`` and the exit ``gates`` [(id, geometry)]."""
    key = geometry_key(free_geom, gates, cell_m, zone_m, band_m)
    if cache and key in _MEMO:
        return _MEMO[key]
    cdir = _cache_dir() if cache else None
    if cdir is not None and (cdir / f"{key}.npz").exists():
        try:
            nav = _load(cdir / f"{key}.npz")
            _MEMO[key] = nav
            return nav
        except Exception:  # a corrupt cache file is rebuilt
            pass
    nav = _build(free_geom, gates, cell_m, zone_m, band_m)
    if cache:
        if len(_MEMO) > 6:
            _MEMO.pop(next(iter(_MEMO)))
        _MEMO[key] = nav
        if cdir is not None:
            try:
                tmp = cdir / f"{key}.{os.getpid()}.tmp.npz"
                _save(nav, tmp)
                os.replace(tmp, cdir / f"{key}.npz")
            except OSError:
                pass
    return nav


def _save(nav: NavGrid, path: Path) -> None:
    np.savez(path, x0=nav.x0, y0=nav.y0, cell_m=nav.cell_m, free=nav.free, wall_d=nav.wall_d,
             wall_nx=nav.wall_nx, wall_ny=nav.wall_ny, gate_ids=np.array(nav.gate_ids, dtype=str),
             zone=nav.zone, floor=nav.floor, dir_x=nav.dir_x, dir_y=nav.dir_y, width=nav.width)


def _load(path: Path) -> NavGrid:
    with np.load(path) as z:
        return NavGrid(float(z["x0"]), float(z["y0"]), float(z["cell_m"]), z["free"], z["wall_d"],
                       z["wall_nx"], z["wall_ny"], [str(s) for s in z["gate_ids"]], z["zone"],
                       z["floor"], z["dir_x"], z["dir_y"], z["width"])


def rasterize(geom, x0, y0, cell_m, shape, all_touched=False) -> np.ndarray:
    from rasterio import features
    from rasterio.transform import from_origin

    if geom is None or geom.is_empty:
        return np.zeros(shape, dtype=bool)
    out = features.rasterize([(geom, 1)], out_shape=shape, transform=from_origin(x0, y0, cell_m, cell_m),
                             fill=0, all_touched=all_touched, dtype="uint8")
    return out.astype(bool)


def _build(free_geom, gates, cell_m, zone_m, band_m) -> NavGrid:
    minx, miny, maxx, maxy = free_geom.bounds
    pad = 3 * cell_m
    x0 = np.floor((minx - pad) / cell_m) * cell_m
    y0 = np.ceil((maxy + pad) / cell_m) * cell_m
    cols = int(np.ceil((maxx + pad - x0) / cell_m))
    rows = int(np.ceil((y0 - (miny - pad)) / cell_m))
    shape = (rows, cols)
    free = rasterize(free_geom, x0, y0, cell_m, shape)

    # signed wall distance: EDT everywhere, exact near walls
    d_in = ndimage.distance_transform_edt(free) * cell_m - 0.5 * cell_m
    d_out = ndimage.distance_transform_edt(~free) * cell_m - 0.5 * cell_m
    wall_d = np.where(free, d_in, -d_out)
    band = np.abs(wall_d) < band_m
    rr, cc = np.nonzero(band)
    if len(rr):
        px = x0 + (cc + 0.5) * cell_m
        py = y0 - (rr + 0.5) * cell_m
        segs = _segments(free_geom.boundary)
        tree = shapely.STRtree(segs)
        pts = shapely.points(px, py)
        _, dist = tree.query_nearest(pts, return_distance=True, all_matches=False)
        wall_d[rr, cc] = np.where(free[rr, cc], dist, -dist)
    wall_d = wall_d.astype(np.float32)
    gy, gx = np.gradient(wall_d.astype(np.float64), cell_m)
    gy = -gy  # rows run southwards
    norm = np.hypot(gx, gy)
    norm[norm < 1e-9] = 1.0
    wall_nx = (gx / norm).astype(np.float32)
    wall_ny = (gy / norm).astype(np.float32)

    G = len(gates)
    zone = np.full(shape, -1, dtype=np.int32)
    floor = np.full((max(G, 1), rows, cols), UNREACHABLE, dtype=np.float32)
    dir_x = np.zeros((max(G, 1), rows, cols), dtype=np.float32)
    dir_y = np.zeros((max(G, 1), rows, cols), dtype=np.float32)
    # the fields do not run through walls thinner than a cell, which leave no blocked cell on the raster
    fields_free = free & ~_thin_walls(free_geom, x0, y0, cell_m, shape)
    for g, (gid, geom) in enumerate(gates):
        area = _gate_side(geom, zone_m, free_geom)
        z = rasterize(area, x0, y0, cell_m, shape) & free
        if not z.any():  # very thin gate zone: take touched cells
            z = rasterize(area, x0, y0, cell_m, shape, all_touched=True) & free
        zone[z & (zone < 0)] = g
        if z.any():
            ff = fields_free if (z & fields_free).any() else free
            floor[g] = _floor_field(ff, z & ff, cell_m, wall_d)
            dir_x[g], dir_y[g] = _directions(floor[g], cell_m, free & ~ff)
    return NavGrid(float(x0), float(y0), float(cell_m), free, wall_d, wall_nx, wall_ny,
                   [str(g) for g, _ in gates], zone, floor, dir_x, dir_y, _clear_width(free, wall_d, cell_m))


def _gate_side(geom, zone_m: float, free_geom):
    """A gate's zone: within ``zone_m`` of it, on its side of any wall: the parts of the free space
    in reach that lie nearest the gate (a door in the corner of a room does not reach, through the
    partition beside it, into the next room)."""
    disc = geom.buffer(zone_m)
    parts = [q for q in shapely.get_parts(shapely.intersection(disc, free_geom)) if not q.is_empty]
    if len(parts) < 2:
        return disc
    d = np.array([q.distance(geom) for q in parts])
    return shapely.union_all([q for q, dq in zip(parts, d) if dq <= d.min() + 0.01])


def _thin_walls(free_geom, x0, y0, cell_m, shape) -> np.ndarray:
    """Cells touched by the parts of the walls (all that is not free) thinner than a cell: on the
    raster (centre rule) a partition of a drawn building, 5 to 15 cm thick, leaves gaps that a field
    would run through. Round-off slivers (less than a tenth of a cell in area) are not walls."""
    rows, cols = shape
    solid = shapely.difference(shapely.box(x0, y0 - rows * cell_m, x0 + cols * cell_m, y0), free_geom)
    h = cell_m / 2
    thick = shapely.buffer(shapely.buffer(solid, -h, join_style="mitre"), h, join_style="mitre")
    thin = [q for q in shapely.get_parts(shapely.difference(solid, thick)) if q.area > 0.1 * cell_m ** 2]
    return rasterize(shapely.union_all(thin), x0, y0, cell_m, shape, all_touched=True) if thin else \
        np.zeros(shape, dtype=bool)


def _clear_width(free: np.ndarray, wall_d: np.ndarray, cell_m: float) -> np.ndarray:
    from .kernels import clear_width

    w = clear_width(wall_d, cell_m, WIDTH_CAP_M)
    if free.any() and not free.all():
        _, (ir, ic) = ndimage.distance_transform_edt(~free, return_indices=True)
        w = w[ir, ic]
    return w


def _segments(boundary):
    coords = []
    for line in getattr(boundary, "geoms", [boundary]):
        c = np.asarray(line.coords)
        if len(c) >= 2:
            coords.append(np.stack([c[:-1, :2], c[1:, :2]], axis=1))
    arr = np.concatenate(coords, axis=0)
    return shapely.linestrings(arr)


def wall_speed(wall_d: np.ndarray) -> np.ndarray:
    """Relative travel speed of the floor field: 1 beyond 0.6 m from walls, falling to 0.25 at
    0.1 m, so that routes keep clear of walls and round corners instead of aiming at them."""
    return 0.25 + 0.75 * np.clip((wall_d.astype(np.float64) - 0.1) / 0.5, 0.0, 1.0)


def _floor_field(free: np.ndarray, target: np.ndarray, cell_m: float, wall_d: np.ndarray) -> np.ndarray:
    import skfmm

    phi = np.where(target, -1.0, 1.0)
    masked = np.ma.MaskedArray(phi, mask=~free)
    d = skfmm.travel_time(masked, wall_speed(wall_d), dx=cell_m)
    vals = np.ma.filled(d, np.nan).astype(np.float64)
    vals[target] = 0.0
    ok = free & np.isfinite(vals)
    # skfmm leaves unreachable free cells unmasked with stale values; detect them by labelling
    lab, _ = ndimage.label(free)
    reach_labels = np.unique(lab[target])
    ok &= np.isin(lab, reach_labels[reach_labels > 0])
    vals = np.maximum(vals, 0.0)
    if not ok.any():
        return np.full(free.shape, UNREACHABLE, dtype=np.float32)
    dist, (ir, ic) = ndimage.distance_transform_edt(~ok, return_indices=True)
    filled = vals[ir, ic] + dist * cell_m
    # free cells that cannot reach the gate keep the unreachable mark
    filled[free & ~ok] = UNREACHABLE
    return filled.astype(np.float32)


def _directions(F: np.ndarray, cell_m: float, thin=None):
    f = F.astype(np.float64)
    f = np.where(f >= UNREACHABLE * 0.5, np.nan, f)
    gy, gx = np.gradient(f, cell_m)
    if thin is not None and thin.any():
        # A thin wall's cell holds the value of the nearest cell the field reached, which may lie beyond
        # the wall: next to it the gradient would point into the wall. There the wall's cells count as
        # the cell itself (no flow through the wall), so the direction runs along it.
        rows, cols = f.shape
        fp, tp = np.pad(f, 1, mode="edge"), np.pad(thin, 1)

        def side(dr, dc):
            v = fp[1 + dr:1 + dr + rows, 1 + dc:1 + dc + cols]
            return np.where(tp[1 + dr:1 + dr + rows, 1 + dc:1 + dc + cols], f, v)

        near = ~thin & (tp[:-2, 1:-1] | tp[2:, 1:-1] | tp[1:-1, :-2] | tp[1:-1, 2:])
        gx = np.where(near, (side(0, 1) - side(0, -1)) / (2 * cell_m), gx)
        gy = np.where(near, (side(1, 0) - side(-1, 0)) / (2 * cell_m), gy)
    gy = -gy
    gx = np.nan_to_num(gx)
    gy = np.nan_to_num(gy)
    norm = np.hypot(gx, gy)
    norm[norm < 1e-9] = 1.0
    return (-gx / norm).astype(np.float32), (-gy / norm).astype(np.float32)


@dataclass
class Floors:
    """The navigation rasters of every level, packed flat for the kernels (``kernels`` doc).

    Level ``L`` (index into ``levels``, the city's level numbers in increasing order) has its own
    ``NavGrid`` (``navs[L]``) with the targets on it; target ``t`` (a global index) has its floor
    field and directions on its level's raster from ``toff[t]`` on (``dir_xy``: x and y of a cell side
    by side, at ``2 * (toff[t] + cell)``). ``walls`` holds wall_d, wall_nx, wall_ny and width of a cell
    side by side (at ``4 * cell``), for the step. ``zone`` holds global target indices; ``lane``
    (ticket lanes, -1 elsewhere) is filled by the model.
    """

    cell_m: float
    levels: list
    navs: list
    lx0: np.ndarray
    ly0: np.ndarray
    lrows: np.ndarray
    lcols: np.ndarray
    loff: np.ndarray
    wall_d: np.ndarray
    wall_nx: np.ndarray
    wall_ny: np.ndarray
    width: np.ndarray
    zone: np.ndarray
    lane: np.ndarray
    t_level: np.ndarray
    toff: np.ndarray
    floor: np.ndarray
    dir_xy: np.ndarray
    walls: np.ndarray
    lt_start: np.ndarray
    lt_idx: np.ndarray

    @classmethod
    def pack(cls, navs: list, targets: list, levels: list | None = None) -> "Floors":
        """``navs[L]`` with its ``len(navs[L].gate_ids)`` targets, whose global indices are
        ``targets[L]``."""
        n_t = sum(len(t) for t in targets)
        cell = navs[0].cell_m
        if any(abs(nv.cell_m - cell) > 1e-12 for nv in navs):
            raise ValueError("every level needs the same cell size")
        sizes = [nv.free.size for nv in navs]
        loff = np.r_[0, np.cumsum(sizes)].astype(np.int64)
        t_level = np.zeros(n_t, dtype=np.int64)
        toff = np.zeros(n_t, dtype=np.int64)
        parts_f, parts_x, parts_y = [], [], []
        pos = 0
        zones = []
        for L, (nv, tl) in enumerate(zip(navs, targets)):
            glob = np.asarray(tl, dtype=np.int32)
            z = nv.zone
            zones.append(np.where(z >= 0, glob[np.maximum(z, 0)] if len(glob) else -1, -1).astype(np.int32))
            for k, t in enumerate(glob):
                t_level[t] = L
                toff[t] = pos
                pos += nv.free.size
            if len(glob):
                parts_f.append(nv.floor[:len(glob)])
                parts_x.append(nv.dir_x[:len(glob)])
                parts_y.append(nv.dir_y[:len(glob)])

        def flat(arrs):
            if not arrs:
                return np.zeros(1, dtype=np.float32)
            if len(arrs) == 1:
                return np.ascontiguousarray(arrs[0]).reshape(-1)
            return np.concatenate([np.ascontiguousarray(a).reshape(-1) for a in arrs])

        def interleave(*fields):
            # the values a step reads together at one cell lie side by side: one cache line, not one per field
            # (the directions of all targets are far larger than the processor's caches)
            return np.ascontiguousarray(np.stack([flat(f) for f in fields], axis=-1)).reshape(-1)

        wall_d, wall_nx, wall_ny, width = (flat([getattr(nv, k) for nv in navs])
                                           for k in ("wall_d", "wall_nx", "wall_ny", "width"))

        order = np.argsort(t_level, kind="stable")
        lt_start = np.searchsorted(t_level[order], np.arange(len(navs) + 1)).astype(np.int64)
        return cls(
            cell_m=float(cell), levels=list(levels if levels is not None else range(len(navs))), navs=list(navs),
            lx0=np.array([nv.x0 for nv in navs], dtype=np.float64), ly0=np.array([nv.y0 for nv in navs], np.float64),
            lrows=np.array([nv.free.shape[0] for nv in navs], np.int64),
            lcols=np.array([nv.free.shape[1] for nv in navs], np.int64), loff=loff,
            wall_d=wall_d, wall_nx=wall_nx, wall_ny=wall_ny, width=width,
            zone=flat(zones), lane=np.full(int(loff[-1]), -1, dtype=np.int32),
            t_level=t_level, toff=toff, floor=flat(parts_f), dir_xy=interleave(parts_x, parts_y),
            walls=interleave([wall_d], [wall_nx], [wall_ny], [width]), lt_start=lt_start, lt_idx=order.astype(np.int64))

    @classmethod
    def shared(cls, navs: list, targets: list, levels: list | None = None) -> "Floors":
        """``pack``, with the packed floor fields and directions shared by every model of this process
        built on the same ``navs`` (memoised ``NavGrid`` objects) and targets: they are read-only once
        packed and the largest part of a model (hundreds of MB on a fine grid), so an ensemble's members
        in one process hold them once. ``lane``, which a model fills, is each model's own."""
        key = (tuple(id(nv) for nv in navs), tuple(tuple(int(t) for t in tl) for tl in targets),
               tuple(levels) if levels is not None else None)
        hit = _PACKED.get(key)
        if hit is None or not all(a is b for a, b in zip(hit.navs, navs)):  # an id reused by another grid
            hit = cls.pack(navs, targets, levels)
            hit._share_with_navs(targets)
            if len(_PACKED) >= 4:
                _PACKED.pop(next(iter(_PACKED)))
            _PACKED[key] = hit
        return replace(hit, levels=list(hit.levels), navs=list(hit.navs), lane=np.full(hit.lane.shape, -1, np.int32))

    def _share_with_navs(self, targets: list) -> None:
        """Each level's ``NavGrid`` (memoised, so kept for the next model) then reads its floor fields
        and directions from the packed arrays instead of holding a second copy of them."""
        for nv, tl in zip(self.navs, targets):
            k = len(tl)
            if not k or nv.floor.shape[0] != k:
                continue
            a = int(self.toff[tl[0]])
            b = a + k * nv.free.size
            if not all(int(self.toff[t]) == a + j * nv.free.size for j, t in enumerate(tl)):
                continue
            shape = (k,) + nv.free.shape
            nv.floor = self.floor[a:b].reshape(shape)
            nv.dir_x = self.dir_xy[2 * a:2 * b:2].reshape(shape)
            nv.dir_y = self.dir_xy[2 * a + 1:2 * b:2].reshape(shape)

    @classmethod
    def single(cls, nav: NavGrid) -> "Floors":
        """One level whose targets are the NavGrid's gates, in order (or its one field when it
        has no gate: tests that set the directions themselves)."""
        return cls.pack([nav], [list(range(nav.floor.shape[0]))])

    @property
    def n_levels(self) -> int:
        return len(self.navs)

    @property
    def n_targets(self) -> int:
        return len(self.toff)

    @property
    def inv_h(self) -> float:
        return 1.0 / self.cell_m

    @property
    def grid(self) -> tuple:
        return (self.lx0, self.ly0, self.lrows, self.lcols, self.loff, self.inv_h)

    @property
    def bounds(self):
        """Plan extent of all levels (minx, miny, maxx, maxy)."""
        b = np.array([nv.bounds for nv in self.navs])
        return (b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max())

    def target_field(self, t: int) -> np.ndarray:
        """Target ``t``'s floor field as a 2-D view on its level's raster."""
        L = int(self.t_level[t])
        r, c = int(self.lrows[L]), int(self.lcols[L])
        return self.floor[self.toff[t]:self.toff[t] + r * c].reshape(r, c)

    def sample_target(self, t: int, x, y) -> np.ndarray:
        """Walking distance (m) to target ``t`` from points on its level."""
        return self.navs[int(self.t_level[t])].sample(self.target_field(t), x, y)

    def level_view(self, flat: np.ndarray, L: int) -> np.ndarray:
        return flat[self.loff[L]:self.loff[L + 1]].reshape(int(self.lrows[L]), int(self.lcols[L]))
