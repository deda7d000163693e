"""Scenario files (CONTRACT §2): strict loading, so a typo is an error that names the fix."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twin.core.errors import UserError, nearest
from twin.core.params import input_files, plain_value, validate_params
from twin.core.limits import (MAX_DURATION_S, MAX_NESTING, MAX_REPLICATIONS, MAX_SEED, MIN_DURATION_S, bounded_number,
                              check_output_bounds, nesting_levels)

BASELINE = "baseline"
SCENARIO_KEYS = {"name", "model", "models", "city", "duration_s", "seed", "replications", "description"}
TOP_LEVEL = {"scenario", "parameters", "interventions", "experiment", "outputs", "alerts", "coupling"}
INTERVENTION_KEYS = {"name", "description", "parameters", "department"}


@dataclass
class Intervention:
    name: str
    parameters: dict[str, Any]
    description: str = ""
    department: str = ""  # who acts (coupled scenarios group interventions by it); "" = not given


@dataclass
class Scenario:
    name: str
    model: str
    city_path: Path
    duration_s: float
    seed: int
    replications: int
    parameters: dict[str, Any]
    interventions: list[Intervention] = field(default_factory=list)
    experiment: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    path: Path | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    outputs: Any = None  # twin.runs.exports.OutputSettings from the optional [outputs] table
    alerts: tuple = ()  # AlertRules: the model's defaults with the optional [alerts] table's edits
    models: tuple[str, ...] = ()  # a coupled scenario's models ([scenario] models); () for one model

    @property
    def where(self) -> str:
        return str(self.path) if self.path else f"scenario {self.name!r}"

    def model_class(self):
        from agents.registry import get_model

        try:
            if self.models:
                from .coupling import coupled_class

                return coupled_class(tuple(self.models))
            return get_model(self.model)
        except UserError as e:
            raise UserError(f"{self.where}: [scenario] model: {e}") from None

    def variants(self) -> list[str]:
        return [BASELINE] + [i.name for i in self.interventions]

    def intervention(self, name: str) -> Intervention | None:
        if name in (None, BASELINE):
            return None
        for i in self.interventions:
            if i.name == name:
                return i
        names = [i.name for i in self.interventions]
        raise UserError(
            f'{self.where}: no intervention named "{name}"{nearest(name, names)}; '
            f"the variants are: {', '.join(self.variants())}."
        )

    def params_for(self, variant: str | None = None, overrides: dict | None = None) -> dict[str, Any]:
        """Validated parameters of one variant: defaults < [parameters] < intervention < overrides.

        File paths in the scenario are relative to its folder; in ``overrides`` (``--set``) to the
        current folder."""
        cls = self.model_class()
        merged = dict(self.parameters)
        chosen = self.intervention(variant)
        if chosen is not None:
            merged.update(chosen.parameters)
        values = validate_params(cls, merged, self.where, self.base_dir)
        if overrides:
            given = validate_params(cls, overrides, "--set", None)
            values.update({k: given[k] for k in overrides})
        return values

    def ignored_settings(self) -> list[str]:
        """Warnings for parameters set in the scenario (baseline and each intervention) that the
        chosen mode ignores (``Param.used_when``): rain_mm_per_h with rain = "design_storm"."""
        from twin.core.params import ignored_settings

        cls = self.model_class()
        out = ignored_settings(cls, self.parameters, self.params_for(None), f"{self.where} [parameters]")
        for iv in self.interventions:
            out += [w for w in ignored_settings(cls, iv.parameters, self.params_for(iv.name),
                                                f'{self.where} intervention "{iv.name}"') if w not in out]
        return out

    @property
    def base_dir(self) -> Path:
        return self.path.resolve().parent if self.path else Path.cwd()

    def input_files(self, variant: str | None = None, overrides: dict | None = None) -> dict:
        """The files a run of this variant reads through its parameters, with their SHA-256."""
        return input_files(self.model_class(), self.params_for(variant, overrides))

    def load_city(self):
        from twin.core.city import City

        if not hasattr(self, "_city"):
            try:
                self._city = City.load(self.city_path)
            except UserError as e:
                raise UserError(f"{self.where}: [scenario] city: {e}") from None
        return self._city

    def resolved(self, variant: str | None, seed: int, overrides: dict | None = None) -> dict[str, Any]:
        """The exact inputs of one run, as a scenario file that reproduces it on its own."""
        values = {k: plain_value(v) for k, v in self.params_for(variant, overrides).items()}
        if self.models:
            from .coupling import nested_parameters

            return {"scenario": {"name": self.name, "models": list(self.models), "city": str(self.city_path.resolve()),
                                 "duration_s": self.duration_s, "seed": seed, "replications": 1,
                                 "description": f"variant {variant or BASELINE} of "
                                                f"{self.path.resolve() if self.path else repr(self.name)}"},
                    **nested_parameters(values),
                    **({key: dict(self.raw[key]) for key in ("outputs", "alerts") if isinstance(self.raw.get(key), dict)})}
        return {
            "scenario": {
                "name": self.name, "model": self.model, "city": str(self.city_path.resolve()),
                "duration_s": self.duration_s, "seed": seed, "replications": 1,
                "description": f"variant {variant or BASELINE} of "
                               f"{self.path.resolve() if self.path else repr(self.name)}",
            },
            "parameters": values,
            **({key: dict(self.raw[key]) for key in ("outputs", "alerts") if isinstance(self.raw.get(key), dict)}),
        }


def _check_keys(table: dict, allowed: set[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise UserError(f'{where}: unknown key "{key}"{nearest(key, allowed)}; allowed: {", ".join(sorted(allowed))}.')


def _number(table: dict, key: str, where: str, kind=float, minimum=None, default=None, maximum=None, unit=""):
    if key not in table:
        if default is not None:
            return default
        raise UserError(f'{where}: the key "{key}" is missing from [scenario].')
    # Finite and within [minimum, maximum]: nan, inf and 1e308 are refused, naming the bounds.
    return bounded_number(table[key], f"{where}: [scenario] {key}", whole=kind is int, minimum=minimum, maximum=maximum,
                          unit=unit)


def load_scenario(path: str | Path, city: str | Path | None = None) -> Scenario:
    """A scenario file, loaded and checked; ``city`` (``--city DIR``) runs it on another city package
    instead of its [scenario] city (feature parameters are then resolved on that city)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such scenario file. Scenario files are TOML; see scenarios/ for examples.")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path}: not valid TOML: {e}.") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file; a scenario is a TOML file.") from None
    except RecursionError:
        raise UserError(f"{path}: tables or lists are nested too deeply to read; a scenario needs only a few "
                        "levels ([interventions.parameters]).") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read the scenario file ({e.strerror or e}).") from None
    if city is not None:
        if not isinstance(raw.get("scenario"), dict):
            raise UserError(f"{path}: the [scenario] table is missing (name, model, city, duration_s, seed).")
        try:
            raw["scenario"]["city"] = str(Path(city).expanduser().resolve())
        except (OSError, RuntimeError, ValueError) as e:
            raise UserError(f"--city {city}: cannot be used as a folder path ({e}).") from None
    return scenario_from_dict(raw, path)


def scenario_from_dict(raw: dict, path: Path | None = None) -> Scenario:
    where = str(path) if path else "scenario"
    if nesting_levels(raw) > MAX_NESTING:  # later messages repr() values: keep them printable
        raise UserError(f"{where}: tables or lists are nested more than {MAX_NESTING} levels deep; a scenario "
                        "nests at most a few levels ([interventions.parameters]).")
    _check_keys(raw, TOP_LEVEL, where)
    head = raw.get("scenario")
    if not isinstance(head, dict):
        raise UserError(f"{where}: the [scenario] table is missing (name, model, city, duration_s, seed).")
    _check_keys(head, SCENARIO_KEYS, f"{where} [scenario]")
    models: tuple[str, ...] = ()
    if "models" in head:
        from .coupling import check_models

        models = check_models(head, raw, where)
    for key in (("city",) if models else ("model", "city")):
        if not isinstance(head.get(key), str):
            raise UserError(f'{where}: [scenario] needs {key} = "..." (text).')
    if "coupling" in raw and not models:
        raise UserError(f'{where}: [coupling] belongs to a coupled scenario ([scenario] models = ["MODEL", ...]); '
                        "remove it, or list the models.")
    base = path.parent if path else Path.cwd()
    city_path = _city_path(base, head["city"], where)
    params = raw.get("parameters", {})
    if not isinstance(params, dict):
        raise UserError(f"{where}: [parameters] must be a table.")
    if models:
        from .coupling import flat_parameters

        params = flat_parameters(params, models, f"{where} [parameters]", raw.get("coupling", {}))
    interventions = []
    if not isinstance(raw.get("interventions", []), list):
        raise UserError(f'{where}: interventions must be a list of tables, each written [[interventions]] with '
                        'name = "..." and [interventions.parameters].')
    for i, item in enumerate(raw.get("interventions", [])):
        iw = f"{where} [[interventions]] #{i + 1}"
        if not isinstance(item, dict):
            raise UserError(f"{iw}: must be a table with name and [interventions.parameters].")
        _check_keys(item, INTERVENTION_KEYS, iw)
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise UserError(f'{iw}: needs name = "..." (text).')
        if name == BASELINE or name in [x.name for x in interventions]:
            raise UserError(f'{iw}: the name "{name}" is {"reserved" if name == BASELINE else "used twice"}; give each intervention its own name.')
        if not isinstance(item.get("parameters", {}), dict):
            raise UserError(f"{iw}: [interventions.parameters] must be a table of parameter = value.")
        if not isinstance(item.get("department", ""), str):
            raise UserError(f'{iw}: department must be text (who acts), e.g. department = "police".')
        ip = dict(item.get("parameters", {}))
        if models:
            ip = flat_parameters(ip, models, f"{iw} parameters", None, flat_ok=True)
        interventions.append(Intervention(name, ip, str(item.get("description", "")), str(item.get("department", ""))))
    if not isinstance(raw.get("experiment", {}), dict):
        raise UserError(f"{where}: [experiment] must be a table (method, parameters, replications).")
    from twin.scenario.output_settings import parse_outputs

    duration_s = _number(head, "duration_s", where, float, minimum=MIN_DURATION_S, maximum=MAX_DURATION_S, unit="s")
    outputs = parse_outputs(raw.get("outputs"), where, duration_s)
    check_output_bounds(outputs, duration_s, where)
    sc = Scenario(
        name=str(head.get("name", path.stem if path else "scenario")),
        model="+".join(models) if models else head["model"],
        city_path=city_path,
        duration_s=duration_s,
        seed=_number(head, "seed", where, int, minimum=0, default=0, maximum=MAX_SEED),
        replications=_number(head, "replications", where, int, minimum=1, default=1, maximum=MAX_REPLICATIONS),
        parameters=dict(params),
        interventions=interventions,
        experiment=dict(raw.get("experiment", {})),
        description=str(head.get("description", "")),
        path=path,
        raw=raw,
        outputs=outputs,
        models=models,
    )
    # Validate every variant now, so a typo in the last intervention fails before any run starts.
    for v in sc.variants():
        sc.params_for(v)
    from twin.scenario.alert_settings import parse_alerts

    sc.alerts = parse_alerts(raw.get("alerts"), where, sc.model_class())
    if sc.experiment:  # a bad [experiment] table fails at load time too, naming the key
        from twin.scenario.sweeps import sweep_points

        sweep_points(sc)
    return sc


def parse_set(items: list[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` pairs; VALUE is read as TOML (numbers, true, ["a"]) or else as text."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f'--set "{item}": write KEY=VALUE, e.g. --set PARAM=1.2 (citytwin models MODEL lists the parameters).')
        try:
            parsed = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            parsed = value
        except RecursionError:
            parsed = None  # too deep to parse (TOML has no null, so None means just that)
        if parsed is None or nesting_levels(parsed) > MAX_NESTING:
            raise UserError(f'--set "{item[:60]}…": the value is nested too deeply; give a number, '
                            'true/false, text or a list of names.')
        out[key.strip()] = parsed
    return out


def _city_path(base: Path, city: str, where: str) -> Path:
    """[scenario] city as an absolute path (relative to the scenario's folder)."""
    if "\0" in city or not city.strip():
        raise UserError(f'{where}: [scenario] city = {city[:80]!r} is not a folder path; write e.g. '
                        'city = "../gis_data/demo_city".')
    try:
        return (base / city).resolve() if not Path(city).is_absolute() else Path(city)
    except (OSError, RuntimeError) as e:  # a name too long for the file system, a symlink loop
        raise UserError(f"{where}: [scenario] city = {city[:80]!r} cannot be used as a folder path ({e}).") from None
