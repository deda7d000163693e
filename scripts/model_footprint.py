"""Print each registered model's footprint: the code lines outside its folder that know it.

A model plugs into the platform by its declarations; the only line outside ``agents/<model>/``,
the tests and the docs that should name it is its line in ``agents/registry.py``. This script reads
each model's declarations and finds, in the platform's Python code (``twin/``, ``app/``,
``citytwin/``, ``scripts/`` and the files directly in ``agents/``), the lines that

- import the model's package or name it in a string (``agents.station``, ``agents/station``),
- hold a string equal to a word the model declares: its name, the city layers it defines or reads
  as extra layers (``gates``), the layers it draws (``LayerView``), its building uses and POI kinds,
- or read one of its layers as an attribute (``city.gates``).

Docstrings and comments do not count (they document; they do not decide), nor do the OSM tag
values of a ``BuildingUse`` (``building=school`` is a public building, not the flood's POI kind), nor
words on a line marked ``# not a model word: <what it means there>``. ``--root DIR`` scans
another checkout (e.g. an older commit) with the declarations of this one.

    python scripts/model_footprint.py            # one block per model; exit 1 when a footprint
                                                 # is more than its registry line
"""
from __future__ import annotations

import argparse
import ast
import re
import sys
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("twin", "app", "citytwin", "scripts")
# On a line of platform code, a word that is spelled like a model's but means something else (the
# import's source files, not the station's sources layer) carries this comment, with the reason.
MARK = "# not a model word"


def model_words(cls) -> tuple[str, set[str], set[str]]:
    """(package, exact words, layer names) a model declares (a spec that adds columns to one of the
    platform's layers, such as the tourists' POI capacity, does not make ``pois`` the model's word)."""
    from twin.core.city import LAYERS

    package = cls.__module__.rpartition(".")[0]
    layers = ({s.name for s in (*cls.city_layers, *cls.extra_layers) if s.kind == "vector"}
              | {v.layer for v in cls.layer_views}) - set(LAYERS)
    words = ({cls.name} | layers | {u.name for u in cls.building_uses} | {k.name for k in cls.poi_kinds}
             | {k.name for k in cls.kpis} | {f.name for f in cls.field_styles} | {f.name for f in cls.feature_styles}
             | {a.name for a in cls.alerts} | {p.name for p in cls.params})
    return package, words, layers


def platform_files(root: Path) -> list[Path]:
    files = [p for d in SCANNED for p in sorted((root / d).rglob("*.py"))]
    files += sorted((root / "agents").glob("*.py"))
    return [p for p in files if p.name != Path(__file__).name]


def _docstrings(tree) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                out.add(id(first.value))
    return out


def _osm_values(tree) -> set[int]:
    """The strings of ``BuildingUse(..., osm=(...))``: OpenStreetMap tag values, another namespace
    (``building=school`` is a public building, not the flood model's POI kind)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "BuildingUse":
            args = node.args[3:] + [k.value for k in node.keywords if k.arg == "osm"]
            out |= {id(c) for a in args for c in ast.walk(a) if isinstance(c, ast.Constant)}
    return out


@cache
def _parsed(path: Path):
    """(tree, its nodes, ids of strings that do not count, marked lines) of a file, parsed once."""
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    other_word = {n for n, line in enumerate(text.splitlines(), 1) if MARK in line}
    return tree, list(ast.walk(tree)), _docstrings(tree) | _osm_values(tree), other_word


def _code_words(text: str) -> set[str]:
    """The words of a message that read as code (``max_depth``, ``[alerts.density_los]``): with an
    underscore, quoted, or after ``=``/``.``/``[``; plain prose words are left to the reader."""
    return (set(re.findall(r"[A-Za-z]\w*_\w+", text)) | set(re.findall(r"[\"'`]([A-Za-z]\w*)[\"'`]", text))
            | set(re.findall(r"[=.\[]\s*([A-Za-z]\w*)", text)))


def footprint(path: Path, package: str, words: set[str], layers: set[str]) -> list[int]:
    """Line numbers of ``path`` that know the model."""
    tree, nodes, docs, other_word = _parsed(path)
    slash = package.replace(".", "/")
    hits = set()
    for node in nodes:
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            v = node.value
            named = v in words or any(w in words for w in _code_words(v))
            if (named and node.lineno not in other_word) or package in v or slash in v:
                hits.add(node.lineno)
        elif isinstance(node, ast.Import) and any(a.name == package or a.name.startswith(package + ".") for a in node.names):
            hits.add(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and (
                node.module == package or node.module.startswith(package + ".")):
            hits.add(node.lineno)
        elif isinstance(node, ast.Attribute) and node.attr in layers and node.lineno not in other_word:
            hits.add(node.lineno)
    return sorted(hits)


def footprints(root: Path = ROOT) -> dict[str, tuple[str, list[str]]]:
    """{model: (its folder, ["path:line: code", ...])} for every registered model."""
    sys.path.insert(0, str(ROOT))
    from agents.registry import MODELS, get_model

    out = {}
    files = platform_files(root)
    declared = {name: model_words(get_model(name)) for name in MODELS}
    for name in MODELS:
        package, words, layers = declared[name]
        # A word two models declare (a "density" field, a "state" per feature) is the platform's
        # vocabulary, not one model's knowledge.
        words = words - {w for other, (_, ws, _) in declared.items() if other != name for w in ws}
        if not package.startswith("agents."):
            continue  # a plug-in model from elsewhere (CITYTWIN_MODELS): nothing of it lives here
        lines = []
        for path in files:
            text = path.read_text(encoding="utf-8").splitlines()
            for n in footprint(path, package, words, layers):
                lines.append(f"{path.relative_to(root)}:{n}: {text[n - 1].strip()}")
        out[name] = (package.replace(".", "/"), lines)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=ROOT, help="the checkout to scan (default: this one)")
    ap.add_argument("--quiet", action="store_true", help="counts only")
    args = ap.parse_args(argv)
    ok = True
    for name, (folder, lines) in footprints(args.root.resolve()).items():
        print(f"{name}: {len(lines)} line(s) outside {folder}/, the tests and the docs")
        if not args.quiet:
            for line in lines:
                print(f"  {line}")
        ok &= len(lines) == 1 and lines[0].startswith("agents/registry.py:")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
