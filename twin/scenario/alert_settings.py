"""The optional ``[alerts]`` table of a scenario: the command room's alert thresholds.

A model declares default rules (``CityModel.alerts``, ``twin.core.model_contract.AlertRule``); the
scenario edits them by name, switches them off, or adds its own:

```toml
[alerts.density_los]            # a model's rule, by name: change what you give
amber = 1.5
red = 2.5

[alerts.gate_los]
enabled = false                 # switched off

[alerts.slow_egress]            # a new rule: a KPI ...
kpi = "mean_egress_time_s"
amber = 240
red = 420

[alerts.busy_stop]              # ... or a per-feature value (a declared FeatureStyle)
layer = "pois"
value = "waiting"
amber = 100
red = 200
direction = "above"             # or "below": low values alert (e.g. a pump's capacity)
```

Parsed when the scenario is loaded, against the model's declarations, so a typo fails before any
run starts; ``twin.view.alerts`` evaluates the rules on a run's frames.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from twin.core.errors import UserError, nearest
from twin.core.model_contract import AlertRule

RULE_KEYS = {"kpi", "layer", "value", "field", "amber", "red", "direction", "doc", "unit", "enabled"}
DIRECTIONS = ("above", "below")


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_rule(rule: AlertRule, model_cls, where: str) -> AlertRule:
    """A rule's source, field, thresholds and direction checked against the model's declarations."""
    kpis = {k.name: k for k in model_cls.kpis}
    features = {(f.layer, f.name): f for f in model_cls.feature_styles}
    fields = {f.name for f in model_cls.field_styles}
    if bool(rule.kpi) == bool(rule.value):
        raise UserError(f'{where}: give either kpi = "NAME" (a KPI) or layer = "LAYER" with value = "NAME" (a '
                        f"per-feature value), not {'both' if rule.kpi else 'neither'}.")
    if rule.kpi and rule.kpi not in kpis:
        raise UserError(f'{where}: kpi "{rule.kpi}"{nearest(rule.kpi, kpis)} is not a KPI of model {model_cls.name}; '
                        f"its KPIs are: {', '.join(kpis)}.")
    if rule.value and (rule.layer, rule.value) not in features:
        have = ", ".join(f"{a}.{b}" for a, b in features) or "none"
        raise UserError(f'{where}: layer = "{rule.layer}", value = "{rule.value}" is not a per-feature value of model '
                        f"{model_cls.name}; it reports: {have}.")
    if rule.field and rule.field not in fields:
        raise UserError(f'{where}: field "{rule.field}"{nearest(rule.field, fields)} is not a field of model '
                        f"{model_cls.name}; its fields are: {', '.join(sorted(fields)) or 'none'}.")
    if rule.direction not in DIRECTIONS:
        raise UserError(f'{where}: direction must be "above" or "below", not {rule.direction!r}.')
    for key in ("amber", "red"):
        if not _number(getattr(rule, key)):
            raise UserError(f"{where}: {key} must be a finite number, not {getattr(rule, key)!r}.")
    if (rule.direction == "above" and rule.amber > rule.red) or (rule.direction == "below" and rule.amber < rule.red):
        raise UserError(f"{where}: with direction = \"{rule.direction}\" the amber threshold ({rule.amber:g}) must come "
                        f"before the red one ({rule.red:g}): amber {'<=' if rule.direction == 'above' else '>='} red.")
    if not rule.unit:
        unit = kpis[rule.kpi].unit if rule.kpi else features[(rule.layer, rule.value)].unit
        rule = replace(rule, unit=unit)
    return rule


def parse_alerts(table: Any, where: str, model_cls) -> tuple[AlertRule, ...]:
    """The model's default rules with the ``[alerts]`` table's edits applied (and checked)."""
    rules = {r.name: r for r in model_cls.alerts}
    checked = {name: f"model {model_cls.name}: alert rule {name}" for name in rules}
    if table is None:
        table = {}
    w = f"{where} [alerts]"
    if not isinstance(table, dict):
        raise UserError(f"{w}: must be a table of rules, e.g. [alerts.RULE] with amber = 1.5 (the rules: citytwin models MODEL).")
    for name, body in table.items():
        rw = f"{w} {name}"
        if not isinstance(body, dict):
            raise UserError(f"{rw}: each rule is a table, e.g. [alerts.{name}] with amber = ... and red = ...; the "
                            f"model's rules are: {', '.join(rules) or 'none'}.")
        for key in body:
            if key not in RULE_KEYS:
                raise UserError(f'{rw}: unknown key "{key}"{nearest(key, RULE_KEYS)}; allowed: '
                                f"{', '.join(sorted(RULE_KEYS))}.")
        enabled = body.get("enabled", True)
        if not isinstance(enabled, bool):
            raise UserError(f"{rw}: enabled must be true or false, not {enabled!r}.")
        for key in ("kpi", "layer", "value", "field", "direction", "doc", "unit"):
            if key in body and not isinstance(body[key], str):
                raise UserError(f'{rw}: {key} must be text, e.g. {key} = "...", not {body[key]!r}.')
        changes = {k: v for k, v in body.items() if k != "enabled"}
        if name in rules:
            rule = replace(rules[name], **changes)
        else:
            if not enabled:
                raise UserError(f"{rw}: there is no rule {name!r} to switch off{nearest(name, rules)}; the model's "
                                f"rules are: {', '.join(rules) or 'none'}.")
            missing = [k for k in ("amber", "red") if k not in body]
            if missing:
                raise UserError(f"{rw}: a new rule needs {' and '.join(missing)} (thresholds) and kpi = \"NAME\" or "
                                f"layer + value; the model's own rules are: {', '.join(rules) or 'none'}.")
            rule = AlertRule(name=name, doc=str(body.get("doc", "")), amber=body["amber"], red=body["red"],
                             **{k: v for k, v in changes.items() if k not in ("amber", "red", "doc")})
        if not enabled:
            rules.pop(name)
            continue
        rules[name], checked[name] = rule, rw
    return tuple(check_rule(r, model_cls, checked[name]) for name, r in rules.items())
