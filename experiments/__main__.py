"""``python -m experiments`` runs the salesops command line."""

from experiments.cli import app

app(prog_name="salesops")
