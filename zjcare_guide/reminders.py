"""Reminder rows: when each item of a child's plan is reminded, and the state of every send.

A row is one reminder of one item for one child: 3 days before it is due, on the day, and once a week
after when still not done (`Policy`), at 09:00 Asia/Shanghai. Its state machine:

    pending ──claim──▶ sending ──▶ sent
       ▲                  │   ├──▶ failed     (5xx / network errors for longer than Policy.give_up)
       └──── retry ───────┘   └──▶ pending    (429, an error still being retried, the family blocked us)
    pending ──▶ cancelled  (done, muted, replanned, more than Policy.max_late late, superseded)

A row is claimed by one process at a time (`claimed_by`); a process killed mid-send leaves its rows in
`sending`, and the next dispatcher takes them back once that process is gone (same host) or its lease ran
out, so a kill costs at most the one message in flight, sent twice. Times are ISO 8601 with the +08:00
offset: text order is time order.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlite_utils.db import Database

from .children import Child, Families
from .clock import TZ
from .schedule import PlanItem, ScheduleItem, stored_plan

KINDS = ("before", "due", "overdue", "snooze")
STATES = ("pending", "sending", "sent", "failed", "cancelled")
SNOOZE_DAYS = (1, 3, 7)


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


@dataclass(frozen=True)
class Wanted:
    """A reminder the plan asks for."""

    child_id: int
    item_id: str
    kind: str
    item_due: dt.date
    send_at: dt.datetime


def wanted(child: Child, items: Iterable[PlanItem], muted: set[str], policy: Policy) -> list[Wanted]:
    """Every reminder a child's plan asks for, past ones included (the caller keeps the future ones):
    before / on / after the due day of each item not done, not muted, still given and not overdue
    beyond its window (a catch-up the clinic settles)."""
    out: list[Wanted] = []
    for p in items:
        if p.status in ("done", "not_given") or p.id in muted:
            continue
        if p.window_end is not None and p.due > p.window_end:
            continue  # pushed past its window (a live vaccine's wait): the clinic settles the catch-up
        days = {"due": p.due, "overdue": p.due + dt.timedelta(days=policy.overdue_days)}
        if policy.before_days > 0:
            days["before"] = p.due - dt.timedelta(days=policy.before_days)
        for kind, day in days.items():
            if day >= child.birth:
                out.append(Wanted(child.id, p.id, kind, p.due, policy.at(day)))
    return out


@dataclass(frozen=True)
class Row:
    id: int
    family_id: int
    child_id: int
    item_id: str
    kind: str
    item_due: dt.date
    send_at: dt.datetime
    state: str
    attempts: int
    first_try_at: dt.datetime | None
    reason: str
    next_at: str  # as stored: the page key of Reminders.due


_COLUMNS = ("id, family_id, child_id, item_id, kind, item_due, send_at, state, attempts, first_try_at, reason, "
            "next_at")


def _row(r: Sequence[object]) -> Row:
    return Row(int(r[0]), int(r[1]), int(r[2]), str(r[3]), str(r[4]),  # type: ignore[call-overload]
               dt.date.fromisoformat(str(r[5])), dt.datetime.fromisoformat(str(r[6])), str(r[7]),
               int(r[8]), dt.datetime.fromisoformat(str(r[9])) if r[9] else None, str(r[10]),  # type: ignore[call-overload]
               str(r[11]))


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


class Reminders:
    """Reminder rows in the service's database (store migration 004)."""

    def __init__(self, db: Database, families: Families | None = None) -> None:
        self.db = db
        self.families = families or Families(db)

    # ------------------------------------------------------------ planning

    def muted(self, child_id: int) -> set[str]:
        return {r[0] for r in self.db.execute("select item_id from muted where child_id = ?", [child_id])}

    def sync_child(self, child: Child, schedules: Sequence[ScheduleItem], policy: Policy, now: dt.datetime) -> int:
        """Bring a child's pending reminders in line with its plan (after adding, editing, a done record,
        a mute): pending rows the plan no longer asks for are cancelled, future ones it asks for are
        added. Rows already sent, or whose time has passed, are left as they are: a child registered
        late is not sent reminders for what is long past. Returns the number of rows added or brought back."""
        items = stored_plan(schedules, child.birth, self.families.records(child.id),
                            today=now.astimezone(TZ).date(), discharge=child.discharge, high_risk=child.preterm)
        want = wanted(child, items, self.muted(child.id), policy)
        keys = {(w.item_id, w.kind, w.item_due.isoformat()) for w in want}
        added = 0
        with self.db.atomic():
            for rid, item_id, kind, item_due in self.db.execute(
                    "select id, item_id, kind, item_due from reminders where child_id = ? and state = 'pending'",
                    [child.id]).fetchall():
                # A snooze stands while its item is still wanted at that due date.
                key_kind = "due" if kind == "snooze" else kind
                if (item_id, key_kind, item_due) not in keys:
                    self.db.execute("update reminders set state = 'cancelled', reason = 'replanned' where id = ?",
                                    [rid])
            for w in want:
                if w.send_at <= now:
                    continue
                # A row cancelled by a mute or an earlier plan comes back when it is wanted again (unmuted,
                # a wrong date corrected); one the parent snoozed away stays cancelled.
                cur = self.db.execute(
                    "insert into reminders (family_id, child_id, item_id, kind, item_due, send_at, next_at) "
                    "values (?, ?, ?, ?, ?, ?, ?) on conflict (child_id, item_id, kind, item_due) do update "
                    "set state = 'pending', reason = '', attempts = 0, first_try_at = null "
                    "where state = 'cancelled' and reason in ('muted', 'replanned')",
                    [child.family_id, child.id, w.item_id, w.kind, w.item_due.isoformat(), ts(w.send_at),
                     ts(w.send_at)])
                added += cur.rowcount
        return added

    def sync_family(self, family_id: int, schedules: Sequence[ScheduleItem], policy: Policy,
                    now: dt.datetime) -> int:
        return sum(self.sync_child(c, schedules, policy, now) for c in self.families.children(family_id))

    def snooze(self, child: Child, item_id: str, item_due: dt.date, days: int, policy: Policy,
               now: dt.datetime) -> dt.datetime:
        """Remind of this item again in `days` days (at the send time); earlier pending reminders of it
        are dropped. Returns when it will be sent."""
        if days not in SNOOZE_DAYS:
            raise ValueError(f"snooze is one of {SNOOZE_DAYS} days")
        at = policy.at(now.astimezone(TZ).date() + dt.timedelta(days=days))
        with self.db.atomic():
            self.db.execute("update reminders set state = 'cancelled', reason = 'snoozed' where child_id = ? "
                            "and item_id = ? and state = 'pending' and send_at <= ?", [child.id, item_id, ts(at)])
            self.db.execute(
                "insert into reminders (family_id, child_id, item_id, kind, item_due, send_at, next_at) "
                "values (?, ?, ?, 'snooze', ?, ?, ?) on conflict (child_id, item_id, kind, item_due) do update "
                "set send_at = excluded.send_at, next_at = excluded.next_at, state = 'pending', attempts = 0, "
                "first_try_at = null, claimed_by = null, claimed_at = null, reason = ''",
                [child.family_id, child.id, item_id, item_due.isoformat(), ts(at), ts(at)])
        return at

    def mute(self, child: Child, item_id: str, now: dt.datetime) -> None:
        """Never remind of this item again (the parent's 🔕); its pending rows are cancelled."""
        with self.db.atomic():
            self.db.execute("insert or ignore into muted (child_id, item_id, at) values (?, ?, ?)",
                            [child.id, item_id, ts(now)])
            self.db.execute("update reminders set state = 'cancelled', reason = 'muted' where child_id = ? "
                            "and item_id = ? and state = 'pending'", [child.id, item_id])

    def unmute(self, child: Child, item_id: str) -> None:
        self.db.execute("delete from muted where child_id = ? and item_id = ?", [child.id, item_id])

    # ------------------------------------------------------------ dispatching

    def release_stale(self, wall: dt.datetime, policy: Policy) -> int:
        """Rows left `sending` by a process that died go back to pending: at once for a claimer of this
        host whose process is gone, after the lease for one elsewhere. `wall` is the real time (not a
        `send-due --at` moment): a lease is about how long a process has really held the rows."""
        released = 0
        cutoff = ts(wall - policy.lease)
        with self.db.atomic():
            for rid, claimer, claimed_at in self.db.execute(
                    "select id, claimed_by, claimed_at from reminders where state = 'sending'").fetchall():
                host = str(claimer or "").rpartition(":")[0]
                stale = not _alive(claimer or "") if host == socket.gethostname() else claimed_at < cutoff
                if stale:
                    self.db.execute("update reminders set state = 'pending', claimed_by = null, claimed_at = null "
                                    "where id = ? and state = 'sending'", [rid])
                    released += 1
        return released

    def expire_late(self, now: dt.datetime, policy: Policy) -> int:
        """Pending rows more than `max_late` past their time are not sent (the timeline shows the item)."""
        cur = self.db.execute(
            "update reminders set state = 'cancelled', reason = 'late' where state = 'pending' and next_at <= ? "
            "and send_at < ?", [ts(now), ts(now - policy.max_late)])
        return cur.rowcount

    def due(self, now: dt.datetime, limit: int = 500, after: tuple[str, int] | None = None) -> list[Row]:
        """Pending rows whose time has come, of families that have not paused, oldest first; `after`
        (the next_at and id of the last row of the previous page) pages through them."""
        cols = ", ".join("r." + c.strip() for c in _COLUMNS.split(","))
        page = "and (r.next_at, r.id) > (?, ?) " if after else ""
        rows = self.db.execute(
            f"select {cols} from reminders r join families f on f.id = r.family_id "
            f"where r.state = 'pending' and r.next_at <= ? {page}and f.paused = 0 "
            "order by r.next_at, r.id limit ?", [ts(now), *(after or ()), limit]).fetchall()
        return [_row(r) for r in rows]

    def due_for_family(self, family_id: int, now: dt.datetime) -> list[Row]:
        """All of one family's pending rows whose time has come: they go in one message."""
        return [_row(r) for r in self.db.execute(
            f"select {_COLUMNS} from reminders where family_id = ? and state = 'pending' and next_at <= ? "
            "order by next_at, id", [family_id, ts(now)])]

    def claim(self, ids: Sequence[int], claimer: str, now: dt.datetime, wall: dt.datetime) -> list[Row]:
        """Take these rows for sending; returns those this claimer got (another process may have some).
        `now` is the dispatch's moment (first tries count from it), `wall` the real time of the claim."""
        if not ids:
            return []
        marks = ", ".join("?" * len(ids))
        with self.db.atomic():
            self.db.execute(
                f"update reminders set state = 'sending', claimed_by = ?, claimed_at = ?, attempts = attempts + 1, "
                f"first_try_at = coalesce(first_try_at, ?) where state = 'pending' and id in ({marks})",
                [claimer, ts(wall), ts(now), *ids])
            rows = self.db.execute(f"select {_COLUMNS} from reminders where state = 'sending' and claimed_by = ? "
                                   f"and id in ({marks})", [claimer, *ids]).fetchall()
        return [_row(r) for r in rows]

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
                cur = self.db.execute(f"update reminders set state = 'pending', claimed_by = null, claimed_at = null, "
                                      f"next_at = ?, reason = ? where {held}",
                                      [ts(retry_at or now), reason, claimer, *ids])
            else:
                cur = self.db.execute(f"update reminders set state = ?, claimed_by = null, reason = ?, "
                                      f"sent_at = case when ? = 'sent' then ? else sent_at end where {held}",
                                      [state, reason, state, ts(now), claimer, *ids])
        return cur.rowcount

    def pause_family(self, family_id: int, paused: bool) -> None:
        self.db.execute("update families set paused = ? where id = ?", [int(paused), family_id])

    # ------------------------------------------------------------ reporting

    def status(self) -> dict[str, dict[str, int]]:
        """Rows by state and kind, for `zjcare-guide reminders status`."""
        out: dict[str, dict[str, int]] = {s: {} for s in STATES}
        for state, kind, n in self.db.execute("select state, kind, count(*) from reminders group by state, kind"):
            out.setdefault(state, {})[kind] = n
        return out

    def failed(self, limit: int = 20) -> list[tuple[int, str, str, str]]:
        """The latest failed rows: id, item, when it was due to go, why (no names)."""
        return [(int(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in self.db.execute(
            "select id, item_id, send_at, reason from reminders where state = 'failed' order by id desc limit ?",
            [limit])]

    def next_pending(self, family_id: int) -> list[Row]:
        return [_row(r) for r in self.db.execute(
            f"select {_COLUMNS} from reminders where family_id = ? and state = 'pending' order by next_at, id",
            [family_id])]
