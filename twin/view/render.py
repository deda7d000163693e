"""Drawing a CityScene into any PyVista plotter (the Qt view, or an off-screen Plotter for tests,
exports and benchmarks). No Qt here: the Qt widget wraps this in ``app/viewport.py``.

Actors per layer are kept in ``self.actors``; dynamic layers (agents, a field) are updated in place.
"""
from __future__ import annotations

import numpy as np
import pyvista as pv
import shapely

from twin.core.features import feature_names, layer_frame, split_ref
from twin.core.formats import fmt_number
from twin.core.model_contract import FieldStyle
from twin.view.fonts import label_font_file
from twin.view.label_layout import LabelLayout
from twin.declarations import layer_views
from twin.view.scene import (AgentCloud, CityScene, FieldSurface, build_scene, level_lift, poi_colours, poi_kinds_order,
                        use_codes, use_colours)

from twin.view import shaders

LAYER_TITLES = {
    "terrain": "Terrain", "buildings": "Buildings", "roads": "Roads", "pois": "Points of interest",
    "labels": "Labels", "field": "Field", "agents": "Agents",
    "features": "Model values on features", "feature_labels": "Model values as labels",
    "alerts": "Alert markers", "sensors": "Sensors (latest reading)", "alerts_ahead": "Forecast alerts",
}


def layer_title(name: str) -> str:
    """The title of a layer in the layer list (a model's layer: its LayerView's)."""
    view = layer_views().get(name)
    return LAYER_TITLES.get(name) or (view.title if view is not None else name)


# meshes that per-feature values can colour (and the models' layer views), with the cell array naming each cell's feature row
FEATURE_MESHES = {"roads": "feature_id", "buildings": "building_id"}
FEATURE_LIFT_M = 0.2  # overlays sit just above the layer they colour
STATE_COLOURS = ["#1f6fd1", "#f28e2b", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
BACKGROUND = "#dfe7ef"
BACKGROUND_DARK = "#141a21"  # command room: dark around a bright city, easy on a video wall
SENSOR_CMAP = "plasma"  # a sensor's latest reading among those of its kind: dark low, bright high
SENSOR_NO_READING = "#9aa3ad"
SENSOR_LOW, SENSOR_HIGH = "#0d0887", "#f0f921"  # the ends of plasma
ALERT_COLOURS = ("#2ca02c", "#ffb000", "#e8112d")  # ok, amber, red (twin.core.model_contract.ALERT_LEVELS)
DIFFERENCE_CMAP = "RdBu_r"
LEGEND_MAX_SCALE = 1.6  # intervention − baseline: blue lower, red higher, white no change
ROOF_OPACITY = 0.18
TERRAIN_CMAP = ["#e9ede2", "#d6dfc8", "#c5cdb0", "#b9b59b"]
# which labels win where labels of different layers would cover each other (twin.view.label_layout);
# the models' feature ids (short) before the names of places (long): more labels fit
LABELS_ALERTS, LABELS_ALERTS_AHEAD, LABELS_VALUES, LABELS_SENSORS, LABELS_FEATURES, LABELS_PLACES = range(6)


class SceneRenderer:
    """Owns the actors of one city in one plotter."""

    def __init__(self, plotter: pv.Plotter):
        self.plotter = plotter
        self.scene: CityScene | None = None
        self.city = None
        self.actors: dict[str, list] = {}
        self.visible: dict[str, bool] = {}
        self.building_colouring = "use"
        self.agents: AgentCloud | None = None
        self.field: FieldSurface | None = None
        self.model_cls = None  # the running model's class: its declared field styles and area of interest
        self.field_style: FieldStyle | None = None
        self.field_kind = "scalar"
        self.field_shader = None
        self.state_names: tuple[str, ...] = ()
        self.font_scale = 1.0
        self.shader_time = 0.0
        self._legend: list = []  # vtkLegendBoxActors, one per column
        self.dark = False
        self._markers_key = None
        self.labels = LabelLayout(plotter.renderer)
        plotter.set_background(BACKGROUND)

    # -- building the scene --------------------------------------------------------------------
    def set_city(self, city, scene: CityScene | None = None) -> CityScene:
        self.clear()
        self.state_names = ()
        self.city = city
        self.scene = scene or build_scene(city)
        s = self.scene
        p = self.plotter
        self._add("terrain", p.add_mesh(s.terrain, scalars="elevation_m", cmap=TERRAIN_CMAP, show_scalar_bar=False,
                                        smooth_shading=False, ambient=0.35, diffuse=0.7, specular=0.0,
                                        pickable=True, reset_camera=False, name="terrain", render=False))
        self._add_buildings()
        if s.roads.n_cells:
            self._add("roads", p.add_mesh(s.roads, color="#6b6f76", ambient=0.45, diffuse=0.6, pickable=True,
                                          name="roads", reset_camera=False, render=False))
        views = layer_views()
        for layer, mesh in s.views.items():  # the models' layers, as their LayerView says
            if mesh.n_cells:
                v = views[layer]
                style = (dict(scalars=v.state_column, cmap=list(v.colours), clim=(0, 1)) if v.state_column
                         else dict(color=v.colours[-1]))
                # an area lies on the ground, a ribbon stands out, a block is shaded by its walls
                ambient = {"area": 0.4, "extruded": 0.2}.get(v.drawing, 0.6)
                self._add(layer, p.add_mesh(mesh, **style, show_scalar_bar=False, ambient=ambient, pickable=True,
                                            name=layer, reset_camera=False, render=False))
        if s.pois.n_points:
            order, poi_col = poi_kinds_order(), poi_colours()
            colours = [poi_col.get(order[c] if c < len(order) else "", "#444444")
                       for c in s.pois.point_data["kind_code"]]
            rgb = np.array([pv.Color(c).float_rgb for c in colours])
            s.pois.point_data["rgb"] = (rgb * 255).astype(np.uint8)
            self._add("pois", p.add_mesh(s.pois, scalars="rgb", rgb=True, point_size=16,
                                         render_points_as_spheres=True, pickable=True, name="pois",
                                         reset_camera=False, render=False))
        self._add_labels()
        self.update_legend()
        for name in self.actors:
            self.visible.setdefault(name, True)
        self.camera_preset("oblique")
        return self.scene

    def _add(self, layer: str, actor) -> None:
        self.actors.setdefault(layer, []).append(actor)
        if layer in self.visible:
            actor.SetVisibility(self.visible[layer])

    def _point_labels(self, priority: int, points, texts, **style):
        """pyvista's point labels, placed together with every other layer's (``self.labels``)."""
        actor = self.plotter.add_point_labels(points, texts, **style)
        self.labels.add(actor, points, texts, priority)
        return actor

    def _remove_layer(self, layer: str) -> None:
        for a in self.actors.pop(layer, []):
            self.plotter.remove_actor(a, reset_camera=False, render=False)

    def _add_buildings(self) -> None:
        s = self.scene
        self._remove_layer("buildings")
        if not s.buildings.n_cells:
            return
        mesh = s.buildings
        roof = np.asarray(mesh.cell_data["roof"]) if "roof" in mesh.cell_data else np.zeros(mesh.n_cells, bool)
        # Roofs over a layer whose view says roofs_see_through are see-through: the agents are under them.
        parts = [("buildings", mesh, 1.0)]
        if roof.any():
            parts = [("buildings", mesh.extract_cells(np.flatnonzero(~roof)), 1.0),
                     ("buildings_roofs", mesh.extract_cells(np.flatnonzero(roof)), ROOF_OPACITY)]
        for i, (name, part, opacity) in enumerate(parts):
            if not part.n_cells:
                continue
            if self.building_colouring == "height":
                style = dict(scalars="height_m", cmap="YlOrRd", clim=_nice_range(mesh.cell_data["height_m"]),
                             show_scalar_bar=i == 0,
                             scalar_bar_args=dict(title="Building height (m)", vertical=True, position_x=0.9,
                                                  position_y=0.1, height=0.35, width=0.05,
                                                  title_font_size=int(16 * self.font_scale),
                                                  label_font_size=int(14 * self.font_scale), **self.bar_style(),
                                                  fmt="%.0f"))
            else:
                colours = list(use_colours().values())
                style = dict(scalars="use_code", cmap=colours, clim=(-0.5, len(colours) - 0.5),
                             n_colors=len(colours), show_scalar_bar=False)
            actor = self.plotter.add_mesh(part, ambient=0.3, diffuse=0.8, pickable=True, name=name, opacity=opacity,
                                          reset_camera=False, render=False, **style)
            self._add("buildings", actor)
        self._panel_bars()

    def _add_labels(self) -> None:
        s = self.scene
        self._remove_layer("labels")
        fs = int(round(15 * self.font_scale))
        if s.pois.n_points and s.poi_labels:
            pts = np.asarray(s.pois.points).copy()
            pts[:, 2] += 6
            self._add("labels", self._point_labels(LABELS_PLACES,
                pts, s.poi_labels, font_size=fs, text_color="black", shape_color="white", shape_opacity=0.8,
                show_points=False, always_visible=True, name="poi_labels", reset_camera=False, render=False,
                bold=False, font_file=label_font_file(s.poi_labels)))
        for layer, (texts, points) in s.view_labels.items():
            self._add("labels", self._point_labels(LABELS_FEATURES,
                points, texts, font_size=fs, text_color="white", shape_color="#2b4a6f",
                shape_opacity=0.85, show_points=False, always_visible=True, name=f"{layer}_labels",
                reset_camera=False, render=False, font_file=label_font_file(texts)))

    def set_building_colouring(self, mode: str) -> None:
        self.building_colouring = mode
        if self.scene is not None:
            self._add_buildings()
            self.update_legend()

    def set_font_scale(self, scale: float) -> None:
        self.font_scale = scale
        if self.scene is not None:
            self._add_labels()
            self._add_buildings()
            self.update_legend()

    def clear(self) -> None:
        for layer in list(self.actors):
            self._remove_layer(layer)
        self._markers_key = None
        self._remove_legend()
        self.plotter.clear()
        self.actors = {}
        self.agents = None
        self.field = None
        self.field_shader = None
        self.scene = None

    # -- legend ----------------------------------------------------------------------------------
    def update_legend(self) -> None:
        entries = []
        s = self.scene
        if s is None:
            return
        if self.building_colouring == "use" and s.buildings.n_cells:
            present = set(np.unique(s.buildings.cell_data["use_code"]).tolist())
            names, use_col = list(use_codes()), use_colours()
            entries += [[f"{names[c]}", use_col[names[c]]] for c in sorted(present)]
        views = layer_views()
        for layer, mesh in s.views.items():
            v = views[layer]
            if mesh.n_cells and v.legend:
                entries += ([[v.legend[1], v.colours[1]], [v.legend[0], v.colours[0]]] if v.state_column
                            else [[v.legend[-1], v.colours[-1]]])
        if self.model_cls is not None:  # the model's per-feature states that are drawn (declared states)
            shown = {(label.split()[-1], c) for label, c in entries}  # "<feature> closed" is "closed"
            for f in self.model_cls.feature_styles:
                if f.kind == "state":
                    entries += [[f"{f.layer}: {st}", c] for st, c in zip(f.states, f.colours)
                                if c and (st, c) not in shown]
        if "sensors" in self.actors:  # live mode: what a sensor's colour says
            entries += [["sensor: high reading", SENSOR_HIGH], ["sensor: low reading", SENSOR_LOW],
                        ["sensor: no reading yet", SENSOR_NO_READING]]
        colours = self.state_colours()
        for i, st in enumerate(self.state_names):  # a coupled run's "<model>.<state>": "<model>: <state>"
            entries += [[f"agent: {st}" if "." not in st else st.replace(".", ": ", 1).replace("_", " "), colours[i]]]
        self._remove_legend()
        # the legend is a key, not the message: it grows less than the labels on a wall, and a long
        # one (a coupled run's) is set in columns rather than squeezed to unreadable text
        scale = min(self.font_scale, LEGEND_MAX_SCALE)
        x = 0.0
        for k in range(0, len(entries), LEGEND_ROWS):
            leg = make_legend(entries[k:k + LEGEND_ROWS], scale, x)
            self._legend.append(leg)
            self.plotter.renderer.AddViewProp(leg)
            x += leg.GetPosition2Coordinate().GetValue()[0] + 6

    def _remove_legend(self) -> None:
        for leg in getattr(self, "_legend", None) or ():
            self.plotter.renderer.RemoveViewProp(leg)
        self._legend = []

    # -- visibility ------------------------------------------------------------------------------
    def layer_names(self) -> list[str]:
        return list(self.actors)

    def set_layer_visible(self, layer: str, visible: bool) -> None:
        self.visible[layer] = visible
        for a in self.actors.get(layer, []):
            a.SetVisibility(bool(visible))

    def is_layer_visible(self, layer: str) -> bool:
        acts = self.actors.get(layer, [])
        return bool(acts) and all(a.GetVisibility() for a in acts)

    @property
    def ink(self) -> str:
        """The colour of scalar-bar text on this background."""
        return "white" if self.dark else "black"

    def bar_style(self) -> dict:
        return dict(color=self.ink)

    def _panel_bars(self) -> None:
        """Scale bars on a panel of the theme's colour, readable over a pale map or a dark background
        (set on the VTK actors: pyvista 0.49 passes the panel colour in 0-255 where VTK wants 0-1)."""
        rgb = pv.Color(BACKGROUND_DARK if self.dark else "#ffffff").float_rgb
        for bar in self.plotter.scalar_bars.values():
            bar.DrawBackgroundOn()
            bar.GetBackgroundProperty().SetColor(rgb)
            bar.GetBackgroundProperty().SetOpacity(0.85)

    def set_theme(self, dark: bool) -> None:
        """Dark background for the command room (the city keeps its colours; scale bars get light text)."""
        if bool(dark) == self.dark:
            return
        self.dark = bool(dark)
        self.plotter.set_background(BACKGROUND_DARK if dark else BACKGROUND)
        if self.scene is not None and self.building_colouring == "height":
            self._add_buildings()
        if self.field is not None:
            self._style_field()

    # -- dynamic layers --------------------------------------------------------------------------
    def show_frame(self, frame, field_name: str | None = None, field=None, field_style: FieldStyle | None = None) -> None:
        """Agents, per-feature values and a field of one frame (a ``Snapshot`` or an app ``Frame``).

        ``field``/``field_style`` draw another grid in place of the frame's (the difference layer)."""
        self.update_agents(frame.positions, frame.states, getattr(frame, "z", None))
        self.update_features(getattr(frame, "features", None))
        if field is not None:
            self.update_field(field, field_style)
        elif frame.fields:
            name = field_name if field_name in frame.fields else next(iter(frame.fields))
            self.update_field(frame.fields[name])

    def set_alert_markers(self, alerts) -> None:
        """Mark every alert that has a place (``twin.view.alerts.Alert`` with x, y): a beacon in its level's
        colour and a label. Rebuilt only when the set of marked places or levels changes."""
        if self.scene is None:
            return
        placed = [a for a in alerts if a.level > 0 and a.x is not None]
        key = tuple((a.rule.name, a.key, a.level, round(a.x, 1), round(a.y, 1)) for a in placed)
        labels_key = tuple(a.text() for a in placed)
        if (key, labels_key) == self._markers_key:
            return
        self._markers_key = (key, labels_key)
        self._remove_layer("alerts")
        if not placed:
            return
        s = self.scene
        xl, yl = s.to_local(np.array([a.x for a in placed]), np.array([a.y for a in placed]))
        z = s.elevation(np.asarray(xl), np.asarray(yl))
        size = max(4.0, 0.008 * max(s.bounds_local[2] - s.bounds_local[0], s.bounds_local[3] - s.bounds_local[1]))
        beacons = []
        for x, y, zz, a in zip(np.atleast_1d(xl), np.atleast_1d(yl), np.atleast_1d(z), placed):
            ring = pv.Disc(center=(x, y, zz + 0.6), inner=size * 0.9, outer=size * 1.35, c_res=48)
            mast = pv.Cylinder(center=(x, y, zz + size * 1.5), direction=(0, 0, 1), radius=size * 0.12,
                               height=size * 3.0, resolution=16)
            for part in (ring, mast):
                part.cell_data["level"] = np.full(part.n_cells, a.level, np.int8)
                beacons.append(part)
        mesh = pv.merge(beacons)
        self._add("alerts", self.plotter.add_mesh(mesh, scalars="level", cmap=list(ALERT_COLOURS), clim=(-0.5, 2.5),
                                                  n_colors=3, show_scalar_bar=False, lighting=False, pickable=False,
                                                  name="alert_beacons", reset_camera=False, render=False))
        pts = np.column_stack([np.atleast_1d(xl), np.atleast_1d(yl), np.atleast_1d(z) + size * 3.4])
        self._add("alerts", self._point_labels(LABELS_ALERTS,
            pts, [a.text() for a in placed], font_size=int(round(16 * self.font_scale)), text_color="white",
            shape_color=ALERT_COLOURS[2] if any(a.level == 2 for a in placed) else "#8a5a00", shape_opacity=0.9,
            show_points=False, always_visible=True, name="alert_labels", reset_camera=False, render=False))

    def _on_ground(self, xs, ys, min_size_m: float, share: float):
        """Points of the city CRS in scene coordinates on the terrain, and a marker size: ``share`` of
        the scene's larger side, at least ``min_size_m``."""
        s = self.scene
        xl, yl = s.to_local(np.asarray(xs, dtype=float), np.asarray(ys, dtype=float))
        xl, yl = np.atleast_1d(xl), np.atleast_1d(yl)
        z = np.atleast_1d(s.elevation(xl, yl))
        b = s.bounds_local
        return xl, yl, z, max(min_size_m, share * max(b[2] - b[0], b[3] - b[1]))

    def set_ahead_markers(self, xs, ys, levels, labels) -> None:
        """Live mode: where the latest forecast expects a level to be reached (city CRS): a wide ring in
        that level's colour on the ground, and a label saying when. Rebuilt on every call."""
        self._remove_layer("alerts_ahead")
        if self.scene is None or not len(xs):
            return
        xl, yl, z, size = self._on_ground(xs, ys, 4.0, 0.008)
        rings = []
        for x, y, zz, lvl in zip(xl, yl, z, levels):
            ring = pv.Disc(center=(x, y, zz + 0.5), inner=size * 1.0, outer=size * 1.3, c_res=48)
            ring.cell_data["level"] = np.full(ring.n_cells, int(lvl), np.int8)
            rings.append(ring)
        self._add("alerts_ahead", self.plotter.add_mesh(
            pv.merge(rings), scalars="level", cmap=list(ALERT_COLOURS), clim=(-0.5, 2.5), n_colors=3,
            show_scalar_bar=False, lighting=False, pickable=False, name="ahead_rings", reset_camera=False, render=False))
        self._add("alerts_ahead", self._point_labels(LABELS_ALERTS_AHEAD,
            np.column_stack([xl, yl, z + size * 1.5]), list(labels),
            font_size=int(round(14 * self.font_scale)), text_color="white",
            shape_color=ALERT_COLOURS[2] if any(int(v) == 2 for v in levels) else "#8a5a00", shape_opacity=0.7,
            show_points=False, always_visible=True, name="ahead_labels", reset_camera=False, render=False))

    def set_sensor_markers(self, xs, ys, shades, labels, label_mask=None) -> None:
        """Sensors (city CRS) as columns standing on the ground, coloured by ``shades`` (0..1: the latest
        reading among the readings of sensors of the same kind; NaN: none yet, grey), with ``labels``
        where ``label_mask`` holds (all by default). Rebuilt on every call: a few dozen points."""
        had = "sensors" in self.actors
        self._remove_layer("sensors")
        if self.scene is None or not len(xs):
            if had:
                self.update_legend()
            return
        # slim posts: a sensor stands among the crowd it counts and must not hide it
        xl, yl, z, size = self._on_ground(xs, ys, 1.5, 0.004)
        shades = np.asarray(shades, dtype=float)
        parts = []
        for x, y, zz, v in zip(xl, yl, z, shades):
            col = pv.Cylinder(center=(x, y, zz + size * 0.9), direction=(0, 0, 1), radius=size * 0.45,
                              height=size * 1.8, resolution=20)
            col.cell_data["shade"] = np.full(col.n_cells, v)
            parts.append(col)
        mesh = pv.merge(parts)
        self._add("sensors", self.plotter.add_mesh(
            mesh, scalars="shade", cmap=SENSOR_CMAP, clim=(0.0, 1.0), nan_color=SENSOR_NO_READING,
            show_scalar_bar=False, ambient=0.5, pickable=False, name="sensor_columns", reset_camera=False,
            render=False))
        show = np.ones(len(xl), bool) if label_mask is None else np.asarray(label_mask, bool)
        if show.any():
            pts = np.column_stack([xl, yl, z + size * 2.2])[show]
            self._add("sensors", self._point_labels(LABELS_SENSORS,
                pts, [t for t, k in zip(labels, show) if k], font_size=int(round(14 * self.font_scale)),
                text_color="white", shape_color="#243447", shape_opacity=0.85, show_points=False,
                always_visible=True, name="sensor_labels", reset_camera=False, render=False))
        self.visible.setdefault("sensors", True)
        if not had:
            self.update_legend()

    def set_model(self, model_cls) -> None:
        """The model whose declarations (state names, field styles, area of interest) the view uses."""
        self.model_cls = model_cls
        if self.field is not None:
            self.field = None
            self._remove_layer("field")
        self.set_state_names(model_cls.state_names if model_cls is not None else ())

    def style_of(self, name: str) -> FieldStyle:
        if self.model_cls is not None:
            return self.model_cls.field_style(name)
        return FieldStyle(name, "", "")

    def set_state_names(self, names) -> None:
        names = tuple(names)
        if names != self.state_names:
            self.state_names = names
            self.update_legend()
            if self.agents is not None:
                self._style_agents()

    def update_agents(self, positions, states, z=None) -> None:
        """Agents at ``positions`` (city CRS), ``z`` metres above the terrain (None: on it)."""
        if self.scene is None:
            return
        if self.agents is None:
            self.agents = AgentCloud(self.scene)
            self.agents.update(positions, states, z)
            self._style_agents()
        else:
            self.agents.update(positions, states, z)

    def state_colours(self) -> list[str]:
        """Colours of the agent states: the model's ``state_colours`` when it declares them."""
        n = max(len(self.state_names), 1)
        declared = tuple(getattr(self.model_cls, "state_colours", ()) or ())
        if len(declared) >= n:
            return list(declared[:n])
        return [STATE_COLOURS[i % len(STATE_COLOURS)] for i in range(n)]

    def _style_agents(self) -> None:
        self._remove_layer("agents")
        n = max(len(self.state_names), 1)
        colours = self.state_colours()
        if n == 1:
            colours = colours * 2
        actor = self.plotter.add_mesh(self.agents.mesh, scalars="state", cmap=colours, clim=(-0.5, len(colours) - 0.5),
                                      n_colors=len(colours), show_scalar_bar=False, point_size=5,
                                      render_points_as_spheres=True, pickable=False, name="agents",
                                      reset_camera=False, render=False, lighting=False)
        self._add("agents", actor)

    # -- per-feature values (FeatureStyle) ---------------------------------------------------------
    def update_features(self, features) -> None:
        """Colour features by the model's values and write labelled ones beside their feature.

        For each layer, the first declared unlabelled style with a value colours the features that
        have one (roads by tourists on them, flooded buildings...) as an overlay; labelled styles
        are written at the feature ("A1 queue 120")."""
        if self.scene is None or self.model_cls is None:
            return
        self._remove_layer("features")
        self._remove_layer("feature_labels")
        for layer, frame in (features or {}).items():
            styles = [f for f in self.model_cls.feature_styles if f.layer == layer and f.name in frame.values]
            colour = next((f for f in styles if not f.label), None)
            if colour is not None and (layer in FEATURE_MESHES or layer in self.scene.views):
                self._feature_overlay(layer, frame, colour)
            labelled = [f for f in styles if f.label]
            if labelled:
                self._feature_labels(layer, frame, labelled)

    def _per_row(self, layer: str, frame, name: str) -> np.ndarray:
        """The frame's values of ``name`` in the order of the city layer's rows (NaN where absent)."""
        import pandas as pd

        ids = self.city.layer(layer)["id"].astype(str) if "id" in self.city.layer(layer) else None
        out = np.full(len(self.city.layer(layer)), np.nan)
        if ids is None:
            return out
        pos = pd.Index(np.asarray(frame.ids).astype(str)).get_indexer(ids)
        ok = pos >= 0
        out[ok] = np.asarray(frame.values[name], dtype=float)[pos[ok]]
        return out

    def _feature_overlay(self, layer: str, frame, style) -> None:
        mesh = self.scene.mesh(layer)
        if not mesh.n_cells:
            return
        row_values = self._per_row(layer, frame, style.name)
        cell_values = row_values[np.asarray(mesh.cell_data[FEATURE_MESHES.get(layer, "feature_id")])]
        show = np.isfinite(cell_values)
        if style.kind == "number":
            show &= cell_values > 0
        else:  # a state whose colour is "" (e.g. dry, passable) is not drawn over the layer
            drawn = np.array([bool(c) for c in style.colours] or [True])
            show &= drawn[np.clip(np.nan_to_num(cell_values).astype(int), 0, len(drawn) - 1)]
        if not show.any():
            return
        part = mesh.extract_cells(np.flatnonzero(show))
        part.cell_data["value"] = cell_values[show]
        part.points[:, 2] += FEATURE_LIFT_M
        title = f"{style.name} ({style.unit})" if style.unit and style.unit != "-" else style.name
        if style.kind == "state":
            colours = [c or "#000000" for c in style.colours] or ["#888888", "#d62728"]
            colours = colours * 2 if len(colours) == 1 else colours
            kw = dict(cmap=colours, clim=(-0.5, len(colours) - 0.5), n_colors=len(colours), show_scalar_bar=False)
        else:
            kw = dict(cmap=style.cmap, clim=style.clim or _nice_range(part.cell_data["value"]),
                      scalar_bar_args=dict(title=title, vertical=True, position_x=0.9, position_y=0.12, height=0.3,
                                           width=0.05, **self.bar_style(), title_font_size=int(16 * self.font_scale),
                                           label_font_size=int(14 * self.font_scale), fmt="%.0f"))
        actor = self.plotter.add_mesh(part, scalars="value", pickable=False, name=f"features_{layer}", lighting=False,
                                      reset_camera=False, render=False, **kw)
        self._add("features", actor)
        self._panel_bars()

    def _feature_labels(self, layer: str, frame, styles) -> None:
        gdf = self.city.layer(layer)
        if not len(gdf) or "id" not in gdf:
            return
        cols = {st.name: self._per_row(layer, frame, st.name) for st in styles}
        rows = [i for i in range(len(gdf)) if any(np.isfinite(v[i]) and v[i] != 0 for v in cols.values())]
        if not rows:
            return
        pts = gdf.geometry.iloc[rows].representative_point()
        xl, yl = self.scene.to_local(pts.x.to_numpy(), pts.y.to_numpy())
        z = self.scene.elevation(xl, yl) + 9.0 + level_lift(gdf.iloc[rows], self.city)
        texts = []
        cache = self.__dict__.setdefault("_label_names", {})
        if (id(self.city), layer) not in cache:  # the name; the id beside it where missing or shared
            cache[(id(self.city), layer)] = feature_names(self.city, layer)
        names = cache[(id(self.city), layer)]
        for i in rows:
            parts = [f"{st.name.replace('_', ' ')} {fmt_number(cols[st.name][i])}" for st in styles
                     if np.isfinite(cols[st.name][i])]
            fid = str(gdf["id"].iloc[i])
            texts.append(f"{names.get(fid, fid)}: " + ", ".join(parts))
        self._add("feature_labels", self._point_labels(LABELS_VALUES,
            np.column_stack([xl, yl, z]), texts, font_size=int(round(15 * self.font_scale)), text_color="white",
            shape_color="#7a1f5c", shape_opacity=0.85, show_points=False, always_visible=True,
            name=f"feature_labels_{layer}", reset_camera=False, render=False))

    def update_field(self, grid, style: FieldStyle | None = None) -> None:
        """Show (or update in place) the draped field layer; ``style`` overrides the model's (a difference)."""
        if self.scene is None or grid is None:
            return
        style = style or self.style_of(grid.name)
        if style.kind == "surface":
            grid = surface_to_walls(grid)
        if self.field is not None and self.field.name == grid.name and style == self.field_style:
            in_place = self.field.update(grid)
            if not in_place:
                self._style_field()
            return
        if self.field is not None and self.field.name == grid.name:
            self.field.update(grid)
        else:
            self.field = FieldSurface(grid, self.scene)
        self.field_style = style
        self.field_kind = style.kind
        self._style_field()

    def _style_field(self) -> None:
        """Draw the field as its model declared: a surface over the terrain (``surface``), stepped heat
        bands (``heat`` with bands) or a plain colour map."""
        self._remove_layer("field")
        old_bar = getattr(self, "_field_bar", None)
        if old_bar is not None and old_bar in self.plotter.scalar_bars:
            self.plotter.remove_scalar_bar(old_bar, render=False)  # a field restyled (difference on/off)
        f, style = self.field, self.field_style
        self.field_shader = None
        sb = dict(vertical=True, position_x=0.9, position_y=0.55, height=0.35, width=0.05, **self.bar_style(),
                  title_font_size=int(16 * self.font_scale), label_font_size=int(14 * self.font_scale), fmt="%.2f")
        clim = style.clim or _nice_range(f.values)
        title = f"{f.name} ({style.unit or f.unit or '-'})"
        self._field_bar = title
        common = dict(scalars="value", clim=clim, nan_opacity=0.0, pickable=True, name="field", reset_camera=False,
                      render=False, lighting=False)
        if style.kind == "difference":  # intervention − baseline: one opacity, a diverging map around 0
            actor = self.plotter.add_mesh(f.mesh, cmap=style.cmap, opacity=0.85,
                                          scalar_bar_args=dict(title=title, n_labels=5, **sb), **common)
        elif style.kind == "surface":
            actor = self.plotter.add_mesh(f.mesh, cmap=style.cmap if style.cmap != "viridis" else "Blues",
                                          opacity=[0.0, 0.55, 0.7, 0.8, 0.85, 0.9],
                                          scalar_bar_args=dict(title=title, **sb), **common)
        elif style.bands:
            actor = self.plotter.add_mesh(f.mesh, cmap=banded_cmap(clim, style.bands, style.colours),
                                          opacity=[0.0, 0.75, 0.8, 0.85, 0.9, 0.9],
                                          scalar_bar_args=dict(title=title, n_labels=4, **sb), **common)
        else:
            actor = self.plotter.add_mesh(f.mesh, cmap=style.cmap, opacity=[0.0, 0.7, 0.8, 0.85, 0.9, 0.9],
                                          scalar_bar_args=dict(title=title, **sb), **common)
        self._add("field", actor)
        self._panel_bars()
        if style.shader:
            self.field_shader = shaders.apply_field_shader(actor, style, clim)

    def tick(self, dt_s: float) -> None:
        """Advance shader animation time (a surface's ripples)."""
        self.shader_time += dt_s
        if self.field_shader is not None:
            self.field_shader.set_time(self.shader_time)

    # -- cameras ---------------------------------------------------------------------------------
    def _bounds3(self, bounds2=None, pad: float = 0.05):
        s = self.scene
        b = bounds2 or s.bounds_local
        w, h = b[2] - b[0], b[3] - b[1]
        m = max(w, h) * pad
        z0, z1 = s.z_range
        if s.buildings.n_cells:
            z1 = max(z1, float(s.buildings.bounds[5]))
        return (b[0] - m, b[2] + m, b[1] - m, b[3] + m, z0, z1)

    def camera_preset(self, name: str, bounds2=None, fill: bool = False) -> None:
        """``fill``: (north_up) the distance at which the box just fills the view, whatever its shape and
        the window's: its width against the horizontal angle, its depth (seen at 45°) against the vertical."""
        if self.scene is None:
            return
        b = self._bounds3(bounds2, pad=0.0 if fill else 0.05)
        cx, cy, cz = (b[0] + b[1]) / 2, (b[2] + b[3]) / 2, (b[4] + b[5]) / 2
        size = max(b[1] - b[0], b[3] - b[2], 1.0)
        cam = self.plotter.camera
        cam.SetViewAngle(30.0)
        d = size / (2 * np.tan(np.radians(15))) * (0.9 if name == "oblique" else 0.95)
        if fill and name == "north_up":
            width, height = self.plotter.window_size
            aspect = max(width, 1) / max(height, 1)
            t = np.tan(np.radians(15))
            d = max((b[3] - b[2]) * np.sin(np.radians(45)) / (2 * t), (b[1] - b[0]) / (2 * t * aspect), 1.0) * 1.2
            cz = float(self.scene.elevation(np.array([cx]), np.array([cy]))[0])  # the ground, not mid-air
        if name in ("top", "north_up"):
            pos, up = (cx, cy, cz + d), (0, 1, 0)
            if name == "north_up":  # oblique from the south, north at the top of the screen
                pos, up = (cx, cy - d * 0.75, cz + d * 0.75), (0, 0, 1)
        elif name == "oblique":
            pos, up = (cx - d * 0.45, cy - d * 0.7, cz + d * 0.65), (0, 0, 1)
        else:
            raise ValueError(f"unknown camera preset {name!r}")
        cam.SetFocalPoint(cx, cy, cz)
        cam.SetPosition(*pos)
        cam.SetViewUp(*up)
        self.plotter.renderer.ResetCameraClippingRange()

    def area_of_interest(self, model_cls=None):
        """Local bounds of what the model is about (its declared ``aoi_layers``); None: the city."""
        c, s = self.city, self.scene
        model_cls = model_cls or self.model_cls
        if c is None or model_cls is None:
            return None
        boxes = []
        for ref in model_cls.aoi_layers:  # "layer" or "layer:kind,kind" (twin.core.features)
            n, kinds = split_ref(ref)
            gdf = layer_frame(c, n, model_cls)
            if gdf is not None and len(gdf) and kinds and "kind" in gdf:
                gdf = gdf[gdf["kind"].astype(str).isin(kinds)]
            if gdf is not None and len(gdf):
                boxes.append(gdf.total_bounds)
        if not boxes:
            return None
        bb = np.array(boxes)
        minx, miny, maxx, maxy = bb[:, 0].min(), bb[:, 1].min(), bb[:, 2].max(), bb[:, 3].max()
        ox, oy = s.origin
        return (minx - ox, miny - oy, maxx - ox, maxy - oy)

    def view_area_of_interest(self, model_cls=None) -> None:
        b = self.area_of_interest(model_cls)
        if b is None:
            self.camera_preset("oblique")
            return
        w, h = b[2] - b[0], b[3] - b[1]
        m = max(w, h) * 0.04 + 10
        self.camera_preset("north_up", (b[0] - m, b[1] - m, b[2] + m, b[3] + m), fill=True)

    def fly_to(self, x_local: float, y_local: float, distance: float = 250.0) -> None:
        z = float(self.scene.elevation(np.array([x_local]), np.array([y_local]))[0])
        cam = self.plotter.camera
        cam.SetFocalPoint(x_local, y_local, z)
        cam.SetPosition(x_local - distance * 0.35, y_local - distance * 0.7, z + distance * 0.65)
        cam.SetViewUp(0, 0, 1)
        self.plotter.renderer.ResetCameraClippingRange()

    # -- picking ---------------------------------------------------------------------------------
    def actor_layer(self, actor) -> str | None:
        for layer, acts in self.actors.items():
            if any(a is actor or (hasattr(a, "GetAddressAsString") and actor is not None and
                                  a.GetAddressAsString("vtkObject") == actor.GetAddressAsString("vtkObject"))
                   for a in acts):
                return layer
        return None

    def pick_display(self, x: int, y: int) -> dict | None:
        """Pick at display pixel (x, y) (VTK convention: origin bottom-left)."""
        import vtk

        picker = vtk.vtkCellPicker()
        picker.SetTolerance(0.002)
        if not picker.Pick(x, y, 0, self.plotter.renderer):
            return None
        layer = self.actor_layer(picker.GetActor())
        pos = np.array(picker.GetPickPosition())
        cell = picker.GetCellId()
        data = picker.GetDataSet()
        original = data.GetCellData().GetArray("vtkOriginalCellIds") if data is not None else None
        if original is not None and cell >= 0:  # a part cut out of a layer's mesh (see _add_buildings)
            cell = int(original.GetValue(cell))
        return self.describe(layer, cell, pos)

    def describe(self, layer: str | None, cell_id: int, pos_local) -> dict | None:
        """Attributes of what is at ``pos_local`` on ``layer`` (cell ``cell_id`` of its mesh)."""
        s, c = self.scene, self.city
        x, y = float(pos_local[0]), float(pos_local[1])
        wx, wy = s.to_world(x, y)
        info: dict = {}
        if layer == "buildings" and cell_id >= 0:
            i = int(s.buildings.cell_data["building_id"][cell_id])
            info = {"layer": "buildings", "row": i, **_row(c.buildings, i)}
        elif (layer == "roads" or layer in s.views) and cell_id >= 0:
            i = int(s.mesh(layer).cell_data["feature_id"][cell_id])
            info = {"layer": layer, "row": i, **_row(c.layer(layer), i)}
        elif layer == "pois" and cell_id >= 0:
            i = int(s.pois.point_data["feature_id"][cell_id])
            info = {"layer": "pois", "row": i, **_row(c.pois, i)}
        elif layer == "field" and self.field is not None:
            info = {"layer": "field", "field": self.field.name, "value": self.field.value_at(x, y),
                    "unit": self.field.unit}
        elif layer == "terrain":
            info = {"layer": "terrain"}
        else:
            return None
        info["x_m"] = round(float(wx), 2)
        info["y_m"] = round(float(wy), 2)
        info["elevation_m"] = round(float(c.elevation_at(np.array([wx]), np.array([wy]))[0]), 2)
        if self.field is not None and info["layer"] != "field":
            v = self.field.value_at(x, y)
            if np.isfinite(v):
                info[f"{self.field.name} ({self.field.unit})"] = round(v, 4)
        return info

    def pick_world(self, wx: float, wy: float) -> dict | None:
        """What is at a map point (city CRS): gate, POI (within 8 m), building, field cell, terrain."""
        c, s = self.city, self.scene
        if c is None:
            return None
        xl, yl = s.to_local(wx, wy)
        pt = shapely.Point(wx, wy)
        ribbons = ((v.layer, v.pick_radius_m) for v in layer_views().values() if v.drawing == "ribbon")
        for layer, radius in (("pois", 8.0), *ribbons):
            if c.has(layer):
                d = c.layer(layer).geometry.distance(pt)
                i = int(np.argmin(d.values))
                if d.values[i] <= radius:
                    out = {"layer": layer, "row": i, **_row(c.layer(layer), i)}
                    return self._with_pos(out, wx, wy)
        if c.has("buildings"):
            hits = np.flatnonzero(c.buildings.geometry.contains(pt).values)
            if len(hits):
                i = int(hits[0])
                return self._with_pos({"layer": "buildings", "row": i, **_row(c.buildings, i)}, wx, wy)
        if self.field is not None:
            v = self.field.value_at(float(xl), float(yl))
            if np.isfinite(v):
                return self._with_pos({"layer": "field", "field": self.field.name, "value": v,
                                       "unit": self.field.unit}, wx, wy)
        return self._with_pos({"layer": "terrain"}, wx, wy)

    def _with_pos(self, info, wx, wy):
        info["x_m"] = round(float(wx), 2)
        info["y_m"] = round(float(wy), 2)
        info["elevation_m"] = round(float(self.city.elevation_at(np.array([wx]), np.array([wy]))[0]), 2)
        return info

    def world_to_display(self, wx: float, wy: float, z_above: float = 0.0):
        """Display pixel (VTK convention) of a map point at terrain height + ``z_above``."""
        s = self.scene
        xl, yl = s.to_local(wx, wy)
        z = float(s.elevation(np.array([xl]), np.array([yl]))[0]) + z_above
        r = self.plotter.renderer
        r.SetWorldPoint(float(xl), float(yl), z, 1.0)
        r.WorldToDisplay()
        dx, dy, _ = r.GetDisplayPoint()
        return int(round(dx)), int(round(dy))


def surface_to_walls(grid):
    """A surface field whose no-data cells (buildings) next to valued cells take the highest
    neighbouring value, so that the drawn surface reaches the walls: the field's quads join cell
    centres, and one corner without data hides the whole quad, which left an empty strip along every
    wall and hid the surface in streets only a cell or two wide. The buildings drawn over it hide the rest."""
    from dataclasses import replace

    v = np.asarray(grid.values, dtype=np.float32)
    gap = np.isnan(v)
    if not gap.any() or gap.all():
        return grid
    p = np.pad(v, 1, constant_values=np.nan)
    with np.errstate(invalid="ignore"):
        near = np.fmax(np.fmax(p[:-2, 1:-1], p[2:, 1:-1]), np.fmax(p[1:-1, :-2], p[1:-1, 2:]))
    return replace(grid, values=np.where(gap, near, v))


LEGEND_ROWS = 16  # entries per legend column
LEGEND_ROW_PX = 24  # a legend row's height at UI scale 1 (16-point text)
LEGEND_CHAR_PX = 8.5  # an average character of its text


def make_legend(entries, font_scale: float = 1.0, x_px: float = 0.0):
    """A legend with dark text and a colour swatch per entry (VTK colours the text of a plain
    vtkLegendBoxActor like its symbol, which makes pale entries unreadable)."""
    import vtk

    leg = vtk.vtkLegendBoxActor()
    leg.SetNumberOfEntries(len(entries))
    for i, (label, colour) in enumerate(entries):
        # A square swatch coloured by its own scalars; entry colour < 0 keeps the text dark.
        sq = pv.Rectangle([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 0.0]]).triangulate()
        sq.cell_data["rgb"] = np.tile(np.array(pv.Color(colour).int_rgb, np.uint8), (sq.n_cells, 1))
        sq.cell_data.active_scalars_name = "rgb"
        leg.SetEntry(i, sq, f" {label}", (-1.0, -1.0, -1.0))
    leg.ScalarVisibilityOn()
    leg.GetEntryTextProperty().SetColor(0.1, 0.1, 0.12)
    leg.UseBackgroundOn()
    leg.SetBackgroundColor(1, 1, 1)
    leg.SetBackgroundOpacity(0.85)
    leg.BorderOff()
    leg.SetPadding(4)
    tp = leg.GetEntryTextProperty()
    tp.SetFontSize(int(16 * font_scale))
    tp.BoldOff()
    tp.ShadowOff()
    # sized in pixels from the top left corner: VTK fits the text to the box, so a box sized as a share
    # of the view made the text shrink with a smaller window (unreadable) and grow with a larger one
    h = (LEGEND_ROW_PX * len(entries) + 2 * 4) * font_scale
    longest = max(len(label) for label, _ in entries)
    w = (LEGEND_CHAR_PX * longest + LEGEND_ROW_PX + 12) * font_scale
    corner = vtk.vtkCoordinate()
    corner.SetCoordinateSystemToNormalizedViewport()
    corner.SetValue(0.01, 0.99)
    leg.GetPositionCoordinate().SetReferenceCoordinate(corner)
    leg.GetPositionCoordinate().SetCoordinateSystemToDisplay()
    leg.GetPositionCoordinate().SetValue(x_px, -h)
    leg.GetPosition2Coordinate().SetCoordinateSystemToDisplay()
    leg.GetPosition2Coordinate().SetValue(w, h)
    return leg


def _row(gdf, i: int) -> dict:
    row = gdf.iloc[i]
    out = {}
    for k, v in row.items():
        if k == "geometry":
            continue
        if isinstance(v, (np.generic,)):
            v = v.item()
        out[k] = v
    geom = row.geometry
    if geom is not None and geom.geom_type.endswith("Polygon"):
        out["area_m2"] = round(float(geom.area), 1)
    return out


def _nice_range(values) -> tuple[float, float]:
    v = np.asarray(values, float)
    if v.size == 0:
        return (0.0, 1.0)
    lo, hi = float(np.nanmin(v)), float(np.nanpercentile(v, 99))
    return (0.0, max(hi, lo + 1.0))


def banded_cmap(clim, bands, colours):
    """A stepped colour map over ``clim``: ``colours[i]`` between ``bands[i-1]`` and ``bands[i]``."""
    from matplotlib.colors import ListedColormap

    vals = np.linspace(clim[0], clim[1], 300)
    idx = np.searchsorted(np.asarray(bands), vals, side="right")
    return ListedColormap([colours[i] for i in idx])


def difference_field(variant, baseline, style: FieldStyle):
    """``variant − baseline`` of one field as a GridField drawn with a diverging colour map around 0.

    Cells where neither side shows anything (both at or below the style's cutoff, or undefined) are
    left out. The colour range is symmetric and fixed over time: half the field's declared range (the
    largest change when none is declared). Returns (grid, style) or None when the grids differ."""
    from twin.core.grid import GridField

    a, b = np.asarray(variant.values, np.float64), np.asarray(baseline.values, np.float64)
    if a.shape != b.shape or (variant.x0, variant.y0, variant.cell_m) != (baseline.x0, baseline.y0, baseline.cell_m):
        return None
    d = np.nan_to_num(a) - np.nan_to_num(b)
    quiet = ~((np.nan_to_num(a) > style.cutoff) | (np.nan_to_num(b) > style.cutoff))
    d[quiet | (np.isnan(a) & np.isnan(b))] = np.nan
    if style.clim:
        top = 0.5 * (style.clim[1] - style.clim[0])
    else:
        top = float(np.nanmax(np.abs(d))) if np.isfinite(d).any() else 0.0
    top = top or 1.0
    name = f"Δ {variant.name}"
    grid = GridField(name, d.astype(np.float32), variant.x0, variant.y0, variant.cell_m, variant.unit,
                     f"{variant.name}: intervention minus baseline")
    dstyle = FieldStyle(name, style.unit or variant.unit, grid.doc, kind="difference", cmap=DIFFERENCE_CMAP,
                        clim=(-top, top))
    return grid, dstyle
