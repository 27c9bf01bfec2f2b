"""Plain JSON values, for every layer that writes a JSON file: JSON has no numpy types and no NaN."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def json_ready(value: Any, drop: frozenset[str] = frozenset()) -> Any:
    """``value`` with numpy scalars as Python numbers, tuples as lists, NaN and infinities as null (a KPI with no
    observation, say), and mapping keys in ``drop`` left out at any depth."""
    if isinstance(value, dict):
        return {str(key): json_ready(item, drop) for key, item in value.items() if key not in drop}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_ready(item, drop) for item in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value
