"""What a coarser ensemble costs in accuracy (docs/live.md, "Speed"): members from one live state
at several resolutions, against the same members at the model's full resolution.

    .venv/bin/python benchmarks/bench_live_resolution.py [--scenario scenarios/station_evening_peak.toml]
        [--at 600] [--horizon-s 900] [--members 5] --res time_step_s=0.1 --res time_step_s=0.2 ...

The twin (full resolution) runs to ``at``; from its state ``members`` members (replications 1..N,
common random numbers) run ``horizon_s`` ahead at full resolution and with each ``--res`` override,
in this process, one after the other (``forecast.member_task``, what live mode's workers run).
Printed per resolution and headline KPI at the horizon: the ensemble mean, its difference from the
full resolution's, the full resolution's p10-p90 band, and the processor seconds per member. Run it
under ``nice``: only the processor times are compared.
"""
from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NUMBA_NUM_THREADS", "1")  # as a worker of a 2-worker pool on 2 cores
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _cpu() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def main() -> None:
    import numpy as np
    import pandas as pd

    from bench_live import forecast_arguments  # this folder is on sys.path when run as a script

    ap = forecast_arguments(members=5)
    ap.add_argument("--res", action="append", default=[], help="KEY=VALUE[,KEY=VALUE]: one coarser resolution")
    a = ap.parse_args()

    from twin.core.sensors import read_sensors
    from twin.live.forecast import member_task
    from twin.live.observe import Observer
    from twin.runs.runner import Run
    from twin.scenario.scenario import load_scenario, parse_set

    sc = load_scenario(a.scenario)
    run = Run(sc, outputs=False)
    run.advance(a.at)
    state = run.state_bytes()
    sensors = Observer(sc.model_class(), read_sensors(sc.load_city())).state_sensors
    headline = [k.name for k in sc.model_class().kpis if k.headline and not k.keyed]
    variants = [("full", {})] + [(r, parse_set(r.split(","))) for r in a.res]
    member_task(sc.raw, str(sc.path), str(sc.city_path), state, "baseline", sc.seed, {}, 1, 0.0, sensors, [], [])
    res, frames = {}, {}
    for label, ov in variants:
        ends, cpu, rows = [], [], []
        for k in range(1, a.members + 1):
            c = _cpu()
            r = member_task(sc.raw, str(sc.path), str(sc.city_path), state, "baseline", sc.seed, ov, k, a.horizon_s,
                            sensors, [], [])
            cpu.append(_cpu() - c)
            if "error" in r:
                raise SystemExit(f"{label}: {r['error']}")
            rows += [(lead, name, k, v) for lead, name, v in r["rows"] if name.startswith("kpi.") and name.count(".") == 1]
            last = max(lead for lead, _, _ in r["rows"])
            ends.append({name[4:]: v for lead, name, v in r["rows"] if lead == last and name[4:] in headline})
        res[label] = ({h: np.array([e[h] for e in ends]) for h in headline}, float(np.mean(cpu)))
        frames[label] = pd.DataFrame(rows, columns=["lead_s", "name", "member", "value"])
        print(f"{label}: {np.mean(cpu):.1f} processor s per member", flush=True)
    full = res["full"][0]
    print(f"\n{sc.name}: {a.members} members from t = {a.at:g} s, {a.horizon_s:g} s ahead; headline KPIs at the horizon")
    print("| resolution | cpu s / member | " + " | ".join(headline) + " |")
    print("|---|---|" + "---|" * len(headline))
    for label, (vals, cpu) in res.items():
        cells = []
        for h in headline:
            m = vals[h].mean()
            if label == "full":
                lo, hi = np.quantile(vals[h], [0.1, 0.9])
                cells.append(f"{m:.4g} (p10-p90 {lo:.4g}-{hi:.4g})")
            else:
                d = m - full[h].mean()
                cells.append(f"{m:.4g} ({d:+.3g}; {100 * d / full[h].mean() if full[h].mean() else 0:+.1f} %)")
        print(f"| {label} | {cpu:.1f} | " + " | ".join(cells) + " |")
    over_horizon(frames)



def over_horizon(frames: dict) -> None:
    """RMSE over the horizon's reports of each KPI's p50 against the full resolution's, the RMSE of
    member k against member k, and the full members' spread (mean p90 - p10) for scale."""
    import numpy as np

    full = frames["full"]
    q = full.groupby(["name", "lead_s"])["value"]
    spread = (q.quantile(0.9) - q.quantile(0.1)).groupby("name").mean()
    p50_full = q.median()
    for label, df in frames.items():
        if label == "full":
            continue
        p50 = df.groupby(["name", "lead_s"])["value"].median()
        d = (p50 - p50_full).dropna()
        rmse = np.sqrt((d ** 2).groupby("name").mean())
        m = df.merge(full, on=["lead_s", "name", "member"], suffixes=("", "_full"))
        rk = np.sqrt(((m["value"] - m["value_full"]) ** 2).groupby(m["name"]).mean())
        print(f"\n{label} against full over the horizon:")
        print("| KPI | RMSE of the p50 | RMSE member k vs k | spread of the full members | full p50 range |")
        print("|---|---|---|---|---|")
        for name in sorted(rmse.index):
            r = p50_full.loc[name]
            print(f"| {name[4:]} | {rmse[name]:.3g} | {rk[name]:.3g} | {spread[name]:.3g} | {r.iloc[0]:.4g} - {r.iloc[-1]:.4g} |")


if __name__ == "__main__":
    main()
