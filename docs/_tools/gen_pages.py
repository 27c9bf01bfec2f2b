"""Writes the generated pages while ``mkdocs build`` runs (mkdocs-gen-files): the reference pages from the code,
and the M/M/c figure from a fresh simulation."""

from __future__ import annotations

import sys
from pathlib import Path

import mkdocs_gen_files

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]  # these tools, and the project (its tests hold the Erlang C formula)

import mmc_figure  # noqa: E402
import reference  # noqa: E402

for page, write in reference.PAGES.items():
    with mkdocs_gen_files.open(page, "w") as file:
        file.write(write())

with mkdocs_gen_files.open(mmc_figure.FIGURE, "wb") as file:
    file.write(mmc_figure.figure_png())
