"""MkDocs hook: every page in docs/guides/ is in the Guides section, so a new guide needs no edit of mkdocs.yml.

Guides listed in mkdocs.yml keep their place; the others follow in name order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _paths(entries: list[Any]) -> set[str]:
    """Every page path in a nav section, at any depth."""
    found: set[str] = set()
    for entry in entries:
        if isinstance(entry, str):
            found.add(entry)
        elif isinstance(entry, dict):
            for value in entry.values():
                found |= _paths(value) if isinstance(value, list) else {value}
    return found


def on_config(config: Any) -> Any:
    guides = sorted(path.relative_to(config["docs_dir"]).as_posix() for path in (Path(config["docs_dir"]) / "guides").glob("*.md"))
    for section in config["nav"] or []:
        if isinstance(section, dict) and "Guides" in section:
            section["Guides"] += [guide for guide in guides if guide not in _paths(section["Guides"])]
    return config
