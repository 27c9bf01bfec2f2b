"""Working hours: when a rep can start and when a task ends."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.calendar import WorkCalendar, days_in_months, month_starts, total_days_in_months
from scenarios import load_scenario
from scenarios.model import WEEKDAYS, WorkingHours

FRIDAY = date(2027, 1, 1)  # time 0 is Friday midnight
OFFICE = WorkCalendar(WorkingHours(days=["mon", "tue", "wed", "thu", "fri"], start=9, end=17), FRIDAY)


def hours(days: float) -> float:
    return days * 24.0


def test_next_open_skips_nights_and_weekends():
    assert hours(OFFICE.next_open(0.0)) == pytest.approx(9.0)  # Friday 00:00 → 09:00
    assert OFFICE.next_open(0.5) == 0.5  # Friday noon is open
    assert hours(OFFICE.next_open(hours_to_days(18))) == pytest.approx(3 * 24 + 9)  # Friday 18:00 → Monday 09:00
    assert not OFFICE.is_open(1.5)  # Saturday noon


def test_finish_carries_work_over_to_the_next_working_day():
    assert hours(OFFICE.finish(0.5, 3)) == pytest.approx(15.0)  # Friday 12:00 + 3 h
    assert hours(OFFICE.finish(hours_to_days(16), 3)) == pytest.approx(3 * 24 + 11)  # Friday 16:00 + 3 h → Monday 11:00
    assert hours(OFFICE.finish(hours_to_days(9), 8 * 6)) == pytest.approx(7 * 24 + 17)  # six working days → next Friday 17:00


def test_working_days_count_working_hours():
    days = OFFICE.working_days(np.array([0.0, 0.0]), np.array([7.0, 31.0]))
    assert hours(days[0]) == pytest.approx(5 * 8)  # Fri, Mon–Thu
    assert hours(days[1]) == pytest.approx(21 * 8)  # January 2027 has 21 weekdays


def test_around_the_clock_is_identity():
    calendar = WorkCalendar(WorkingHours(days=list(WEEKDAYS), start=0, end=24), FRIDAY)
    assert calendar.next_open(1.234) == 1.234 and calendar.finish(1.0, 12) == pytest.approx(1.5)


def test_month_starts_follow_the_calendar():
    scenario = load_scenario("mmc", ["horizon_months=3"])
    assert list(month_starts(scenario)) == [0, 31, 59, 90]


def hours_to_days(h: float) -> float:
    return h / 24.0


def test_working_clock_stops_outside_working_hours():
    friday_17, friday_18, monday_9 = hours_to_days(17), hours_to_days(18), hours_to_days(3 * 24 + 9)
    assert hours(OFFICE.work_before(friday_17)) == pytest.approx(8.0)  # Friday 09:00–17:00
    assert OFFICE.work_before(friday_18) == OFFICE.work_before(monday_9)
    assert hours(OFFICE.time_at(OFFICE.work_before(friday_18))) == pytest.approx(17.0)  # a task ending: Friday 17:00
    assert hours(OFFICE.time_at(OFFICE.work_before(friday_18), resuming=True)) == pytest.approx(3 * 24 + 9)


PATTERNS = [
    (["mon", "tue", "wed", "thu", "fri"], 9, 17),
    (["mon", "tue", "wed", "thu", "fri"], 8.5, 17.5),
    (["mon", "tue", "wed", "thu", "fri"], 0, 24),  # nights off only at weekends
    (list(WEEKDAYS), 9, 17),
    (["sat", "sun"], 10, 16),
    (["mon", "wed", "fri"], 12, 20),
]


@pytest.mark.parametrize("days, start, end", PATTERNS)
@pytest.mark.parametrize("first_day", [date(2027, 1, 1), date(2027, 3, 1), date(2027, 5, 2)])  # Fri, Mon, Sun
def test_working_clock_agrees_with_the_step_by_step_calendar(days, start, end, first_day):
    """Arrays on the working clock and the one-instant methods are two ways to the same times, and every instant
    of one night or weekend reads exactly the same on the working clock (leads arriving then arrive together)."""
    calendar = WorkCalendar(WorkingHours(days=days, start=start, end=end), first_day)
    minutes = np.arange(0.5, 30 * 24 * 60, 7) / (24 * 60)  # every 7 minutes, never on an opening or a closing
    openings = np.unique([calendar.next_open(t) for t in minutes])
    times = np.sort(np.r_[minutes, openings])
    work = calendar.work_before(times)
    assert np.all(np.diff(work) >= 0) and calendar.work_before(0.0) == 0.0
    starts = np.array([calendar.next_open(t) for t in times])
    assert np.allclose(calendar.time_at(work, resuming=True), starts, atol=1e-9)
    off = np.flatnonzero(starts > times)
    nights = np.split(off, np.flatnonzero(np.diff(off) > 1) + 1)
    assert all(len(set(work[night].tolist())) == 1 for night in nights)
    for task_hours in (0.5, 3.1, 20.3):  # ends off the half hour: never exactly at a closing either
        ends = calendar.time_at(work + task_hours / 24.0)
        assert np.allclose(ends, [calendar.finish(t, task_hours) for t in starts], atol=1e-9)


@given(st.lists(st.tuples(st.floats(-50, 150), st.floats(0, 80)), max_size=40))
def test_total_days_in_months_sums_the_intervals(intervals):
    """The sorted-sums total equals the per-interval overlaps added up (intervals may start before or end after)."""
    months = np.array([0.0, 31.0, 59.0, 90.0])
    begin = np.array([b for b, _ in intervals], dtype=float)
    end = begin + np.array([length for _, length in intervals], dtype=float)
    expected = days_in_months(begin, end, months).sum(axis=0)
    assert np.allclose(total_days_in_months(begin, end, months), expected, atol=1e-9)
