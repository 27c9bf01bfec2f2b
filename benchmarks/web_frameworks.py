"""The same one-chart page in Dash, NiceGUI, Streamlit and Panel: time from start to a chart drawn in chromium,
and the server's memory then. Why the web app is built on Dash, measured.

    python benchmarks/web_frameworks.py [--python PATH]   # PATH: an interpreter with the four frameworks installed

Each framework's page draws one plotly line chart from a 2,000-point numpy series, so the figures compare the
frameworks, not the page. Driven by Debian's chromium through Playwright (this interpreter needs playwright).
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil
from playwright.sync_api import sync_playwright

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
FIGURE = "import numpy as np, plotly.graph_objects as go\nfig = go.Figure(go.Scatter(y=np.cumsum(np.random.default_rng(1).normal(size=2000))))\n"
APPS = {
    "dash": ("app.py", FIGURE + textwrap.dedent("""
        from dash import Dash, dcc
        app = Dash(__name__)
        app.layout = dcc.Graph(figure=fig)
        app.run(port=PORT, debug=False)
        """), ["{python}", "app.py"]),
    "nicegui": ("app.py", FIGURE + textwrap.dedent("""
        from nicegui import ui
        ui.plotly(fig)
        ui.run(port=PORT, reload=False, show=False)
        """), ["{python}", "app.py"]),
    "streamlit": ("app.py", FIGURE + textwrap.dedent("""
        import streamlit as st
        st.plotly_chart(fig)
        """), ["{python}", "-m", "streamlit", "run", "app.py", "--server.port", "PORT", "--server.headless", "true",
               "--browser.gatherUsageStats", "false"]),
    "panel": ("app.py", FIGURE + textwrap.dedent("""
        import panel as pn
        pn.extension("plotly")
        pn.pane.Plotly(fig).servable()
        """), ["{python}", "-m", "panel", "serve", "app.py", "--port", "PORT"]),
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rss_mb(pid: int) -> float:
    process = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]) / 2**20


def measure(name: str, python: str, browser) -> tuple[float, float]:
    """Seconds from starting the server to the chart drawn in the browser; server memory (MB) then."""
    filename, source, command = APPS[name]
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, filename).write_text(source.replace("PORT", str(port)))
        began = time.perf_counter()
        server = subprocess.Popen([part.replace("{python}", python).replace("PORT", str(port)) for part in command],
                                  cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            page = browser.new_page()
            while True:
                try:
                    page.goto(f"http://127.0.0.1:{port}/", timeout=5000)
                    break
                except Exception:  # noqa: BLE001 - not listening yet
                    if time.perf_counter() - began > 120:
                        raise
                    time.sleep(0.2)
            page.wait_for_selector(".main-svg", timeout=120_000)
            seconds = time.perf_counter() - began
            time.sleep(1)
            memory = rss_mb(server.pid)
            page.close()
        finally:
            server.terminate()
            server.wait(10)
    return seconds, memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="interpreter with dash, nicegui, streamlit and panel")
    parser.add_argument("--only", nargs="*", default=list(APPS))
    options = parser.parse_args()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        print(f"{'framework':<10} {'start to chart (s)':>18} {'server memory (MB)':>19}")
        for name in options.only:
            try:
                seconds, memory = measure(name, options.python, browser)
                print(f"{name:<10} {seconds:>18.1f} {memory:>19.0f}", flush=True)
            except Exception as error:  # noqa: BLE001 - one framework missing does not stop the others
                print(f"{name:<10} failed: {type(error).__name__}: {str(error).splitlines()[0]}", flush=True)
        browser.close()


if __name__ == "__main__":
    main()
