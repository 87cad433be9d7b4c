"""Reminder rows: when each item of a child's plan is reminded, and the state of every send.

A row is one reminder of one item for one child: 3 days before it is due, on the day, and once a week
after when still not done (`Policy`), at 09:00 Asia/Shanghai. Its states are delivery.py's (pending →
sending → sent / failed / cancelled); a reminder is cancelled when done, muted, replanned, more than
Policy.max_late late, or superseded by a later one of the same item.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlite_utils.db import Database

from .children import Child, Families
from .clock import TZ
from .delivery import STATES, Counts, Deliveries, Policy, parse_quiet_hours, process_id, ts

__all__ = ["STATES", "Counts", "Policy", "Reminders", "parse_quiet_hours", "process_id", "ts", "wanted"]
from .schedule import PlanItem, ScheduleItem, stored_plan

KINDS = ("before", "due", "overdue", "snooze")
SNOOZE_DAYS = (1, 3, 7)


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


class Reminders(Deliveries):
    """Reminder rows in the service's database (store migration 004)."""

    table = "reminders"

    def __init__(self, db: Database, families: Families | None = None) -> None:
        super().__init__(db)
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
        got = self.claim_ids(ids, claimer, now, wall)
        if not got:
            return []
        marks = ", ".join("?" * len(got))
        return [_row(r) for r in self.db.execute(f"select {_COLUMNS} from reminders where id in ({marks}) "
                                                 "order by next_at, id", got)]

    # ------------------------------------------------------------ reporting

    def failed(self, limit: int = 20) -> list[tuple[int, str, str, str]]:
        """The latest failed rows: id, item, when it was due to go, why (no names)."""
        return [(int(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in self.db.execute(
            "select id, item_id, send_at, reason from reminders where state = 'failed' order by id desc limit ?",
            [limit])]
