"""The `citytwin` command line (CONTRACT §3). Bad input exits 2 with one paragraph, no traceback."""
from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import click

from twin.core.errors import UserError
from twin.core.formats import KEYED_SHOWN, fmt_number, top_entries

DEMO_CITY = Path(__file__).resolve().parent.parent / "gis_data" / "demo_city"


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="citytwin")
@click.pass_context
def cli(ctx):
    """CityTwin: a desktop digital twin of a city. Without a command, opens the app."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(app)


@cli.command()
@click.argument("scenario", required=False, type=click.Path(path_type=Path))
@click.option("--city", type=click.Path(path_type=Path), help="City package to open (default: the demo city).")
def app(scenario, city):
    """Open the desktop app (on the bundled demo city when no scenario is given)."""
    if scenario is not None:
        from twin.scenario.scenario import load_scenario

        load_scenario(scenario)  # fail here, with a clear message, before a window opens
    if city is not None:
        from twin.core.city import City

        City.load(city)
    sys.exit(_gui_entry_point()(scenario=scenario, city=city))


def _gui_entry_point():
    """The desktop app, found through the ``citytwin.gui`` entry point (twin never imports app)."""
    from importlib.metadata import entry_points

    found = list(entry_points(group="citytwin.gui", name="app"))
    if not found:
        raise UserError("the desktop app is not installed (no citytwin.gui entry point); reinstall CityTwin "
                        "with `make setup`.")
    return found[0].load()


@cli.group()
def city():
    """Import and inspect city packages."""


class _ImportCommand(click.Command):
    """`city import` with the options the models' import hooks declare, added when the command runs."""

    def get_params(self, ctx):
        if not hasattr(self, "_model_options"):
            from twin.gis.city_import import import_options

            self._model_options = [click.Option(["--" + o.name.replace("_", "-")], type=o.type, default=o.default,
                                                show_default=o.default is not None, help=o.help)
                                   for o in import_options()]
        return super().get_params(ctx) + self._model_options


@city.command("import", cls=_ImportCommand)
@click.argument("src", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), help="Folder for the new city package.")
@click.option("--into", type=click.Path(path_type=Path), help="A drawing (.dxf, .ifc) is merged into this existing "
              "city package.")
@click.option("--place", help="Where a drawing goes: X,Y,ROT[,SCALE]: its origin in the city's CRS (metres), its "
              "rotation in degrees counter-clockwise, an optional scale.")
@click.option("--name", help="City name (default: the output folder's name).")
@click.option("--crs", help="Projected CRS to use, e.g. EPSG:32635 (default: the UTM zone of the data).")
@click.option("--default-height-m", default=10.0, show_default=True, help="Height of buildings with neither height nor levels.")
@click.option("--level-height-m", default=3.0, show_default=True, help="Metres per storey for buildings with levels only.")
def city_import(src, out, into, place, name, crs, default_height_m, level_height_m, **model_options):
    """Build a city package from real GIS data (OSM .osm.pbf, GeoJSON, Shapefile, GeoPackage, GeoTIFF DEM),
    or merge a building drawing (DXF, IFC) into one: FILE.dxf|FILE.ifc --place X,Y,ROT --into DIR."""
    from twin.gis.drawings import is_drawing

    drawings = [s for s in src if is_drawing(s)]
    if drawings:
        if len(src) > 1:
            raise UserError("give one drawing (.dxf or .ifc) per import, alone: each has its own --place.")
        if out is not None or name or crs:
            raise UserError(f"{drawings[0]}: a drawing is merged into an existing city package: give --into DIR (and "
                            "--place X,Y,ROT), not --out, --name or --crs.")
        if into is None or place is None:
            raise UserError(f"{drawings[0]}: give --into DIR (the city package it goes into) and --place X,Y,ROT[,SCALE] "
                            "(where its origin lands in the city's CRS, its rotation in degrees, an optional scale).")
        from twin.gis.city_info import checks_text, city_checks
        from twin.gis.drawings import import_drawing, report_text

        report = import_drawing(drawings[0], into, place, **model_options)
        click.echo(report_text(report))
        click.echo("")
        click.echo(checks_text(city_checks(into), into))
        return
    if into is not None or place is not None:
        raise UserError("--into and --place are for a drawing (.dxf, .ifc); a new city package from GIS data is "
                        "written with --out DIR.")
    if out is None:
        raise UserError("give --out DIR, the folder for the new city package.")
    from twin.gis.city_import import import_city

    report = import_city(list(src), out, name=name, crs=crs, default_height_m=default_height_m,
                         level_height_m=level_height_m, **model_options)
    click.echo(report.text())


@city.command("info")
@click.argument("path", type=click.Path(path_type=Path))
def city_info(path):
    """Layers, counts, CRS, extent and height statistics of a city package."""
    from twin.gis.city_info import city_info as info

    click.echo(info(path))


@city.command("check")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--model", "model", default=None, help="Check one model only (default: every registered model).")
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None,
              help="Also write the report as JSON to this file (for scripts).")
def city_check(path, model, json_out):
    """What each model found in a city package, took from its data, estimated, defaulted, and what is
    missing (with what to add). Exit status 0 when every model checked can run, 1 when one cannot."""
    from twin.gis.city_info import checks_text, city_checks

    checks = city_checks(path, model)
    click.echo(checks_text(checks, path))
    if json_out is not None:
        from twin.core.files import write_json

        write_json({"city": str(path), "models": [c.to_dict() for c in checks]}, json_out)
    if not all(c.can_run for c in checks):
        raise SystemExit(1)


@cli.command()
@click.argument("model", required=False)
def models(model):
    """List the models, or one model's parameters and KPIs."""
    from twin.scenario.model_docs import describe_model, list_models

    click.echo(describe_model(model) if model else list_models())


@cli.command()
@click.argument("scenario", required=False, type=click.Path(path_type=Path))
@click.option("--intervention", "variant", help="Run this intervention instead of the baseline.")
@click.option("--seed", type=int, help="Override the scenario's seed.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a parameter (repeatable).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder for the run's outputs.")
@click.option("--save-state-at", "save_at", multiple=True, type=float, metavar="T",
              help="Also write the model's complete state at T seconds into OUT/states/ (repeatable).")
@click.option("--from-state", "from_state", type=click.Path(path_type=Path), metavar="FILE",
              help="Continue from a state file (SCENARIO is then optional), optionally as another variant.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--city", "city", type=click.Path(path_type=Path), help="Run the scenario on this city package instead "
              "of its own (its feature parameters are resolved there; write them as selectors to travel).")
def run(scenario, variant, seed, sets, out, save_at, from_state, quiet, city):
    """Run one scenario variant and write summary.json, timeseries and rasters to --out."""
    from twin.scenario import preflight
    from twin.scenario.output_settings import parse_times
    from twin.runs.runner import check_out_dir, load_state_run, run_one, summary_caveats
    from twin.scenario.scenario import load_scenario, parse_set

    overrides = parse_set(list(sets))
    state = None
    if from_state is not None:
        if seed is not None:
            raise UserError("--seed cannot be combined with --from-state: the state carries the run's random "
                            "generators. Leave --seed out.")
        if city is not None:
            raise UserError("--city cannot be combined with --from-state: a state continues on the city it was "
                            "saved on. Leave --city out.")
        sc, state, variant, overrides = load_state_run(from_state, scenario, variant, overrides)
        seed = int(state.meta["seed"])  # static draws (e.g. walking speeds) must be those of the saved run
    elif scenario is None:
        raise UserError("citytwin run needs a SCENARIO file (or --from-state FILE to continue a saved run).")
    else:
        sc = load_scenario(scenario, city=city)
    parse_times(list(save_at), "--save-state-at", sc.duration_s)
    preflight.for_run(sc, variant=variant, seed=seed, overrides=overrides, out=out)  # --out locked till the end
    check_out_dir(out)
    result = run_one(sc, variant, seed, overrides, out=out, progress=not quiet, state=state, save_state_at=save_at)
    s = result.summary
    start = f" from the state at {state.time_s:g} s" if state is not None else ""
    click.echo(f"{s['scenario']} [{s['variant']}] seed {s['seed']}{start}: {s['simulated_s']:.0f} s simulated "
               f"in {s['wall_s']:.1f} s wall")
    names = s.get("names", {})
    for name, value in s["kpis"].items():
        unit = s["units"].get(name, "")
        if isinstance(value, dict):  # keyed: the largest entries by name, not a wall of ids
            click.echo(f"  {name:28s} ({len(value) or 'no'} entries{', largest first' if len(value) > 1 else ''}) {unit}")
            for key, v in top_entries(value, KEYED_SHOWN):
                click.echo(f"    {names.get(key, key)[:40]:40s} {fmt_number(v)}")
            if len(value) > KEYED_SHOWN:
                click.echo(f"    … {len(value) - KEYED_SHOWN} more in summary.json")
            continue
        click.echo(f"  {name:28s} {fmt_number(value)} {unit}")
    for line in summary_caveats(s):  # the results rest on these: warnings, estimates and defaults
        click.echo(f"citytwin: {line}" if line.startswith("warning: ") else line, err=line.startswith("warning: "))
    if result.states:
        click.echo(f"states in {out / 'states'}: {len(result.states)} file(s)")
    click.echo(f"outputs in {out}")


@cli.command()
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option("--replications", type=int, help="Replications per variant (default: the scenario's).")
@click.option("--workers", type=int, help="Local worker processes (default: all cores).")
@click.option("--scheduler", help="Dask scheduler address (tcp://host:8786) to run on a cluster.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder for the comparison.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--city", "city", type=click.Path(path_type=Path), help="Compare on this city package instead of the "
              "scenario's own.")
def compare(scenario, replications, workers, scheduler, out, quiet, city):
    """Baseline and every intervention × replications, with paired confidence intervals."""
    from twin.runs.experiment import compare as run_compare
    from twin.scenario.scenario import load_scenario

    if city is not None:
        scenario = load_scenario(scenario, city=city)
    result = run_compare(scenario, out, replications=replications, workers=workers, scheduler=scheduler,
                         progress=not quiet)
    click.echo(result.text() if hasattr(result, "text") else str(result))


_WORKERS = click.option("--workers", type=int, help="Local worker processes (default: all cores).")
_SCHEDULER = click.option("--scheduler", help="Dask scheduler address (tcp://host:8786) to run on a cluster.")
_QUIET = click.option("--quiet", is_flag=True, help="No progress bar.")


@cli.command()
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option("--observed", required=True, type=click.Path(path_type=Path), metavar="FILE",
              help="CSV of time_s and one column per observed KPI (or KPI.KEY).")
@click.option("--fit", "fit", multiple=True, metavar="NAME=LOW..HIGH", help="A parameter to fit and its range "
              "(repeatable).")
@click.option("--method", default="abc", show_default=True, help="abc (ABC-SMC, pyabc) or optuna (TPE).")
@click.option("--population", default=100, show_default=True, help="ABC: particles per generation.")
@click.option("--generations", default=6, show_default=True, help="ABC: generations.")
@click.option("--trials", default=64, show_default=True, help="Optuna: trials.")
@click.option("--intervention", help="Fit this intervention instead of the baseline.")
@_WORKERS
@_SCHEDULER
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder for the calibration.")
@_QUIET
def calibrate(scenario, observed, fit, method, population, generations, trials, intervention, workers, scheduler,
              out, quiet):
    """Fit parameters to observed time series: fit.csv, calibrated.toml, report.html."""
    from twin.runs.calibrate import calibrate as run_calibrate

    result = run_calibrate(scenario, observed, list(fit), out, method=method, population=population,
                           generations=generations, trials=trials, intervention=intervention, workers=workers,
                           scheduler=scheduler, progress=not quiet)
    click.echo(result.text())


@cli.command()
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option("--vary", multiple=True, metavar="NAME=LOW..HIGH", help="A parameter and its range (repeatable).")
@click.option("--method", default="sobol", show_default=True, help="sobol (S1, ST) or morris (mu*, sigma).")
@click.option("--samples", default=64, show_default=True, help="Base samples N (Sobol: a power of two, N(D+2) runs; "
              "Morris: trajectories, N(D+1) runs).")
@click.option("--kpi", "kpis", multiple=True, help="KPIs to analyse (default: the headline KPIs; repeatable).")
@click.option("--intervention", help="Analyse this intervention instead of the baseline.")
@_WORKERS
@_SCHEDULER
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder for the analysis.")
@_QUIET
def sensitivity(scenario, vary, method, samples, kpis, intervention, workers, scheduler, out, quiet):
    """Sensitivity indices (SALib) of the headline KPIs: sensitivity.csv, sensitivity.png, report.html."""
    from twin.runs.sensitivity import sensitivity as run_sensitivity

    result = run_sensitivity(scenario, out, list(vary), method=method, samples=samples, kpis=list(kpis),
                             intervention=intervention, workers=workers, scheduler=scheduler, progress=not quiet)
    click.echo(result.text())


@cli.command()
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option("--uncertain", multiple=True, metavar="NAME=LOW..HIGH", help="An uncertain parameter and its range "
              "(repeatable).")
@click.option("--samples", default=64, show_default=True, help="Futures to sample.")
@click.option("--sampler", default="lhs", show_default=True, help="lhs (Latin hypercube) or sobol.")
@click.option("--target", "targets", multiple=True, metavar="KPI<=VALUE", help="A target to meet (also <, >=, >; "
              "repeatable).")
@_WORKERS
@_SCHEDULER
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder for the exploration.")
@_QUIET
def explore(scenario, uncertain, samples, sampler, targets, workers, scheduler, out, quiet):
    """Every intervention in every sampled future: robustness.csv, futures.parquet, scenario discovery."""
    from twin.runs.explore import explore as run_explore

    result = run_explore(scenario, out, list(uncertain), samples, list(targets), sampler=sampler, workers=workers,
                         scheduler=scheduler, progress=not quiet)
    click.echo(result.text())


@cli.command()
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option("--at", "at", type=float, required=True, metavar="T",
              help="Branch time in seconds (moved up onto the model's time step).")
@click.option("--intervention", help="The intervention of the second future.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Parameter changes of the second future, on top of --intervention (repeatable).")
@click.option("--replications", type=int, help="Replications of each future (default 1).")
@click.option("--workers", type=int, help="Local worker processes (default: all cores).")
@click.option("--seed", type=int, help="Override the scenario's seed.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder for the branch.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--city", "city", type=click.Path(path_type=Path), help="Branch on this city package instead of the "
              "scenario's own.")
def branch(scenario, at, intervention, sets, replications, workers, seed, out, quiet, city):
    """Run the baseline to T once, then the baseline and an intervention from that same state."""
    from twin.runs.branch import branch as run_branch
    from twin.runs.branch import check_branch
    from twin.scenario.scenario import parse_set

    from twin.core import locks
    from twin.scenario.scenario import load_scenario

    if city is not None:
        scenario = load_scenario(scenario, city=city)
    plan = check_branch(scenario, at, intervention, replications, workers, out, seed, parse_set(list(sets)))
    locks.hold(out)  # after every check; released at the end of the command
    result = run_branch(plan, out, workers=workers, progress=not quiet)
    click.echo(result.text())


@cli.command()
@click.argument("target", metavar="SCENARIO|RUN_DIR", type=click.Path(path_type=Path))
@click.option("--intervention", help="Side by side with the baseline: this intervention (of the scenario, or of a "
              "compare/branch folder).")
@click.option("--replication", type=int, default=0, show_default=True,
              help="Which replication of a compare/branch folder to film.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The video file (.mp4).")
@click.option("--size", default="1920x1080", show_default=True, help="WIDTHxHEIGHT, or 1080p / 4K.")
@click.option("--fps", type=float, default=30.0, show_default=True, help="Frames per second.")
@click.option("--length-s", "length_s", type=float, help="Length of the video in seconds (default 30).")
@click.option("--speed", type=float, help="Simulated seconds per second of video (instead of --length-s).")
@click.option("--from", "start_s", type=float, metavar="T", help="Start at this simulated time (default: the start).")
@click.option("--to", "end_s", type=float, metavar="T", help="End at this simulated time (default: the end).")
@click.option("--difference", is_flag=True, help="Draw the intervention's field as intervention minus baseline.")
@click.option("--light", is_flag=True, help="Light background instead of the command room's dark one.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def render(target, intervention, replication, out, size, fps, length_s, speed, start_s, end_s, difference, light,
           quiet):
    """An MP4 of a run (or of two variants side by side) with the time and the headline tiles burnt in."""
    if replication < 0:
        raise UserError(f"--replication {replication}: must be 0 or more.")
    from twin.runs.render import render_command
    from twin.view.video import describe

    result = render_command(target, out, intervention=intervention, replication=replication, size=size, fps=fps,
                            length_s=length_s, speed=speed, start_s=start_s, end_s=end_s, difference=difference,
                            light=light, quiet=quiet)
    click.echo(describe(result))




@cli.group()
def feed():
    """Synthetic and recorded sensor feeds (docs/live.md)."""


@feed.command("synth")
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="The hidden truth: a parameter that differs from the scenario (repeatable).")
@click.option("--intervention", "variant", help="The truth runs this intervention.")
@click.option("--seed", type=int, help="Seed of the truth and of the sensors' noise (default: the scenario's).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The record (a folder).")
def feed_synth(scenario, sets, variant, seed, out):
    """Run a hidden truth and write what the city's sensors would have reported of it, with their noise."""
    from twin.scenario import preflight
    from .live.synth import synth
    from twin.runs.runner import check_out_dir
    from twin.scenario.scenario import load_scenario, parse_set

    overrides = parse_set(list(sets))
    sc = load_scenario(scenario)
    preflight.for_run(sc, variant=variant, seed=seed, overrides=overrides, out=out)
    check_out_dir(out)
    rec = synth(sc, overrides, out, seed, variant)
    click.echo(f"{rec['messages']} messages from {len(rec['sensors'])} sensors ({len(rec['skipped'])} of the city's "
               f"observe nothing model {rec['model']} declares) in {out}")


@feed.command("replay")
@click.argument("record", type=click.Path(path_type=Path))
@click.option("--to", "to", required=True, help="mqtt://HOST:PORT[/TOPIC] (each message on TOPIC/SENSOR) or folder:PATH.")
@click.option("--speed", type=float, default=1.0, show_default=True, help="Times real time; 0: as fast as it goes.")
def feed_replay(record, to, speed):
    """Play a record's messages into a broker (or a CSV folder) at SPEED times real time."""
    from .live.synth import replay

    replay(record, to, speed, log=click.echo)


def _check_filter_options(rerun_lag_s: float, spread_floor: float, update_every_s: float) -> None:
    if not 0 <= update_every_s < 1e7:
        raise UserError(f"--update-every-s {update_every_s}: give a number of model seconds, 0 or more (0: an update at "
                        "every reading).")
    if not 0 <= rerun_lag_s < 1e7:
        raise UserError(f"--rerun-lag-s {rerun_lag_s}: give a number of model seconds, 0 or more (0: not).")
    if not 0 <= spread_floor <= 0.5:
        raise UserError(f"--spread-floor {spread_floor}: give a share of the --estimate range from 0 (no floor) to "
                        "0.5 (e.g. 0.02).")


@cli.command()
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option("--feed", "feeds", multiple=True, required=True, metavar="URL",
              help="mqtt://HOST:PORT/TOPIC, gtfs-rt+http://HOST/PATH#sensor=ID or folder:PATH (repeatable).")
@click.option("--until", "until_s", type=float, metavar="T", help="Stop at model time T (seconds).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder for the live outputs.")
@click.option("--intervention", "variant", help="Run this intervention live instead of the baseline.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a parameter (repeatable).")
@click.option("--seed", type=int, help="Override the scenario's seed.")
@click.option("--forecast-interval-s", type=float, default=300.0, show_default=True,
              help="A forecast every this many model seconds.")
@click.option("--horizon-s", type=float, default=900.0, show_default=True, help="How far each forecast looks ahead.")
@click.option("--members", type=int, default=10, show_default=True, help="Ensemble members per forecast (0: none).")
@click.option("--member-set", "member_sets", multiple=True, metavar="KEY=VALUE",
              help="The members' resolution: a parameter they run with instead of the live run's, e.g. a longer "
                   "time step, to forecast sooner (repeatable).")
@click.option("--workers", type=int, default=1, show_default=True, help="Worker processes for the members.")
@click.option("--start", "start", metavar="ISO", help="Wall time of t = 0 (ISO 8601 with zone): for timestamped messages.")
@click.option("--clock", type=click.Choice(["feed", "wall"]), default="feed", show_default=True,
              help="feed: the model follows the latest reported time; wall: the wall clock since --start.")
@click.option("--late-tolerance-s", type=float, default=0.0, show_default=True,
              help="Messages older than the model's clock by more than this are late.")
@click.option("--stop-when-silent-s", type=float, metavar="S", help="Stop when no feed has sent anything for S s.")
@click.option("--assimilate", type=click.Choice(["off", "pf", "enkf"]), default="off", show_default=True,
              help="Keep --members runs corrected by the state sensors' readings (particle filter or ensemble "
                   "Kalman filter, as `citytwin assimilate`); the forecasts start from them.")
@click.option("--estimate", "estimate", multiple=True, metavar="NAME=LOW..HIGH",
              help="With --assimilate: a numeric parameter the filter estimates, its prior uniform over the range.")
@click.option("--rerun-lag-s", "rerun_lag_s", type=float, default=0.0, show_default=True,
              help="With --assimilate enkf: after each update run every member again from its state this many seconds "
                   "back with its updated parameters (as `citytwin assimilate`; 0: not).")
@click.option("--spread-floor", "spread_floor", type=float, default=0.0, show_default=True,
              help="With --assimilate enkf: every estimated parameter's spread after an update at least this share of "
                   "its --estimate range (as `citytwin assimilate`; 0: no floor).")
@click.option("--update-every-s", "update_every_s", type=float, default=0.0, show_default=True,
              help="With --assimilate: update the filter every this many model seconds from each sensor's mean reading "
                   "since the last update (as `citytwin assimilate`; 0: at every reading).")
def live(scenario, feeds, until_s, out, variant, sets, seed, forecast_interval_s, horizon_s, members, member_sets,
         workers, start, clock, late_tolerance_s, stop_when_silent_s, assimilate, estimate, rerun_lag_s, spread_floor,
         update_every_s):
    """The twin kept in step with its feeds, with rolling ensemble forecasts, forecast alerts and skill."""
    from datetime import datetime

    from twin.scenario import preflight
    from .live.feeds import open_feed
    from .live.loop import LiveSettings, LiveTwin
    from .live.assimilate import AssimilationSettings
    from twin.runs.runner import check_out_dir
    from twin.scenario.scenario import load_scenario, parse_set

    for name, v, low in (("--forecast-interval-s", forecast_interval_s, 0.0), ("--horizon-s", horizon_s, -1e-9),
                         ("--members", members, -1e-9), ("--workers", workers, 0.0)):
        if not v > low:
            raise UserError(f"{name} {v}: give a positive number.")
    epoch = None
    if start:
        try:
            dt = datetime.fromisoformat(start.replace("Z", "+00:00"))
        except ValueError:
            dt = None
        if dt is None or dt.tzinfo is None:
            raise UserError(f"--start {start}: give an ISO-8601 time with its zone, e.g. 2026-12-04T17:00:00+08:00.")
        epoch = dt.timestamp()
    if clock == "wall" and epoch is None:
        raise UserError("--clock wall needs --start (the wall time of the scenario's t = 0).")
    for u in feeds:
        open_feed(u, connect=False)  # a URL no adapter reads fails before anything is built
    overrides = parse_set(list(sets))
    sc = load_scenario(scenario)
    member_overrides = parse_set(list(member_sets))
    if member_overrides:  # the members' parameters are checked as a run's would be, before anything starts
        from twin.core.params import validate_params

        validate_params(sc.model_class(), member_overrides, "--member-set")
    if estimate and assimilate == "off":
        raise UserError("--estimate needs --assimilate pf or enkf (the filter estimates the parameters).")
    if assimilate != "off" and members < 2:
        raise UserError(f"--members {members}: --assimilate {assimilate} needs at least 2 members.")
    _check_filter_options(rerun_lag_s, spread_floor, update_every_s)
    if update_every_s > 0 and assimilate == "off":
        raise UserError(f"--update-every-s {update_every_s:g}: how often the filter updates; give it with --assimilate "
                        "pf or enkf.")
    for name, v in (("--rerun-lag-s", rerun_lag_s), ("--spread-floor", spread_floor)):
        if v > 0 and assimilate != "enkf":
            raise UserError(f"{name} {v:g}: an option of the ensemble Kalman filter's members and parameters; give it "
                            "with --assimilate enkf.")
    ranges, checked = _estimated(sc, estimate, overrides, variant, live=True)
    preflight.for_run(sc, variant=variant, seed=seed, overrides=checked, out=out)
    check_out_dir(out)
    settings = LiveSettings(until_s=until_s, assimilate=assimilate, estimate=ranges, forecast_interval_s=forecast_interval_s, horizon_s=horizon_s,
                            members=members, workers=workers, start_epoch_s=epoch, clock=clock,
                            member_overrides=member_overrides,
                            late_tolerance_s=late_tolerance_s, stop_when_silent_s=stop_when_silent_s,
                            filter=AssimilationSettings(rerun_lag_s=rerun_lag_s, spread_floor=spread_floor,
                                                        update_every_s=update_every_s)
                            if rerun_lag_s > 0 or spread_floor > 0 or update_every_s > 0 else None)
    opened = [open_feed(u) for u in feeds]
    twin = LiveTwin(sc, opened, out, settings, variant, seed, overrides, log=click.echo)
    s = twin.run_until()
    click.echo(f"live: stopped at t = {s['time_s']:g} s; {s['forecasts']} forecasts, {s['alerts']} forecast alerts; "
               f"outputs in {out}")


@cli.command()
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option("--record", required=True, type=click.Path(path_type=Path),
              help="A record of `citytwin feed synth` (or of real feeds in its form).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder for the assimilation's outputs.")
@click.option("--method", type=click.Choice(["pf", "enkf"]), default="pf", show_default=True,
              help="pf: particle filter (resampling); enkf: ensemble Kalman filter.")
@click.option("--members", type=int, default=20, show_default=True, help="Ensemble members (particles).")
@click.option("--estimate", "estimate", multiple=True, metavar="NAME=LOW..HIGH",
              help="An uncertain parameter the filter estimates, its prior uniform over the range (repeatable).")
@click.option("--seed", type=int, help="Override the scenario's seed (the filter's draws follow it).")
@click.option("--intervention", "variant", help="Run this intervention instead of the baseline.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a parameter (repeatable).")
@click.option("--forecast-interval-s", type=float, default=300.0, show_default=True,
              help="A forecast of both ensembles every this many model seconds.")
@click.option("--horizon-s", type=float, default=900.0, show_default=True, help="How far each forecast looks ahead.")
@click.option("--outlier-k", "outlier_k", type=float, default=5.0, show_default=True,
              help="Reject a reading more than this many standard deviations (ensemble and noise) off.")
@click.option("--obs-error", "obs_error", type=float, default=0.0, show_default=True,
              help="A model error added to each sensor's declared noise: this share of the reading (0.1: 10 %).")
@click.option("--localise-m", "localise_m", type=float, default=0.0, show_default=True,
              help="enkf: also correct the state the model declares correctable, each sensor within about twice "
                   "this many metres (Gaspari-Cohn half-width); 0: parameters only.")
@click.option("--kernel", type=float, default=0.3, show_default=True,
              help="pf: after resampling, the parameters are jittered by this share of their spread and shrunk towards "
                   "their mean to keep it (Liu-West kernel h; 0: they keep their value).")
@click.option("--temper", "temper_to", type=float, default=0.3, show_default=True,
              help="pf: temper an update's likelihood so that this share of the members stays effective (0: never).")
@click.option("--inflation", type=float, default=1.0, show_default=True,
              help="enkf: the ensemble's departures from its mean × this before each update (1: none).")
@click.option("--rtps", type=float, default=0.5, show_default=True,
              help="enkf: what the update corrects keeps this share of its spread before the update (0: none).")
@click.option("--spread-floor", "spread_floor", type=float, default=0.0, show_default=True,
              help="enkf: after each update every estimated parameter's spread (standard deviation) is at least this "
                   "share of its --estimate range, so that a bias the readings keep showing still moves it (0.01: 1 %; "
                   "0: no floor).")
@click.option("--rerun-lag-s", "rerun_lag_s", type=float, default=0.0, show_default=True,
              help="enkf: after each update run every member again from its state this many seconds back, with its "
                   "updated parameters, so that state and parameters agree (set it to how long a parameter takes to "
                   "reach the sensors; 0: not).")
@click.option("--update-every-s", "update_every_s", type=float, default=0.0, show_default=True,
              help="Update the filter every this many model seconds from each sensor's mean reading since the last "
                   "update, against the members' mean prediction at the same times (300: five minutes of counts per "
                   "update, steadier estimates from few members); 0: an update at every reading.")
@click.option("--ignore-forcings", is_flag=True, help="Do not apply the record's forcing readings (the quantities the "
              "model declares as forcings): estimate a forcing's scale from the state sensors instead.")
@click.option("--observe-forcings", is_flag=True, help="Do not apply the record's forcing readings: assimilate them as "
              "readings of each member's own forcing, which pins down an estimated scale of it (the state sensors are "
              "then left to the other parameters).")
@click.option("--workers", type=int, default=1, show_default=True, help="Worker processes for the forecasts.")
@click.option("--no-report", is_flag=True, help="Write the tables only, not report.html and its pictures.")
@click.option("--time-limit-s", "time_limit_s", type=float, default=None,
              help="Stop at the first checkpoint (a forecast issue) after this many seconds of wall time (0: the first); "
                   "the same command run again goes on from it.")
def assimilate(scenario, record, out, method, members, estimate, seed, variant, sets, forecast_interval_s, horizon_s,
               outlier_k, obs_error, localise_m, kernel, temper_to, inflation, rtps, spread_floor, rerun_lag_s,
               update_every_s, ignore_forcings,
               observe_forcings, workers, no_report, time_limit_s):
    """A recorded day through a filter as fast as it goes: open loop and assimilated forecasts side by side."""
    from twin.scenario import preflight
    from .live.assimilate import Assimilation, AssimilationSettings
    from twin.runs.runner import check_out_dir
    from twin.scenario.scenario import load_scenario, parse_set

    for name, v in (("--forecast-interval-s", forecast_interval_s), ("--horizon-s", horizon_s), ("--outlier-k", outlier_k),
                    ("--workers", workers)):
        if not v > 0:
            raise UserError(f"{name} {v}: give a positive number.")
    if not 0 <= obs_error < 10:
        raise UserError(f"--obs-error {obs_error}: give a share of the reading from 0 to 10 (e.g. 0.1).")
    if not 0 <= localise_m < 1e6:
        raise UserError(f"--localise-m {localise_m}: give a distance in metres (0: correct parameters only).")
    if not 0 <= kernel < 1:
        raise UserError(f"--kernel {kernel}: give a share of the parameters' spread from 0 to below 1 (e.g. 0.3).")
    if not 0 <= temper_to < 1:
        raise UserError(f"--temper {temper_to}: give a share of the members from 0 (never) to below 1 (e.g. 0.3).")
    if not 1 <= inflation <= 3:
        raise UserError(f"--inflation {inflation}: give a factor from 1 (none) to 3 (e.g. 1.1).")
    if not 0 <= rtps <= 1:
        raise UserError(f"--rtps {rtps}: give a share from 0 (none) to 1 (the prior's spread kept).")
    _check_filter_options(rerun_lag_s, spread_floor, update_every_s)
    if members < 2:
        raise UserError(f"--members {members}: a filter needs at least 2 members.")
    if time_limit_s is not None and not 0 <= time_limit_s < 1e9:
        raise UserError(f"--time-limit-s {time_limit_s}: give a number of seconds, 0 or more (0: stop at the first "
                        "checkpoint).")
    overrides = parse_set(list(sets))
    sc = load_scenario(scenario)
    ranges, checked = _estimated(sc, estimate, overrides, variant)
    preflight.for_run(sc, variant=variant, seed=seed, overrides=checked, out=out)
    check_out_dir(out)
    settings = AssimilationSettings(method=method, members=members, forecast_interval_s=forecast_interval_s,
                                    horizon_s=horizon_s, outlier_k=outlier_k, kernel=kernel, localise_m=localise_m,
                                    obs_error=obs_error, inflation=inflation, rtps=rtps, temper_to=temper_to,
                                    spread_floor=spread_floor, rerun_lag_s=rerun_lag_s,
                                    update_every_s=update_every_s, use_forcings=not (ignore_forcings or observe_forcings),
                                    observe_forcings=observe_forcings,
                                    workers=workers, report=not no_report)
    s = Assimilation(sc, record, ranges, settings, variant, seed, overrides, log=click.echo).run(out, time_limit_s)
    if not s["complete"]:
        click.echo(f"assimilate ({method}, {members} members): stopped at t = {s['time_s']:g} s after "
                   f"{s['forecasts_issued']} of {s['forecasts_planned']} forecasts and {s['updates']} updates, "
                   f"{s['wall_s']:.1f} s; the outputs so far in {out}. Run the same command again to go on.")
        return
    click.echo(f"assimilate ({method}, {members} members): {s['updates']} updates, {s['rejected']} readings "
               f"rejected, {s['wall_s']:.1f} s; outputs in {out}")
    for name, p in s["parameters"].items():
        truth = f" (truth {p['truth']:g})" if p["truth"] is not None else ""
        click.echo(f"  {name}: prior mean {p['prior_mean']:.4g}, estimate {p['final_mean']:.4g} "
                   f"[p10 {p['final_p10']:.4g}, p90 {p['final_p90']:.4g}]{truth}")
    for kpi in s["headline_kpis"]:
        leads = s["headline_rmse_by_lead"].get(kpi, {})
        cells = [f"{_lead(lead)} {by['open_loop']:.4g} → {by['assimilated']:.4g}"
                 + (f" ({by['assimilated'] / by['open_loop']:.2f})" if by["open_loop"] > 0 else "")
                 for lead, by in _some_leads(leads) if "open_loop" in by and "assimilated" in by]
        if cells:
            click.echo(f"  RMSE {kpi}, open loop → assimilated: {'; '.join(cells)}")
    for method, leads in s["coverage"].items():
        shown = [(lead, c) for lead, c in _some_leads(leads) if c["coverage"] is not None]
        if shown:
            last, c = shown[-1]
            exact = (f"; with the {c['kpis_all'] - c['kpis']} forecast exactly {c['coverage_all']:.2f} at "
                     f"{_lead(last)}" if c["kpis_all"] > c["kpis"] else "")
            click.echo(f"  p10-p90 coverage, {method.replace('_', ' ')}: "
                       + ", ".join(f"{_lead(lead)} {v['coverage']:.2f}" for lead, v in shown)
                       + f" (over {c['kpis']} KPIs and sensors{exact})")
    if s["kpis_forecast_exactly"]:
        click.echo(f"  forecast exactly by every member, so left out of the coverage: "
                   f"{', '.join(s['kpis_forecast_exactly'])}")
    click.echo(f"  every KPI's RMSE: {out / 'summary.json'} (\"rmse\"); by lead: {out / 'skill.csv'}")


def _some_leads(by_lead: dict) -> list:
    from twin.live.assim_report import some_leads

    keep = some_leads([float(k) for k in by_lead])
    return [(k, v) for k, v in sorted(by_lead.items(), key=lambda kv: float(kv[0])) if float(k) in keep]


def _lead(lead_s: str) -> str:
    s = float(lead_s)
    return f"{s / 60:g} min" if s % 60 == 0 else f"{s:g} s"


def main(argv=None) -> int:
    os.environ.setdefault("NUMBA_CACHE_DIR", str(Path.home() / ".cache" / "citytwin" / "numba"))
    # numpy's BLAS would start its own threads for a single dot product (measured: a model's run
    # 5x slower); the models thread their own kernels with numba.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    try:
        _refuse_empty_paths(sys.argv[1:] if argv is None else argv)
        cli.main(args=argv, prog_name="citytwin", standalone_mode=False)
    except UserError as e:
        click.echo(f"citytwin: error: {_one_paragraph(str(e))}", err=True)
        return 2
    except OSError as e:  # the machine refused (disk full, permissions, a file vanished): the user can fix it
        click.echo(f"citytwin: error: {_os_error(e)}", err=True)
        return 2
    except MemoryError:
        click.echo("citytwin: error: out of memory. Use fewer agents, a shorter duration or fewer workers "
                   "(--workers), or close other programs, and run the command again.", err=True)
        return 2
    except RecursionError:
        click.echo("citytwin: error: the input is nested too deeply to process (tables or lists inside each "
                   "other); simplify it and run the command again.", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("citytwin: interrupted", err=True)
        return 130
    except click.ClickException as e:
        e.show()
        return 2
    except SystemExit as e:  # a command's own exit status (`city check`: 1 when a model cannot run)
        return e.code if isinstance(e.code, int) else 1
    except KeyboardInterrupt:
        click.echo("citytwin: interrupted; run the same command again to pick up where it stopped.", err=True)
        return 130
    finally:
        from twin.core.locks import release_all

        release_all()  # the --out lock of run/compare, however the command ended
    return 0


PATH_OPTIONS = ("--out", "--into", "--city", "--from-state", "--observed", "--record")


def _estimated(sc, estimate, overrides: dict, variant: str | None, live: bool = False) -> tuple[list, dict]:
    """The parameter ranges of ``--estimate``, none of them also given by ``--set``, and the ``--set``
    overrides as a run is checked with (each ``{NAME}`` hole filled at its range's ends in turn)."""
    from twin.runs.uncertainty import fill_placeholders, parse_ranges, placeholders

    holes = placeholders(overrides)
    if holes and live:
        name, keys = next(iter(holes.items()))
        raise UserError(f'--set {keys[0]}: "{{{name}}}" is a number the filter estimates, which `citytwin assimilate` '
                        "takes; a live twin runs the plan itself: give the number.")
    ranges = parse_ranges(sc, list(estimate), "--estimate", holes) if estimate else []
    taken = sorted({r.name for r in ranges} & set(overrides))
    if taken:
        raise UserError(f"--estimate and --set both give {taken[0]}; a parameter is either estimated or set.")
    unfilled = [name for name in holes if name not in {r.name for r in ranges}]
    if unfilled:
        raise UserError(f'--set {holes[unfilled[0]][0]}: "{{{unfilled[0]}}}" is a hole for an estimated number; give '
                        f"--estimate {unfilled[0]}=LOW..HIGH, or write the number instead.")
    ends = [fill_placeholders(overrides, {r.name: getattr(r, end) for r in ranges if r.name in holes})
            for end in ("low", "high")]
    if holes:  # the parameters holding a hole are valid with either end of its range
        sc.params_for(variant, ends[1])
    return ranges, ends[0]


def _refuse_empty_paths(args) -> None:
    """``--out ""`` (an unset shell variable) would mean the current folder: refuse it."""
    args = [str(a) for a in args]
    for i, a in enumerate(args):
        name, eq, value = a.partition("=")
        if name in PATH_OPTIONS and ((eq and not value.strip()) or (not eq and i + 1 < len(args) and not args[i + 1].strip())):
            raise UserError(f'{name} was given an empty path (an unset variable?); give a folder, e.g. {name} results/run1. '
                            'Write "." to mean the current folder.')


def _one_paragraph(text: str) -> str:
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


OS_ERROR_HINTS = {errno.ENOSPC: "Free some disk space, or give an --out on another disk.",
                  errno.EACCES: "Give a folder you can write to.", errno.EPERM: "Give a folder you can write to.",
                  errno.EROFS: "Give a folder on a writable disk.", errno.EDQUOT: "Your disk quota is used up."}


def _os_error(e: OSError) -> str:
    where = f"{e.filename}: " if e.filename else ""
    hint = OS_ERROR_HINTS.get(e.errno, "")
    return _one_paragraph(f"{where}{e.strerror or e}. {hint}".strip())


if __name__ == "__main__":
    sys.exit(main())
