"""Features by id, name or selector, and features by name in everything a person reads.

A parameter that names features of a city layer declares it (``Param(..., refers_to="gates")``,
``"pois:attraction"`` for the POIs of one kind). Its items are then any of

* an **id** of the layer (``"osm_node_302561539"``, ``"N1"``);
* a **name**, when exactly one feature of the layer has it (``"Kiasma"``);
* a **selector**: ``key=value`` pairs, all of which must hold (``"kind=escalator level=1"``,
  ``"class=museum"``); any column of the layer is a key, ``level`` also matches a connector's
  ``from_level`` or ``to_level``, and ``value`` may list alternatives (``"class=museum|castle"``);
  quote a value with spaces (``"name='Guild Hall'"``).

Selectors let a scenario travel to another city (``citytwin run SCENARIO --city DIR``). Every item
must match at least one feature: an id, name or selector that matches nothing is a ``UserError``
that lists what the city has, so that an intervention never runs as a silent no-op.

Names: :func:`feature_names` gives ``{id: label}`` for a layer, the label being the feature's
name, with its id beside it where the name is shared (``"Exit (osm_way_12)"``), the id where it has
none.
"""
from __future__ import annotations

from collections import Counter
from typing import Any

from .errors import UserError, nearest

LIST_SHOWN = 25  # features listed in an error message before "and N more"
HIDDEN_COLUMNS = {"geometry"}


def split_ref(refers_to: str) -> tuple[str, tuple[str, ...]]:
    """``"pois:attraction,hotel"`` -> ("pois", ("attraction", "hotel"))."""
    layer, _, kinds = refers_to.partition(":")
    return layer.strip(), tuple(k.strip() for k in kinds.split(",") if k.strip())


def layer_frame(city, layer: str, model_cls=None):
    """A city layer by name: one of the contract's, or an extra layer the model declares; None when absent."""
    try:
        return city.layer(layer)  # the platform's layers and those the registered models declare
    except KeyError:
        pass
    for spec in getattr(model_cls, "extra_layers", ()) or ():
        if spec.name == layer and spec.kind != "raster":
            return city.extra_layer(spec)
    return None


def features_of(city, refers_to: str, model_cls=None) -> list[dict[str, Any]]:
    """The features a declaration refers to, as plain dicts of their columns (``id`` as text)."""
    layer, kinds = split_ref(refers_to)
    gdf = layer_frame(city, layer, model_cls)
    if gdf is None or not len(gdf):
        return []
    if kinds and "kind" in gdf.columns:
        gdf = gdf[gdf["kind"].astype(str).isin(kinds)]
    cols = [c for c in gdf.columns if c not in HIDDEN_COLUMNS]
    out = []
    for row in gdf[cols].itertuples(index=False, name=None):
        f = dict(zip(cols, row))
        f["id"] = str(f.get("id", ""))
        out.append(f)
    return out


def _name(f: dict) -> str:
    v = f.get("name")
    if v is None or (isinstance(v, float) and v != v):
        return ""
    return str(v).strip()


def labels(features: list[dict]) -> dict[str, str]:
    """``{id: label}``: the name, with the id where the name is shared by several; the id where the
    feature has no name."""
    counts = Counter(_name(f) for f in features)
    out = {}
    for f in features:
        n = _name(f)
        out[f["id"]] = f["id"] if not n else (f"{n} ({f['id']})" if counts[n] > 1 else n)
    return out


def feature_names(city, layer: str, model_cls=None) -> dict[str, str]:
    """``{id: label}`` of every feature of a layer (see :func:`labels`)."""
    return labels(features_of(city, layer, model_cls))


def name_table(city, model_cls) -> dict[str, str]:
    """``{id: label}`` over every vector layer a model reads (its declared layers, contract and extra);
    an id used in two layers keeps the first layer's label."""
    layers = list(dict.fromkeys(tuple(model_cls.required_layers) + tuple(model_cls.optional_layers)
                                + tuple(s.name for s in model_cls.extra_layers if s.kind != "raster")))
    out: dict[str, str] = {}
    for layer in layers:
        if layer == "buildings":  # thousands, rarely named, never keys of a KPI
            continue
        try:
            for k, v in feature_names(city, layer, model_cls).items():
                out.setdefault(k, v)
        except (KeyError, UserError):
            continue
    return out


def what_there_is(features: list[dict], what: str) -> str:
    if not features:
        return f"this city has no {what}"
    shown = [f"{lab}" + ("" if lab == fid or f"({fid})" in lab else f" ({fid})")
             for fid, lab in list(labels(features).items())[:LIST_SHOWN]]
    more = f" and {len(features) - LIST_SHOWN} more" if len(features) > LIST_SHOWN else ""
    return f"the {what} are: {', '.join(shown)}{more}"


def _matches(f: dict, key: str, wanted: tuple[str, ...]) -> bool:
    if key == "level" and "level" not in f and "from_level" in f:
        return any(str(f.get(k)) in wanted for k in ("from_level", "to_level"))
    v = f.get(key)
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v) in wanted


def _selector_hint(features: list[dict], keys: list[str]) -> str:
    """The columns to select by, those holding words first (``class``, ``kind``: what a scenario
    that travels between cities writes), with an example from the features themselves."""
    cols = [k for k in keys if k not in ("id", "name")]
    words = [k for k in cols if any(isinstance(f.get(k), str) and f.get(k) for f in features)]
    cols = (words + [k for k in cols if k not in words])[:6]
    if not cols:
        return ""
    if words:
        value = next(f[words[0]] for f in features if isinstance(f.get(words[0]), str) and f.get(words[0]))
        return f'{", ".join(cols)} (e.g. "{words[0]}={value}")'
    return f'{", ".join(cols)} (e.g. "{cols[0]}=...")'


def resolve(items, features: list[dict], param: str, what: str) -> list[str]:
    """Ids of the features ``items`` name (ids, unique names or selectors), in order, without repeats.

    ``what`` names the features in messages (the layer, or the declared kinds). Every item must
    match: an id, name or selector that matches nothing is a UserError listing what there is, also
    beside items that do match (``["kind=a", "kind=b"]`` on a city without kind a): that item would
    do nothing, so the variant would not be what its name says. A scenario meant for several
    cities selects with alternatives that each city has (``"kind=a|b"``)."""
    unmatched: list[str] = []
    ids = [f["id"] for f in features]
    idset = set(ids)
    by_name: dict[str, list[str]] = {}
    for f in features:
        if _name(f):
            by_name.setdefault(_name(f), []).append(f["id"])
    keys = sorted({k for f in features for k in f} | ({"level"} if any("from_level" in f for f in features) else set()))
    out: list[str] = []
    for item in items:
        text = str(item).strip()
        if "=" not in text:
            if text in idset:
                out.append(text)
            elif len(by_name.get(text, ())) == 1:
                out.append(by_name[text][0])
            elif text in by_name:
                raise UserError(f'parameter {param}: "{text}" is the name of {len(by_name[text])} {what} '
                                f'({", ".join(by_name[text])}); give their ids.')
            else:
                hint = nearest(text, list(idset) + list(by_name))
                raise_by = _selector_hint(features, keys)
                by = f" Or select them by {raise_by}." if raise_by else ""
                raise UserError(f'parameter {param}: none of the {what} has the id or name "{text}"{hint}; '
                                f'{what_there_is(features, what)}.{by}')
            continue
        conds: dict[str, tuple[str, ...]] = {}
        for part in _selector_parts(text, param):
            k, sep, v = part.partition("=")
            if not sep or not k or not v:
                raise UserError(f'parameter {param}: "{text}" is not a selector; write key=value pairs such as '
                                f'"kind=KIND level=1" (either of several values with |: "kind=A|B").')
            if features and k not in keys:
                raise UserError(f'parameter {param}: "{text}" selects by "{k}"{nearest(k, keys)}, which the {what} '
                                f'of this city do not have; they can be selected by {", ".join(keys)}.')
            conds[k] = tuple(v.split("|"))
        found = [f["id"] for f in features if all(_matches(f, k, v) for k, v in conds.items())]
        if not found:
            unmatched.append(text)
        out.extend(found)
    if unmatched:
        which = (f'the selector "{unmatched[0]}" matches none' if len(unmatched) == 1 else
                 "the selectors " + ", ".join(f'"{u}"' for u in unmatched) + " match none")
        others = f" (the other items select {len(set(out))})" if out else ""
        raise UserError(f"parameter {param}: {which} of the {what} of this city{others}; "
                        f"{what_there_is(features, what)}.")
    return list(dict.fromkeys(out))


def _selector_parts(text: str, param: str) -> list[str]:
    """``kind=escalator level=1`` or ``name='Guild Hall'``: pairs split at spaces or commas, quotes kept together."""
    import shlex

    lex = shlex.shlex(text, posix=True)
    lex.whitespace_split = True
    lex.whitespace += ","
    try:
        return list(lex)
    except ValueError:
        raise UserError(f'parameter {param}: "{text}" has an unclosed quote; write e.g. "name=\'Guild Hall\'".') from None


def check_params(model_cls, params: dict, city, where: str) -> dict[str, list[str]]:
    """Every declared feature parameter of ``params`` resolved on ``city``: ``{name: ids}``.
    Raises a UserError (prefixed with ``where``) for the first item that matches nothing."""
    out = {}
    for p in model_cls.params:
        ref = getattr(p, "refers_to", None)
        if not ref or not params.get(p.name):
            continue
        items = [i for i in params[p.name] if not _is_literal(i)]
        feats = features_of(city, ref, model_cls)
        try:
            out[p.name] = resolve(items, feats, p.name, describe_ref(ref))
        except UserError as e:
            raise UserError(f"{where}: {e}") from None
    return out


def describe_ref(refers_to: str) -> str:
    layer, kinds = split_ref(refers_to)
    if not kinds:
        return layer
    return " or ".join(k if k.endswith("s") else k + "s" for k in kinds) if layer == "pois" else \
        f"{layer} of kind {', '.join(kinds)}"


def _is_literal(item) -> bool:
    """Items that are not references (a WKT geometry given where an id could also be)."""
    head = str(item).strip().split("(")[0].strip().upper()
    return head in {"POINT", "LINESTRING", "MULTILINESTRING", "POLYGON", "MULTIPOLYGON"}
