"""UTC calendar periods: the minute, day and month windows that limits, budgets and reports use.

Pure functions. The same month arithmetic runs inside Redis (``scripts.LUA_PERIODS``) so that
budgets roll over on the server's clock, not on whichever replica happens to answer.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

DAY_S = 86_400
_SINCE = re.compile(r"^(\d{1,4})([dwh])$")


def epoch_day(ts: float) -> int:
    return int(ts // DAY_S)


def day_label(ts: float) -> str:
    """The UTC date of a timestamp, as reports key their days."""
    return _label_of_day(int(ts // DAY_S))


@lru_cache(maxsize=64)
def _label_of_day(day: int) -> str:
    return datetime.fromtimestamp(day * DAY_S, UTC).strftime("%Y-%m-%d")


def month_index(day: int) -> int:
    """``year * 12 + month - 1`` of an epoch day, by Hinnant's civil-from-days (mirrored in Lua)."""
    z = day + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    year = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    month = mp + 3 if mp < 10 else mp - 9
    if month <= 2:
        year += 1
    return year * 12 + month - 1


def seconds_to_reset(kind: str, now_s: int) -> int:
    """Seconds until the window of ``kind`` (m: minute, d: day, M: month) containing ``now_s`` ends."""
    if kind == "m":
        return 60 - now_s % 60
    if kind == "d":
        return DAY_S - now_s % DAY_S
    index = month_index(now_s // DAY_S) + 1
    start = datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)
    return int(start.timestamp()) - now_s


def parse_day(text: str, param: str) -> date:
    """A report bound: ``YYYY-MM-DD`` or an ISO 8601 timestamp (its UTC date is used)."""
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{param} must be a date (YYYY-MM-DD) or an ISO 8601 timestamp, got {text[:40]!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).date()


def parse_since(text: str, today: date) -> date:
    """``7d``, ``2w`` or ``48h`` back from ``today`` (whole UTC days, today included)."""
    match = _SINCE.match(text.strip())
    if not match:
        raise ValueError(f"since must look like 7d, 2w or 48h, got {text[:20]!r}")
    amount, unit = int(match.group(1)), match.group(2)
    days = {"d": amount, "w": 7 * amount, "h": -(-amount // 24)}[unit]
    return today - timedelta(days=max(days - 1, 0))


def days_between(first: date, last: date) -> list[str]:
    """Every UTC date label from ``first`` to ``last``, both included."""
    count = (last - first).days + 1
    return [(first + timedelta(days=i)).isoformat() for i in range(max(count, 0))]
