"""Runs per month of an EventBridge schedule expression (Scheduler schedules and scheduled rules share the syntax).

A job's cost is its runs × what one run costs, so the runs are read from the template, never assumed:
`rate(...)` over 730 h, `cron(...)` counted day by day over four whole years (one leap year) so weekday-only,
last-day-of-month and nth-weekday schedules get their true monthly average (daily = 1461 / 48 = 30.44).
The time zone does not change the count (a DST shift moves a run, it does not add one); the year field is read
as every year (an upper bound for a schedule that ends).
"""

from __future__ import annotations

import calendar
import re
from datetime import date
from functools import cache

from tools.cost.prices import HOURS_PER_MONTH, Unpriceable

# Four whole years, one of them a leap year: 1461 days, 48 months.
YEARS = (2025, 2026, 2027, 2028)
DAYS_PER_MONTH = sum(365 + calendar.isleap(year) for year in YEARS) / (12 * len(YEARS))  # 30.4375
RATE_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
MONTHS = {"JAN": 1, "FEB": 2, "MAR": 3, "APR": 4, "MAY": 5, "JUN": 6}
MONTHS |= {"JUL": 7, "AUG": 8, "SEP": 9, "OCT": 10, "NOV": 11, "DEC": 12}
WEEKDAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}  # EventBridge: 1 = Sunday


def runs_per_month(expression: str) -> float:
    """Average runs per month of `rate(...)` or `cron(...)`; 0 for a one-time `at(...)`."""
    expression = expression.strip()
    if expression.startswith("at("):
        return 0.0
    if match := re.fullmatch(r"rate\((\d+) (minute|hour|day)s?\)", expression):
        value, unit = int(match[1]), match[2]
        if value < 1:
            raise Unpriceable(f"{expression}: a rate below 1")
        return HOURS_PER_MONTH * 3600 / (value * RATE_SECONDS[unit])
    if match := re.fullmatch(r"cron\(([^()]+)\)", expression):
        return _cron_runs_per_month(match[1].split())
    raise Unpriceable(f"schedule expression {expression!r} is neither rate(), cron() nor at()")


def _cron_runs_per_month(fields: list[str]) -> float:
    if len(fields) != 6:
        raise Unpriceable(f"cron with {len(fields)} fields: EventBridge cron has 6 (min hour dom month dow year)")
    minutes, hours, dom, months, dow, _year = fields
    per_day = len(_values(minutes, 0, 59)) * len(_values(hours, 0, 23))
    month_set = _values(months, 1, 12, MONTHS)
    days = sum(len(_days(dom, dow, year, month)) for year in YEARS for month in range(1, 13) if month in month_set)
    return per_day * days / (12 * len(YEARS))


@cache
def run_times(expression: str, years: range | tuple[int, ...]) -> tuple[float, ...]:
    """When a schedule runs over whole years, in days since 1 January of the first (the time zone is left out: it
    moves every run of a schedule alike). Backups need the times, not only the count: what a recovery point stores
    depends on the gap to the one before it."""
    expression = expression.strip()
    origin = date(years[0], 1, 1).toordinal()
    end = date(years[-1] + 1, 1, 1).toordinal() - origin
    if expression.startswith("at("):
        return ()
    if match := re.fullmatch(r"rate\((\d+) (minute|hour|day)s?\)", expression):
        step = int(match[1]) * RATE_SECONDS[match[2]] / 86400
        if step <= 0:
            raise Unpriceable(f"{expression}: a rate below 1")
        return tuple(i * step for i in range(int(end / step) + 1) if i * step < end)
    match = re.fullmatch(r"cron\(([^()]+)\)", expression)
    if not match or len(fields := match[1].split()) != 6:
        raise Unpriceable(f"schedule expression {expression!r}: not a 6-field cron(), rate() or at()")
    minutes, hours, dom, months, dow, _year = fields
    in_day = sorted(h / 24 + m / 1440 for h in _values(hours, 0, 23) for m in _values(minutes, 0, 59))
    month_set = _values(months, 1, 12, MONTHS)
    return tuple(
        date(year, month, day).toordinal() - origin + t
        for year in years
        for month in sorted(month_set)
        for day in sorted(_days(dom, dow, year, month))
        for t in in_day
    )


def _values(field: str, low: int, high: int, names: dict[str, int] | None = None) -> set[int]:
    """`*`, `?`, `a`, `a-b`, `a/step`, `a-b/step`, comma lists; names (JAN, MON) where the field has them."""
    out: set[int] = set()
    for part in field.upper().split(","):
        base, _, step_text = part.partition("/")
        step = _number(step_text, names, field) if step_text else 1
        if base in ("*", "?"):
            start, end = low, high
        elif "-" in base:
            start, end = (_number(x, names, field) for x in base.split("-", 1))
        else:
            start = _number(base, names, field)
            end = high if step_text else start
        if not (low <= start <= high and low <= end <= high) or step < 1:
            raise Unpriceable(f"cron field {field!r}: {part!r} is outside {low}-{high}")
        span = range(start, end + 1) if start <= end else [*range(start, high + 1), *range(low, end + 1)]
        out.update(list(span)[::step])
    return out


def _number(text: str, names: dict[str, int] | None, field: str) -> int:
    if names and text in names:
        return names[text]
    if not text.isdigit():
        raise Unpriceable(f"cron field {field!r}: {text!r} is not understood")
    return int(text)


def _days(dom: str, dow: str, year: int, month: int) -> set[int]:
    """The days of one month the day-of-month and day-of-week fields both allow (`?` allows every day)."""
    last = calendar.monthrange(year, month)[1]
    every = set(range(1, last + 1))
    return (every if dom in ("*", "?") else _dom_days(dom, year, month, last)) & (
        every if dow in ("*", "?") else _dow_days(dow, year, month, last)
    )


def _weekday(year: int, month: int, day: int) -> int:
    """EventBridge numbering: 1 = Sunday ... 7 = Saturday."""
    return (date(year, month, day).weekday() + 1) % 7 + 1


def _dom_days(field: str, year: int, month: int, last: int) -> set[int]:
    out: set[int] = set()
    for part in field.upper().split(","):
        if part == "L":
            out.add(last)
        elif part == "LW" or re.fullmatch(r"\d+W", part):
            out.add(_nearest_weekday(year, month, last if part == "LW" else min(int(part[:-1]), last), last))
        else:
            out |= {d for d in _values(part, 1, 31) if d <= last}
    return out


def _nearest_weekday(year: int, month: int, day: int, last: int) -> int:
    """`15W`: the weekday nearest the 15th, never leaving the month."""
    weekday = _weekday(year, month, day)
    if weekday == 7:  # Saturday -> Friday, or Monday when the 1st is a Saturday
        return day - 1 if day > 1 else day + 2
    if weekday == 1:  # Sunday -> Monday, or Friday when it is the last day
        return day + 1 if day < last else day - 2
    return day


def _dow_days(field: str, year: int, month: int, last: int) -> set[int]:
    days_by_weekday: dict[int, list[int]] = {}
    for day in range(1, last + 1):
        days_by_weekday.setdefault(_weekday(year, month, day), []).append(day)
    out: set[int] = set()
    for part in field.upper().split(","):
        if match := re.fullmatch(r"(\w+)L", part):  # 6L: the last Friday of the month
            out.add(days_by_weekday[_number(match[1], WEEKDAYS, field)][-1])
        elif match := re.fullmatch(r"(\w+)#([1-5])", part):  # 2#1: the first Monday
            matching = days_by_weekday[_number(match[1], WEEKDAYS, field)]
            if int(match[2]) <= len(matching):
                out.add(matching[int(match[2]) - 1])
        else:
            out |= {d for weekday in _values(part, 1, 7, WEEKDAYS) for d in days_by_weekday[weekday]}
    return out
