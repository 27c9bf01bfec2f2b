"""Engine speed: one replication of the shipped scenarios against the obvious SimPy model and SimPy's own floor.

For each scenario: the engine's wall time (median of ``--runs``), events and events per second, peak memory; the
reference model of ``reference_simpy.py`` (one process per lead) on the same replication, its wall time, and the
two models' KPIs side by side (they share the leads, so they agree closely when the engine is right); and a raw
SimPy loop of bare timeouts, the floor for events per second. The engine schedules far fewer events than the
reference (an event carries a whole first touch), so its rate is also given in the reference's events: the same
work, counted the obvious way. Each case runs in a fresh process, so peak memory is its own. Run with ``make bench``.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from concurrent.futures import ProcessPoolExecutor

import simpy

from reference_simpy import run_reference

from engine.results import summarize_replication
from engine.simulation import Replication
from scenarios import load_scenario

KPIS = ("sql", "opportunities", "won", "bookings", "response_hours_mean")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def engine_case(name: str, runs: int) -> dict:
    scenario = load_scenario(name)
    seconds, events = [], 0
    for replication in range(runs):
        began = time.perf_counter()
        sim = Replication(scenario, scenario.seed, replication)
        result = summarize_replication(sim, sim.run(), replication)
        seconds.append(time.perf_counter() - began)
        events = sim.events
        if replication == 0:
            first = result.totals
    median = statistics.median(seconds)
    return {"seconds": median, "events": events, "leads": first["leads"], "peak_mb": _peak_mb(),
            "kpis": {k: first[k] for k in KPIS}}


def reference_case(name: str) -> dict:
    scenario = load_scenario(name)
    began = time.perf_counter()
    totals = run_reference(scenario, scenario.seed, 0)
    return {"seconds": time.perf_counter() - began, "events": totals.events, "peak_mb": _peak_mb(),
            "kpis": {k: getattr(totals, k) for k in KPIS}}


def raw_simpy_case(events: int) -> dict:
    env = simpy.Environment()

    def ticker(n: int):  # noqa: ANN202
        for _ in range(n):
            yield env.timeout(1.0)

    env.process(ticker(events))
    began = time.perf_counter()
    env.run()
    return {"seconds": time.perf_counter() - began, "events": events}


def _isolated(function, *args) -> dict:  # noqa: ANN001
    with ProcessPoolExecutor(max_workers=1) as pool:
        return pool.submit(function, *args).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-reference", action="store_true", help="skip the obvious SimPy model")
    parser.add_argument("scenarios", nargs="*", default=["baseline", "large"])
    args = parser.parse_args()
    floor = _isolated(raw_simpy_case, 1_000_000)
    floor_rate = floor["events"] / floor["seconds"]
    print(f"raw SimPy loop: {floor_rate / 1e6:.2f} M events/s")
    print(f"{'scenario':<10}{'model':<11}{'wall s':>9}{'events':>12}{'M ev/s':>8}{'peak MB':>9}   KPIs")
    for name in args.scenarios:
        engine = _isolated(engine_case, name, args.runs)
        rows = [("engine", engine)]
        if not args.no_reference:
            rows.append(("reference", _isolated(reference_case, name)))
        for model, figures in rows:
            rate = figures["events"] / figures["seconds"] / 1e6
            kpis = ", ".join(f"{k} {v:,.1f}" for k, v in figures["kpis"].items())
            print(f"{name:<10}{model:<11}{figures['seconds']:>9.2f}{figures['events']:>12,}{rate:>8.2f}{figures['peak_mb']:>9.0f}   {kpis}")
        print(f"{name:<10}engine events/s is {floor_rate / (engine['events'] / engine['seconds']):.1f}x below the raw loop;"
              f" {engine['seconds'] / engine['leads'] * 1e6:.1f} µs per lead")
        if not args.no_reference:
            reference = rows[1][1]
            gap = max(abs(engine["kpis"][k] / reference["kpis"][k] - 1) for k in KPIS if reference["kpis"][k])
            print(f"{name:<10}engine is {reference['seconds'] / engine['seconds']:.1f}x faster than the reference;"
                  f" their KPIs differ by at most {gap:.2%}")
            work_rate = reference["events"] / engine["seconds"]  # the same work, counted in the obvious model's events
            print(f"{name:<10}the reference's {reference['events']:,} events of work run on the engine at"
                  f" {work_rate / 1e6:.2f} M/s: {floor_rate / work_rate:.1f}x below the raw loop")


if __name__ == "__main__":
    main()
