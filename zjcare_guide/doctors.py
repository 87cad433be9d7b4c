"""Family doctors (家庭医生签约服务): who they are, how a family signs with one (签约) through an invite,
and the audit log of what doctors do. A family is signed with one doctor at a time; a doctor sees and
messages only the families signed with them (roles.Authority checks every command and button).

Codes: invites and registration codes are `secrets.token_urlsafe` (120 bits), so they use only the
characters Telegram allows in a start parameter (A-Z a-z 0-9 _ -) and "join_" + code is 25 characters.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass

from sqlite_utils.db import Database

from .outbox import Outbox
from .reminders import ts

INVITE_PREFIX = "join_"
DOCTOR_PREFIX = "doc_"
CODE_BYTES = 15  # 120 bits, 20 characters
_CODE = re.compile(r"[A-Za-z0-9_-]{16,40}")
REGISTRATION_DAYS = 7  # a doctor's one-time registration code is good for a week


@dataclass(frozen=True)
class Doctor:
    id: int
    name: str
    clinic: str
    user_key: str | None  # the doctor's account (telegram:<id>), once known
    removed: bool


class InviteError(ValueError):
    """Why an invite or registration code cannot be used: unknown, expired, revoked or used."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def new_code() -> str:
    return secrets.token_urlsafe(CODE_BYTES)


def invite_link(bot_username: str, code: str) -> str:
    """The deep link a parent opens to sign with the doctor: https://t.me/<bot>?start=join_<code>."""
    return f"https://t.me/{bot_username.lstrip('@')}?start={INVITE_PREFIX}{code}"


class Doctors:
    """Doctors, codes, invites, links and the audit log (store migration 005)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # ------------------------------------------------------------ doctors

    def add(self, name: str, clinic: str, now: dt.datetime, user_key: str | None = None) -> Doctor:
        name, clinic = name.strip(), clinic.strip()
        if not name or not clinic:
            raise ValueError("a doctor has a name and a clinic")
        if user_key is not None and self.by_user(user_key) is not None:
            raise ValueError(f"{user_key} is already a doctor")
        cur = self.db.execute("insert into doctors (name, clinic, user_key, created) values (?, ?, ?, ?)",
                              [name[:40], clinic[:60], user_key, ts(now)])
        doctor = self.get(int(cur.lastrowid or 0))
        assert doctor is not None
        return doctor

    def get(self, doctor_id: int) -> Doctor | None:
        row = self.db.execute("select id, name, clinic, user_key, removed from doctors where id = ?",
                              [doctor_id]).fetchone()
        return Doctor(row[0], row[1], row[2], row[3], row[4] is not None) if row else None

    def by_user(self, user_key: str) -> Doctor | None:
        """The active doctor whose account this is."""
        row = self.db.execute("select id from doctors where user_key = ? and removed is null", [user_key]).fetchone()
        return self.get(row[0]) if row else None

    def all(self) -> list[Doctor]:
        return [d for d in (self.get(r[0]) for r in self.db.execute("select id from doctors order by id"))
                if d is not None]

    def families_count(self, doctor_id: int) -> int:
        return int(self.db.execute("select count(*) from links where doctor_id = ?", [doctor_id]).fetchone()[0])

    def remove(self, doctor_id: int, now: dt.datetime) -> bool:
        """The doctor leaves: their account no longer works, invites are revoked and their families
        unsigned (they can sign with another doctor). The audit rows stay."""
        with self.db.atomic():
            cur = self.db.execute("update doctors set removed = ?, user_key = null where id = ? and removed is null",
                                  [ts(now), doctor_id])
            if not cur.rowcount:
                return False
            self.db.execute("update invites set revoked = ? where doctor_id = ? and revoked is null",
                            [ts(now), doctor_id])
            for family_id in self.family_ids(doctor_id):
                self._call_off(family_id, doctor_id, now)
                self.audit("cli", "unlink", now, doctor_id=doctor_id, family_id=family_id, detail="doctor removed")
            self.db.execute("delete from links where doctor_id = ?", [doctor_id])
            self.db.execute("delete from doctor_codes where doctor_id = ?", [doctor_id])
        return True

    def registration_code(self, doctor_id: int, now: dt.datetime) -> str:
        """A one-time code the doctor sends to the bot (/start doc_<code>) to tie their account."""
        code = new_code()
        self.db.execute("insert into doctor_codes (code, doctor_id, expires) values (?, ?, ?)",
                        [code, doctor_id, ts(now + dt.timedelta(days=REGISTRATION_DAYS))])
        return code

    def claim(self, code: str, user_key: str, now: dt.datetime) -> Doctor:
        """Tie `user_key` to the doctor the registration code was made for. Raises InviteError."""
        if not _CODE.fullmatch(code):
            raise InviteError("unknown")
        with self.db.atomic():
            row = self.db.execute("select doctor_id, expires, used from doctor_codes where code = ?",
                                  [code]).fetchone()
            if row is None:
                raise InviteError("unknown")
            if row[2] is not None:
                raise InviteError("used")
            if row[1] < ts(now):
                raise InviteError("expired")
            doctor = self.get(row[0])
            if doctor is None or doctor.removed:
                raise InviteError("revoked")
            other = self.by_user(user_key)
            if other is not None and other.id != doctor.id:
                raise InviteError("used")
            self.db.execute("update doctors set user_key = ? where id = ?", [user_key, doctor.id])
            self.db.execute("update doctor_codes set used = ? where code = ?", [ts(now), code])
        claimed = self.get(doctor.id)
        assert claimed is not None
        return claimed

    # ------------------------------------------------------------ invites

    def invite(self, doctor_id: int, now: dt.datetime, valid_days: int | None = None) -> str:
        """A new invite code (several may be live: one printed at the clinic, one sent)."""
        code = new_code()
        expires = ts(now + dt.timedelta(days=valid_days)) if valid_days else None
        self.db.execute("insert into invites (code, doctor_id, created, expires) values (?, ?, ?, ?)",
                        [code, doctor_id, ts(now), expires])
        return code

    def revoke(self, doctor_id: int | None, code: str, now: dt.datetime) -> int | None:
        """Revoke one invite (of this doctor, or of any when `doctor_id` is None). Signed families stay.
        Returns the invite's doctor, or None when there was no live invite with that code."""
        row = self.db.execute("select doctor_id from invites where code = ? and revoked is null "
                              "and (? is null or doctor_id = ?)", [code, doctor_id, doctor_id]).fetchone()
        if row is None:
            return None
        self.db.execute("update invites set revoked = ? where code = ?", [ts(now), code])
        return int(row[0])

    def check_invite(self, code: str, now: dt.datetime) -> Doctor:
        """The active doctor of a valid invite. Raises InviteError (unknown, expired, revoked)."""
        if not _CODE.fullmatch(code):
            raise InviteError("unknown")
        row = self.db.execute("select doctor_id, expires, revoked from invites where code = ?", [code]).fetchone()
        if row is None:
            raise InviteError("unknown")
        if row[2] is not None:
            raise InviteError("revoked")
        if row[1] is not None and row[1] < ts(now):
            raise InviteError("expired")
        doctor = self.get(row[0])
        if doctor is None or doctor.removed:
            raise InviteError("revoked")
        return doctor

    # ------------------------------------------------------------ links (签约)

    def doctor_of(self, family_id: int) -> Doctor | None:
        row = self.db.execute("select doctor_id from links where family_id = ?", [family_id]).fetchone()
        return self.get(row[0]) if row else None

    def link(self, family_id: int, doctor_id: int, now: dt.datetime) -> int | None:
        """Sign the family with this doctor, replacing any earlier doctor (whose queued visits and
        messages to the family are called off). Returns the earlier doctor's id."""
        with self.db.atomic():
            previous = self.doctor_of(family_id)
            if previous is not None and previous.id != doctor_id:
                self._call_off(family_id, previous.id, now)
            self.db.execute("insert into links (family_id, doctor_id, since) values (?, ?, ?) "
                            "on conflict(family_id) do update set doctor_id = excluded.doctor_id, "
                            "since = excluded.since", [family_id, doctor_id, ts(now)])
        return previous.id if previous is not None and previous.id != doctor_id else None

    def unlink(self, family_id: int, now: dt.datetime) -> bool:
        """End the signing: the doctor sees nothing of the family any more, and whatever they queued for
        it (visits, their reminders, pushes not yet sent) is called off."""
        with self.db.atomic():
            doctor = self.doctor_of(family_id)
            if doctor is None:
                return False
            self._call_off(family_id, doctor.id, now)
            self.db.execute("delete from links where family_id = ?", [family_id])
        return True

    def _call_off(self, family_id: int, doctor_id: int, now: dt.datetime) -> None:
        outbox = Outbox(self.db)
        upcoming = outbox.upcoming_visits(family_id, now, doctor_id)
        self.db.execute("update visits set state = 'cancelled', answered_at = ? where family_id = ? and doctor_id = ? "
                        "and state in ('scheduled', 'confirmed', 'reschedule')", [ts(now), family_id, doctor_id])
        doctor = self.get(doctor_id)
        if doctor is not None and doctor.user_key and not doctor.removed:
            # The doctor is told that a visit still to come is off, so nobody turns up for nothing.
            for visit in upcoming:
                outbox.notify_doctor(doctor.user_key, "visit_answer", visit.id, now)
        self.db.execute(
            "update outbox set state = 'cancelled', reason = 'unsigned' where state = 'pending' and family_id = ? "
            "and ((kind like 'visit%' and ref_id in (select id from visits where doctor_id = ?)) "
            "or (kind = 'push' and ref_id in (select id from pushes where doctor_id = ?)))",
            [family_id, doctor_id, doctor_id])

    def family_ids(self, doctor_id: int) -> list[int]:
        return [r[0] for r in self.db.execute("select family_id from links where doctor_id = ? order by since, "
                                              "family_id", [doctor_id])]

    def signs(self, doctor_id: int, family_id: int) -> bool:
        """Whether this family is signed with this doctor (the check behind every doctor action)."""
        return self.db.execute("select 1 from links where doctor_id = ? and family_id = ?",
                               [doctor_id, family_id]).fetchone() is not None

    # ------------------------------------------------------------ audit

    def audit(self, actor: str, action: str, now: dt.datetime, *, doctor_id: int | None = None,
              family_id: int | None = None, detail: str = "", tombstone: str | None = None) -> int:
        """One line of the audit log: who (doctor and account), what, when, which family (or the
        tombstone of a forgotten one, personal_data.forget). `detail` holds no child's name or birth
        date. Returns the row's id."""
        cur = self.db.execute("insert into audit (at, doctor_id, actor, action, family_id, detail, tombstone) "
                              "values (?, ?, ?, ?, ?, ?, ?)",
                              [ts(now), doctor_id, actor, action, family_id, detail[:200], tombstone])
        return int(cur.lastrowid or 0)

    def audit_log(self, doctor_id: int | None = None, since: dt.datetime | None = None,
                  limit: int = 1000) -> list[dict[str, object]]:
        where: list[str] = ["1 = 1"]
        params: list[object] = []
        if doctor_id is not None:
            where.append("doctor_id = ?")
            params.append(doctor_id)
        if since is not None:
            where.append("at >= ?")
            params.append(ts(since))
        rows = self.db.execute(f"select at, doctor_id, actor, action, family_id, detail from audit "
                               f"where {' and '.join(where)} order by id limit ?", [*params, limit])
        return [dict(zip(("at", "doctor_id", "actor", "action", "family_id", "detail"), r, strict=True))
                for r in rows]
