"""Headcount planner: model size, Pyomo build time and HiGHS solve time, and the whole simulate-and-correct loop.

Run with ``.venv/bin/python benchmarks/headcount_speed.py`` (part of ``make bench``).
"""

from __future__ import annotations

import argparse
import time

import pyomo.environ as pyo

from optimizers.headcount import HeadcountOptions, build_model, plan_headcount
from optimizers.headcount_data import headcount_data
from optimizers.solve import SolveOptions, solve
from scenarios import load_scenario

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
    last = report.iterations[-1].check
    print(f"{name:<9} whole loop {seconds:7.1f} s, {len(report.iterations)} iterations, {replications} replications each:"
          f" {report.status}, P(reach) {last.probability if last else float('nan'):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("scenarios", nargs="*", default=list(CASES))
    args = parser.parse_args()
    for name in args.scenarios:
        model_figures(name, CASES[name][0])
    for name in args.scenarios:
        loop_figures(name, *CASES[name])


if __name__ == "__main__":
    main()
