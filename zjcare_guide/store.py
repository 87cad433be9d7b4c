"""The service's SQLite database (sqlite-utils), with numbered migrations.

What is stored about parents is the minimum the editors need to improve the guidance: the question
text of a 👎 or of a question nobody could answer, with no chat or user id, long digit runs (phone
numbers, ID numbers) masked, and the day only (no time of day), so a row cannot be tied to a family.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from sqlite_utils.db import Database
from sqlite_utils.migrations import Migrations

from .text import clean

MAX_QUESTION = 200
_DIGITS = re.compile(r"\d{5,}")


def anonymise(question: str) -> str:
    """The question as editors may see it: cleaned, long numbers masked, bounded in length."""
    return _DIGITS.sub("＊", clean(question).strip())[:MAX_QUESTION]


migrations = Migrations("zjcare_guide")


@migrations(name="001_feedback_and_gaps")
def _m001_feedback_and_gaps(db: Database) -> None:
    db.table("feedback").create({
        "id": int, "day": str, "article_id": str, "value": int, "question": str, "question_key": str,
    }, pk="id")
    db.table("unanswered").create({
        "id": int, "day": str, "kind": str, "question": str, "question_key": str,
    }, pk="id")
    db.table("feedback").create_index(["question_key"])
    db.table("unanswered").create_index(["question_key"])


@migrations(name="002_institutions")
def _m002_institutions(db: Database) -> None:
    """The directory of childcare institutions (托育机构), its spatial index, operators, places history
    and parents' reports. Column meanings: zjcare_guide.institutions.Institution."""
    db.execute("""
        create table institutions (
            id integer primary key,
            filing_no text not null unique,
            name text not null, kind text not null, inclusive integer not null, town_code text not null,
            address text not null, longitude real not null, latitude real not null, phone text not null,
            forms text not null, age_min integer not null, age_max integer not null, classes text not null,
            capacity integer not null, places integer, places_updated text,
            fees text not null, hours text not null, status text not null
        )""")
    db.execute("create index institutions_town on institutions (town_code)")
    # R*Tree over (latitude, longitude): `nearest` reads a bounding box instead of every row.
    db.execute("create virtual table institutions_rtree using rtree(id, min_lat, max_lat, min_lon, max_lon)")
    db.execute("""create trigger institutions_rtree_insert after insert on institutions begin
        insert into institutions_rtree values (new.id, new.latitude, new.latitude, new.longitude, new.longitude);
        end""")
    db.execute("""create trigger institutions_rtree_update after update of latitude, longitude on institutions begin
        update institutions_rtree set min_lat = new.latitude, max_lat = new.latitude,
            min_lon = new.longitude, max_lon = new.longitude where id = new.id;
        end""")
    db.execute("""create trigger institutions_rtree_delete after delete on institutions begin
        delete from institutions_rtree where id = old.id;
        end""")
    db.table("operators").create({"user_key": str, "filing_no": str, "added": str}, pk="user_key")
    db.table("places_audit").create({
        "id": int, "filing_no": str, "user_key": str, "old": int, "new": int, "at": str, "source": str,
    }, pk="id")
    db.table("places_audit").create_index(["filing_no"])
    db.table("reports").create({
        "id": int, "ref": str, "day": str, "created_at": str, "filing_no": str, "institution": str,
        "town_code": str, "text": str, "reporter": str, "status": str,
    }, pk="id", not_null={"ref", "day", "text"})
    db.table("reports").create_index(["ref"], unique=True)
    db.table("meta").create({"key": str, "value": str}, pk="key")


@migrations(name="003_families")
def _m003_families(db: Database) -> None:
    """Families (the parent's transport-neutral key and consent), their children and what was done.
    Column meanings: zjcare_guide.children."""
    db.execute("""
        create table families (
            id integer primary key, key text not null unique, address text not null,
            consent_at text, paused integer not null default 0, created text not null
        )""")
    db.execute("""
        create table children (
            id integer primary key, family_id integer not null references families(id),
            nickname text not null, birth text not null, sex text not null default '',
            preterm integer not null default 0, discharge text, created text not null
        )""")
    db.execute("create index children_family on children (family_id)")
    db.execute("""
        create table records (
            child_id integer not null references children(id), item_id text not null,
            done_on text not null, recorded_at text not null, primary key (child_id, item_id)
        )""")


@migrations(name="004_reminders")
def _m004_reminders(db: Database) -> None:
    """Reminder rows and their state machine (pending → sending → sent | failed | cancelled), and the
    items a family asked not to be reminded of. Column meanings: zjcare_guide.reminders."""
    db.execute("""
        create table reminders (
            id integer primary key, family_id integer not null references families(id),
            child_id integer not null references children(id), item_id text not null,
            kind text not null, item_due text not null, send_at text not null, next_at text not null,
            state text not null default 'pending', attempts integer not null default 0,
            first_try_at text, claimed_by text, claimed_at text, sent_at text, reason text not null default '',
            unique (child_id, item_id, kind, item_due)
        )""")
    # Due selection reads only pending rows up to now, in order: one index range, whatever the table size.
    db.execute("create index reminders_due on reminders (state, next_at)")
    db.execute("create index reminders_family on reminders (family_id, state)")
    db.execute("create index reminders_child on reminders (child_id, item_id)")
    # Covers `reminders status` (counts by state and kind) without reading a million rows.
    db.execute("create index reminders_state_kind on reminders (state, kind)")
    db.execute("""
        create table muted (
            child_id integer not null references children(id), item_id text not null, at text not null,
            primary key (child_id, item_id)
        )""")


@migrations(name="005_doctors")
def _m005_doctors(db: Database) -> None:
    """Family doctors (家庭医生), their registration codes and invites, the one doctor each family is
    signed with (签约), visits, pushes and the audit log of every doctor action. Column meanings:
    zjcare_guide.doctors."""
    db.execute("""
        create table doctors (
            id integer primary key, name text not null, clinic text not null, user_key text unique,
            created text not null, removed text
        )""")
    db.execute("""
        create table doctor_codes (
            code text primary key, doctor_id integer not null references doctors(id), expires text not null,
            used text
        )""")
    db.execute("""
        create table invites (
            code text primary key, doctor_id integer not null references doctors(id), created text not null,
            expires text, revoked text
        )""")
    db.execute("""
        create table links (
            family_id integer primary key references families(id), doctor_id integer not null references doctors(id),
            since text not null
        )""")
    db.execute("create index links_doctor on links (doctor_id)")
    db.execute("""
        create table audit (
            id integer primary key, at text not null, doctor_id integer, actor text not null, action text not null,
            family_id integer, detail text not null default ''
        )""")
    db.execute("create index audit_doctor on audit (doctor_id, at)")
    db.execute("""
        create table visits (
            id integer primary key, doctor_id integer not null references doctors(id),
            family_id integer not null references families(id), at text not null, place text not null,
            note text not null default '', state text not null default 'scheduled', answered_at text,
            created text not null
        )""")
    db.execute("create index visits_family on visits (family_id)")
    db.execute("""
        create table pushes (
            id integer primary key, doctor_id integer not null references doctors(id), text text not null,
            audience text not null, created text not null, total integer not null,
            progress_address text not null, progress_message text
        )""")
    # Messages nobody just asked for, other than reminders: a visit and its reminders, a parent's answer
    # to the doctor, a doctor's push and its progress. Same state machine as reminders (delivery.py).
    db.execute("""
        create table outbox (
            id integer primary key, family_id integer references families(id), address text not null,
            kind text not null, ref_id integer not null, send_at text not null, next_at text not null,
            state text not null default 'pending', attempts integer not null default 0, first_try_at text,
            claimed_by text, claimed_at text, sent_at text, reason text not null default ''
        )""")
    db.execute("create index outbox_due on outbox (state, next_at)")
    db.execute("create index outbox_ref on outbox (kind, ref_id, state)")


@migrations(name="006_privacy")
def _m006_privacy(db: Database) -> None:
    """The day each family was last active, for the retention purge (`zjcare-guide db purge`), and the
    audit log's tombstones."""
    db.execute("alter table families add column last_seen text")
    db.execute("update families set last_seen = substr(coalesce(consent_at, created), 1, 10)")
    # A forgotten family's audit rows keep an anonymous mark instead of the family (privacy.forget).
    db.execute("alter table audit add column tombstone text")


@migrations(name="007_report_refs")
def _m007_report_refs(db: Database) -> None:
    """The last reference number given out each day. Counting the day's rows gave a deleted report's
    number (/forget, the purge) to the next one, or a number still in use (a unique-index error)."""
    db.execute("create table report_refs (day text primary key, last integer not null)")
    # JB20261201-0003: the day's sequence starts at the 12th character.
    db.execute("insert into report_refs (day, last) "
               "select day, max(cast(substr(ref, 12) as integer)) from reports group by day")


# How long a write waits for another process's lock before it gives up (sqlite3's default is 5 s).
BUSY_TIMEOUT_S = 5.0


class LocalDatabase(Database):
    """A sqlite-utils Database with one connection per thread, so the bot can run its database work
    in worker threads (off the event loop) and one thread waiting on a lock holds up no other."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._local = threading.local()
        super().__init__(self._connect())

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, timeout=BUSY_TIMEOUT_S)
        # WAL lets readers (the editors' `content gaps`, a second process) go on while one writes; with
        # WAL, NORMAL sync stays consistent after a crash and spares an fsync per write.
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    @conn.setter
    def conn(self, value: sqlite3.Connection) -> None:
        self._local.conn = value


@dataclass(frozen=True)
class Gap:
    """A question editors should look at: how often it was unanswered or disliked."""

    question: str
    unanswered: int
    disliked: int
    articles: str

    @property
    def total(self) -> int:
        return self.unanswered + self.disliked


class Store:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._migrate()

    @classmethod
    def open(cls, path: Path | str) -> Store:
        if str(path) == ":memory:":
            # One connection, shared by whichever thread runs the conversation (tests, a quick try).
            return cls(Database(sqlite3.connect(":memory:", check_same_thread=False)))
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Families' data is readable by the bot's user only, whatever the umask: created 0600 here, and
        # SQLite gives its -wal and -shm files the database file's permissions. An existing file keeps
        # the permissions its operator chose.
        with contextlib.suppress(FileExistsError):
            os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        return cls(LocalDatabase(str(target)))

    def _migrate(self) -> None:
        # sqlite-utils runs each migration and its record in one transaction: no half schemas.
        migrations.apply(self.db)

    def record_feedback(self, article_id: str, value: int, question: str | None, day: dt.date,
                        key: str) -> None:
        """One 👍 (1) or 👎 (-1) for an article, with the question that led to it when known."""
        if value not in (1, -1):
            raise ValueError("feedback is +1 or -1")
        self.db.table("feedback").insert({
            "day": day.isoformat(), "article_id": article_id, "value": value,
            "question": anonymise(question) if question else "", "question_key": key,
        })

    def record_unanswered(self, question: str, kind: str, day: dt.date, key: str) -> None:
        self.db.table("unanswered").insert({
            "day": day.isoformat(), "kind": kind, "question": anonymise(question), "question_key": key,
        })

    def gaps(self, limit: int = 20, since: dt.date | None = None) -> list[Gap]:
        """The most frequent questions that got no confident answer or a 👎, most frequent first."""
        since_s = (since or dt.date.min).isoformat()
        rows = self.db.query(
            """
            with u as (
                select question_key, count(*) as n, max(question) as question
                from unanswered where day >= :since and question_key != '' group by question_key
            ), d as (
                select question_key, count(*) as n, max(question) as question,
                       group_concat(distinct article_id) as articles
                from feedback where value < 0 and day >= :since and question_key != ''
                group by question_key
            ), keys as (select question_key from u union select question_key from d)
            select coalesce(u.question, d.question) as question,
                   coalesce(u.n, 0) as unanswered, coalesce(d.n, 0) as disliked,
                   coalesce(d.articles, '') as articles
            from keys left join u using (question_key) left join d using (question_key)
            order by coalesce(u.n, 0) + coalesce(d.n, 0) desc, question
            limit :limit
            """,
            {"since": since_s, "limit": limit},
        )
        return [Gap(r["question"], r["unanswered"], r["disliked"], r["articles"]) for r in rows]

    def counts(self) -> dict[str, int]:
        return {name: self.db.table(name).count for name in ("feedback", "unanswered")}


