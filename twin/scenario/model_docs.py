"""Text for `citytwin models`: read from each model's own declarations, so it is never out of date."""
from __future__ import annotations

from agents.registry import MODELS, get_model


def list_models() -> str:
    lines = ["Models (citytwin models NAME for parameters and KPIs; NAME+NAME for a coupled run of several):"]
    for name in sorted(MODELS):
        cls = get_model(name)
        lines.append(f"  {name:20s} {cls.title}")
    return "\n".join(lines)


def model_class(name: str):
    """A registered model, or the coupled model of several joined by "+" (as a scenario's ``models``
    list runs them)."""
    if "+" not in name:
        return get_model(name)
    from twin.scenario.coupling import coupled_class

    names = tuple(n.strip() for n in name.split("+"))
    for n in names:
        get_model(n)  # an unknown one is named in the error, with the models there are
    return coupled_class(names)


def describe_model(name: str) -> str:
    cls = model_class(name)
    lines = [f"{cls.name}: {cls.title}", ""]
    if cls.description:
        lines += [cls.description.strip(), ""]
    lines.append("City layers needed: " + (", ".join(cls.required_layers) or "none")
                 + (f"; optional: {', '.join(cls.optional_layers)}" if cls.optional_layers else ""))
    lines += ["", "Parameters:", f"  {'name':28s} {'unit':8s} {'default':>12s}  {'range':18s} doc"]
    for p in cls.params:
        default = p.default if not isinstance(p.default, list) else "[" + ", ".join(map(str, p.default)) + "]"
        kind = "" if p.kind in (float, int, bool, str) else f"({p.kind_name}) "
        if p.refers_to:  # ids, names or selectors of a layer's features (docs/scenario_file.md)
            kind = f"(features of {p.refers_to}: ids, names or selectors) "
        lines.append(f"  {p.name:28s} {p.unit:8s} {str(default):>12s}  {p.describe_range():18s} {kind}{p.doc}")
    lines += ["", "KPIs:", f"  {'name':28s} {'unit':8s} doc"]
    for k in cls.kpis:
        keyed = "(per key) " if k.keyed else ""
        lines.append(f"  {k.name:28s} {k.unit:8s} {keyed}{k.doc}")
    if cls.field_styles:
        lines += ["", "Fields:"] + [f"  {f.name:28s} {f.unit:8s} {f.doc}" for f in cls.field_styles]
    if cls.feature_styles:
        lines += ["", "Values per feature:"] + [f"  {f.layer + '.' + f.name:28s} {f.unit:8s} {f.doc}"
                                                for f in cls.feature_styles]
    if cls.alerts:
        lines += ["", "Alert rules (edit them in the scenario's [alerts] table):"]
        for r in cls.alerts:
            op = ">=" if r.direction == "above" else "<="
            lines.append(f"  {r.name:28s} {r.source}: amber {op} {r.amber:.4g}, red {op} {r.red:.4g}. {r.doc}")
    for title, items in (("Hands to other models in a coupled run", cls.publishes),
                         ("Takes from other models in a coupled run", cls.accepts)):
        if items:
            lines += ["", f"{title}:"] + [f"  {e.name:28s} {e.unit:8s} {e.doc}" for e in items]
    return "\n".join(lines)
