"""`citytwin calibrate`: fit a scenario's parameters to observed time series.

Observations
    A CSV with a ``time_s`` column (seconds from the start of the run) and one column per observed
    quantity, named as a column of the model's ``timeseries.csv`` (a KPI, or a keyed KPI's
    ``kpi.key`` such as a gate's or an attraction's count). Empty cells are missing readings.

Discrepancy
    The simulated series are read at the observed times (linear interpolation of the reporting
    grid); each column's difference is divided by that column's spread (its standard deviation,
    or its mean magnitude when flat), and the distance is the root mean square over every reading.
    Columns in different units then weigh alike.

Methods
    ``abc`` (default): ABC-SMC (pyabc) with uniform priors over the ``--fit`` ranges and
    ``--population`` particles per generation, for ``--generations`` generations. Each simulation
    draws its own seed, so the model's noise is part of the fit. The posterior's weighted median is
    the estimate and its 5 %..95 % weighted quantiles are ``low`` and ``high``: a 90 % interval.
    ``optuna``: a Bayesian optimiser (TPE) of the mean distance over the scenario's replications
    (seeds ``seed + k``), ``--trials`` trials asked in batches;
    the estimate is the best trial and ``low``/``high`` the range of the best 10 % of the trials (the
    best fit's spread, not a posterior).

Reproducible on any number of workers
    pyabc's parallel samplers reseed every worker from the clock. Here each accepted particle is
    searched from its own seed, drawn in this process from the seeded generator, and the particles
    come back in order (``SeededMappingSampler``); Optuna asks for fixed batches. The result is
    then the same on 1 or 2 local workers or on Dask.
"""
from __future__ import annotations

import html
import math
import os
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from twin.core.errors import UserError, nearest
from twin.scenario.scenario import BASELINE
from twin.runs.uncertainty import Range, parse_ranges, preflight, run_point, scenario_in_worker

METHODS = ("abc", "optuna")
FIT_COLUMNS = ["parameter", "estimate", "low", "high"]
OPTUNA_BATCH = 8  # trials asked at once: fixed, so the search does not depend on the number of workers


# --------------------------------------------------------------------------------------------
# Observations
# --------------------------------------------------------------------------------------------
@dataclass
class Observed:
    path: Path
    frame: pd.DataFrame  # time_s + observed columns
    columns: list[str]
    scales: dict[str, float]


def read_observed(path, sc) -> Observed:
    path = Path(path)
    where = f"--observed {path}"
    if not path.is_file():
        raise UserError(f"{where}: no such file; give a CSV with a time_s column and one column per observed KPI.")
    try:
        df = pd.read_csv(path)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as e:
        raise UserError(f"{where}: not a readable CSV ({e}); write a header line time_s,KPI,... then one row per "
                        "reading.") from None
    if "time_s" not in df.columns:
        raise UserError(f"{where}: no time_s column (the columns are: {', '.join(map(str, df.columns))}); the first "
                        "column must be time_s, seconds from the start of the run.")
    cols = [c for c in df.columns if c != "time_s"]
    if not cols:
        raise UserError(f"{where}: only a time_s column; add at least one observed KPI column.")
    known = _series_columns(sc)
    for c in cols:
        if c not in known and not any(c.startswith(k + ".") for k in known):
            raise UserError(f'{where}: column "{c}" is not a KPI of model {sc.model_class().name}{nearest(c, known)}; '
                            f"its time-series columns are: {', '.join(known)} (keyed ones as KPI.KEY).")
    for c in df.columns:
        vals = pd.to_numeric(df[c], errors="coerce")
        bad = vals.isna() & df[c].notna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise UserError(f'{where}: row {i + 2}, column "{c}": {df[c].iloc[i]!r} is not a number.')
        df[c] = vals.astype(float)
    t = df["time_s"].to_numpy()
    if df["time_s"].isna().any() or (t < 0).any() or (t > sc.duration_s + 1e-9).any():
        raise UserError(f"{where}: every time_s must be a number between 0 and the scenario's duration_s "
                        f"({sc.duration_s:g} s).")
    if len(df) < 2:
        raise UserError(f"{where}: {len(df)} reading(s); a fit needs at least 2.")
    scales = {}
    for c in cols:
        v = df[c].dropna().to_numpy()
        if len(v) == 0:
            raise UserError(f'{where}: column "{c}" has no readings.')
        s = float(np.std(v)) or float(np.mean(np.abs(v))) or 1.0
        scales[c] = s
    return Observed(path, df, cols, scales)


def _series_columns(sc) -> list[str]:
    return [k.name for k in sc.model_class().kpis]


def simulated_at(series: dict, obs: Observed) -> dict[str, np.ndarray]:
    t = np.asarray(series["time_s"], float)
    out = {}
    for c in obs.columns:
        y = np.asarray(series[c], float) if c in series else np.zeros_like(t)  # a key never seen counts 0
        out[c] = np.interp(obs.frame["time_s"].to_numpy(), t, y)
    return out


def distance(sim: dict[str, np.ndarray], obs: Observed) -> float:
    sq, n = 0.0, 0
    for c in obs.columns:
        o = obs.frame[c].to_numpy()
        ok = np.isfinite(o)
        sq += float(np.sum(((sim[c][ok] - o[ok]) / obs.scales[c]) ** 2))
        n += int(ok.sum())
    return math.sqrt(sq / max(n, 1))


# --------------------------------------------------------------------------------------------
# The simulation as the fitting engines see it (runs in worker processes)
# --------------------------------------------------------------------------------------------
class Simulator:
    """Parameter values -> the simulated readings at the observed times (a picklable callable)."""

    def __init__(self, sc, variant: str, ranges: list[Range], obs: Observed):
        self.raw, self.path = sc.raw, (str(sc.path.resolve()) if sc.path else None)
        self.variant, self.ranges, self.obs = variant, ranges, obs
        self.seeds = [sc.seed + k for k in range(max(1, sc.replications))]

    def values(self, params: dict) -> tuple:
        return tuple((r.name, r.scale((float(params[r.name]) - r.low) / (r.high - r.low))) for r in self.ranges)

    def run(self, params: dict, seed: int) -> dict[str, np.ndarray]:
        sc = scenario_in_worker(self.raw, self.path)
        res = run_point(sc, self.variant, self.values(params), seed,
                        series=sorted({c for c in self.obs.columns}))
        series = res["series"]
        return simulated_at(series, self.obs)

    def __call__(self, params) -> dict:  # pyabc's model: a fresh seed from the particle's seeded generator
        sim = self.run(dict(params), int(np.random.randint(0, 2**31 - 1)))
        return {"d": distance(sim, self.obs)}

    def distance_at(self, params: dict) -> float:
        """Optuna's objective: the mean distance over the scenario's replications (seeds seed + k), so
        that the fit is not that of one random realisation."""
        return float(np.mean([distance(self.run(params, s), self.obs) for s in self.seeds]))


def _abc_distance(x, x0):
    return float(x["d"])


from pyabc.sampler import MappingSampler  # noqa: E402 - this module is imported only by `calibrate`


class SeededMappingSampler(MappingSampler):
    """pyabc's MappingSampler with reproducible particles: one seed per accepted particle, drawn in
    the calling process; the particles come back in order whatever the number of workers."""

    def map_function(self, simulate_one, seed):
        simulate_one = self.unpickle(simulate_one)
        np.random.seed(int(seed))
        random.seed(int(seed))
        n, sample = 0, self._create_empty_sample()
        while True:
            new = simulate_one()
            n += 1
            sample.append(new)
            if new.accepted:
                return sample, n

    def sample_until_n_accepted(self, n, simulate_one, t, *, max_eval=np.inf, all_accepted=False, ana_vars=None):
        import functools

        seeds = np.random.randint(0, 2**31 - 1, size=n)
        fn = functools.partial(self.map_function, self.pickle(simulate_one))
        results = list(self.map_(fn, [int(s) for s in seeds]))
        self.nr_evaluations_ = sum(r[1] for r in results)
        sample = self._create_empty_sample()
        for r, _ in results:
            sample += r
        return sample


class _Mapper:
    """An ordered ``map`` over local worker processes or a Dask cluster, open for the whole fit."""

    def __init__(self, workers: int | None, scheduler: str | None, progress: bool, total_hint: str):
        self.workers = workers or os.cpu_count() or 1
        self.scheduler, self.progress, self.hint = scheduler, progress, total_hint
        self.pool = self.client = None
        self.bar = None

    def __enter__(self):
        if self.progress:
            from tqdm import tqdm

            self.bar = tqdm(unit=self.hint, desc="fit", file=sys.stderr)
        if self.scheduler:
            from twin.scenario.preflight import dask_client

            self.client = dask_client(self.scheduler)
        elif self.workers > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            from twin.runs.experiment import _start_method, _worker_init

            threads = max(1, (os.cpu_count() or 1) // self.workers)
            self.pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context(_start_method()),
                                            initializer=_worker_init, initargs=(threads, os.getpid()))
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        if self.client is not None:
            self.client.close()

    def __call__(self, fn, items):
        items = list(items)
        if self.bar is not None:
            self.bar.update(len(items))
        if self.client is not None:
            futures = self.client.map(fn, items, pure=False)
            return self.client.gather(futures)
        if self.pool is not None:
            return list(self.pool.map(fn, items))
        return [_isolated(fn, i) for i in items]


def _isolated(fn, item):
    """``fn(item)`` in this process without touching the global generators that pyabc draws from
    here: a particle reseeds them, which a worker process does on its own copy."""
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        return fn(item)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


# --------------------------------------------------------------------------------------------
# calibrate()
# --------------------------------------------------------------------------------------------
@dataclass
class CalibrationResult:
    out: Path
    fit: pd.DataFrame
    method: str
    simulations: int
    distance: float
    wall_s: float

    def text(self) -> str:
        lines = [f"{self.method}: {self.simulations} simulations in {self.wall_s:.1f} s; distance at the estimate "
                 f"{self.distance:.3g} (in observed standard deviations)"]
        lines += [f"  - {r.parameter} = {r.estimate:.4g} (90 % interval {r.low:.4g} .. {r.high:.4g})"
                  for r in self.fit.itertuples()]
        lines += [f"fit:        {self.out / 'fit.csv'}", f"scenario:   {self.out / 'calibrated.toml'}",
                  f"report:     {self.out / 'report.html'}"]
        return "\n".join(lines)


def calibrate(scenario, observed, fit, out, method: str = "abc", population: int = 100, generations: int = 6,
              trials: int = 64, intervention: str | None = None, workers: int | None = None,
              scheduler: str | None = None, progress: bool = True) -> CalibrationResult:
    from twin.core.limits import MAX_RUNS, bounded_number
    from twin.scenario.preflight import check_scenario

    started = time.perf_counter()
    sc = check_scenario(scenario)
    if method not in METHODS:
        raise UserError(f'--method "{method}": use abc (ABC-SMC, a posterior) or optuna (Bayesian optimisation).')
    ranges = parse_ranges(sc, fit, "--fit")
    variant = intervention or BASELINE
    sc.intervention(variant)
    obs = read_observed(observed, sc)
    population = bounded_number(population, "--population", whole=True, minimum=10, maximum=MAX_RUNS)
    generations = bounded_number(generations, "--generations", whole=True, minimum=1, maximum=100)
    trials = bounded_number(trials, "--trials", whole=True, minimum=OPTUNA_BATCH, maximum=MAX_RUNS)
    sc, out, lock = preflight(sc, out, workers, scheduler, [variant])
    try:
        sim = Simulator(sc, variant, ranges, obs)
        with _Mapper(workers, scheduler, progress, "particle" if method == "abc" else "trial") as mapper:
            if method == "abc":
                post, n_sims, extra = _fit_abc(sim, ranges, population, generations, sc.seed, mapper, out)
            else:
                post, n_sims, extra = _fit_optuna(sim, ranges, trials, sc.seed, mapper)
        table = pd.DataFrame(post, columns=FIT_COLUMNS)
        est = {r.parameter: r.estimate for r in table.itertuples()}
        best = sim.run(est, sc.seed)
        d = distance(best, obs)
        _write_outputs(sc, out, obs, table, ranges, best, extra, method, n_sims, d, variant)
        return CalibrationResult(out, table, method, n_sims, d, time.perf_counter() - started)
    finally:
        lock.release()


def _wq(x: np.ndarray, w: np.ndarray, q: float) -> float:
    from pyabc.weighted_statistics import weighted_quantile

    return float(weighted_quantile(np.asarray(x, float), np.asarray(w, float), alpha=q))


def _fit_abc(sim: Simulator, ranges, population, generations, seed, mapper, out):
    import logging

    import pyabc

    for name in ("ABC", "pyabc", "Sampler", "History", "Epsilon", "Distance", "Acceptor"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("ABC").setLevel(logging.WARNING)
    np.random.seed(seed)  # pyabc draws from numpy's global generator
    random.seed(seed)
    prior = pyabc.Distribution(**{r.name: pyabc.RV("uniform", r.low, r.high - r.low) for r in ranges})
    abc = pyabc.ABCSMC(sim, prior, _abc_distance, population_size=population,
                       sampler=SeededMappingSampler(map_=mapper))
    tmp = Path(tempfile.mkdtemp(prefix=".abc.", suffix=".partial", dir=out))
    try:
        abc.new("sqlite:///" + str(tmp / "abc.db"), {"d": 0.0})
        history = abc.run(max_nr_populations=generations)
        df, w = history.get_distribution(m=0, t=history.max_t)
        n_sims = int(history.total_nr_simulations)
        pops = history.get_all_populations()
        rows = [(r.name, _wq(df[r.name], w, 0.5), _wq(df[r.name], w, 0.05), _wq(df[r.name], w, 0.95))
                for r in ranges]
        posterior = df[[r.name for r in ranges]].assign(weight=w).reset_index(drop=True)
        epsilons = pops[pops["t"] >= 0][["t", "epsilon", "samples"]].reset_index(drop=True)
        shutil.move(str(tmp / "abc.db"), str(out / "abc.db"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows, n_sims, {"posterior": posterior, "generations": epsilons}


def _fit_optuna(sim: Simulator, ranges, trials, seed, mapper):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed), direction="minimize")
    dists = {r.name: optuna.distributions.FloatDistribution(r.low, r.high) for r in ranges}
    done = 0
    while done < trials:
        batch = [study.ask(dists) for _ in range(min(OPTUNA_BATCH, trials - done))]
        values = mapper(sim.distance_at, [dict(t.params) for t in batch])
        for t, v in zip(batch, values):
            study.tell(t, float(v))
        done += len(batch)
    df = study.trials_dataframe(attrs=("number", "value", "params"))
    df.columns = [c.replace("params_", "") for c in df.columns]
    best = df.sort_values(["value", "number"]).head(max(2, len(df) // 10))
    rows = [(r.name, float(study.best_params[r.name]), float(best[r.name].min()), float(best[r.name].max()))
            for r in ranges]
    return rows, len(df), {"trials": df}


# --------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------
def calibrated_scenario(sc, table: pd.DataFrame, obs: Observed, method: str) -> dict:
    import copy

    raw = copy.deepcopy(sc.raw)
    params = raw.setdefault("parameters", {})
    kinds = {p.name: p.kind for p in sc.model_class().params}
    for r in table.itertuples():
        params[r.parameter] = int(round(r.estimate)) if kinds[r.parameter] is int else float(f"{r.estimate:.6g}")
    s = raw.setdefault("scenario", {})
    city = Path(s["city"])
    if not city.is_absolute():  # calibrated.toml lives in --out: keep pointing at the same city
        s["city"] = str((sc.base_dir / city).resolve())
    s["description"] = (f"{s.get('description', '')} Calibrated ({method}) to {obs.path.name}: "
                        + ", ".join(f"{r.parameter} = {r.estimate:.4g} [{r.low:.4g}, {r.high:.4g}]"
                                    for r in table.itertuples())).strip()
    return raw


def _write_outputs(sc, out: Path, obs: Observed, table, ranges, best, extra, method, n_sims, d, variant) -> None:
    import tomli_w
    from matplotlib.figure import Figure

    from twin import __version__
    from twin.core.files import atomic_file, write_json, write_table
    from twin.view.fonts import use_cjk_fallback
    from twin.core.formats import kpi_label
    from twin.runs.report import _img, write_report_page
    from twin.runs.runner import _toml_safe

    use_cjk_fallback()
    write_table(table, out / "fit", formats=("csv",))
    for name, frame in extra.items():
        write_table(frame, out / name, formats=("csv",))
    raw = calibrated_scenario(sc, table, obs, method)
    with atomic_file(out / "calibrated.toml", "w", encoding="utf-8") as f:
        f.write(tomli_w.dumps(_toml_safe(raw)))
    fitted = pd.DataFrame({"time_s": obs.frame["time_s"], **{f"{c}.observed": obs.frame[c] for c in obs.columns},
                           **{f"{c}.fitted": best[c] for c in obs.columns}})
    write_table(fitted, out / "fitted_series", formats=("csv",))
    write_json({"scenario": sc.name, "model": sc.model, "variant": variant, "method": method, "simulations": n_sims,
                "distance_at_estimate": d, "observed": str(obs.path), "columns": obs.columns, "scales": obs.scales,
                "seed": sc.seed, "version": __version__}, out / "calibration.json")
    units = sc.model_class().kpi_units()
    imgs = []
    for c in obs.columns:
        fig = Figure(figsize=(8, 3.2))
        ax = fig.subplots()
        t_h = obs.frame["time_s"] / 3600.0
        ax.plot(t_h, obs.frame[c], "o", ms=3, color="#4d4d4d", label="observed")
        ax.plot(t_h, best[c], "-", color="#d62728", label="fitted (estimate, scenario seed)")
        ax.set_xlabel("time since start (h)")
        ax.set_ylabel(f"{kpi_label(c)} ({units.get(c.split('.')[0], '')})")
        ax.legend(fontsize=8)
        with atomic_file(out / f"fit_{c}.png", "path") as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
        imgs.append(_img(fig, c))
    if "posterior" in extra:
        post = extra["posterior"]
        fig = Figure(figsize=(4 * len(ranges), 3))
        axes = np.atleast_1d(fig.subplots(1, len(ranges)))
        for ax, r, row in zip(axes, ranges, table.itertuples()):
            ax.hist(post[r.name], bins=20, weights=post["weight"], color="#1f77b4", range=(r.low, r.high))
            for v in (row.low, row.high):
                ax.axvline(v, color="#4d4d4d", ls="--")
            ax.axvline(row.estimate, color="#d62728")
            ax.set_xlabel(f"{r.name} ({r.unit})")
        fig.tight_layout()
        with atomic_file(out / "posterior.png", "path") as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
        imgs.append("<h2>Posterior</h2><p class=note>Weighted histogram of the last generation; red: estimate "
                    "(median), dashed: the 90 % interval.</p>" + _img(fig, "posterior"))
    shown = table.copy()
    for col in ("estimate", "low", "high"):
        shown[col] = shown[col].map(lambda v: f"{v:.4g}")
    how = ("ABC-SMC (pyabc): estimate = posterior median, low..high = its 90 % interval" if method == "abc" else
           "Optuna TPE: estimate = best trial, low..high = the range of the best 10 % of trials")
    body = (f"<h1>{html.escape(sc.name)}: calibration</h1>"
            f"<p class=meta>{n_sims} simulations of model <b>{html.escape(sc.model)}</b> against "
            f"<b>{html.escape(obs.path.name)}</b> ({', '.join(map(html.escape, obs.columns))}); {html.escape(how)}. "
            f"Distance at the estimate: {d:.3g} observed standard deviations (RMS). CityTwin {__version__}.</p>"
            + shown.to_html(index=False, border=0) + "<h2>Fit against observation</h2>" + "".join(imgs))
    write_report_page(out, f"{sc.name} — calibration", body)
