"""Headcount planner: model size, Pyomo build time and HiGHS solve time, the whole simulate-and-correct loop, and
(``--targets``) the plans for 1.05-1.20 × the baseline's median bookings against fresh simulations and a hand-made
plan.

Run with ``.venv/bin/python benchmarks/headcount_speed.py [--targets]`` (part of ``make bench``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pyomo.environ as pyo

from engine import simulate
from optimizers.headcount import HeadcountOptions, apply_plan, build_model, check_plan, plan_headcount
from optimizers.headcount_data import headcount_data
from optimizers.solve import SolveOptions, solve
from scenarios import load_scenario
from scenarios.model import spread

#: Targets a little above what each scenario books without hiring, so that the plan has work to do.
CASES = {"baseline": (34e6, 20), "large": (1.35e9, 4)}


def model_figures(name: str, target: float) -> None:
    scenario = load_scenario(name)
    options = HeadcountOptions(target_bookings=target)
    began = time.perf_counter()
    data = headcount_data(scenario)
    data_seconds = time.perf_counter() - began
    began = time.perf_counter()
    model = build_model(data, options, scenario)
    build_seconds = time.perf_counter() - began
    variables = sum(1 for _ in model.component_data_objects(pyo.Var))
    integers = sum(1 for v in model.component_data_objects(pyo.Var) if v.is_integer())
    constraints = sum(1 for _ in model.component_data_objects(pyo.Constraint, active=True))
    result = solve(model, SolveOptions(time_limit=options.time_limit, rel_gap=options.rel_gap), build_seconds)
    print(f"{name:<9} {variables:>7,} vars ({integers:,} integer) {constraints:>7,} rows   data {data_seconds:5.2f} s"
          f"   Pyomo build {build_seconds:5.2f} s   HiGHS solve {result.solve_seconds:6.2f} s"
          f"   {result.status}, gap {result.gap if result.gap is not None else float('nan'):.4f}")


def loop_figures(name: str, target: float, replications: int) -> None:
    scenario = load_scenario(name)
    began = time.perf_counter()
    report = plan_headcount(scenario, HeadcountOptions(target_bookings=target, replications=replications))
    seconds = time.perf_counter() - began
    chosen = report.check
    print(f"{name:<9} whole loop {seconds:7.1f} s, {len(report.iterations)} iterations, {replications} replications each:"
          f" {report.status}, the plan returned reaches the target in {chosen.probability if chosen else float('nan'):.0%}")


def hand_made_plan(scenario, target: float, replications: int, seed: int, run, confidence: float = 0.8):
    """The hand-made plan of the issue: 4 SDRs a month (the recruiting limit), spread by lead share, for as few
    months from the first as reach the target in ``confidence`` of the replications; its hires and check, or None."""
    shares = {name: territory.lead_share for name, territory in scenario.territories.items()}
    for months in range(1, 7):
        hires = {("sdr", territory, scenario.month_label(m)): count for m in range(months) for territory, count in spread(4, shares).items()}
        check, _ = check_plan(apply_plan(scenario, hires), target, replications, seed, run)
        if check.probability >= confidence:
            return hires, check
    return None


def run_engine(scenario, replications, seed):  # noqa: ANN001, ANN201
    return simulate(scenario, replications, seed)


def target_figures(factors: list[float], replications: int, fresh_replications: int) -> None:
    """For each target (× the baseline's simulated median bookings): the plan, simulated again with a new seed and
    ``fresh_replications`` replications, against the hand-made plan (4 SDRs a month for as few months as reach the
    target on those same replications), and the model against the simulation for the plan returned."""
    baseline = load_scenario("baseline")
    median = float(np.median(simulate(baseline, 40, seed=1).monthly.groupby("replication")["bookings"].sum()))
    print(f"baseline median bookings {median / 1e6:.2f}M (40 replications, seed 1); plans with {replications} replications "
          f"at seed 1, checked with {fresh_replications} at seed 2027")
    for factor in factors:
        target = factor * median
        began = time.perf_counter()
        report = plan_headcount(baseline, HeadcountOptions(target_bookings=target, replications=replications, seed=1), run_engine)
        seconds = time.perf_counter() - began
        fresh, _ = check_plan(report.scenario, target, fresh_replications, 2027, run_engine)
        chosen = report.iterations[report.chosen]
        hand = hand_made_plan(baseline, target, fresh_replications, 2027, run_engine)
        if hand is None:
            compared = "no hand-made plan reaches it"
        else:
            compared = f"hand-made {sum(hand[0].values())} SDRs: P {hand[1].probability:.3f}, cost {hand[1].cost['mean'] / 1e6:.3f}M"
        print(
            f"  ×{factor:.2f} target {target / 1e6:.2f}M: {report.status} in {len(report.iterations)} iterations, {seconds:.0f} s; "
            f"hires {', '.join(f'{role} {report.plan.total(role)}' for role in report.plan.headcount)}; "
            f"fresh P(reach) {fresh.probability:.3f} [{fresh.interval[0]:.3f}, {fresh.interval[1]:.3f}], cost {fresh.cost['mean'] / 1e6:.3f}M; "
            f"{compared}; model/sim response {chosen.expected_response_hours:.1f}/"
            f"{chosen.check.response_hours:.1f} h, bookings {chosen.expected_bookings / 1e6:.2f}/{chosen.check.bookings['mean'] / 1e6:.2f}M"
            f" (final model {report.final_model['expected_response_hours']:.1f} h, {report.final_model['expected_bookings'] / 1e6:.2f}M)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("scenarios", nargs="*", default=list(CASES))
    parser.add_argument("--targets", type=float, nargs="*", help="only the target figures, for these factors (default 1.05 1.10 1.15 1.20)")
    parser.add_argument("--replications", type=int, default=40)
    parser.add_argument("--fresh-replications", type=int, default=200)
    args = parser.parse_args()
    if args.targets is not None:
        target_figures(args.targets or [1.05, 1.10, 1.15, 1.20], args.replications, args.fresh_replications)
        return
    for name in args.scenarios:
        model_figures(name, CASES[name][0])
    for name in args.scenarios:
        loop_figures(name, *CASES[name])


if __name__ == "__main__":
    main()
