"""``salesops serve``: the web app on this machine, by default reachable from this machine only."""

from __future__ import annotations

import logging
import os
import signal
import socket
from pathlib import Path
from typing import Annotated, Optional

import typer

from experiments.console import fail

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def serve(
    host: Annotated[str, typer.Option(help="address to listen on; anything but 127.0.0.1 lets other machines in (no login)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="port to listen on")] = 8000,
    runs: Annotated[Path, typer.Option(help="folder for the app's runs (runs/web/…) and the simulations it lists")] = Path("runs"),
    tracking_uri: Annotated[Optional[str], typer.Option("--tracking-uri", help="MLflow store to log runs to and list runs from")] = None,
    jobs: Annotated[int, typer.Option(min=1, max=16, help="jobs run at once (threads of the server process)")] = 2,
) -> None:
    """Start the web app: scenario, simulate, plan headcount, territories and runs, at http://HOST:PORT."""
    from werkzeug.serving import make_server

    from experiments.web.app import create_app

    _check_address(host, port)
    # A tracking server that does not answer must not hold the Runs page for minutes of retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    app = create_app(runs, tracking_uri, jobs)
    server = make_server(host, port, app.server, threaded=True)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    if host not in LOCAL_HOSTS:
        typer.echo(f"warning: listening on {host}: anyone who can reach this machine on port {port} can edit scenarios, "
                   f"start runs and read every run under {runs.resolve()} (there is no login)", err=True)
    signal.signal(signal.SIGTERM, _stop)
    typer.echo(f"salesops web app on http://{'[' + host + ']' if ':' in host else host}:{port} (Ctrl-C stops it)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        app.server.config["SALESOPS_CONTEXT"].jobs.close()


def _stop(*_: object) -> None:
    """SIGTERM stops the server as Ctrl-C does."""
    raise KeyboardInterrupt


def _check_address(host: str, port: int) -> None:
    """Exit 2 with one line when the address cannot be listened on (werkzeug would print its own lines and exit 1)."""
    try:
        family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as error:
        fail([f"--host {host}: not an address of this machine to listen on ({error})"])
    with socket.socket(family, kind) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            fail([f"--host {host} --port {port}: cannot listen there ({error.strerror or error}); pick another --port"])
