"""Random streams: one independent generator per replication, kind of randomness and (where useful) sub-key.

Streams are addressed, not consumed in order: replication r's arrivals of source 2 come from the same
``SeedSequence(seed, spawn_key=(r, ARRIVALS, 2))`` whether replications run in one process or many and whatever
else the scenario changes. Scenarios compared with the same seed therefore share random numbers.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Stream(IntEnum):
    """The kinds of randomness; values are part of the spawn key and must never be reordered."""

    ARRIVALS = 0
    MQL = 1
    QUALITY = 2
    SCORE = 3
    ADOPTION = 4
    HANDLING = 5
    OPPORTUNITY = 6
    STAGES = 7
    DEAL_SIZE = 8
    ATTRITION = 9
    CARRIED = 10  # work open on the first day: waiting leads' draws, and the fates of a snapshot's deals
    PACE = 11  # the closing pace of each month


def generator(seed: int, replication: int, stream: Stream, *subkeys: int) -> np.random.Generator:
    """The generator for one stream of one replication."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(replication, int(stream), *subkeys)))
