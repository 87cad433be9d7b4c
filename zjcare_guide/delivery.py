"""Messages with a delivery state machine, shared by reminders and the outbox (visits, doctors' pushes):

    pending ──claim──▶ sending ──▶ sent
       ▲                  │   ├──▶ failed     (5xx / network errors for longer than Policy.give_up)
       └──── retry ───────┘   └──▶ pending    (429, an error still being retried, the family blocked us)
    pending ──▶ cancelled  (with a reason)

A row is claimed by one process at a time (`claimed_by`); a process killed mid-send leaves its rows in
`sending`, and the next dispatcher takes them back once that process is gone (same host) or its lease ran
out, so a kill costs at most the one message in flight, sent twice. Times are ISO 8601 with the +08:00
offset: text order is time order. Each table using it has the columns state, send_at, next_at, attempts,
first_try_at, claimed_by, claimed_at, sent_at, reason and kind.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from sqlite_utils.db import Database

from .clock import TZ

STATES = ("pending", "sending", "sent", "failed", "cancelled")


@dataclass(frozen=True)
class Policy:
    """When reminders go out. Quiet hours may wrap midnight (21:00–08:00); nothing is sent inside them."""

    send_time: dt.time = dt.time(9, 0)
    before_days: int = 3  # the first reminder, this many days before the item is due (0: none)
    overdue_days: int = 7  # one overdue reminder this many days after the due day
    quiet_start: dt.time = dt.time(21, 0)
    quiet_end: dt.time = dt.time(8, 0)
    max_late: dt.timedelta = dt.timedelta(days=2)  # a reminder later than this is not sent at all
    give_up: dt.timedelta = dt.timedelta(hours=1)  # 5xx / network errors are retried this long
    lease: dt.timedelta = dt.timedelta(minutes=10)  # a claim older than this is taken back
    push_daily_limit: int = 1000  # push messages a doctor may have delivered to families in a day

    def quiet(self, now: dt.datetime) -> bool:
        t = now.astimezone(TZ).time()
        if self.quiet_start <= self.quiet_end:
            return self.quiet_start <= t < self.quiet_end
        return t >= self.quiet_start or t < self.quiet_end

    def at(self, day: dt.date) -> dt.datetime:
        """The moment a reminder for `day` is sent: the send time, or the end of quiet hours if later."""
        moment = dt.datetime.combine(day, self.send_time, TZ)
        return dt.datetime.combine(day, self.quiet_end, TZ) if self.quiet(moment) else moment


def parse_quiet_hours(text: str) -> tuple[dt.time, dt.time]:
    """'21:00-08:00' → (21:00, 08:00). Raises ValueError with a short reason."""
    start, sep, end = text.replace("–", "-").partition("-")
    if not sep:
        raise ValueError("quiet hours look like 21:00-08:00")
    try:
        return dt.time.fromisoformat(start.strip()), dt.time.fromisoformat(end.strip())
    except ValueError:
        raise ValueError("quiet hours look like 21:00-08:00") from None


def ts(moment: dt.datetime) -> str:
    """How times are stored: ISO 8601 in Asia/Shanghai, to the second (sortable as text)."""
    if moment.tzinfo is None:
        raise ValueError("a timezone-aware datetime is needed")
    return moment.astimezone(TZ).isoformat(timespec="seconds")


def process_id() -> str:
    """Who claims rows: host and process id, so a dead claimer on this host is recognised at once."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(claimer: str) -> bool:
    host, _, pid = claimer.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another host: only its lease can tell
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Counts:
    """What one dispatch did, in families (messages) and reminder rows."""

    sent: int = 0  # messages delivered
    failed: int = 0  # messages given up on
    blocked: int = 0  # families that blocked the bot (now paused)
    retrying: int = 0  # messages left pending for a later try
    rows_sent: int = 0
    late: int = 0  # rows not sent: more than Policy.max_late late
    quiet: bool = False  # nothing was sent: quiet hours
    retried: int = 0  # extra attempts made (429 waits, 5xx retries)
    skipped: int = 0  # families left pending: no outbound for their transport in this process

    def as_dict(self) -> dict[str, int | bool]:
        return {"sent": self.sent, "failed": self.failed, "blocked": self.blocked, "retrying": self.retrying,
                "rows_sent": self.rows_sent, "late": self.late, "retried": self.retried, "skipped": self.skipped,
                "quiet": self.quiet}


class Deliveries:
    """The state machine over one table (`table`, set by the subclass)."""

    table = ""

    def __init__(self, db: Database) -> None:
        self.db = db

    def release_stale(self, wall: dt.datetime, policy: Policy) -> int:
        """Rows left `sending` by a process that died go back to pending: at once for a claimer of this
        host whose process is gone, after the lease for one elsewhere. `wall` is the real time (not a
        `send-due --at` moment): a lease is about how long a process has really held the rows."""
        released = 0
        cutoff = ts(wall - policy.lease)
        with self.db.atomic():
            for rid, claimer, claimed_at in self.db.execute(
                    f"select id, claimed_by, claimed_at from {self.table} where state = 'sending'").fetchall():
                host = str(claimer or "").rpartition(":")[0]
                stale = not _alive(claimer or "") if host == socket.gethostname() else claimed_at < cutoff
                if stale:
                    self.db.execute(f"update {self.table} set state = 'pending', claimed_by = null, "
                                    "claimed_at = null where id = ? and state = 'sending'", [rid])
                    released += 1
        return released

    def expire_late(self, now: dt.datetime, policy: Policy) -> int:
        """Pending rows more than `max_late` past their time are not sent."""
        cur = self.db.execute(
            f"update {self.table} set state = 'cancelled', reason = 'late' where state = 'pending' "
            "and next_at <= ? and send_at < ?", [ts(now), ts(now - policy.max_late)])
        return cur.rowcount

    def claim_ids(self, ids: Sequence[int], claimer: str, now: dt.datetime, wall: dt.datetime) -> list[int]:
        """Take these rows for sending; returns the ids this claimer got (another process may have some).
        `now` is the dispatch's moment (first tries count from it), `wall` the real time of the claim."""
        if not ids:
            return []
        marks = ", ".join("?" * len(ids))
        with self.db.atomic():
            self.db.execute(
                f"update {self.table} set state = 'sending', claimed_by = ?, claimed_at = ?, "
                f"attempts = attempts + 1, first_try_at = coalesce(first_try_at, ?) "
                f"where state = 'pending' and id in ({marks})", [claimer, ts(wall), ts(now), *ids])
            return [r[0] for r in self.db.execute(
                f"select id from {self.table} where state = 'sending' and claimed_by = ? and id in ({marks})",
                [claimer, *ids])]

    def finish(self, ids: Sequence[int], claimer: str, state: str, now: dt.datetime, *, reason: str = "",
               retry_at: dt.datetime | None = None) -> int:
        """Settle rows this claimer holds: sent, failed, cancelled, or back to pending (`retry_at` when
        to try). A row another process took back meanwhile is left to it. Returns the rows settled."""
        if state not in STATES or state == "sending":
            raise ValueError(f"cannot finish in state {state!r}")
        if not ids:
            return 0
        marks = ", ".join("?" * len(ids))
        held = f"state = 'sending' and claimed_by = ? and id in ({marks})"
        with self.db.atomic():
            if state == "pending":
                cur = self.db.execute(f"update {self.table} set state = 'pending', claimed_by = null, "
                                      f"claimed_at = null, next_at = ?, reason = ? where {held}",
                                      [ts(retry_at or now), reason, claimer, *ids])
            else:
                cur = self.db.execute(f"update {self.table} set state = ?, claimed_by = null, reason = ?, "
                                      f"sent_at = case when ? = 'sent' then ? else sent_at end where {held}",
                                      [state, reason, state, ts(now), claimer, *ids])
        return cur.rowcount

    def pause_family(self, family_id: int, paused: bool) -> None:
        """A family that blocked the bot is paused (it /resume-s); nothing is sent to a paused family."""
        self.db.execute("update families set paused = ? where id = ?", [int(paused), family_id])

    def status(self) -> dict[str, dict[str, int]]:
        """Rows by state and kind (`zjcare-guide reminders status`)."""
        out: dict[str, dict[str, int]] = {s: {} for s in STATES}
        for state, kind, n in self.db.execute(f"select state, kind, count(*) from {self.table} "
                                              "group by state, kind"):
            out.setdefault(state, {})[kind] = n
        return out
