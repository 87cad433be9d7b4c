"""Families and their children: the minimum the reminders need (a nickname, the birth date, optionally
sex and whether born preterm), stored with the family's consent, and the dates of what was done.

A family is the parent's transport-neutral key (`telegram:4242`); its children, their records and
reminders belong to it and go with it when the parent deletes their data.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from dataclasses import dataclass

from dateutil.relativedelta import relativedelta
from sqlite_utils.db import Database

from .dates import DateError, parse_date

MAX_AGE_YEARS = 6  # the plans run from birth to 6 years
MAX_NICKNAME = 20
SEXES = ("", "f", "m")


class BirthDateError(ValueError):
    """Why a typed birth date was refused: `reason` is format, ambiguous, expected (a due date), lunar,
    impossible, future or too_old."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_birth_date(text: str, today: dt.date) -> dt.date:
    """A birth date as parents type it (zjcare_guide.dates: 2026-03-01, 2026/3/1, 2026.3.1, 2026年3月1日,
    20260301, 26.3.1, 3月1日 — the most recent such day —, 二〇二六年三月一日, 去年12月5号, among other words).

    Raises BirthDateError: `format` (no date), `ambiguous` (two dates, or unsure), `expected` (a due
    date), `lunar`, `impossible` (2 月 30 日), `future`, `too_old` (over 6 years)."""
    try:
        day = parse_date(text, today)
    except DateError as exc:
        raise BirthDateError(exc.reason) from None
    if day > today:
        raise BirthDateError("future")
    if day < today - relativedelta(years=MAX_AGE_YEARS):
        raise BirthDateError("too_old")
    return day


def age_in_months(birth: dt.date, today: dt.date) -> int:
    """Completed calendar months of age."""
    delta = relativedelta(today, birth)
    return delta.years * 12 + delta.months


def age_words(birth: dt.date, today: dt.date) -> str:
    """An age as parents say it: 23天, 8个月, 2岁3个月."""
    months = age_in_months(birth, today)
    if months == 0:
        return f"{(today - birth).days}天"
    if months < 24:
        return f"{months}个月"
    return f"{months // 12}岁" + (f"{months % 12}个月" if months % 12 else "")


@dataclass(frozen=True)
class Child:
    id: int
    family_id: int
    nickname: str
    birth: dt.date
    sex: str  # "" (not said), "f" or "m"
    preterm: bool
    discharge: dt.date | None


@dataclass(frozen=True)
class Family:
    id: int
    key: str  # the parent's transport-neutral key, e.g. telegram:4242
    address: str  # where reminders go: the chat key
    consent_at: str | None  # when the parent agreed to the storing of their children's data
    paused: bool


class Families:
    """Families, children and done records in the service's database (store migration 003)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, key: str) -> Family | None:
        row = self.db.execute("select id, key, address, consent_at, paused from families where key = ?",
                              [key]).fetchone()
        return Family(row[0], row[1], row[2], row[3], bool(row[4])) if row else None

    def by_id(self, family_id: int) -> Family | None:
        row = self.db.execute("select id, key, address, consent_at, paused from families where id = ?",
                              [family_id]).fetchone()
        return Family(row[0], row[1], row[2], row[3], bool(row[4])) if row else None

    def consent(self, key: str, address: str, now: dt.datetime) -> Family:
        """Record the parent's consent (creating the family); returns it."""
        with self.db.atomic():
            self.db.execute("insert into families (key, address, consent_at, paused, created, last_seen) "
                            "values (?, ?, ?, 0, ?, ?) on conflict(key) do update set "
                            "consent_at = excluded.consent_at, address = excluded.address, "
                            "last_seen = excluded.last_seen",
                            [key, address, now.isoformat(timespec="seconds"), now.isoformat(timespec="seconds"),
                             now.date().isoformat()])
        family = self.get(key)
        assert family is not None
        return family

    def seen(self, key: str, today: dt.date) -> None:
        """Record that the family was active today (for the retention purge). Reads first: a chat
        with no family, or one already seen today, writes nothing and takes no lock."""
        row = self.db.execute("select last_seen from families where key = ?", [key]).fetchone()
        if row is None or (row[0] or "") >= today.isoformat():
            return
        with self.db.atomic():
            self.db.execute("update families set last_seen = ? where key = ?", [today.isoformat(), key])

    def children(self, family_id: int) -> list[Child]:
        rows = self.db.execute("select id, family_id, nickname, birth, sex, preterm, discharge from children "
                               "where family_id = ? order by birth, id", [family_id]).fetchall()
        return [_child(r) for r in rows]

    def child(self, family_id: int, child_id: int) -> Child | None:
        """A child of this family only: an id of another family's child gives None."""
        row = self.db.execute("select id, family_id, nickname, birth, sex, preterm, discharge from children "
                              "where family_id = ? and id = ?", [family_id, child_id]).fetchone()
        return _child(row) if row else None

    def add_child(self, family_id: int, nickname: str, birth: dt.date, sex: str = "", preterm: bool = False,
                  *, now: dt.datetime) -> Child:
        if sex not in SEXES:
            raise ValueError("sex is '', 'f' or 'm'")
        nickname = clean_nickname(nickname)
        cur = self.db.execute("insert into children (family_id, nickname, birth, sex, preterm, created) "
                              "values (?, ?, ?, ?, ?, ?)", [family_id, nickname, birth.isoformat(), sex, int(preterm),
                                                            now.isoformat(timespec="seconds")])
        child = self.child(family_id, int(cur.lastrowid or 0))
        assert child is not None
        return child

    def update_child(self, family_id: int, child_id: int, **fields: object) -> Child | None:
        allowed = {"nickname", "birth", "sex", "preterm", "discharge"}
        if set(fields) - allowed:
            raise ValueError(f"unknown fields {set(fields) - allowed}")
        values = {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in fields.items()}
        if "nickname" in values:
            values["nickname"] = clean_nickname(str(values["nickname"]))
        sets = ", ".join(f"{k} = ?" for k in values)
        self.db.execute(f"update children set {sets} where family_id = ? and id = ?",
                        [*values.values(), family_id, child_id])
        return self.child(family_id, child_id)

    def remove_child(self, family_id: int, child_id: int) -> bool:
        with self.db.atomic():
            if self.child(family_id, child_id) is None:
                return False
            self.db.execute("delete from records where child_id = ?", [child_id])
            self.db.execute("delete from reminders where child_id = ?", [child_id])
            self.db.execute("delete from muted where child_id = ?", [child_id])
            self.db.execute("delete from children where id = ?", [child_id])
        return True

    def records(self, child_id: int) -> dict[str, dt.date]:
        return {r[0]: dt.date.fromisoformat(r[1]) for r in self.db.execute(
            "select item_id, done_on from records where child_id = ?", [child_id])}

    def record(self, child_id: int, item_id: str, done_on: dt.date, now: dt.datetime) -> None:
        self.db.execute("insert into records (child_id, item_id, done_on, recorded_at) values (?, ?, ?, ?) "
                        "on conflict(child_id, item_id) do update set done_on = excluded.done_on, "
                        "recorded_at = excluded.recorded_at",
                        [child_id, item_id, done_on.isoformat(), now.isoformat(timespec="seconds")])


def clean_nickname(text: str) -> str:
    """A nickname as stored: printable, trimmed, at most 20 characters. Raises ValueError when empty."""
    t = "".join(ch for ch in unicodedata.normalize("NFKC", text)
                if unicodedata.category(ch)[0] not in "C").strip()[:MAX_NICKNAME]
    if not t:
        raise ValueError("a nickname is needed")
    return t


def _child(r: tuple[object, ...]) -> Child:
    return Child(int(r[0]), int(r[1]), str(r[2]), dt.date.fromisoformat(str(r[3])), str(r[4] or ""),  # type: ignore[call-overload]
                 bool(r[5]), dt.date.fromisoformat(str(r[6])) if r[6] else None)
