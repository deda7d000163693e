"""The hostile-input corpus (issue 10): bad input to `run`, `compare`, `branch`, `render` and `city` as a new user would
type it. Every case must exit 2 with one paragraph that names the problem, print no traceback, and
leave --out (and the folder above it) exactly as it was: nothing created, nothing half-written.

Cases run through the real entry point ``twin.cli.main``, in this process (fast); the few that need
a process of their own (a read-only folder for root, a scheduler timing) run as a user would.
"""
from __future__ import annotations

import contextlib
import ctypes
import io
import os
import socket
import sqlite3
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.factories import write_scenario
from twin.core.limits import MAX_NESTING

GOOD = '[parameters]\nwalkers = 10\n\n[[interventions]]\nname = "fast"\n[interventions.parameters]\nspeed_mps = 1.5\n'


@dataclass
class Case:
    id: str
    args: list  # "{sc}", "{out}", "{tmp}", "{city}" are filled in
    expect: tuple  # phrases the message must contain
    body: str = GOOD  # the scenario file after its [scenario] table
    head: dict = field(default_factory=dict)  # write_scenario keywords: duration_s, seed, model, city…
    raw: str | bytes | None = None  # the whole scenario file instead
    setup: object = None  # setup(tmp) -> None: other files the case needs
    out: str = "{tmp}/out"
    out_exists: bool = False  # an existing --out holding a file of the user's
    process: bool = False  # run in its own process


def deep(n: int) -> str:
    return "[" * n + "]" * n


def _file(tmp):
    (tmp / "afile").write_text("not a folder\n")


def _loop(tmp):
    os.symlink(tmp / "loop_b", tmp / "loop_a")
    os.symlink(tmp / "loop_a", tmp / "loop_b")


def _dangling(tmp):
    os.symlink(tmp / "nowhere", tmp / "dangling")


RUN = ["run", "{sc}", "--quiet", "--out", "{out}"]
CMP = ["compare", "{sc}", "--workers", "1", "--quiet", "--out", "{out}"]
BRANCH = ["branch", "{sc}", "--at", "60", "--intervention", "fast", "--quiet", "--out", "{out}"]
RENDER = ["render", "{sc}", "--length-s", "1", "--quiet", "--out", "{out}"]
STATION_CHOICES = "[parameters]\nrelease_spread_s = 10\n"
STATE = ["run", "--from-state", "{tmp}/state.npz", "--quiet", "--out", "{out}"]

CASES = [
    # -- the scenario file ---------------------------------------------------------------------
    Case("missing_scenario", ["run", "{tmp}/nope.toml", "--out", "{out}"], ("no such scenario file",)),
    Case("not_toml", RUN, ("not valid TOML",), raw="[scenario\nname = 1\n"),
    Case("binary_scenario", RUN, ("not a text file",), raw=b"\xff\xfe\x00\x01garbage"),
    Case("toml_nested_600_deep", RUN, ("nested too deeply",), raw=f"x = {deep(600)}\n"),
    Case("toml_nested_40_deep", RUN, (f"nested more than {MAX_NESTING} levels",),
         body=f"[parameters]\nclosed_gates = {deep(40)}\n"),
    Case("duration_nan", RUN, ("duration_s = nan is not a finite number", "from 1 to 2592000 s"), head={"duration_s": "nan"}),
    Case("duration_inf", RUN, ("duration_s = inf is not a finite number",), head={"duration_s": "inf"}),
    Case("duration_minus_inf", CMP, ("duration_s = -inf is not a finite number",), head={"duration_s": "-inf"}),
    Case("duration_1e308", RUN, ("duration_s = 1e+308 is out of range", "2592000"), head={"duration_s": "1e308"}),
    Case("duration_zero", RUN, ("duration_s = 0 is out of range",), head={"duration_s": "0"}),
    Case("duration_text", RUN, ("duration_s must be a number",), head={"duration_s": '"ten"'}),
    Case("scenario_seed_negative", RUN, ("seed = -1 is out of range", "4294967295"), head={"seed": "-1"}),
    Case("scenario_seed_huge", RUN, ("seed = 9223372036854775807 is out of range",),
         head={"seed": "9223372036854775807"}),
    Case("replications_1e9", CMP, ("replications = 1000000000 is out of range", "from 1 to 10000"),
         head={"replications": "1000000000"}),
    Case("replications_zero", CMP, ("replications = 0 is out of range",), head={"replications": "0"}),
    Case("replications_fraction", CMP, ("replications must be a whole number",), head={"replications": "2.5"}),
    Case("unknown_top_level_key", RUN, ('unknown key "paramaters"', 'did you mean "parameters"'),
         body="[paramaters]\nwalkers = 3\n"),
    Case("unknown_parameter", RUN, ('unknown parameter "walker"',), body="[parameters]\nwalker = 3\n"),
    Case("parameter_out_of_range", RUN, ("out of range",), body="[parameters]\nspeed_mps = 9.0\n"),
    Case("parameter_nan", RUN, ('"speed_mps" must be a finite number',), body="[parameters]\nspeed_mps = nan\n"),
    Case("int_parameter_inf", RUN, ('"walkers" must be a finite number',), body="[parameters]\nwalkers = inf\n"),
    Case("int_parameter_1e308", RUN, ('"walkers"', "out of range"), body="[parameters]\nwalkers = 1e308\n"),
    Case("parameter_with_unit_text", RUN, ("must be a number in m/s",), body='[parameters]\nspeed_mps = "3 km/h"\n'),
    Case("intervention_typo_last", CMP, ('did you mean "speed_sd_mps"',),
         body=GOOD + '[[interventions]]\nname = "x"\n[interventions.parameters]\nspeed_sd = 1\n'),
    Case("intervention_parameters_not_table", CMP, ("[interventions.parameters] must be a table",),
         body='[[interventions]]\nname = "x"\nparameters = "fast"\n'),
    Case("intervention_named_baseline", CMP, ('the name "baseline" is reserved',),
         body='[[interventions]]\nname = "baseline"\n'),
    Case("intervention_twice", CMP, ('the name "a" is used twice',),
         body='[[interventions]]\nname = "a"\n[[interventions]]\nname = "a"\n'),
    Case("unknown_model", RUN, ('did you mean "station_dispersal"',), head={"model": "station_dispersl"}),
    Case("missing_city", RUN, ("no such city folder",), head={"city": "{tmp}/nowhere"}),
    Case("empty_city_path", RUN, ("is not a folder path",), head={"city": ""}),
    Case("trajectory_every_1e-300_s", RUN, ("trajectory_interval_s = 1e-300 is too short",),
         body=GOOD + "[outputs]\ntrajectory_interval_s = 1e-300\n"),
    Case("grid_of_a_million_points", CMP, ("= 1,000,000 points; a sweep has at most 10,000",),
         body="[experiment]\nmethod = \"grid\"\n[experiment.parameters]\n"
              f"walkers = {list(range(1, 101))}\nspeed_mps = {[round(1 + i / 100, 2) for i in range(100)]}\n"
              f"distance_m = {list(range(1, 101))}\n"),
    Case("lhs_1e9_samples", CMP, ("samples = 1000000000 is out of range",),
         body='[experiment]\nmethod = "lhs"\nsamples = 1000000000\n[experiment.parameters]\n'
              "speed_mps = {min = 1, max = 2}\n"),
    Case("experiment_replications_1e9", CMP, ("replications = 1000000000 is out of range",),
         body='[experiment]\nmethod = "sets"\nreplications = 1000000000\nsets = [{walkers = 5}]\n'),
    Case("bad_experiment_method", CMP, ('method = "random" is unknown',),
         body='[experiment]\nmethod = "random"\n[experiment.parameters]\nwalkers = [1]\n'),
    # -- the command line ----------------------------------------------------------------------
    Case("seed_minus_3", RUN + ["--seed", "-3"], ("--seed = -3 is out of range", "from 0 to 4294967295")),
    Case("seed_huge", RUN + ["--seed", "99999999999999999999"], ("--seed = 99999999999999999999 is out of range",)),
    Case("replications_option_1e9", CMP + ["--replications", "1000000000"],
         ("--replications = 1000000000 is out of range",)),
    Case("replications_option_zero", CMP + ["--replications", "0"], ("--replications",)),
    Case("workers_zero", CMP[:2] + ["--workers", "0", "--out", "{out}"], ("--workers = 0 is out of range",)),
    Case("workers_huge", CMP[:2] + ["--workers", "1000000", "--out", "{out}"], ("--workers = 1000000 is out of range",)),
    Case("set_inf", RUN + ["--set", "walkers=inf"], ('"walkers" must be a finite number',)),
    Case("set_deep", RUN + ["--set", f"closed_gates={deep(600)}"], ("nested too deeply",)),
    Case("set_without_value", RUN + ["--set", "walkers"], ("write KEY=VALUE",)),
    Case("set_unknown_parameter", RUN + ["--set", "walkrs=3"], ('did you mean "walkers"',)),
    Case("unknown_intervention", RUN + ["--intervention", "slow"], ('no intervention named "slow"', "baseline, fast")),
    # -- the output location -------------------------------------------------------------------
    Case("out_is_a_file", RUN, ("exists and is not a folder",), out="{tmp}/afile", setup=_file),
    Case("out_under_a_file", RUN, ("afile is a file, not a folder",), out="{tmp}/afile/out", setup=_file),
    Case("compare_out_under_a_file", CMP, ("afile is a file, not a folder",), out="{tmp}/afile/sub/out", setup=_file),
    Case("out_in_symlink_loop", RUN, ("loop of symbolic links",), out="{tmp}/loop_a/out", setup=_loop),
    Case("compare_out_in_symlink_loop", CMP, ("loop of symbolic links",), out="{tmp}/loop_a/out", setup=_loop),
    Case("out_dangling_symlink", RUN, ("symbolic link to something that does not exist",), out="{tmp}/dangling",
         setup=_dangling),
    Case("out_name_300_chars", RUN, ("is 300 bytes long", "use at most"), out="{tmp}/" + "n" * 300),
    Case("out_deep_name_300_chars", CMP, ("is 300 bytes long",), out="{tmp}/a/" + "n" * 300 + "/b"),
    Case("out_name_just_too_long", RUN, ("is 250 bytes long",), out="{tmp}/" + "n" * 250),
    Case("out_empty", RUN, ("--out was given an empty path",), out=""),
    Case("compare_out_empty", CMP[:-1] + ["--out="], ("--out was given an empty path",), out=""),
    Case("out_read_only", RUN, ("cannot write in", "permission denied"), out="{tmp}/ro/out", process=True),
    Case("compare_out_read_only", CMP, ("cannot write in",), out="{tmp}/ro/out", process=True),
    Case("existing_out_kept_on_bad_seed", RUN + ["--seed", "-3"], ("--seed",), out_exists=True),
    Case("existing_out_kept_on_bad_scenario", CMP, ("not a finite number",), head={"duration_s": "nan"},
         out_exists=True),
    # -- Dask ------------------------------------------------------------------------------------
    Case("scheduler_nonsense", CMP + ["--scheduler", "nonsense"], ("not a scheduler address", "tcp://HOST:PORT")),
    Case("scheduler_bad_port", CMP + ["--scheduler", "tcp://127.0.0.1:99999"], ("port 99999 does not exist",)),
    Case("scheduler_nothing_listens", CMP + ["--scheduler", "tcp://127.0.0.1:{free_port}"],
         ("cannot reach the Dask scheduler", "nothing listens there"), process=True),
    # -- the city --------------------------------------------------------------------------------
    Case("city_toml_nested", RUN, ("nested too deeply",), head={"city": "{tmp}/deepcity"},
         setup=lambda tmp: (tmp / "deepcity").mkdir() or (tmp / "deepcity" / "city.toml").write_text(
             f"x = {deep(700)}\n")),
    Case("run_srs_minus_1", RUN, ("layer 'roads'", "srs_id -1"), head={"city": "{srs-1}"}),
    Case("compare_srs_minus_1", CMP, ("layer 'roads'", "srs_id -1"), head={"city": "{srs-1}"}),
    Case("info_srs_minus_1", ["city", "info", "{srs-1}"], ("layer 'roads'", "srs_id -1", "EPSG:32650")),
    Case("import_srs_minus_1", ["city", "import", "{srs-1}/city.gpkg", "--out", "{out}"], ("layer 'roads'", "srs_id -1")),
    Case("run_srs_0", RUN, ("layer 'roads'", "srs_id 0"), head={"city": "{srs0}"}),
    Case("compare_srs_0", CMP, ("layer 'roads'", "srs_id 0"), head={"city": "{srs0}"}),
    Case("info_srs_0", ["city", "info", "{srs0}"], ("layer 'roads'", "srs_id 0")),
    Case("import_srs_0", ["city", "import", "{srs0}/city.gpkg", "--out", "{out}"], ("layer 'roads'", "srs_id 0")),
    Case("model_needs_layers", CMP, ("needs the layer(s) walkable, gates, sources",),
         head={"model": "station_dispersal"}, body=""),
    # A variant that only fails on the city: compare must refuse before the baseline has run.
    Case("compare_gate_error_in_last_variant", CMP, ('intervention "open a gate"', 'none of the gates has the id or name "NOPE"; the gates are: N1, N2'),
         head={"model": "station_dispersal", "city": "{station}", "duration_s": 30},
         body=STATION_CHOICES + '[[interventions]]\nname = "guide"\n[interventions.parameters]\nguidance_share = 0.5\n'
              '[[interventions]]\nname = "open a gate"\n[interventions.parameters]\nopen_gates = ["NOPE"]\n'),
    Case("compare_gate_error_in_a_sweep_point", CMP, ('sweep point "open_gates=NOPE"', 'none of the gates has the id or name "NOPE"; the gates are: N1, N2'),
         head={"model": "station_dispersal", "city": "{station}", "duration_s": 30},
         body=STATION_CHOICES + '[experiment]\nmethod = "sets"\nsets = [{open_gates = ["N1"]}, {open_gates = ["NOPE"]}]\n'),
    Case("compare_shares_error", CMP, ("the baseline", "must sum to 1"),
         head={"model": "station_dispersal", "city": "{station}", "duration_s": 30},
         body="[parameters]\nshare_metro = 0.9\n"),
    # -- branch and render: the same preflight -----------------------------------------------------
    Case("branch_seed_minus_3", BRANCH + ["--seed", "-3"], ("--seed = -3 is out of range",)),
    Case("branch_replications_1e9", BRANCH + ["--replications", "1000000000"],
         ("--replications = 1000000000 is out of range",)),
    Case("branch_workers_zero", BRANCH + ["--workers", "0"], ("--workers = 0 is out of range",)),
    Case("branch_out_under_a_file", BRANCH, ("afile is a file, not a folder",), out="{tmp}/afile/out", setup=_file),
    Case("branch_out_name_300_chars", BRANCH, ("is 300 bytes long",), out="{tmp}/" + "n" * 300),
    Case("branch_at_after_the_end", BRANCH[:2] + ["--at", "1e9"] + BRANCH[4:], ("must lie inside the run",)),
    Case("branch_at_nan", BRANCH[:2] + ["--at", "nan"] + BRANCH[4:], ("--at nan",)),
    Case("branch_unknown_intervention", BRANCH[:5] + ["slow"] + BRANCH[6:], ('no intervention named "slow"',)),
    Case("branch_duration_nan", BRANCH, ("duration_s = nan is not a finite number",), head={"duration_s": "nan"}),
    Case("branch_set_inf", BRANCH + ["--set", "walkers=inf"], ('"walkers" must be a finite number',)),
    Case("render_not_mp4", RENDER, ("give a name ending in .mp4",), out="{tmp}/video.avi"),
    Case("render_odd_size", RENDER + ["--size", "1001x600"], ("both sides must be even",), out="{tmp}/v.mp4"),
    Case("render_under_a_file", RENDER, ("afile",), out="{tmp}/afile/v.mp4", setup=_file),
    Case("render_duration_nan", RENDER, ("duration_s = nan is not a finite number",), head={"duration_s": "nan"},
         out="{tmp}/v.mp4"),
    Case("render_unknown_intervention", RENDER + ["--intervention", "slow"], ('no intervention named "slow"',),
         out="{tmp}/v.mp4"),
    Case("run_gate_error", RUN + ["--intervention", "open a gate"], ('none of the gates has the id or name "NOPE"; the gates are: N1, N2',),
         head={"model": "station_dispersal", "city": "{station}", "duration_s": 30},
         body='[[interventions]]\nname = "open a gate"\n[interventions.parameters]\nopen_gates = ["NOPE"]\n'),
    # -- state files (issue 19; tests/cli/test_state_fuzz.py mutates them field by field) ---------------
    *[Case(f"state_{name}", STATE, expect, setup=lambda tmp, m=mutate: _state(tmp, m)) for name, mutate, expect in (
        ("empty_file", "empty", ("state.npz: the file is empty",)),
        ("truncated", "truncated", ("state.npz: not a readable CityTwin state file",)),
        ("time_nan", ("model.time_s", float("nan")), ("model.time_s must be a finite number",)),
        ("meta_a_json_list", ("", [1, 2]), ("__meta__ must be a JSON object",)),
        ("seed_text", ("seed", "1"), ("seed must be a whole number",)),
        ("seed_missing", ("seed", None), ("seed must be a whole number",)),
        ("bad_rng_state", ("model.rng", {"bit_generator": "PCG64", "state": {"state": "x", "inc": 1}}),
         ("model.rng is not a valid state",)),
        ("array_shrunk_to_one", ("pos", "shrink"), ("'pos' has shape (1, 2)", "needs shape (60, 2)")),
        ("array_three_times_too_long", ("pos", "grow3"), ("'pos' has shape (180, 2)",)),
        ("array_nan_filled", ("pos", "nan"), ("'pos' holds nan", "finite numbers")),
        ("array_wrong_dtype", ("pos", "float32"), ("'pos' has dtype float32", "needs float64")),
        ("array_missing", ("pos", "drop"), ("array 'pos' is missing",)),
        ("array_4_gb_announced", ("pos", "bomb"), ("'pos' has shape (500000000, 2)",)),
    )],
    # -- rasters, counts and features (issue 19) ----------------------------------------------------------
    Case("dem_in_another_crs", RUN, ("the DEM is in EPSG:4326", "city import"), head={"city": "{tmp}/c"},
         setup=lambda tmp: _city_with_dem(tmp, crs="EPSG:4326")),
    Case("dem_off_the_map", RUN, ("does not overlap the city's layers",), head={"city": "{tmp}/c"},
         setup=lambda tmp: _city_with_dem(tmp, shift_m=100_000)),
    Case("dem_1x1_in_a_corner", RUN, ("the DEM (1 x 1 cells", "at least 2 x 2 cells"), head={"city": "{tmp}/c"},
         setup=lambda tmp: _city_with_dem(tmp, shape=(1, 1), cell_m=30.0, top_m=30.0)),
    Case("dem_spike_3e38", RUN, ("holds 3e+38 m at row 2, column 3", "outside the elevations on Earth"),
         head={"city": "{tmp}/c"}, setup=lambda tmp: _city_with_dem(tmp, spike=3e38)),
    Case("initial_depth_1e30", RUN, ("depth of 1e+30 m", "grid row"), head={"model": "flood", "duration_s": 60},
         body='[parameters]\nrain = "none"\ninitial_depth = "{tmp}/depth.tif"\n',
         setup=lambda tmp: _depth_raster(tmp, 1e30)),
    Case("initial_depth_off_the_map", RUN, ("does not overlap the flood grid",), head={"model": "flood", "duration_s": 60},
         body='[parameters]\nrain = "none"\ninitial_depth = "{tmp}/depth.tif"\n',
         setup=lambda tmp: _depth_raster(tmp, 0.5, shift_m=100_000)),
    Case("train_of_1e308_passengers", RUN, ("passengers = '1e308' in one train", "at most 20,000"),
         head={"model": "station_dispersal", "city": "{station}", "duration_s": 30},
         body='[parameters]\ntrains = ["P1 0 1e308"]\n'),
    Case("train_of_1e7_passengers", RUN, ("passengers = '10000000' in one train",),
         head={"model": "station_dispersal", "city": "{station}", "duration_s": 30},
         body='[parameters]\ntrains = ["P1 0 10000000"]\n'),
    Case("timetable_1e11_passengers", RUN, ("timetable.csv, line 3, column 3 (passengers)", "1e11"),
         head={"model": "station_dispersal", "city": "{station}", "duration_s": 30},
         body='[parameters]\ntimetable = "{tmp}/timetable.csv"\n',
         setup=lambda tmp: (tmp / "timetable.csv").write_text("platform,arrival_s,passengers\nP1,0,10\nP2,5,1e11\n")),
    Case("timetable_of_too_many_rows", RUN, ("timetable.csv, line 100002", "more than 100,000 trains"),
         head={"model": "station_dispersal", "city": "{station}", "duration_s": 30},
         body='[parameters]\ntimetable = "{tmp}/timetable.csv"\n',
         setup=lambda tmp: (tmp / "timetable.csv").write_text("platform,arrival_s,passengers\n" + "P1,0,1\n" * 100_001)),
    Case("shelter_negative_capacity", RUN, ("feature 'SH1' has capacity = -50",), head={"city": "{tmp}/c"},
         setup=lambda tmp: _city_with_poi(tmp, "SH1", "shelter", (500_100.0, 3_400_050.0), capacity=-50)),
    Case("poi_at_nan_coordinates", RUN, ("feature 'NAN1' has no location", "NaN coordinates"), head={"city": "{tmp}/c"},
         setup=lambda tmp: _city_with_poi(tmp, "NAN1", "attraction", (float("nan"), float("nan")))),
    Case("info_symlink_loop_gpkg", ["city", "info", "{tmp}/c"], ("city.gpkg: the city's GeoPackage is a loop of "
                                                                "symbolic links",), setup=lambda tmp: _looped_gpkg(tmp)),
    Case("bow_tie_walkable", RUN, ("walkable polygon 'hall' crosses itself", "Self-intersection"),
         head={"model": "station_dispersal", "city": "{tmp}/c", "duration_s": 30}, body=STATION_CHOICES,
         setup=lambda tmp: _bow_tie_station(tmp)),
    Case("scheduler_is_a_web_server", CMP + ["--scheduler", "tcp://127.0.0.1:{http_port}"],
         ("is not a Dask scheduler", "sent nothing within 3 s")),
    Case("scheduler_answers_garbage", CMP + ["--scheduler", "tcp://127.0.0.1:{garbage_port}"],
         ("is not a Dask scheduler", "a Dask handshake is a few hundred")),
]


SHARED: dict = {}  # filled by the cities fixture: a good toy state file and the tiny city


def _state(tmp: Path, mutate) -> None:
    """``tmp/state.npz``: the shared toy state at 10 s, broken as ``mutate`` says."""
    import json

    import numpy as np

    good = SHARED["toy_state"]
    dst = tmp / "state.npz"
    data = good.read_bytes()
    if mutate == "empty":
        dst.write_bytes(b"")
        return
    if mutate == "truncated":
        dst.write_bytes(data[: len(data) // 2])
        return
    with np.load(good, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(bytes(arrays.pop("__meta__")).decode())
    field, how = mutate
    if field in arrays:
        a = arrays[field]
        if how == "drop":
            del arrays[field]
        elif how == "bomb":
            arrays.pop(field)
        else:
            arrays[field] = {"shrink": a[:1], "grow3": np.concatenate([a, a, a]), "float32": a.astype(np.float32),
                             "nan": np.full_like(a, np.nan)}[how]
    elif field == "":
        meta = how
    else:
        *head, key = field.split(".")
        d = meta
        for part in head:
            d = d[part]
        if how is None:
            del d[key]
        else:
            d[key] = how
    np.savez_compressed(dst, __meta__=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)
    if mutate[1] == "bomb":  # a member announcing 500,000,000 × 2 floats (8 GB), deflated to a few MB
        import zipfile

        with zipfile.ZipFile(dst, "a", compression=zipfile.ZIP_DEFLATED) as z:
            header = np.lib.format.header_data_from_array_1_0(np.zeros((1, 2)))
            header["shape"] = (500_000_000, 2)
            with z.open(f"{field}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array_header_1_0(f, header)
                f.write(bytes(2**20))


def _copy_city(tmp: Path) -> Path:
    import shutil

    dst = tmp / "c"
    shutil.copytree(SHARED["city"], dst)
    return dst


def _city_with_dem(tmp: Path, crs: str = "EPSG:32650", shift_m: float = 0.0, shape=(20, 40), cell_m: float = 5.0,
                   spike: float | None = None, top_m: float = 100.0) -> None:
    import numpy as np
    import pyproj

    from tests.factories import X0, Y0
    from twin.core.files import write_geotiff
    from twin.core.grid import GridField

    city = _copy_city(tmp)
    z = np.full(shape, 10.0, np.float32)
    if spike is not None:
        z[2, 3] = spike
    x0, y0 = X0 + shift_m, Y0 + top_m + shift_m
    if crs != "EPSG:32650":
        lon, lat = pyproj.Transformer.from_crs("EPSG:32650", crs, always_xy=True).transform(x0, y0)
        x0, y0, cell_m = lon, lat, cell_m / 100_000
    write_geotiff(GridField("elevation", z, x0, y0, cell_m, unit="m"), pyproj.CRS(crs), city / "dem.tif")


def _depth_raster(tmp: Path, depth: float, shift_m: float = 0.0) -> None:
    import numpy as np
    import pyproj

    from tests.factories import X0, Y0
    from twin.core.files import write_geotiff
    from twin.core.grid import GridField

    write_geotiff(GridField("depth", np.full((20, 40), depth, np.float32), X0 + shift_m, Y0 + 100 + shift_m, 5.0),
                  pyproj.CRS("EPSG:32650"), tmp / "depth.tif")


def _city_with_poi(tmp: Path, pid: str, kind: str, xy, **cols) -> None:
    import geopandas as gpd
    import pandas as pd
    from shapely.geometry import Point

    city = _copy_city(tmp)
    pois = gpd.read_file(city / "city.gpkg", layer="pois")
    row = gpd.GeoDataFrame({"id": [pid], "kind": [kind], "name": [pid], **{k: [v] for k, v in cols.items()}},
                           geometry=[Point(*xy)], crs=pois.crs)
    gpd.GeoDataFrame(pd.concat([pois, row], ignore_index=True), crs=pois.crs).to_file(
        city / "city.gpkg", layer="pois", driver="GPKG")


def _looped_gpkg(tmp: Path) -> None:
    city = _copy_city(tmp)
    (city / "city.gpkg").unlink()
    os.symlink(city / "city.gpkg", city / "city.gpkg")


def _bow_tie_station(tmp: Path) -> None:
    import shapely

    from tests.agents.station.conftest import X0, Y0, make_city

    bow = shapely.Polygon([(X0, Y0), (X0 + 60, Y0 + 30), (X0 + 60, Y0), (X0, Y0 + 30)])
    city = make_city()
    city.layers["walkable"] = city.layers["walkable"].set_geometry([bow])  # as drawn, before any repair
    city.layers["walkable"]["id"] = ["hall"]
    city.save(tmp / "c")


@pytest.fixture(scope="session")
def talkers():
    """Two services on 127.0.0.1 that are not Dask: a web server, and one that answers with garbage."""
    import http.server
    import threading

    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    garbage = socket.socket()
    garbage.bind(("127.0.0.1", 0))
    garbage.listen()

    def answer():
        while True:
            conn, _ = garbage.accept()
            with conn:
                conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n" * 4)

    threading.Thread(target=answer, daemon=True).start()
    yield {"http_port": web.server_address[1], "garbage_port": garbage.getsockname()[1]}
    web.shutdown()
    garbage.close()


# -- the cities the cases use -------------------------------------------------------------------------
def _with_srs(src: Path, dst: Path, srs_id: int) -> Path:
    import shutil

    shutil.copytree(src, dst)
    con = sqlite3.connect(dst / "city.gpkg")
    with con:
        con.execute("UPDATE gpkg_geometry_columns SET srs_id = ? WHERE table_name = 'roads'", (srs_id,))
        con.execute("UPDATE gpkg_contents SET srs_id = ? WHERE table_name = 'roads'", (srs_id,))
    con.close()
    return dst


@pytest.fixture(scope="session")
def cities(tmp_path_factory, tiny_city):
    from tests.agents.station.conftest import make_city

    root = tmp_path_factory.mktemp("hostile_cities")
    station = root / "station"
    make_city().save(station)
    from tests.factories import write_scenario
    from twin.cli import main

    toy = root / "toy"
    toy.mkdir()
    sc = write_scenario(toy, tiny_city, "[parameters]\nwalkers = 60\ndistance_m = 80.0\n", duration_s=60)
    assert main(["run", str(sc), "--save-state-at", "10", "--out", str(toy / "run"), "--quiet"]) == 0
    SHARED.update(toy_state=toy / "run" / "states" / "state_t000010.npz", city=tiny_city)
    return {"city": tiny_city, "srs-1": _with_srs(tiny_city, root / "srs_minus_1", -1),
            "srs0": _with_srs(tiny_city, root / "srs_0", 0), "station": station}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- running one case ----------------------------------------------------------------------------------
def state(folder: Path) -> dict:
    """Every entry under ``folder`` (names, and the bytes of files); a symlink is recorded, not followed."""
    if not os.path.lexists(folder):
        return {}
    if folder.is_symlink() or not folder.is_dir():
        return {".": "link" if folder.is_symlink() else folder.read_bytes()}
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(folder))
            out[rel] = ("link", os.readlink(p)) if p.is_symlink() else (p.read_bytes() if p.is_file() else "dir")
    return out


def here(args: list[str]) -> subprocess.CompletedProcess:
    from twin.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(args)
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def _drop_dac_override() -> None:
    """In the child: as root, give up the capability to write where permissions forbid it."""
    if os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
            if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) refused")


def own_process(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "twin.cli", *args], capture_output=True, text=True,
                          preexec_fn=_drop_dac_override, env={**os.environ, "CITYTWIN_DASK_TIMEOUT": "3s"})


def read_only_folder(tmp: Path) -> Path:
    ro = tmp / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    probe = subprocess.run([sys.executable, "-c", f"open({str(ro / 'x')!r}, 'w')"], capture_output=True,
                           preexec_fn=_drop_dac_override)
    if probe.returncode == 0:
        pytest.skip("this process can write into a read-only folder (root without a way to drop that right)")
    return ro


def fill(text: str, values: dict) -> str:
    for k, v in values.items():
        text = text.replace("{" + k + "}", str(v))
    return text


def assert_refused(r: subprocess.CompletedProcess, expect) -> str:
    text = r.stdout + r.stderr
    assert r.returncode == 2, f"exit {r.returncode}\n{text}"
    assert "Traceback" not in text, text
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("citytwin: error:")]
    assert len(lines) == 1, r.stderr  # one message…
    msg = lines[0]
    assert "\n\n" not in r.stderr.strip(), r.stderr  # …in one paragraph
    for phrase in expect:
        assert phrase in msg, f"{phrase!r} not in: {msg}"
    return msg


# Cases that start a run or wait for a scheduler take seconds (measured): `make test-fast` leaves them out.
SLOW_CASES = {"scheduler_nothing_listens", "scheduler_is_a_web_server", "compare_out_read_only", "out_read_only", "render_under_a_file"}


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=[pytest.mark.slow] if c.id in SLOW_CASES else [])
                                  for c in CASES])
def test_hostile_input_exits_2_and_leaves_out_alone(case, cities, talkers, tmp_path, monkeypatch):
    monkeypatch.setenv("CITYTWIN_DASK_TIMEOUT", "3s")
    tmp = tmp_path
    values = {"tmp": tmp, "free_port": free_port(), **cities, **talkers}
    if case.setup:
        case.setup(tmp)
    if "{tmp}/ro" in case.out:
        read_only_folder(tmp)
    if case.raw is not None:
        sc = tmp / "scenario.toml"
        sc.write_bytes(case.raw if isinstance(case.raw, bytes) else case.raw.encode())
    else:
        head = {k: fill(str(v), values) for k, v in case.head.items()}
        sc = write_scenario(tmp, head.pop("city", cities["city"]), fill(case.body, values), **head)
    values["sc"] = sc
    out = fill(case.out, values)
    values["out"] = out
    if case.out_exists:
        Path(out).mkdir()
        (Path(out) / "notes.txt").write_text("my notes\n")
    args = [fill(str(a), values) for a in case.args]
    watched = Path(out).parent if out else tmp
    before_out, before_parent = state(Path(out)) if out else {}, sorted(os.listdir(watched)) if watched.is_dir() else []
    started = time.monotonic()
    r = own_process(args) if case.process else here(args)
    elapsed = time.monotonic() - started
    assert_refused(r, case.expect)
    if out:
        assert state(Path(out)) == before_out, "--out was touched"
    if watched.is_dir():
        assert sorted(os.listdir(watched)) == before_parent, "something was left beside --out"
    if case.id.startswith("scheduler_"):
        assert elapsed < 18, f"took {elapsed:.1f} s to report"  # not the Dask client's 20 s of retries (15 s seen at load 12 on 2 cores)
    if case.id == "state_array_4_gb_announced":
        assert elapsed < 30, f"took {elapsed:.1f} s"  # refused from the ZIP directory, never decompressed


def test_corpus_is_large_and_covers_every_command():
    assert len(CASES) >= 60
    commands = {c.args[0] if c.args[0] != "city" else " ".join(c.args[:2]) for c in CASES}
    assert commands == {"run", "compare", "branch", "render", "city info", "city import"}
    print(f"hostile-input corpus: {len(CASES)} cases")
    assert len({c.id for c in CASES}) == len(CASES)
