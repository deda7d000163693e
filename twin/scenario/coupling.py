"""Several models on one city and one clock (docs/coupling.md).

A coupled scenario (``[scenario] models = [...]``) runs as one ``CityModel``: the composite built
here by ``coupled_class``. It holds one member per model, each built exactly as it would be alone
(its own parameters, the scenario's seed and duration), and implements the model contract by
delegating to them, so the runner, compare, branch, state files and exports take it unchanged.

Names: a member's parameters, KPIs, fields, per-feature values, alerts, state arrays and output
files are its own names prefixed with ``<model>.`` (``flood.max_depth_m``, ``flood.max_depth.tif``).
The coupling's own settings are the parameters ``coupling.enabled`` and ``coupling.interval_s``.

Time: the members advance to common sync points, multiples of the sync interval (the least common
multiple of their time quanta, or ``coupling.interval_s``). At each sync point, with the coupling
on, every value a member publishes (``CityModel.publishes``) goes to the members that accept a
quantity of that name (``accepts``): the platform matches declarations, it never names a model.
With the coupling off nothing is handed over, and since pausing never changes a model's
trajectory, every member computes exactly what it computes alone.
"""
from __future__ import annotations

import math
import time
from dataclasses import replace
from fractions import Fraction
from functools import lru_cache
from typing import Any

import numpy as np

from twin.core.errors import UserError
from twin.core.model_contract import CityModel, FeatureFrame, Param, Snapshot, StateSpec
from twin.core.state_file import check_meta

SEP = "."  # <model>.<name>
COUPLING = "coupling"
# matplotlib's tab10: one colour per state of a model that declares none
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")
ID_SHIFT = 40  # agent ids of member k are its own ids + k << 40: unique and stable across frames
COUPLING_PARAMS = (
    Param(f"{COUPLING}.enabled", "-", True, "Hand the values models publish to the models that accept them at every "
          "sync point; false: every model runs exactly as it would alone.", bool),
    Param(f"{COUPLING}.interval_s", "s", 0.0, "Time between sync points; 0: the least common multiple of the models' "
          "time quanta. It must be a whole multiple of each model's quantum.", float, 0.0, 3600.0),
)


def is_coupled(cls) -> bool:
    return bool(getattr(cls, "member_names", ()))


def headline_groups(cls) -> list[tuple[str, str, tuple]]:
    """The headline KPIs a view shows as tiles, grouped by model: ``[(title, prefix, kpis)]``; one
    untitled group for a single model, one per member model (its title, ``"<model>."``) when coupled."""
    heads = tuple(k for k in cls.kpis if k.headline) or tuple(cls.kpis)[:4]
    if not is_coupled(cls):
        return [("", "", heads)]
    groups = []
    for n, m in zip(cls.member_names, cls.member_classes):
        mine = tuple(k for k in heads if k.name.startswith(n + SEP))
        if mine:
            groups.append((m.title or m.name, n + SEP, mine))
    return groups


def member_title(cls, name: str) -> tuple[str, str]:
    """``("Urban flood", "max_depth_m")`` for ``"flood.max_depth_m"`` of a coupled class: the member
    model's title and the name it gives; ``("", name)`` for a single model."""
    for n, m in zip(getattr(cls, "member_names", ()), getattr(cls, "member_classes", ())):
        if name.startswith(n + SEP):
            return m.title or m.name, name[len(n) + len(SEP):]
    return "", name


@lru_cache(maxsize=None)
def coupled_class(names: tuple[str, ...]) -> type:
    """The composite model class of the models ``names`` (registry names), in that order."""
    from agents.registry import get_model

    members = tuple(get_model(n) for n in names)

    def pre(seq, **fields):
        return tuple(replace(x, **{k: f(x) for k, f in fields.items()}) for x in seq)

    params, kpis, fields, features, alerts = [], [], [], [], []
    for n, m in zip(names, members):
        p = f"{n}{SEP}"
        params += pre(m.params, name=lambda x: p + x.name,
                      used_when=lambda x: (p + x.used_when[0], x.used_when[1]) if x.used_when else None)
        kpis += pre(m.kpis, name=lambda x: p + x.name)
        fields += pre(m.field_styles, name=lambda x: p + x.name)
        features += pre(m.feature_styles, name=lambda x: p + x.name)
        alerts += pre(m.alerts, name=lambda x: p + x.name, kpi=lambda x: p + x.kpi if x.kpi else "",
                      value=lambda x: p + x.value if x.value else "", field=lambda x: p + x.field if x.field else "")
    colours = []
    spare = iter(PALETTE * 4)  # for a model that declares no state colours (the view's own palette is per model)
    for m in members:
        colours += list(m.state_colours) or [next(spare) for _ in m.state_names]
    extra = {s.name: s for m in members for s in m.extra_layers}
    clock = next((m.clock_start_s for m in members if m.clock_start_s is not None), None)
    attrs = dict(
        name="+".join(names), title=" + ".join(m.title or m.name for m in members),
        description="Coupled: " + "; ".join(f"{m.name}: {m.description}" for m in members),
        params=tuple(params) + COUPLING_PARAMS, kpis=tuple(kpis),
        required_layers=tuple(dict.fromkeys(x for m in members for x in m.required_layers)),
        optional_layers=tuple(dict.fromkeys(x for m in members for x in m.optional_layers)),
        extra_layers=tuple(extra.values()), field_styles=tuple(fields), feature_styles=tuple(features),
        aoi_layers=tuple(dict.fromkeys(x for m in members for x in m.aoi_layers)),
        state_names=tuple(f"{n}{SEP}{s}" for n, m in zip(names, members) for s in m.state_names),
        state_colours=tuple(colours), alerts=tuple(alerts), clock_start_s=clock,
        member_names=names, member_classes=members,
        publishes=tuple(e for m in members for e in m.publishes),
        accepts=tuple(e for m in members for e in m.accepts),
    )
    return type(f"Coupled[{'+'.join(names)}]", (CoupledModel,), attrs)


def _lcm(values) -> float:
    """Least common multiple of positive times (rational to a microsecond)."""
    out = None
    for v in values:
        f = Fraction(v).limit_denominator(10**6)
        if out is None:
            out = f
        else:
            num = math.lcm(out.numerator * f.denominator, f.numerator * out.denominator)
            out = Fraction(num, out.denominator * f.denominator)
    return float(out) if out is not None else 0.0


def _multiple(t: float, q: float) -> bool:
    k = round(t / q)
    return k >= 1 and abs(k * q - t) <= 1e-9 * max(1.0, t)


class CoupledModel(CityModel):
    """Several models on one clock, as one model (see the module doc). Built by ``coupled_class``."""

    member_names: tuple[str, ...] = ()
    member_classes: tuple[type, ...] = ()

    def __init__(self, city, *, duration_s: float, seed: int, base_dir=None, **params):
        super().__init__(city, duration_s=duration_s, seed=seed, base_dir=base_dir, **params)
        self.members: dict[str, CityModel] = {}
        for n, cls in zip(self.member_names, self.member_classes):
            own = {k[len(n) + 1:]: v for k, v in self.p.items() if k.startswith(n + SEP)}
            try:
                self.members[n] = cls(city, duration_s=duration_s, seed=seed, **own)
            except UserError as e:
                raise UserError(f"model {n} of the coupled run: {e}") from None
        self.coupled = bool(self.p[f"{COUPLING}.enabled"])
        quanta = [m.time_quantum_s for m in self.members.values() if m.time_quantum_s > 0]
        asked = self.p[f"{COUPLING}.interval_s"]
        sync = asked or _lcm(quanta) or min(m.report_interval_s for m in self.members.values())
        for n, m in self.members.items():
            q = m.time_quantum_s
            if q > 0 and not _multiple(sync, q):
                raise UserError(f'parameter "{COUPLING}.interval_s" = {sync:g} s is not a whole multiple of model {n}\'s '
                                f"time step ({q:g} s); choose a multiple of it, or 0 for the least common multiple.")
        self._sync = float(sync)
        self.report_interval_s = self._sync
        self.routes = self._routes()
        self._exchanged = False  # the hand-over at t = 0 (or at the restored time) is done
        # wall-clock and CPU seconds spent in each model and in the hand-overs (benchmarks; never in a result)
        self.wall_s = dict.fromkeys([*self.members, COUPLING], 0.0)
        self.cpu_s = dict.fromkeys([*self.members, COUPLING], 0.0)

    def _routes(self) -> list[tuple[str, str, list[str]]]:
        """(publisher, quantity, acceptors) from the declarations: each accepted quantity comes from
        the one other member that publishes it."""
        routes = []
        for name in dict.fromkeys(e.name for e in self.accepts):
            pubs = [n for n, m in self.members.items() if any(e.name == name for e in m.publishes)]
            accs = [n for n, m in self.members.items() if any(e.name == name for e in m.accepts)]
            if len(pubs) > 1:
                raise UserError(f"coupled run: models {', '.join(pubs)} all publish {name!r}; a quantity may have one "
                                "publisher in a coupled scenario.")
            if pubs:
                accs = [a for a in accs if a != pubs[0]]
                if accs:
                    routes.append((pubs[0], name, accs))
        return routes

    # -- time ---------------------------------------------------------------------------------------
    @property
    def time_quantum_s(self) -> float:
        return self._sync

    @property
    def finished(self) -> bool:
        return all(m.finished for m in self.members.values())

    @property
    def done(self) -> bool:
        if self.time >= self.duration_s - 1e-9 * max(1.0, self.duration_s):
            return True
        return all(m.done for m in self.members.values())

    @property
    def next_report_s(self) -> float:
        due = [m.next_report_s for m in self.members.values() if not m.done]
        # never behind the clock: a driver advancing to it always moves on
        return max(min(due), self.time + self._sync) if due else self.duration_s

    @property
    def rows_recorded(self) -> int:
        return sum(m.rows_recorded for m in self.members.values())

    def advance_to(self, t_s: float) -> None:
        if not self._exchanged:
            for m in self.members.values():
                m.advance_to(0.0)  # each records its row at t = 0
            self._exchange(restored=False)
        t = self.on_grid(t_s)
        q = self._sync
        while self.time < t and not math.isclose(self.time, t, abs_tol=1e-9 * max(1.0, t)) and not self.done:
            nxt = min(t, (math.floor(self.time / q + 1e-9) + 1) * q, self.duration_s)
            for n, m in self.members.items():
                t0, c0 = time.perf_counter(), time.process_time()
                m.advance_to(nxt)
                self.wall_s[n] += time.perf_counter() - t0
                self.cpu_s[n] += time.process_time() - c0
            self.time = nxt
            self.steps += 1
            t0, c0 = time.perf_counter(), time.process_time()
            self._exchange(restored=False)
            self.wall_s[COUPLING] += time.perf_counter() - t0
            self.cpu_s[COUPLING] += time.process_time() - c0

    def _exchange(self, restored: bool) -> None:
        self._exchanged = True
        if not self.coupled:
            return
        for pub, name, accs in self.routes:
            value = self.members[pub].publish(name)
            for a in accs:
                self.members[a].accept(name, value, restored=restored)

    # -- reading --------------------------------------------------------------------------------------
    def _prefixed(self, values: dict, skip=()) -> dict[str, Any]:
        return {f"{n}{SEP}{k}": v for n, vals in values.items() for k, v in vals.items() if k not in skip}

    def current_kpis(self) -> dict[str, Any]:
        return self._prefixed({n: m.current_kpis() for n, m in self.members.items()})

    def final_kpis(self) -> dict[str, Any]:
        return self._prefixed({n: m.final_kpis() for n, m in self.members.items()})

    def timeseries(self):
        """The members' series side by side (``<model>.<kpi>`` columns), one row per time any of
        them recorded; a member between its rows (or after its end) keeps its last values."""
        import pandas as pd

        out = None
        for n, m in self.members.items():
            df = m.timeseries()
            df = df.rename(columns={c: f"{n}{SEP}{c}" for c in df.columns if c != "time_s"})
            out = df if out is None else pd.merge(out, df, on="time_s", how="outer", sort=True)
        return out.sort_values("time_s").ffill().reset_index(drop=True)

    def snapshot(self) -> Snapshot:
        return self._merge({n: m.snapshot() for n, m in self.members.items()})

    def agents(self) -> Snapshot:
        return self._merge({n: m.agents() for n, m in self.members.items()})

    def _merge(self, snaps: dict[str, Snapshot]) -> Snapshot:
        pos, states, ids, z, level, fields, kpis = [], [], [], [], [], {}, {}
        offset = 0
        any_z = any(s.z is not None for s in snaps.values())
        walk = self.member_with_walkable_areas()
        for k, (n, s) in enumerate(snaps.items()):
            cnt = len(s.ids)
            pos.append(np.asarray(s.positions, np.float64).reshape(-1, 2))
            states.append(s.states.astype(np.int16) + offset)
            ids.append(s.ids.astype(np.int64) + (np.int64(k) << ID_SHIFT))
            z.append(s.z if s.z is not None else np.zeros(cnt))
            level.append(s.level if n == walk and s.level is not None else np.full(cnt, -1, np.int64))
            offset += len(self.members[n].state_names)
            fields.update({f"{n}{SEP}{name}": replace(g, name=f"{n}{SEP}{name}") for name, g in s.fields.items()})
            kpis.update({f"{n}{SEP}{key}": v for key, v in s.kpis.items()})
        return Snapshot(time_s=self.time_s, positions=np.concatenate(pos) if pos else np.zeros((0, 2)),
                        states=np.concatenate(states).astype(np.int8), state_names=self.state_names,
                        ids=np.concatenate(ids), fields=fields, kpis=kpis,
                        features=merge_features({n: s.features for n, s in snaps.items()}),
                        z=np.concatenate(z).astype(np.float64) if any_z else None,
                        level=np.concatenate(level).astype(np.int64) if walk else None)

    def member_with_walkable_areas(self) -> str | None:
        """The member whose pedestrians' levels ``walkable_areas`` describes (the first that has any)."""
        if not hasattr(self, "_walk"):
            self._walk = next((n for n, m in self.members.items() if m.walkable_areas()), None)
        return self._walk

    def walkable_areas(self) -> dict:
        n = self.member_with_walkable_areas()
        return self.members[n].walkable_areas() if n else {}

    def field_values(self, names, snapshot: Snapshot) -> dict:
        out = {}
        for n, m in self.members.items():
            own = [x[len(n) + 1:] for x in names if x.startswith(n + SEP)]
            if own:
                snap = Snapshot(snapshot.time_s, np.zeros((0, 2)), np.zeros(0, np.int8), (), np.zeros(0, np.int64),
                                fields={k[len(n) + 1:]: v for k, v in snapshot.fields.items() if k.startswith(n + SEP)})
                for k, g in m.field_values(own, snap).items():
                    out[f"{n}{SEP}{k}"] = replace(g, name=f"{n}{SEP}{k}")
        return out

    def rasters(self) -> dict:
        return {f"{n}{SEP}{k}": replace(g, name=f"{n}{SEP}{k}")
                for n, m in self.members.items() for k, g in m.rasters().items()}

    def tables(self) -> dict:
        return {f"{n}{SEP}{stem}": layers for n, m in self.members.items() for stem, layers in m.tables().items()}

    # -- state ----------------------------------------------------------------------------------------
    def _member_of(self, path: str) -> tuple[str, CityModel, str]:
        n, _, sub = path.partition(SEP)
        if n not in self.members or not sub:
            raise UserError(f"state entry {path!r} belongs to none of the models {', '.join(self.members)}.")
        return n, self.members[n], sub

    def get_state(self):
        arrays, meta = super().get_state()
        meta["members"] = {}
        for n, m in self.members.items():
            a, mm = m.get_state()
            arrays.update({f"{n}{SEP}{k}": v for k, v in a.items()})
            meta["members"][n] = mm
        return arrays, meta

    def state_array_bounds(self) -> dict:
        return {f"{n}{SEP}{k}": v for n, m in self.members.items() for k, v in m.state_array_bounds().items()}

    def _state_spec(self, path: str) -> StateSpec:
        n, m, sub = self._member_of(path)
        return replace(m._state_spec(sub), path=path)

    def state_shape_allowed(self, spec: StateSpec, shape: tuple, fresh: tuple) -> bool:
        _, m, sub = self._member_of(spec.path)
        return m.state_shape_allowed(replace(spec, path=sub), shape, fresh)

    def state_shape_text(self, spec: StateSpec, fresh: tuple) -> str:
        _, m, sub = self._member_of(spec.path)
        return m.state_shape_text(replace(spec, path=sub), fresh)

    def set_state(self, arrays: dict, meta: dict, where: str = "saved state") -> None:
        members = meta.get("members")
        if not isinstance(members, dict) or set(members) != set(self.members):
            raise UserError(f"{where}: model.members must hold the states of {', '.join(self.members)}; the file was "
                            "written by another coupled scenario or edited.")
        for n, m in self.members.items():
            mm = members[n]
            context = {"format": "citytwin-state/1", "model_name": n, "city_path": "", "variant": "",
                       "city_fingerprint": "", "scenario": {}, "overrides": {}, "seed": self.seed,
                       "duration_s": self.duration_s, "time_s": mm.get("time_s") if isinstance(mm, dict) else None,
                       "model": mm}
            check_meta(context, f"{where} (model {n})")
            if mm["time_s"] > meta["time_s"] + 1e-9:
                raise UserError(f"{where}: model {n} is at t = {mm['time_s']:g} s, after the coupled run's "
                                f"{meta['time_s']:g} s; the file was edited.")
            own = {k[len(n) + 1:]: v for k, v in arrays.items() if k.startswith(n + SEP)}
            m.set_state(own, mm, f"{where} (model {n})")
        self._set_clock(meta, where)
        self._exchange(restored=True)

    def reseed(self, entropy) -> None:
        super().reseed(entropy)
        for k, m in enumerate(self.members.values()):
            m.reseed(tuple(entropy) + (k,))


def merge_features(per_model: dict[str, dict[str, FeatureFrame]]) -> dict[str, FeatureFrame]:
    """Per-feature values of several models on the same layers as one frame per layer: the union
    of their features (in order of first appearance), values named ``<model>.<value>``, NaN where a
    model says nothing of a feature."""
    layers: dict[str, list[tuple[str, FeatureFrame]]] = {}
    for n, frames in per_model.items():
        for layer, fr in frames.items():
            layers.setdefault(layer, []).append((n, fr))
    out = {}
    for layer, items in layers.items():
        ids = list(dict.fromkeys(str(i) for _, fr in items for i in fr.ids))
        pos = {i: k for k, i in enumerate(ids)}
        values = {}
        for n, fr in items:
            rows = np.array([pos[str(i)] for i in fr.ids], dtype=np.int64)
            for name, v in fr.values.items():
                col = np.full(len(ids), np.nan)
                col[rows] = np.asarray(v, dtype=np.float64)
                values[f"{n}{SEP}{name}"] = col
        out[layer] = FeatureFrame(np.array(ids, dtype=object), values)
    return out


# -- the scenario file's coupled form ------------------------------------------------------------------
def check_models(head: dict, raw: dict, where: str) -> tuple[str, ...]:
    """``[scenario] models``: a list of distinct registered model names (and no ``model`` beside it)."""
    from agents.registry import get_model

    models = head["models"]
    if "model" in head:
        raise UserError(f'{where}: [scenario] has both model and models; write models = ["MODEL", ...] for a coupled '
                        'scenario or model = "..." for one model.')
    if (not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models)
            or len(set(models)) != len(models)):
        raise UserError(f'{where}: [scenario] models must be a list of distinct model names, e.g. models = ["MODEL_A", '
                        f'"MODEL_B"] (citytwin models lists them), not {str(models)[:80]}.')
    for m in models:
        try:
            get_model(m)
        except UserError as e:
            raise UserError(f"{where}: [scenario] models: {e}") from None
    return tuple(models)


def flat_parameters(table: dict, models, where: str, coupling: dict | None, flat_ok: bool = False) -> dict:
    """``[parameters.<model>]`` tables (and ``[coupling]``) as flat ``<model>.<name>`` keys.
    ``flat_ok``: the table may also hold such keys directly (``"flood.mobile_pumps_xy" = [...]``),
    as interventions and ``--set`` write them."""
    out: dict[str, Any] = {}
    known = (*models, COUPLING)
    for key, value in table.items():
        if key in known and isinstance(value, dict):
            out.update({f"{key}{SEP}{k}": v for k, v in value.items()})
        elif flat_ok and key.partition(SEP)[0] in known and key.partition(SEP)[2]:
            out[key] = value
        else:
            hint = (f'write [parameters.{models[0]}] tables' if not flat_ok else
                    f'write "<model>.<parameter>" = value, e.g. "{models[0]}.<parameter>"')
            raise UserError(f'{where}: "{key}" is not one of the models {", ".join(models)}; in a coupled scenario '
                            f"every parameter belongs to a model: {hint}.")
    if coupling is not None:
        if not isinstance(coupling, dict):
            raise UserError(f"{where}: [coupling] must be a table (enabled = true|false, interval_s = seconds).")
        out.update({f"{COUPLING}{SEP}{k}": v for k, v in coupling.items()})
    return out


def nested_parameters(values: dict) -> dict:
    """Flat ``<model>.<name>`` values back into ``[coupling]`` and ``[parameters.<model>]`` tables."""
    params: dict[str, dict] = {}
    coupling: dict = {}
    for key, v in values.items():
        n, _, name = key.partition(SEP)
        (coupling if n == COUPLING else params.setdefault(n, {}))[name] = v
    return {"coupling": coupling, "parameters": params}
