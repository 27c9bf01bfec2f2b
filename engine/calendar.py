"""Time in the engine: days since the scenario start, calendar months, and reps' working hours.

A rep works only in its working hours, so a lead that arrives on Friday night waits until Monday morning and a
task of three hours begun at 16:00 ends the next working day. ``WorkCalendar`` maps calendar time to cumulative
working time (the working clock) and back: on the working clock nights and weekends vanish, so a rep's tasks follow
one another without breaks and a task's end is its start plus its length.
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


def total_days_in_months(begin: np.ndarray, end: np.ndarray, months: np.ndarray) -> np.ndarray:
    """Per month: the days all intervals [begin, end) together spend in it (``days_in_months`` summed over the
    intervals, without the intervals × months matrix). Counts time before each month boundary x from sorted ends
    and begins: the intervals over by x give their whole length, those still open give x − begin."""
    begin = np.asarray(begin, float)
    begin, end = np.sort(begin), np.sort(np.maximum(np.asarray(end, float), begin))
    begun, ended = np.searchsorted(begin, months, side="right"), np.searchsorted(end, months, side="right")
    begin_sum, end_sum = np.r_[0.0, np.cumsum(begin)], np.r_[0.0, np.cumsum(end)]
    before = end_sum[ended] + months * (begun - ended) - begin_sum[begun]
    return np.diff(before)


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
        self._origin_work = 0.0 if self.always else float(self._weekly_work(0.0))

    def work_before(self, t: np.ndarray | float) -> np.ndarray:
        """Working time (days) from time 0 to each t: the working clock's reading at calendar time t."""
        t = np.asarray(t, dtype=float)
        return t if self.always else self._weekly_work(t) - self._origin_work

    def _weekly_work(self, t: np.ndarray | float) -> np.ndarray:
        """Working time from the Monday midnight before time 0 to each t. Every instant of one night or weekend
        reads exactly the same (that of the next opening), so leads arriving then are seen to arrive together."""
        opens, closes, cumulative = self._arrays()
        weeks, position = np.divmod(np.asarray(t, dtype=float) + self._offset, 7.0)
        k = np.searchsorted(opens, position, side="right") - 1  # the latest opening at or before (none: -1)
        last = np.maximum(k, 0)
        working = (k >= 0) & (position < closes[last])
        next_week = ~working & (k + 1 == len(opens))
        upcoming = cumulative[np.minimum(k + 1, len(opens) - 1)]  # off duty: the work done by the next opening
        within = np.where(working, cumulative[last] + (position - opens[last]), np.where(next_week, 0.0, upcoming))
        return (weeks + next_week) * self._week + within

    def time_at(self, work: np.ndarray | float, resuming: bool = False) -> np.ndarray:
        """The calendar time at which the working clock reads ``work``: the first such instant (a task ending then
        ends at the last working minute), or with ``resuming`` the last (a task beginning then begins at the next
        opening, after the night or weekend in between)."""
        work = np.asarray(work, dtype=float)
        if self.always:
            return work
        opens, closes, cumulative = self._arrays()
        # A reading within rounding (a few units in the last place) of an opening's is that opening when resuming,
        # and the close before when ending: a night or weekend reads exactly one value, give or take that rounding.
        total = work + self._origin_work
        nudge = 64 * np.spacing(np.abs(total) + self._week) * (1.0 if resuming else -1.0)
        weeks, rest = np.divmod(total + nudge, self._week)
        k = np.searchsorted(cumulative, rest, side="right" if resuming else "left") - 1
        wrapped = k < 0  # ending at a week boundary: the end of last week's last interval
        weeks, rest, k = weeks - wrapped, rest + wrapped * self._week, np.where(wrapped, len(opens) - 1, k)
        into_day = np.clip(rest - nudge - cumulative[k], 0.0, closes[0] - opens[0])
        return weeks * 7.0 + opens[k] + into_day - self._offset

    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return np.asarray(self._opens), np.asarray(self._closes), np.asarray(self._cumulative)

    # One instant at a time, for a model that steps a rep through its tasks event by event (the engine itself runs
    # first touches on the working clock instead, and converts whole arrays with the two methods above).

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
        return np.where(end > begin, self.work_before(np.maximum(end, begin)) - self.work_before(begin), 0.0)


class DealClock:
    """The clock open deals run on: calendar time, or with a closing pace one rate per month of the horizon (``pace``,
    the month's days count as ``pace`` days of a deal's life) and 1 after it. A deal that takes its slot at t and
    needs d days of its own time releases it where the deal clock has advanced d from t."""

    def __init__(self, months: np.ndarray, pace: np.ndarray | None = None):
        self.paced = pace is not None
        self._calendar = np.asarray(months, dtype=float)
        steps = np.diff(self._calendar) * (np.ones(len(self._calendar) - 1) if pace is None else pace)
        self._deal = np.r_[0.0, np.cumsum(steps)]

    def after(self, start: np.ndarray | float, days: np.ndarray | float) -> np.ndarray | float:
        """When ``days`` of deal time have passed from each ``start`` (elementwise; NaN stays NaN). Without a pace,
        ``start + days`` exactly."""
        if not self.paced:
            return start + days
        return _piecewise(_piecewise(start, self._calendar, self._deal) + days, self._deal, self._calendar)


def _piecewise(x: np.ndarray | float, xp: np.ndarray, fp: np.ndarray) -> np.ndarray | float:
    """The piecewise-linear map through (xp, fp), extended past its last point with slope 1 (pace 1 after the
    horizon): calendar to deal time, or back with the points swapped."""
    return np.interp(x, xp, fp) + np.maximum(np.subtract(x, xp[-1]), 0.0)
