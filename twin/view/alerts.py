"""Evaluating alert rules (``AlertRule``, edited by a scenario's ``[alerts]``) on a run's frames.

``evaluate`` is a pure function of one frame: for each rule, the level (0 ok, 1 amber, 2 red) of
every KPI key or feature it watches, with the place to mark. ``AlertMonitor`` feeds frames in time
order and keeps the log: one entry each time a watched item changes level. Used alike by the
app's tiles, markers and camera tour and by the burnt-in tiles of a video.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from twin.core.features import feature_names
from twin.core.formats import fmt_number as fmt
from twin.core.model_contract import ALERT_LEVELS, AlertRule


@dataclass(frozen=True)
class Alert:
    rule: AlertRule
    key: str  # "" for a plain KPI; the KPI key or the feature id
    level: int  # 0 ok, 1 amber, 2 red
    value: float
    x: float | None = None  # where, in the city CRS (None: nowhere to mark)
    y: float | None = None
    clearing: bool = False  # the value is below the level shown, which holds for the off-delay
    name: str = ""  # the feature's name (with its id where missing or shared); "" for a plain KPI

    @property
    def label(self) -> str:
        what = self.rule.name.replace("_", " ")
        return f"{what} {self.name or self.key}".strip()

    def text(self) -> str:
        unit = f" {self.rule.unit}" if self.rule.unit and self.rule.unit != "-" else ""
        state = ALERT_LEVELS[self.level] + (", clearing" if self.clearing else "")
        return f"{self.label}: {fmt(self.value)}{unit} ({state})"


@dataclass(frozen=True)
class AlertEvent:
    time_s: float
    alert: Alert
    previous: int  # the level before

    @property
    def rising(self) -> bool:
        return self.alert.level > self.previous


class Places:
    """Where features are: each layer's ids at a representative point, looked up once."""

    def __init__(self, city=None):
        self.city = city
        self._cache: dict[str, dict[str, tuple[float, float]]] = {}

    def of(self, layer: str, key: str) -> tuple[float, float] | tuple[None, None]:
        if self.city is None or not layer:
            return None, None
        if layer not in self._cache:
            table = {}
            try:
                gdf = self.city.layer(layer) if self.city.has(layer) else None
            except Exception:  # noqa: BLE001 - an unknown layer only means no marker
                gdf = None
            if gdf is not None and len(gdf) and "id" in gdf:
                pts = gdf.geometry.representative_point()
                table = {str(i): (float(p.x), float(p.y)) for i, p in zip(gdf["id"], pts)}
            self._cache[layer] = table
        return self._cache[layer].get(str(key), (None, None))

    def name(self, layer: str, key: str) -> str:
        """The feature's label (twin.core.features); the key itself when unknown."""
        if not key:
            return ""
        if self.city is None:
            return str(key)
        names = self.__dict__.setdefault("_names", {})
        if not layer:  # a keyed KPI whose rule names no layer: the key may still be a feature's id
            if "" not in names:
                names[""] = {}
                from twin.core.city import layer_specs

                for lay in [n for n, spec in layer_specs().items() if spec.kind != "raster"]:
                    try:
                        for k, v in feature_names(self.city, lay).items():
                            names[""].setdefault(k, v)
                    except Exception:  # noqa: BLE001 - a layer that cannot be read only means ids
                        continue
            return names[""].get(str(key), str(key))
        if layer not in names:
            try:
                names[layer] = feature_names(self.city, layer)
            except Exception:  # noqa: BLE001 - an unknown layer only means the id is shown
                names[layer] = {}
        return names[layer].get(str(key), str(key))


def _field_peak(grid) -> tuple[float | None, float | None]:
    v = np.asarray(grid.values, dtype=float)
    if not np.isfinite(v).any():
        return None, None
    *_, r, c = np.unravel_index(int(np.nanargmax(v)), v.shape)  # a field with levels: (band, row, col)
    xs, ys = grid.cell_centres()
    return float(xs[c]), float(ys[r])


def _kpi_values(kpis: dict, name: str) -> dict[str, float]:
    """{"": value} for a plain KPI, {key: value} for a keyed one (a dict, or ``name.key`` columns)."""
    v = kpis.get(name)
    if isinstance(v, dict):
        return {str(k): float(x) for k, x in v.items() if isinstance(x, (int, float))}
    if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
        return {"": float(v)}
    prefix = name + "."
    return {k[len(prefix):]: float(x) for k, x in kpis.items() if k.startswith(prefix) and isinstance(x, (int, float))}


def evaluate(rules, kpis: dict | None, features: dict | None = None, fields: dict | None = None,
             places: Places | None = None) -> list[Alert]:
    """Every watched item of every rule in one frame (ok ones included), in rule order."""
    kpis, features, fields = kpis or {}, features or {}, fields or {}
    places = places or Places()
    out: list[Alert] = []
    for rule in rules:
        if rule.kpi:
            values = _kpi_values(kpis, rule.kpi)
            for key, v in values.items():
                lvl = rule.level(v)
                x = y = None
                if key and rule.layer:
                    x, y = places.of(rule.layer, key)
                elif rule.field and rule.field in fields and lvl:
                    x, y = _field_peak(fields[rule.field])
                out.append(Alert(rule, key, lvl, v, x, y, name=places.name(rule.layer, key)))
        else:
            frame = features.get(rule.layer)
            if frame is None or rule.value not in frame.values:
                continue
            vals = np.asarray(frame.values[rule.value], dtype=float)
            for fid, v in zip(np.asarray(frame.ids), vals):
                lvl = rule.level(float(v))
                x, y = places.of(rule.layer, str(fid)) if lvl else (None, None)
                out.append(Alert(rule, str(fid), lvl, float(v), x, y, name=places.name(rule.layer, str(fid))))
    return out


CLEAR_AFTER_S = 30.0  # simulated seconds an item must stay below its level before the alert drops


@dataclass
class AlertMonitor:
    """Levels now and the log of changes; frames are fed in time order (``update``).

    A rising level shows and is logged at once; a falling one only after the value has stayed below
    for ``clear_after_s`` simulated seconds (an off-delay: a density that hovers at a threshold does
    not flash the tile and fill the log). Frames earlier than the last one (scrubbing back) show the
    levels of that moment and log nothing."""

    rules: tuple
    places: Places = field(default_factory=Places)
    clear_after_s: float = CLEAR_AFTER_S
    log: list[AlertEvent] = field(default_factory=list)
    current: list[Alert] = field(default_factory=list)
    _levels: dict = field(default_factory=dict)  # (rule, key) -> the level shown
    _below_since: dict = field(default_factory=dict)  # (rule, key) -> when the value fell below it
    _last_t: float = -math.inf

    def evaluate(self, frame) -> list[Alert]:
        return evaluate(self.rules, getattr(frame, "kpis", None), getattr(frame, "features", None),
                        getattr(frame, "fields", None), self.places)

    def update(self, frame) -> list[AlertEvent]:
        """Evaluate a frame; when it is later than the last one, apply the off-delay and log changes."""
        return self.update_alerts(self.evaluate(frame), float(frame.time_s))

    def update_alerts(self, alerts: list[Alert], t: float) -> list[AlertEvent]:
        """``update`` for alerts already evaluated at time ``t`` (live mode: the levels the live run's
        latest forecast starts from)."""
        if t <= self._last_t:
            self.current = alerts  # scrubbing back: the levels then, nothing logged
            return []
        self._last_t = t
        placed = {(c.rule.name, c.key): (c.x, c.y) for c in self.current if c.x is not None}
        events, shown = [], []
        for a in alerts:
            k = (a.rule.name, a.key)
            prev = self._levels.get(k, 0)
            level = a.level
            if level < prev:
                since = self._below_since.setdefault(k, t)
                if t - since < self.clear_after_s:
                    level = prev  # not long enough below: keep showing the higher level
                else:
                    del self._below_since[k]
            else:
                self._below_since.pop(k, None)
            if level != a.level:  # held: marked where it was (a feature stays where it is)
                x, y = (a.x, a.y) if a.x is not None else placed.get(k, self.places.of(a.rule.layer, a.key))
                a = Alert(a.rule, a.key, level, a.value, x, y, clearing=True, name=a.name)
            if level != prev:
                events.append(AlertEvent(t, a, prev))
                self._levels[k] = level
            shown.append(a)
        self.current = shown
        self.log.extend(events)
        return events

    def reset(self) -> None:
        self.log.clear()
        self.current = []
        self._levels.clear()
        self._below_since.clear()
        self._last_t = -math.inf

    @property
    def active(self) -> list[Alert]:
        """Items at amber or red now, worst first (red, then by how far past the threshold)."""
        act = [a for a in self.current if a.level > 0]
        return sorted(act, key=lambda a: (-a.level, -_excess(a)))

    def kpi_level(self, kpi: str) -> int:
        """The worst level of the rules watching a KPI now (an indicator tile's colour)."""
        return max((a.level for a in self.current if a.rule.kpi == kpi), default=0)

    def rule_level(self, name: str) -> tuple[int, Alert | None]:
        mine = [a for a in self.current if a.rule.name == name]
        if not mine:
            return 0, None
        worst = max(mine, key=lambda a: (a.level, _excess(a)))
        return worst.level, worst


def _excess(a: Alert) -> float:
    r = a.rule
    span = abs(r.red - r.amber) or 1.0
    return ((a.value - r.amber) if r.direction == "above" else (r.amber - a.value)) / span
