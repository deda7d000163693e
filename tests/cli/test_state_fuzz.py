"""Fuzzing state files (issue 19): real state files of the three models, mutated field by field.

Every mutation makes the state invalid by what its model declares (``CityModel.state_specs``) or by
the metadata's schema (``twin.core.state_file.check_meta``): a shape, a dtype, a NaN where numbers
must be finite, an index beyond its table, a missing or mistyped key. `citytwin run --from-state`
must refuse each with exit 2 and one message naming the state file and the field: never a crash,
a traceback or a hang. The runs go to a worker process (tests/cli/state_fuzz_worker.py), so a
segmentation fault fails the test, not the suite; a worker that died is started again.
"""
from __future__ import annotations

import json
import math
import os
import selectors
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.registry import get_model
from tests.factories import write_scenario
from twin.cli import main

ROOT = Path(__file__).resolve().parents[2]
ANSWER_TIMEOUT_S = 90.0  # a refusal takes a second; a hang (time_s NaN once looped for ever) is caught here
EXAMPLES = int(os.environ.get("CITYTWIN_FUZZ_EXAMPLES", "20"))  # per model; derandomised: CI tries the same cases each time


# -- real state files -------------------------------------------------------------------------------------
def _station(root: Path):
    from tests.agents.station.conftest import make_city

    make_city().save(root / "station")
    return write_scenario(root, root / "station", "[parameters]\nrelease_spread_s = 10\n", model="station_dispersal",
                          name="station", duration_s=60), 20


def _tourism(root: Path):
    from tests.agents.tourism.cities import make_city

    city = make_city(root)
    return write_scenario(root, city, "[parameters]\narrival_profile = [[21600, 200], [25200, 0]]\n",
                          model="tourist_flow", name="tourism", duration_s=7200), 3600


def _flood(root: Path):
    from tests.agents.flood import towns

    city, depth = towns.street_town(root, hollows=[(10, 53, 40, 67, 0.2)], population=(10,))
    d = towns.depth_raster(root / "depth.tif", depth, towns.STREET_CELL, towns.STREET_H)
    body = (f'[parameters]\nrain = "none"\nwarning_time_s = 0\nresponse_time_s = 0\ninitial_depth = "{d}"\n'
            "evacuate_upper_floors = true\n")
    return write_scenario(root, city, body, model="flood", name="flood", duration_s=120), 30  # people walking at 30 s


MODELS = {"station_dispersal": _station, "tourist_flow": _tourism, "flood": _flood}


@pytest.fixture(scope="module")
def states(tmp_path_factory):
    out = {}
    for name, make in MODELS.items():
        root = tmp_path_factory.mktemp(f"fuzz_{name}")
        sc, t = make(root)
        assert main(["run", str(sc), "--save-state-at", str(t), "--out", str(root / "run"), "--quiet"]) == 0
        (path,) = (root / "run" / "states").glob("*.npz")
        out[name] = path
    return out


class Worker:
    """One `citytwin` process serving commands; restarted after a crash."""

    def __init__(self):
        self.proc = None

    def start(self):
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.log = open(os.devnull, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.cli.state_fuzz_worker"], cwd=ROOT, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True)

    def run(self, args) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        self.proc.stdin.write(json.dumps([str(a) for a in args]) + "\n")
        self.proc.stdin.flush()
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        while True:
            if not sel.select(ANSWER_TIMEOUT_S):
                self.stop()
                return {"code": "hang", "stderr": f"no answer in {ANSWER_TIMEOUT_S:g} s"}
            line = self.proc.stdout.readline()
            if not line:  # the process died: a crash of the interpreter
                rc = self.proc.wait()
                self.proc = None
                return {"code": f"crash (exit {rc})", "stderr": ""}
            if line.startswith("@@"):
                return json.loads(line[2:])

    def stop(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            self.log.close()


@pytest.fixture(scope="module")
def worker():
    w = Worker()
    yield w
    w.stop()


# -- mutations ----------------------------------------------------------------------------------------------
def read(path: Path):
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return json.loads(bytes(arrays.pop("__meta__")).decode()), arrays


def write(path: Path, meta, arrays) -> None:
    blob = json.dumps(meta).encode() if not isinstance(meta, bytes) else meta
    np.savez_compressed(path, __meta__=np.frombuffer(blob, dtype=np.uint8), **arrays)


def array_mutations(a: np.ndarray, spec) -> list[str]:
    """The mutations that the model's declaration makes invalid for this array."""
    out = ["drop", "dtype", "ndim"]
    if len(a):
        out += ["shrink", "grow3"]
        if a.dtype.kind == "f":
            out += [m for m, ok in (("nan", not spec.nan), ("inf", not spec.inf), ("-inf", not spec.inf)) if ok]
            if isinstance(spec.low, (int, float)):
                out.append("below")
            if isinstance(spec.high, (int, float)):
                out.append("1e30")
        elif a.dtype.kind in "iu":
            if spec.high is not None or spec.index_of or spec.columns:  # columns: the first one's bounds
                out.append("intmax")
            if spec.low is not None or spec.index_of or spec.columns:
                out.append("intmin")
    return out


def mutate_array(a: np.ndarray, how: str, spec):
    if how == "dtype":
        return a.astype(np.float32 if a.dtype != np.float32 else np.float64)
    if how == "ndim":
        return a.reshape(-1) if a.ndim > 1 else a[:, None]
    if how == "shrink":
        return a[:1] if len(a) > 1 else a[:0]
    if how == "grow3":
        return np.concatenate([a, a, a])
    b = a.copy()
    flat = b.reshape(-1)
    if how in ("nan", "inf", "-inf"):
        flat[len(flat) // 2] = float(how)  # one bad value in the middle is enough
    elif how == "below":
        flat[0] = spec.low - 1e6
    elif how == "1e30":
        flat[0] = 1e30
    elif how == "intmax":
        flat[0] = np.iinfo(a.dtype).max
    elif how == "intmin":
        flat[0] = np.iinfo(a.dtype).min
    return b


NAN = float("nan")
# (field, how to mutate the JSON): each breaks the metadata's schema
META_MUTATIONS = {
    "seed": ["text", "negative", "huge", "delete"],
    "time_s": ["nan", "text", "delete"],
    "duration_s": ["inf", "delete"],
    "model_name": ["number", "delete"],
    "variant": ["null", "delete"],
    "city_fingerprint": ["number"],
    "city_path": ["list"],
    "scenario": ["list", "delete"],
    "overrides": ["list"],
    "model": ["list", "delete"],
    "model.time_s": ["nan", "negative", "huge", "text", "delete"],
    "model.steps": ["negative", "text", "fraction", "delete"],
    "model.report_k": ["negative", "huge", "delete"],
    "model.rng": ["list", "garbage_state", "delete"],
    "model.random": ["short", "text", "delete"],
    "model.times": ["nan_item", "text", "delete"],
    "model.model_vars": ["list", "unknown_kpi"],
    "model.kpi_cache": ["list", "text_value"],
    "model.attrs": ["list", "delete"],
}


def mutate_meta(meta: dict, field: str, how: str):
    *head, key = field.split(".")
    d = meta
    for part in head:
        d = d[part]
    if how == "delete":
        d.pop(key, None)
        return meta
    value = {"text": "1", "negative": -5, "huge": 1e300 if key == "time_s" else 10**15, "nan": NAN, "inf": math.inf,
             "number": 7, "null": None, "list": [1, 2], "fraction": 2.5,
             "garbage_state": {"bit_generator": "PCG64", "state": {"state": "x", "inc": -1}},
             "short": [3, [1, 2, 3], None], "nan_item": [0.0, NAN], "unknown_kpi": {"no_such_kpi": [1.0]},
             "text_value": {"x": "text"}}.get(how)
    if how == "unknown_kpi":
        value = {"no_such_kpi": [1.0] * len(d["times"])}
    d[key] = value
    return meta


def attr_mutations(value) -> list[str]:
    return ["text", "delete"] + (["shorten"] if isinstance(value, list) and value else []) + \
        (["nan"] if isinstance(value, float) else [])


def mutate_attr(meta: dict, name: str, how: str):
    attrs = meta["model"]["attrs"]
    if how == "delete":
        del attrs[name]
    elif how == "text":
        attrs[name] = "text"
    elif how == "shorten":
        attrs[name] = attrs[name][:-1]
    elif how == "nan":
        attrs[name] = NAN
    return meta


def cases(model: str, path: Path):
    """Every (field, mutation) the declarations make invalid for this real state."""
    meta, arrays = read(path)
    specs = {s.path: s for s in get_model(model).state_specs}
    out = [(f, how, "meta") for f, hows in META_MUTATIONS.items() for how in hows]
    out += [(name, how, "array") for name, a in arrays.items() for how in array_mutations(a, specs[name])]
    out += [(name, how, "attr") for name, v in meta["model"]["attrs"].items() for how in attr_mutations(v)]
    out.append(("bogus.array", "extra", "array"))
    out.append(("__meta__", "list", "whole"))
    return out


def apply(path: Path, dst: Path, field: str, how: str, kind: str, model: str) -> None:
    meta, arrays = read(path)
    specs = {s.path: s for s in get_model(model).state_specs}
    if kind == "meta":
        meta = mutate_meta(meta, field, how)
    elif kind == "attr":
        meta = mutate_attr(meta, field, how)
    elif kind == "whole":
        meta = [1, 2]
    elif how == "extra":
        arrays[field] = np.zeros(3)
    elif how == "drop":
        del arrays[field]
    else:
        arrays[field] = mutate_array(arrays[field], how, specs[field])
    write(dst, meta, arrays)


def field_named(field: str, msg: str) -> bool:
    return field in msg or field.split(".")[-1] in msg


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("model", list(MODELS))
def test_mutated_state_files_exit_2_naming_the_file_and_the_field(model, states, worker, tmp_path_factory):
    path = states[model]
    all_cases = cases(model, path)
    root = tmp_path_factory.mktemp(f"fuzzed_{model}")
    tried = []

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=st.sampled_from(all_cases))
    def check(case):
        field, how, kind = case
        bad = root / f"state_{len(tried)}.npz"
        apply(path, bad, field, how, kind, model)
        tried.append(case)
        r = worker.run(["run", "--from-state", bad, "--out", root / f"out_{len(tried)}", "--quiet"])
        text = r["stderr"]
        assert r["code"] == 2, f"{field} {how}: exit {r['code']}\n{text}"
        assert "Traceback" not in text, text
        lines = [ln for ln in text.splitlines() if ln.startswith("citytwin: error:")]
        assert len(lines) == 1, text
        assert str(bad) in lines[0], f"{field} {how}: the message does not name the state file: {lines[0]}"
        assert field_named(field, lines[0]), f"{field} {how}: the message does not name the field: {lines[0]}"
        assert not (root / f"out_{len(tried)}").exists()

    check()
    assert len(tried) >= min(EXAMPLES, len(all_cases)) // 2


def test_the_fuzzer_covers_every_declared_entry(states):
    """Each model declares every entry of its state, and the fuzzer has a mutation for each array."""
    for model, path in states.items():
        cls = get_model(model)
        declared = [s.path for s in cls.state_specs]
        assert sorted(declared) == sorted(cls.state_attrs), model
        fields = {c[0] for c in cases(model, path)}
        meta, arrays = read(path)
        assert set(arrays) <= fields and set(meta["model"]["attrs"]) <= fields


def test_a_damaged_archive_is_refused_in_milliseconds(states, tmp_path):
    """A 4 GB array announced in a small file: refused from its header and the ZIP directory, never
    decompressed (only 16 MiB of it are written here: the check never reads further)."""
    import time

    path = states["station_dispersal"]
    bomb = tmp_path / "bomb.npz"
    meta, arrays = read(path)
    write(bomb, meta, {k: v for k, v in arrays.items() if k != "crowd.x"})
    with zipfile.ZipFile(bomb, "a", compression=zipfile.ZIP_DEFLATED) as z:
        header = np.lib.format.header_data_from_array_1_0(np.zeros(1))
        header["shape"] = (500_000_000,)  # 4 GB of float64
        with z.open("crowd.x.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, header)
            f.write(bytes(2**24))
    assert bomb.stat().st_size < 10 * 2**20
    from twin.core.errors import UserError
    from twin.core.state_file import read_state, restore_state
    from twin.runs.runner import build_model, load_state_run

    sc, state, variant, overrides = load_state_run(bomb)
    model = build_model(sc, variant, int(state.meta["seed"]), overrides)
    t1 = time.perf_counter()
    with pytest.raises(UserError, match=r"crowd\.x.*shape \(500000000,\)") as e:
        restore_state(model, state)
    assert str(bomb) in str(e.value)
    assert time.perf_counter() - t1 < 1.0  # the check itself, not the 27 s of decompressing
    assert read_state(bomb).headers["crowd.x"].shape == (500_000_000,)

    # the right shape in the header, but the ZIP directory announces 16 MiB more than it holds
    padded = tmp_path / "padded.npz"
    write(padded, meta, {k: v for k, v in arrays.items() if k != "crowd.x"})
    with zipfile.ZipFile(padded, "a", compression=zipfile.ZIP_DEFLATED) as z, z.open("crowd.x.npy", "w") as f:
        np.lib.format.write_array(f, arrays["crowd.x"])
        f.write(bytes(16 * 2**20))
    sc, state, variant, overrides = load_state_run(padded)
    with pytest.raises(UserError, match=r"'crowd\.x' announces 16,[0-9,]+ bytes, more than its shape"):
        restore_state(build_model(sc, variant, int(state.meta["seed"]), overrides), state)


# -- the tourist model's tables, column by column ------------------------------------------------------------
def _old_whole_table_bound(w) -> int:
    """The bound every integer of the group, visit and heap tables had before they were checked per column."""
    return max(len(w.gi), len(w.vi), len(w.ht), len(w.T[0]), 2 * len(w.af) + len(w.hf) + 2, 255)


def _restored_tourist_model(path: Path):
    from twin.core.state_file import read_state, restore_state
    from twin.runs.runner import build_model, load_state_run

    sc, state, variant, overrides = load_state_run(path)
    model = build_model(sc, variant, int(state.meta["seed"]), overrides)
    restore_state(model, read_state(path))
    return model


def _run_refused(worker, bad: Path, out: Path) -> str:
    r = worker.run(["run", "--from-state", bad, "--out", out, "--quiet"])
    text = r["stderr"]
    assert r["code"] == 2, f"{bad.name}: exit {r['code']}\n{text}"
    assert "Traceback" not in text, text
    lines = [ln for ln in text.splitlines() if ln.startswith("citytwin: error:")]
    assert len(lines) == 1, text
    assert str(bad) in lines[0], lines[0]
    assert not out.exists()
    return lines[0]


def column_cases(model, arrays) -> list[tuple[str, int, str, int]]:
    """(array, column, column name, value): for every bounded column of the tourist model's tables, a
    value inside the old whole-table bound (-1 .. or 0 .. ``_old_whole_table_bound``) that lies outside the
    column's own range."""
    old = _old_whole_table_bound(model.engine.world)
    out = []
    for spec in model.state_specs:
        for c in spec.columns:
            low, high = model._bound(c.low), model._bound(c.high)
            if c.index_of:
                low = 0 if low is None else low
                high = model._count(c.index_of) - 1 if high is None else min(high, model._count(c.index_of) - 1)
            old_low = 0 if spec.path.endswith("ctr") else -1
            tries = ([high + 1] if high is not None else []) + ([low - 1] if low is not None else [])
            fits = [v for v in tries if old_low <= v <= old]
            if fits:
                out.append((spec.path, c.col, c.name, fits[0]))
    heap_low = -model.state_heap_codes - 1  # one beyond the last attraction's closing
    assert heap_low >= -old
    out.append(("engine_state.hid", 0, "hid", heap_low))
    return out


@pytest.mark.slow
def test_each_tourist_table_column_is_bounded_by_what_it_indexes(states, worker, tmp_path):
    """A value the old whole-table bound let through but beyond the table its column indexes (an
    attraction number past the attractions, a hotel where there is none, a state code 16, a group
    size 0, a heap count past the heap): refused with exit 2, naming the state file and the column."""
    path = states["tourist_flow"]
    meta, arrays = read(path)
    model = _restored_tourist_model(path)  # the unmutated state is accepted
    cases_ = column_cases(model, arrays)
    names = {name for _, _, name, _ in cases_}
    # every integer column of the group, visit and counter tables but C_SEQ (a sequence number, only from 0)
    assert {"G_STATE", "G_SIZE", "G_ENTRY", "G_FLAGS", "G_ROOMS", "G_PLACE", "G_FROM", "G_TO", "G_MODE", "G_ATTR",
            "G_PLAN_K", "G_HOTEL", "G_SEARCH_K", "G_NEXT", "G_VISIT", "G_SLOT", "G_VISITS", "V_GROUP", "V_ATTR",
            "V_OUTCOME", "V_RESERVED", "C_HEAP_N", "C_NEXT_ARR", "C_NVISITS", "C_TODO", "hid"} <= names, names
    for i, (field, col, name, value) in enumerate(cases_):
        mutated = {k: v.copy() for k, v in arrays.items()}
        a = mutated[field]
        if a.ndim == 2:
            a[0, col] = value
        else:
            a[col] = value
        bad = tmp_path / f"column_{i}_{name}.npz"
        write(bad, meta, mutated)
        line = _run_refused(worker, bad, tmp_path / f"out_{i}")
        assert field in line and name in line, f"{name} = {value}: {line}"


def _pick(gi, state) -> int:
    rows = np.flatnonzero(gi[:, 0] == state)
    assert rows.size, f"the saved tourist state has no group in state {state}"
    return int(rows[0])


def test_tourist_tables_that_disagree_with_each_other_are_refused(states, worker, tmp_path):
    """Each column within its range, but the tables contradict each other in a way that would send
    a kernel past a table or round a loop for ever: refused naming the file and the fields."""
    from agents.tourism import layout as L

    path = states["tourist_flow"]
    meta, arrays = read(path)
    gi0, ctr0 = arrays["engine_state.gi"], arrays["engine_state.ctr"]
    inside, travelling = _pick(gi0, L.INSIDE), _pick(gi0, L.TRAVEL_ATTR)

    def queue_loop(m):  # a queue whose only group points back at itself
        m["engine_state.gi"][inside, [L.G_STATE, L.G_NEXT]] = (L.QUEUE, inside)
        a = m["engine_state.gi"][inside, L.G_ATTR]
        m["engine_state.qh"][a] = m["engine_state.qt"][a] = inside

    def heap_twice(m):
        m["engine_state.hid"][1] = m["engine_state.hid"][0]

    def heap_done(m):
        m["engine_state.gi"][m["engine_state.hid"][0], L.G_STATE] = L.CHECKED_IN

    def seq(m):
        m["engine_state.hs"][0] = ctr0[L.C_SEQ]

    def no_attr(m):
        m["engine_state.gi"][inside, L.G_ATTR] = -1

    def not_pending(m):
        m["engine_state.plan_st"][inside, gi0[inside, L.G_PLAN_K]] = L.P_VISITED

    def no_dest(m):
        m["engine_state.gi"][travelling, L.G_TO] = -1

    def visit_rows(m):
        m["engine_state.ctr"][L.C_NVISITS] = len(arrays["engine_state.vi"])

    def arrivals(m):
        m["engine_state.ctr"][L.C_NEXT_ARR] = ctr0[L.C_NEXT_ARR] - 1

    cases_ = {queue_loop: ("engine_state.qh", "G_NEXT"), heap_twice: ("engine_state.hid",),
              heap_done: ("engine_state.gi", "engine_state.hid"), seq: ("engine_state.hs", "C_SEQ"),
              no_attr: ("engine_state.gi", "G_ATTR"), not_pending: ("G_PLAN_K", "engine_state.plan_st"),
              no_dest: ("engine_state.gi", "G_TO"), visit_rows: ("C_NVISITS",), arrivals: ("C_NEXT_ARR",)}
    for i, (mutate, named) in enumerate(cases_.items()):
        mutated = {k: v.copy() for k, v in arrays.items()}
        mutate(mutated)
        bad = tmp_path / f"relation_{mutate.__name__}.npz"
        write(bad, meta, mutated)
        line = _run_refused(worker, bad, tmp_path / f"out_{i}")
        assert all(n in line for n in named), f"{mutate.__name__}: {line}"
