"""The plan of a comparison: the baseline, every intervention and every sweep point (the variants), each
run ``replications`` times with common random numbers (replication ``k`` of every variant has seed
``scenario seed + k``). ``citytwin compare`` (:mod:`twin.runs.experiment`) runs it; the preflight
(:mod:`twin.scenario.preflight`) makes it first, so a bad sweep fails before anything runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from twin.core.errors import UserError
from twin.core.limits import MAX_RUNS
from twin.scenario.scenario import BASELINE, Intervention, Scenario
from twin.scenario.sweeps import experiment_replications, point_name, slugify, sweep_points

RUNS_DIR = "runs"


@dataclass(frozen=True)
class Variant:
    name: str
    slug: str
    kind: str  # "baseline" | "intervention" | "sweep"
    point: dict = field(default_factory=dict, hash=False, compare=False)  # sweep parameter values


@dataclass(frozen=True)
class RunSpec:
    variant: str
    slug: str
    replication: int
    seed: int

    @property
    def folder(self) -> str:
        return f"{RUNS_DIR}/{self.slug}/rep-{self.replication:03d}"

    @property
    def label(self) -> str:
        return f'variant "{self.variant}", replication {self.replication}, seed {self.seed}'


@dataclass
class Plan:
    scenario: Scenario  # with sweep points added as interventions
    variants: list[Variant]
    replications: int
    method: str | None = None

    @property
    def runs(self) -> list[RunSpec]:
        return [RunSpec(v.name, v.slug, k, self.scenario.seed + k)
                for k in range(self.replications) for v in self.variants]

    def variant(self, name: str) -> Variant:
        return next(v for v in self.variants if v.name == name)


def make_plan(sc: Scenario, replications: int | None = None) -> Plan:
    """Baseline + interventions + sweep points; sweep points become interventions of a copy."""
    import copy

    taken: set[str] = set()
    variants = [Variant(BASELINE, slugify(BASELINE, taken), "baseline")]
    variants += [Variant(i.name, slugify(i.name, taken), "intervention") for i in sc.interventions]
    expanded = copy.copy(sc)
    expanded.interventions = list(sc.interventions)
    points = sweep_points(sc)
    names = {v.name for v in variants}
    for pt in points:
        name = point_name(pt)
        if name in names:  # the same point twice (a grid with repeated values, or rounding)
            i = 2
            while f"{name} #{i}" in names:
                i += 1
            name = f"{name} #{i}"
        names.add(name)
        expanded.interventions.append(Intervention(name, dict(pt), "sweep point"))
        variants.append(Variant(name, slugify(name, taken), "sweep", dict(pt)))
    method = sc.experiment.get("method", "sets" if "sets" in sc.experiment else "grid") if sc.experiment else None
    reps = experiment_replications(sc, replications)
    if len(variants) * reps > MAX_RUNS:  # before plan.runs lists them all
        raise UserError(f"{sc.where}: {len(variants)} variants × {reps} replications = {len(variants) * reps:,} runs; "
                        f"one comparison runs at most {MAX_RUNS:,}. Use fewer replications or sweep points, or "
                        "split the study.")
    return Plan(expanded, variants, reps, method)
