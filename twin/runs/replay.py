"""What the view needs to show a run again: a ``RunSource`` re-runs it exactly.

A finished run is replayed by running it again, not by storing frames: a run is a pure function of
its inputs (CONTRACT: same scenario, seed and version, same numbers), and every run folder holds
what reproduces it: ``scenario.toml`` (the variant's parameters resolved, the city's absolute path),
``bundle.json`` (seed; for a future of ``citytwin branch``, the state file it started from, its
SHA-256 and the replication) and ``summary.json`` (the KPIs the replay must end with: the view
checks them). Nothing is stored per frame, so a 30-minute crowd of 9,000 people costs no disk; the
price is the run's own computing time, spent in a worker while the view already shows what is done.

Sources: one run folder; a ``compare`` or ``branch`` folder (the baseline and one intervention,
replication ``k`` of each); a scenario file (its baseline and an intervention); or a live state
in memory (the app's branch from now).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from twin.core.errors import UserError
from twin.scenario.scenario import BASELINE, Scenario, load_scenario


@dataclass
class RunSource:
    """One variant to (re-)run: everything ``twin.runs.runner.Run`` takes, and a label for the view."""

    label: str
    scenario: Scenario
    variant: str | None = None
    seed: int | None = None
    overrides: dict = field(default_factory=dict)
    state: object = None  # a SavedState to continue from (branch futures), or None
    replication: int = 0
    summary: dict | None = None  # the finished run's summary.json: the replay must end with its KPIs
    folder: Path | None = None
    state_data: bytes | None = None  # the state's bytes when it lives in memory (the app's branch)

    def make_run(self):
        from twin.runs.runner import Run

        # a replay only shows the run again: the [outputs] files are in its folder already
        return Run(self.scenario, self.variant, self.seed, self.overrides, state=self.state,
                   replication=self.replication, outputs=False)

    @property
    def is_baseline(self) -> bool:
        return self.label == BASELINE or (self.summary or {}).get("variant") == BASELINE


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: cannot be read ({e}); the run folder is incomplete. Run it again.") from None


def source_from_run_folder(folder: Path) -> RunSource:
    """A finished run (a folder with summary.json, bundle.json and scenario.toml)."""
    from twin.core.state_file import read_state

    folder = Path(folder)
    summary, bundle = _json(folder / "summary.json"), _json(folder / "bundle.json")
    if not (folder / "scenario.toml").is_file():
        raise UserError(f"{folder}: scenario.toml is missing, so the run cannot be replayed; run it again.")
    sc = load_scenario(folder / "scenario.toml")  # the variant's parameters, resolved: a baseline of its own
    state, replication = None, 0
    fs = bundle.get("from_state")
    if fs:
        path = _find_state(folder, fs)
        state = read_state(path)
        replication = int(fs.get("replication", 0))
    return RunSource(summary.get("variant", BASELINE), sc, None, int(bundle.get("seed", sc.seed)), {}, state,
                     replication, summary, folder)


def _find_state(folder: Path, fs: dict) -> Path:
    """The state a continued run started from: where the bundle says, or in the branch folder above."""
    recorded = Path(fs.get("file") or "")
    candidates = [recorded] + [p / "states" / recorded.name for p in folder.parents[:4]]
    for p in candidates:
        if recorded.name and p.is_file():
            return p
    raise UserError(f"{folder}: the run continued from the state {recorded}, which is gone; it is needed to replay "
                    "the run. Keep the branch folder's states/ beside its runs/.")


def variant_folders(folder: Path, replication: int = 0) -> dict[str, Path]:
    """{variant name: its run folder of replication k} of a compare or branch folder, baseline first."""
    runs = Path(folder) / "runs"
    found: dict[str, Path] = {}
    for rep in sorted(runs.glob(f"*/rep-{replication:03d}")):
        if (rep / "summary.json").is_file():
            found[_json(rep / "summary.json").get("variant", rep.parent.name)] = rep
    if not found:
        have = sorted({p.name for p in runs.glob("*/rep-*")})
        raise UserError(f"{folder}: no finished run of replication {replication} in runs/"
                        + (f" (replications there: {', '.join(have)})" if have else "") + ".")
    return dict(sorted(found.items(), key=lambda kv: kv[0] != BASELINE))


def sources_from_folder(folder: Path, intervention: str | None = None, replication: int = 0) -> list[RunSource]:
    """One run folder → that run; a compare/branch folder → its baseline and ``intervention`` (or its
    only intervention), replication ``replication``."""
    folder = Path(folder)
    if (folder / "summary.json").is_file():
        if intervention is not None:
            raise UserError(f"{folder} is one run; --intervention picks a variant of a compare or branch folder.")
        return [source_from_run_folder(folder)]
    if not (folder / "runs").is_dir():
        raise UserError(f"{folder}: neither a run folder (summary.json) nor a compare or branch folder (runs/); "
                        "give the --out folder of `citytwin run`, `compare` or `branch`.")
    found = variant_folders(folder, replication)
    others = [v for v in found if v != BASELINE]
    if intervention is None:
        if len(others) != 1:
            raise UserError(f"{folder} holds {len(others)} interventions; pick one with --intervention NAME: "
                            f"{', '.join(others)}.")
        intervention = others[0]
    if intervention not in found:
        from twin.core.errors import nearest

        raise UserError(f'{folder}: no variant named "{intervention}"{nearest(intervention, found)}; the variants '
                        f"are: {', '.join(found)}.")
    chosen = [found[BASELINE]] if BASELINE in found else []
    return [source_from_run_folder(p) for p in chosen + [found[intervention]]]


def sources_from_scenario(scenario: Scenario, intervention: str | None = None, seed: int | None = None
                          ) -> list[RunSource]:
    """The baseline of a scenario, and beside it ``intervention`` when given."""
    scenario.params_for(intervention)  # an unknown name fails here
    out = [RunSource(BASELINE, scenario, None, seed)]
    if intervention not in (None, BASELINE):
        out.append(RunSource(intervention, scenario, intervention, seed))
    return out


def comparison_table(folder: Path) -> pd.DataFrame | None:
    """comparison.csv of a compare or branch folder (means, CIs, deltas), or None."""
    p = Path(folder) / "comparison.csv"
    return pd.read_csv(p) if p.is_file() else None


def replay_mismatch(source: RunSource, kpis: dict) -> list[str]:
    """KPIs whose replayed value differs from the finished run's summary (empty: a faithful replay)."""
    if not source.summary:
        return []
    want = source.summary.get("kpis", {})
    return [k for k, v in want.items() if k in kpis and _plain(kpis[k]) != _plain(v)]


def _plain(v):
    return json.loads(json.dumps(v, default=float))
