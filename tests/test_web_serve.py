"""``salesops serve`` at the edge: an address it cannot listen on is refused in one line, exit code 2."""

from __future__ import annotations

import socket

from typer.testing import CliRunner

from experiments.cli import app

runner = CliRunner()


def test_a_port_in_use_is_refused_in_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(app, ["serve", "--port", str(port), "--runs", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.startswith(f"error: --host 127.0.0.1 --port {port}: cannot listen there")
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_an_address_that_is_not_one_is_refused_in_one_line(tmp_path):
    result = runner.invoke(app, ["serve", "--host", "no-such-host.invalid", "--port", "8000", "--runs", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.startswith("error: --host no-such-host.invalid")
