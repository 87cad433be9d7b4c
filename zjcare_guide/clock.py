"""The one clock: Asia/Shanghai, read only at the edges (the bot, the CLI) and passed into the core."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from zoneinfo import ZoneInfo

TZ = ZoneInfo("Asia/Shanghai")
Clock = Callable[[], dt.datetime]


def system_clock() -> dt.datetime:
    """Now, timezone-aware in Asia/Shanghai. Transports call this; core logic takes `now` as a parameter."""
    return dt.datetime.now(TZ)


def fixed_clock(when: dt.datetime | dt.date) -> Clock:
    """A clock stopped at `when` (a date means 09:00 that day, Asia/Shanghai), for tests and `--today`."""
    if not isinstance(when, dt.datetime):
        when = dt.datetime.combine(when, dt.time(9, 0))
    if when.tzinfo is None:
        when = when.replace(tzinfo=TZ)
    return lambda: when
