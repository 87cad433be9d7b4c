"""A family's personal data under China's PIPL (个人信息保护法): everything stored about it, its
deletion, and the retention purge of families no longer active.

PIPL art. 44-47 give the person the rights to see, copy and delete their personal information, and
art. 19 limits how long it is kept to what the purpose needs. What is stored about a family (store
migrations 003-006): the family row (its account key, consent, last activity), its children and their
records, reminders and muted items, its link to a family doctor, the doctor's visits and queued
messages, and the institution reports the account filed. The audit log of doctors' actions is kept
(it records who saw and did what), with the family replaced by an anonymous tombstone.
Feedback and unanswered questions are stored without any account and are not personal data here.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

from dateutil.relativedelta import relativedelta
from sqlite_utils.db import Database

from .delivery import ts
from .doctors import Doctors
from .outbox import Outbox

DEFAULT_RETENTION_MONTHS = 24  # ZJCARE_RETENTION_MONTHS; the reminders' plans run to 6 years


@dataclass(frozen=True)
class Forgotten:
    """What `forget` deleted: rows per table, the audit rows it anonymised, and the visits still to
    come whose doctor is told they are off."""

    deleted: dict[str, int]
    tombstoned: int
    tombstone: str
    visits_called_off: int = 0

    @property
    def total(self) -> int:
        return sum(self.deleted.values())


def _rows(db: Database, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cur = db.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def export(db: Database, user_key: str, now: dt.datetime) -> dict[str, Any] | None:
    """Everything stored about the account `user_key` (e.g. "telegram:4242") and its family, as a
    JSON-ready dict; None when nothing is stored. Dates are ISO 8601 strings, Asia/Shanghai."""
    family = _rows(db, "select id, consent_at, created, last_seen, paused from families where key = ?", [user_key])
    reports = _rows(db, "select ref, day, created_at, filing_no, institution, town_code, text, status "
                        "from reports where reporter = ? order by id", [user_key])
    if not family and not reports:
        return None
    out: dict[str, Any] = {"account": user_key, "exported_at": ts(now), "family": None, "children": [],
                           "doctor": None, "visits": [], "queued_messages": [], "doctor_messages": [],
                           "doctor_actions": [], "reports": reports}
    if family:
        f = family[0]
        fid = f["id"]
        out["family"] = {"consent_at": f["consent_at"], "created": f["created"], "last_active": f["last_seen"],
                         "reminders_paused": bool(f["paused"])}
        for child in _rows(db, "select id, nickname, birth, sex, preterm, discharge, created from children "
                               "where family_id = ? order by birth, id", [fid]):
            cid = child.pop("id")
            child["preterm"] = bool(child["preterm"])
            child["records"] = _rows(db, "select item_id, done_on, recorded_at from records where child_id = ? "
                                         "order by done_on", [cid])
            child["muted"] = [r["item_id"] for r in _rows(db, "select item_id from muted where child_id = ? "
                                                              "order by item_id", [cid])]
            child["reminders"] = _rows(db, "select item_id, kind, item_due, send_at, state, sent_at, reason "
                                           "from reminders where child_id = ? order by send_at, id", [cid])
            out["children"].append(child)
        doctor = _rows(db, "select d.name, d.clinic, l.since from links l join doctors d on d.id = l.doctor_id "
                           "where l.family_id = ?", [fid])
        out["doctor"] = doctor[0] if doctor else None
        out["visits"] = _rows(db, "select v.at, v.place, v.note, v.state, v.answered_at, d.name as doctor "
                                  "from visits v join doctors d on d.id = v.doctor_id where v.family_id = ? "
                                  "order by v.at", [fid])
        out["queued_messages"] = _rows(db, "select kind, send_at, state, sent_at from outbox where family_id = ? "
                                           "order by send_at, id", [fid])
        # The doctors' messages to all or some of their families that were queued for this one.
        out["doctor_messages"] = _rows(db, "select p.created, d.name as doctor, p.text, o.state, o.sent_at "
                                           "from outbox o join pushes p on p.id = o.ref_id "
                                           "join doctors d on d.id = p.doctor_id "
                                           "where o.kind = 'push' and o.family_id = ? order by o.id", [fid])
        # Who did what with this family's data: the doctors' actions that name it, and each doctor's
        # views of their family list (which showed this family) while it was signed with them.
        views, params = [], []
        for doctor_id, start, end in _signed_periods(db, fid):
            views.append("(a.action in ('families', 'overdue') and a.doctor_id = ? and a.at >= ?"
                         + (" and a.at <= ?)" if end else ")"))
            params += [doctor_id, start, *([end] if end else [])]
        out["doctor_actions"] = _rows(
            db, "select a.at, a.action, d.name as doctor, a.detail from audit a "
                "left join doctors d on d.id = a.doctor_id where a.family_id = ? "
                + "".join(f"or {v} " for v in views) + "order by a.id", [fid, *params])
    return out


def _signed_periods(db: Database, family_id: int) -> list[tuple[int, str, str | None]]:
    """(doctor id, from, until — None while still signed) for each time the family was signed with a
    doctor, from the audit log's link and unlink rows: every path that signs or unsigns writes one
    (doctor_flow's join and unlink, switching doctors, Doctors.remove). A current link with no link
    row (written before the audit existed) counts from its `since`."""
    periods: list[tuple[int, str, str | None]] = []
    started: dict[int, str] = {}
    for doctor_id, at, action in db.execute("select doctor_id, at, action from audit where family_id = ? "
                                            "and action in ('link', 'unlink') order by id", [family_id]):
        if action == "link":
            started.setdefault(doctor_id, at)  # signing again with the same doctor goes on
        elif doctor_id in started:
            periods.append((doctor_id, started.pop(doctor_id), at))
    current = db.execute("select doctor_id, since from links where family_id = ?", [family_id]).fetchone()
    if current is not None:
        periods.append((current[0], started.get(current[0], current[1]), None))
    return periods


def forget(db: Database, user_key: str, now: dt.datetime) -> Forgotten:
    """Delete everything stored about the account and its family (see the module's docstring), in one
    transaction. Audit rows that named the family or were the parent's own keep an anonymous
    tombstone ("forgotten-" and 8 random hex digits) instead of the family id and account."""
    deleted: dict[str, int] = {}

    def run(table: str, sql: str, params: list[Any]) -> None:
        n = db.execute(sql, params).rowcount
        deleted[table] = deleted.get(table, 0) + max(n, 0)

    tombstone = f"forgotten-{secrets.token_hex(4)}"
    with db.atomic():
        row = db.execute("select id, address from families where key = ?", [user_key]).fetchone()
        tombstoned = called_off = 0
        if row is not None:
            fid, address = row
            called_off = _call_off_visits(db, fid, tombstone, now)
            children = "(select id from children where family_id = ?)"
            visits = "(select id from visits where family_id = ?)"
            run("outbox", f"delete from outbox where kind = 'visit_answer' and ref_id in {visits}", [fid])
            run("outbox", "delete from outbox where family_id = ? or address = ?", [fid, address])
            run("visits", "delete from visits where family_id = ?", [fid])
            run("links", "delete from links where family_id = ?", [fid])
            run("reminders", "delete from reminders where family_id = ?", [fid])
            run("muted", f"delete from muted where child_id in {children}", [fid])
            run("records", f"delete from records where child_id in {children}", [fid])
            run("children", "delete from children where family_id = ?", [fid])
            tombstoned = db.execute("update audit set family_id = null, tombstone = ? where family_id = ?",
                                    [tombstone, fid]).rowcount
            run("families", "delete from families where id = ?", [fid])
        run("reports", "delete from reports where reporter = ?", [user_key])
        # The parent's own actions (signing, answering a visit) are logged under their account.
        tombstoned += db.execute("update audit set actor = ?, tombstone = ? where actor = ?",
                                 [tombstone, tombstone, user_key]).rowcount
    return Forgotten({k: v for k, v in deleted.items() if v}, tombstoned, tombstone, called_off)


def _call_off_visits(db: Database, family_id: int, tombstone: str, now: dt.datetime) -> int:
    """Tell each doctor with a visit to this family still to come that it is off, so nobody turns up
    for nothing (as unlinking does, doctors.Doctors._call_off). The visit row is about to go, so the
    notice rests on an audit row ("visit_withdrawn", under the tombstone, `detail` the visit's ISO
    time and nothing else) that the doctor's outbox row points at."""
    outbox, doctors = Outbox(db), Doctors(db)
    told = 0
    for visit in outbox.upcoming_visits(family_id, now):
        doctor = doctors.get(visit.doctor_id)
        if doctor is None or doctor.removed or not doctor.user_key:
            continue
        audit_id = doctors.audit(tombstone, "visit_withdrawn", now, doctor_id=doctor.id, detail=ts(visit.at),
                                 tombstone=tombstone)
        outbox.notify_doctor(doctor.user_key, "visit_withdrawn", audit_id, now)
        told += 1
    return told


def inactive(db: Database, months: int, today: dt.date) -> list[str]:
    """The account keys of families with no activity for `months` months before `today`: no message,
    button or registration, and no reminder or doctor's message delivered to them. Raises ValueError
    when `months` < 1.

    A delivered reminder counts because it is the service the family signed up for: a family that only
    reads its reminders (the plan runs to 6 years) is still served and is not deleted under it; once
    reminders stop being delivered (the plan is done, or the bot was blocked and every send fails) the
    period runs."""
    if months < 1:
        raise ValueError("the retention is at least one month")
    cutoff = (today - relativedelta(months=months)).isoformat()
    # sent_at is an ISO time with offset: its first 10 characters are the day in Asia/Shanghai.
    return [r[0] for r in db.execute(
        "select key from families f where coalesce(last_seen, substr(created, 1, 10)) < :cutoff "
        "and not exists (select 1 from reminders r where r.family_id = f.id and r.state = 'sent' "
        "                and substr(r.sent_at, 1, 10) >= :cutoff) "
        "and not exists (select 1 from outbox o where o.family_id = f.id and o.state = 'sent' "
        "                and substr(o.sent_at, 1, 10) >= :cutoff) "
        "order by id", {"cutoff": cutoff})]


def purge(db: Database, months: int, now: dt.datetime) -> tuple[int, int]:
    """The retention purge: forget every family inactive for `months` months, and unlink from their
    account the institution reports older than that. Returns (families forgotten, reports unlinked)."""
    keys = inactive(db, months, now.date())
    for key in keys:
        forget(db, key, now)
    cutoff = (now.date() - relativedelta(months=months)).isoformat()
    with db.atomic():
        unlinked = db.execute("update reports set reporter = '' where reporter != '' and day < ?", [cutoff]).rowcount
    return len(keys), unlinked
