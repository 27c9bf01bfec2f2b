"""The web app's figures: time to first page, time from "Run" to the chart for 20 replications of ``baseline``,
server memory idle and during the run, and how quickly the server answers while a job runs.

    python benchmarks/web_app.py [--replications 20]

Starts ``salesops serve`` on a free port with a temporary runs folder and drives Debian's chromium (Playwright).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import psutil
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.test_web_browser import ARGS, CHROMIUM, free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def rss_mb(process: psutil.Process) -> float:
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=20)
    options = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as runs, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        began = time.perf_counter()
        server = subprocess.Popen([sys.executable, "-m", "experiments", "serve", "--port", str(port), "--runs", runs], cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while True:
                try:
                    urllib.request.urlopen(url, timeout=2).read()
                    break
                except OSError:
                    time.sleep(0.1)
            listening = time.perf_counter() - began
            page.goto(url)
            page.wait_for_selector("#hiring-grid .ag-row")
            first_page = time.perf_counter() - began
            process = psutil.Process(server.pid)
            time.sleep(2)
            idle = rss_mb(process)
            page.get_by_role("link", name="Simulate", exact=True).click()
            page.fill("#sim-replications", str(options.replications))
            peak, latencies, running = [idle], [], threading.Event()
            running.set()

            def sample() -> None:
                while running.is_set():
                    peak.append(rss_mb(process))
                    asked = time.perf_counter()
                    urllib.request.urlopen(f"{url}/_dash-layout", timeout=30).read()
                    latencies.append(time.perf_counter() - asked)
                    time.sleep(0.2)

            sampler = threading.Thread(target=sample)
            clicked = time.perf_counter()
            page.click("#sim-run")
            sampler.start()
            page.wait_for_selector("#sim-results #chart-bookings .main-svg", timeout=600_000)
            to_chart = time.perf_counter() - clicked
            running.clear()
            sampler.join()
        finally:
            server.terminate()
            server.wait(20)
            browser.close()
    print(f"server listening after      {listening:6.1f} s")
    print(f"first page drawn after      {first_page:6.1f} s (from starting salesops serve to the scenario's tables)")
    print(f"run to chart, {options.replications} replications {to_chart:6.1f} s (baseline, 18 months)")
    print(f"server memory idle          {idle:6.0f} MB")
    print(f"server memory during run    {max(peak):6.0f} MB (peak of {len(peak)} samples)")
    print(f"answer during the run       median {statistics.median(latencies) * 1000:.0f} ms, worst {max(latencies) * 1000:.0f} ms "
          f"({len(latencies)} requests for the page layout)")


if __name__ == "__main__":
    main()
