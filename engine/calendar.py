"""Time in the engine: days since the scenario start, calendar months, and reps' working hours.

A rep works only in its working hours, so a lead that arrives on Friday night waits until Monday morning and a
task of three hours begun at 16:00 ends the next working day. ``WorkCalendar`` maps calendar time to cumulative
working time and back, so a service's end is computed in one step instead of being simulated hour by hour.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from datetime import date

import numpy as np

from scenarios.model import WEEKDAYS, Scenario, WorkingHours


def month_starts(scenario: Scenario) -> np.ndarray:
    """Day offsets of each month start of the horizon, plus the horizon's end (length horizon + 1)."""
    offsets = []
    for index in range(scenario.horizon_months + 1):
        total = scenario.start.year * 12 + scenario.start.month - 1 + index
        offsets.append((date(total // 12, total % 12 + 1, 1) - scenario.start).days)
    return np.asarray(offsets, dtype=float)


#: Days within which two instants count as the same (about a tenth of a millisecond).
_TOLERANCE = 1e-9


def days_in_months(begin: np.ndarray, end: np.ndarray, months: np.ndarray) -> np.ndarray:
    """(intervals × months): the days each interval [begin, end) spends in each month of the horizon."""
    begin, end = np.asarray(begin, float)[:, None], np.asarray(end, float)[:, None]
    return np.clip(np.minimum(end, months[None, 1:]) - np.maximum(begin, months[None, :-1]), 0.0, None)


class WorkCalendar:
    """A weekly pattern of working hours, anchored at the scenario's start date (time 0 = its midnight)."""

    def __init__(self, hours: WorkingHours, start: date):
        self.always = hours.around_the_clock
        self._offset = float(start.weekday())  # days from the Monday midnight before the start
        days = sorted({WEEKDAYS.index(day) for day in hours.days})
        self._opens = [day + hours.start / 24 for day in days]
        self._closes = [day + hours.end / 24 for day in days]
        length = (hours.end - hours.start) / 24
        self._cumulative = [i * length for i in range(len(days))]  # work done in the week before each opening
        self._week = len(days) * length
        self._origin_work = self._week_work_at(self._offset)

    def work_before(self, t: float) -> float:
        """Working time (days) from time 0 to t."""
        if self.always:
            return t
        weeks, position = divmod(t + self._offset, 7.0)
        return weeks * self._week + self._week_work_at(position) - self._origin_work

    def _week_work_at(self, position: float) -> float:
        """Working time from the Monday midnight to ``position`` days into the week."""
        k = bisect_right(self._opens, position) - 1
        return 0.0 if k < 0 else self._cumulative[k] + min(position, self._closes[k]) - self._opens[k]

    def _time_at(self, work: float) -> float:
        """The first time at which cumulative work reaches ``work``."""
        weeks, rest = divmod(work + self._origin_work, self._week)
        k = bisect_left(self._cumulative, rest) - 1
        if k < 0:  # exactly at a week boundary, finishing: the end of last week's last interval
            weeks, k, rest = weeks - 1, len(self._opens) - 1, rest + self._week
        return weeks * 7.0 + self._opens[k] + (rest - self._cumulative[k]) - self._offset

    def next_open(self, t: float) -> float:
        """The first working instant at or after t."""
        if self.always:
            return t
        position = (t + self._offset) % 7.0
        k = bisect_right(self._opens, position + _TOLERANCE) - 1  # an instant at an opening, up to rounding, is open
        if k >= 0 and position < self._closes[k]:
            return t
        following = self._opens[k + 1] if k + 1 < len(self._opens) else self._opens[0] + 7.0
        return t + following - position

    def is_open(self, t: float) -> bool:
        return self.next_open(t) == t

    def open_at(self, times: np.ndarray) -> np.ndarray:
        """``is_open`` for many instants at once."""
        if self.always:
            return np.ones(np.shape(times), dtype=bool)
        position = (np.asarray(times, float) + self._offset) % 7.0
        k = np.searchsorted(self._opens, position + _TOLERANCE, side="right") - 1
        return (k >= 0) & (position < np.asarray(self._closes)[np.maximum(k, 0)])

    def finish(self, start: float, work_hours: float) -> float:
        """When a task of ``work_hours`` working hours begun at ``start`` ends.

        Counted from the Monday midnight of ``start``'s week, in one step: this runs once per first touch.
        """
        if self.always:
            return start + work_hours / 24.0
        weeks, position = divmod(start + self._offset, 7.0)
        return max(start, weeks * 7.0 + self._time_at(self._week_work_at(position) + work_hours / 24.0 - self._origin_work))

    def working_days(self, begin: np.ndarray, end: np.ndarray) -> np.ndarray:
        """Working time (days) within each interval [begin, end), elementwise; empty intervals give 0."""
        begin, end = np.broadcast_arrays(np.asarray(begin, float), np.asarray(end, float))
        cumulative = np.vectorize(self.work_before, otypes=[float])
        return np.where(end > begin, cumulative(np.maximum(end, begin)) - cumulative(begin), 0.0)
