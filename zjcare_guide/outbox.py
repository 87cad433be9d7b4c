"""Doctors' visits and pushes, and the outbox that delivers them with the reminders' state machine
(delivery.py): a visit's notice and its reminders the day before and 2 hours before, the parent's answer
to the doctor, a push to many families and the doctor's progress message.

Kinds of outbox rows (`ref_id` is the visit or the push):
- visit_new, visit_day, visit_2h — to the family; visit_answer — to the doctor;
- visit_withdrawn — to the doctor: a visit still to come is off because the family deleted its data
  (`ref_id` is the audit row that keeps the visit's time; the visit itself is gone);
- push — to one family; push_progress — to the doctor, sent once then edited in place.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from .clock import TZ
from .delivery import Deliveries, Policy, ts

VISIT_KINDS = ("visit_new", "visit_day", "visit_2h")
KINDS = (*VISIT_KINDS, "visit_answer", "visit_withdrawn", "push", "push_progress")
VISIT_STATES = ("scheduled", "confirmed", "reschedule", "cancelled")
BEFORE_VISIT = dt.timedelta(hours=2)


@dataclass(frozen=True)
class Visit:
    id: int
    doctor_id: int
    family_id: int
    at: dt.datetime
    place: str
    note: str
    state: str  # scheduled | confirmed | reschedule (the parent asked for another time) | cancelled


@dataclass(frozen=True)
class Push:
    id: int
    doctor_id: int
    text: str
    audience: str
    total: int
    progress_address: str
    progress_message: str | None


@dataclass(frozen=True)
class OutRow:
    id: int
    family_id: int | None
    address: str
    kind: str
    ref_id: int
    send_at: dt.datetime
    attempts: int
    first_try_at: dt.datetime | None
    next_at: str


_COLUMNS = "id, family_id, address, kind, ref_id, send_at, attempts, first_try_at, next_at"


def _out(r: Sequence[object]) -> OutRow:
    return OutRow(int(r[0]), int(r[1]) if r[1] is not None else None, str(r[2]), str(r[3]),  # type: ignore[call-overload]
                  int(r[4]), dt.datetime.fromisoformat(str(r[5])), int(r[6]),  # type: ignore[call-overload]
                  dt.datetime.fromisoformat(str(r[7])) if r[7] else None, str(r[8]))


def visit_reminder_times(at: dt.datetime, now: dt.datetime, policy: Policy) -> dict[str, dt.datetime]:
    """When a visit's reminders go: the day before at the send time, and 2 hours before. Quiet hours
    win: a time inside them moves to their end if that is still before the visit, else it is dropped;
    times already past are dropped too."""
    out: dict[str, dt.datetime] = {}
    day_before = policy.at((at - dt.timedelta(days=1)).astimezone(TZ).date())
    two_hours = at - BEFORE_VISIT
    if policy.quiet(two_hours):
        end = dt.datetime.combine(two_hours.astimezone(TZ).date(), policy.quiet_end, TZ)
        if end < two_hours:  # quiet hours began the evening before: they end tomorrow morning
            end += dt.timedelta(days=1)
        two_hours = end
    for kind, moment in (("visit_day", day_before), ("visit_2h", two_hours)):
        if now < moment < at:
            out[kind] = moment
    return out


class Outbox(Deliveries):
    """Visits, pushes and outbox rows (store migration 005)."""

    table = "outbox"

    # ------------------------------------------------------------ visits

    def add_visit(self, doctor_id: int, family_id: int, address: str, at: dt.datetime, place: str, note: str,
                  now: dt.datetime, policy: Policy) -> Visit:
        """Schedule a visit: the family is told now and reminded the day before and 2 hours before."""
        with self.db.atomic():
            cur = self.db.execute("insert into visits (doctor_id, family_id, at, place, note, created) "
                                  "values (?, ?, ?, ?, ?, ?)", [doctor_id, family_id, ts(at), place, note, ts(now)])
            visit_id = int(cur.lastrowid or 0)
            self._add(family_id, address, "visit_new", visit_id, now)
            for kind, moment in visit_reminder_times(at, now, policy).items():
                self._add(family_id, address, kind, visit_id, moment)
        visit = self.visit(visit_id)
        assert visit is not None
        return visit

    def visit(self, visit_id: int) -> Visit | None:
        row = self.db.execute("select id, doctor_id, family_id, at, place, note, state from visits where id = ?",
                              [visit_id]).fetchone()
        if row is None:
            return None
        return Visit(row[0], row[1], row[2], dt.datetime.fromisoformat(row[3]), row[4], row[5], row[6])

    def upcoming_visits(self, family_id: int, now: dt.datetime, doctor_id: int | None = None) -> list[Visit]:
        """The family's visits still to come that are on (scheduled or confirmed), soonest first; only
        this doctor's when `doctor_id` is given."""
        mine = "and doctor_id = ? " if doctor_id is not None else ""
        rows = self.db.execute("select id, doctor_id, family_id, at, place, note, state from visits "
                               f"where family_id = ? and at > ? and state in ('scheduled', 'confirmed') {mine}"
                               "order by at, id", [family_id, ts(now), *([doctor_id] if doctor_id is not None else [])])
        return [Visit(r[0], r[1], r[2], dt.datetime.fromisoformat(r[3]), r[4], r[5], r[6]) for r in rows]

    def notify_doctor(self, doctor_address: str, kind: str, ref_id: int, now: dt.datetime) -> None:
        """Queue a message to a doctor (visit_answer, visit_withdrawn): it belongs to no family."""
        self._add(None, doctor_address, kind, ref_id, now)

    def withdrawn_visit(self, audit_id: int) -> tuple[int, dt.datetime] | None:
        """The doctor id and the time of a visit called off by /forget or the purge (the audit row
        personal_data.forget wrote, `detail` the visit's ISO time), or None when there is no such row."""
        row = self.db.execute("select doctor_id, detail from audit where id = ? and action = 'visit_withdrawn'",
                              [audit_id]).fetchone()
        if row is None or row[0] is None:
            return None
        try:
            return int(row[0]), dt.datetime.fromisoformat(row[1])
        except ValueError:  # an audit row edited by hand: nothing sound to tell
            return None

    def answer_visit(self, visit: Visit, state: str, doctor_address: str | None, now: dt.datetime) -> None:
        """The parent confirms or asks for another time; the doctor is told (when their account is known).
        Asking for another time drops the visit's pending reminders."""
        if state not in ("confirmed", "reschedule"):
            raise ValueError("a visit is confirmed or to be rescheduled")
        with self.db.atomic():
            self.db.execute("update visits set state = ?, answered_at = ? where id = ?", [state, ts(now), visit.id])
            if state == "reschedule":
                self.cancel_ref(VISIT_KINDS, visit.id, "reschedule")
            if doctor_address:
                self.notify_doctor(doctor_address, "visit_answer", visit.id, now)

    def cancel_ref(self, kinds: Sequence[str], ref_id: int, reason: str) -> None:
        marks = ", ".join("?" * len(kinds))
        self.db.execute(f"update outbox set state = 'cancelled', reason = ? where state = 'pending' and ref_id = ? "
                        f"and kind in ({marks})", [reason, ref_id, *kinds])

    # ------------------------------------------------------------ pushes

    def add_push(self, doctor_id: int, text: str, audience: str, families: Sequence[tuple[int, str]],
                 doctor_address: str, now: dt.datetime) -> Push:
        """A push to these (family id, address) pairs, and the doctor's progress message, all in one
        transaction: the push is sent whole or not at all, whatever happens to the process."""
        with self.db.atomic():
            cur = self.db.execute("insert into pushes (doctor_id, text, audience, created, total, progress_address) "
                                  "values (?, ?, ?, ?, ?, ?)",
                                  [doctor_id, text, audience, ts(now), len(families), doctor_address])
            push_id = int(cur.lastrowid or 0)
            self._add(None, doctor_address, "push_progress", push_id, now)
            for family_id, address in families:
                self._add(family_id, address, "push", push_id, now)
        push = self.push(push_id)
        assert push is not None
        return push

    def push(self, push_id: int) -> Push | None:
        row = self.db.execute("select id, doctor_id, text, audience, total, progress_address, progress_message "
                              "from pushes where id = ?", [push_id]).fetchone()
        return Push(*row) if row else None

    def set_progress_message(self, push_id: int, message_id: str) -> None:
        self.db.execute("update pushes set progress_message = ? where id = ?", [message_id, push_id])

    def push_counts(self, push_id: int) -> dict[str, int]:
        """A push's rows by state, with `blocked` (pending because the family blocked the bot)."""
        out = {s: 0 for s in ("pending", "sending", "sent", "failed", "cancelled", "blocked")}
        for state, reason, n in self.db.execute("select state, reason, count(*) from outbox where kind = 'push' "
                                                "and ref_id = ? group by state, reason", [push_id]):
            out["blocked" if state == "pending" and reason == "blocked" else state] += n
        return out

    def delivered_today(self, doctor_id: int, now: dt.datetime) -> int:
        """Push messages delivered to families today (Asia/Shanghai) for this doctor: the daily limit."""
        start = dt.datetime.combine(now.astimezone(TZ).date(), dt.time(0), TZ)
        return int(self.db.execute(
            "select count(*) from outbox o join pushes p on p.id = o.ref_id where o.kind = 'push' and "
            "o.state = 'sent' and p.doctor_id = ? and o.sent_at >= ?", [doctor_id, ts(start)]).fetchone()[0])

    def queued(self, doctor_id: int) -> int:
        """Push messages of this doctor waiting to be sent (they count against the daily limit)."""
        return int(self.db.execute(
            "select count(*) from outbox o join pushes p on p.id = o.ref_id where o.kind = 'push' and "
            "o.state in ('pending', 'sending') and o.reason != 'blocked' and p.doctor_id = ?",
            [doctor_id]).fetchone()[0])

    # ------------------------------------------------------------ rows

    def _add(self, family_id: int | None, address: str, kind: str, ref_id: int, at: dt.datetime) -> None:
        self.db.execute("insert into outbox (family_id, address, kind, ref_id, send_at, next_at) "
                        "values (?, ?, ?, ?, ?, ?)", [family_id, address, kind, ref_id, ts(at), ts(at)])

    def due(self, now: dt.datetime, limit: int = 500, after: tuple[str, int] | None = None) -> list[OutRow]:
        """Pending rows whose time has come, oldest first, skipping families that paused; pages by `after`."""
        page = "and (o.next_at, o.id) > (?, ?) " if after else ""
        cols = ", ".join("o." + c.strip() for c in _COLUMNS.split(","))
        rows = self.db.execute(
            f"select {cols} from outbox o left join families f on f.id = o.family_id "
            f"where o.state = 'pending' and o.next_at <= ? {page}and coalesce(f.paused, 0) = 0 "
            "order by o.next_at, o.id limit ?", [ts(now), *(after or ()), limit]).fetchall()
        return [_out(r) for r in rows]
