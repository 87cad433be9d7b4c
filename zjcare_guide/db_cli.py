"""`zjcare-guide db …`: the operator's database tools — an online backup, an integrity check and the
retention purge. None of them needs the bot to stop."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import stat
import tempfile
from pathlib import Path

import click
from sqlite_utils.db import Database

from . import personal_data
from .cli import config_from_env, existing_store, main
from .clock import TZ, system_clock
from .store import BUSY_TIMEOUT_S, migrations


@main.group()
def db() -> None:
    """The database: online backup, integrity check, retention purge."""


def _source(path: str | None) -> Path:
    target = Path(path) if path else config_from_env().db_path
    if not target.is_file():
        raise click.ClickException(f"no database at {target}: give the bot's database with --db or $ZJCARE_DB")
    return target


def _read_only(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
        conn.execute("select count(*) from sqlite_master").fetchone()
    except sqlite3.Error as exc:
        raise click.ClickException(f"cannot read the database {path}: {exc}") from None
    return conn


def _table_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("select count(*) from sqlite_master where type = 'table'").fetchone()[0])


def problems_in(conn: sqlite3.Connection) -> list[str]:
    """Integrity problems of an open database: PRAGMA integrity_check's lines (other than "ok") and
    every row PRAGMA foreign_key_check finds."""
    try:
        out = [row[0] for row in conn.execute("pragma integrity_check") if row[0] != "ok"]
        out += [f"{table} row {rowid}: no {parent} it refers to"
                for table, rowid, parent, _ in conn.execute("pragma foreign_key_check")]
    except sqlite3.DatabaseError as exc:  # damaged beyond what integrity_check can walk
        return [f"the database is damaged: {exc}"]
    return out


@db.command("backup")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--db", "source", type=click.Path(dir_okay=False), help="Database file (default: $ZJCARE_DB).")
def backup(file: str, source: str | None) -> None:
    """Copy the database to FILE while the bot runs (SQLite's online backup), then check the copy.

    The copy is written next to FILE and renamed over it only once complete and checked: a failed
    backup never replaces an earlier good one. Example: zjcare-guide db backup backups/zjcare-2026-12-01.db
    """
    src_path = _source(source)
    target = Path(file)
    # Click's dir_okay=False misses "" (the current folder) and a folder not made yet ("backups/").
    if not file.strip() or file.endswith(("/", os.sep)) or target.name in ("", ".", ".."):
        raise click.ClickException("give the backup a file name, e.g. backups/zjcare-2026-12-01.db")
    if target.resolve() == src_path.resolve():
        raise click.ClickException("the backup must be another file than the database itself")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise click.ClickException(f"cannot write the backup: {folder} is not a writable folder")
    src = _read_only(src_path)
    try:
        if not _table_count(src):
            raise click.ClickException(f"{src_path} has no tables: it is not the bot's database (an empty file); "
                                       "give the bot's database with --db or $ZJCARE_DB")
        tables = _copy_checked(src, folder, target)
    finally:
        src.close()
    click.echo(f"backed up {src_path} to {target}: {target.stat().st_size} bytes, {tables} tables, integrity ok")


def _copy_checked(src: sqlite3.Connection, folder: Path, target: Path) -> int:
    """Copy `src` to a temporary file in `folder`, check it, and rename it over `target`; returns the
    copy's table count. Raises ClickException (target unchanged, no temporary file left) on failure."""
    try:
        # mkstemp's file is 0600: a copy of the families' data is no more readable than the database.
        fd, tmp_name = tempfile.mkstemp(prefix=".backup-", suffix=".db", dir=folder)
    except OSError as exc:  # a folder writable in name only (/proc, a read-only mount, a full disk)
        raise click.ClickException(f"cannot write the backup in {folder}: {exc.strerror}") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        dst = sqlite3.connect(tmp)
        try:
            # Pages are copied in steps; a write by the bot meanwhile restarts the copy of what changed.
            src.backup(dst, pages=1024)
            # One self-contained file (no -wal beside it) that can be copied off the machine as is.
            dst.execute("pragma journal_mode=delete")
            problems = problems_in(dst)
            tables = _table_count(dst)
        finally:
            dst.close()
        if problems:
            raise click.ClickException(f"the copy failed its check ({problems[0]}); {target} was not changed")
        tmp.replace(target)
    except sqlite3.Error as exc:
        raise click.ClickException(f"the backup failed: {exc}; {target} was not changed") from None
    except OSError as exc:  # the rename: FILE is a folder, a mount point, on another device
        raise click.ClickException(f"cannot write the backup to {target}: {exc.strerror}; "
                                   f"{target} was not changed") from None
    finally:
        tmp.unlink(missing_ok=True)
    return tables


@db.command("check")
@click.option("--db", "source", type=click.Path(dir_okay=False), help="Database file (default: $ZJCARE_DB).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def check(source: str | None, as_json: bool) -> None:
    """Check the database's integrity (PRAGMA integrity_check, foreign keys), its journal mode and its
    migrations, without changing anything; exit 1 on a problem.

    Example: zjcare-guide db check
    """
    path = _source(source)
    conn = _read_only(path)
    try:
        problems = problems_in(conn)
        try:
            if not _table_count(conn):  # SQLite reads a 0-byte file as an empty database: "ok" would mislead
                problems.append("no tables: an empty file, not the bot's database (a wrong path, or the data "
                                "was lost; restore the last backup)")
            mode = conn.execute("pragma journal_mode").fetchone()[0]
            wrapped = Database(conn)  # sqlite-utils' pending() and applied() only read
            pending = [m.name for m in migrations.pending(wrapped)]
            applied = {m.name for m in migrations.applied(wrapped)}
        except sqlite3.DatabaseError as exc:
            raise click.ClickException(f"{path}: the database is damaged: {exc}") from None
    finally:
        conn.close()
    known = [m.name for m in migrations._migrations]  # the registry (sqlite-utils has no public getter)
    unknown = sorted(applied - set(known))
    if unknown:
        problems.append(f"migrations from a newer version of zjcare-guide: {', '.join(unknown)}")
    warnings = []
    mode_bits = stat.S_IMODE(path.stat().st_mode)
    if mode_bits & 0o077:  # the bot creates it 0600; an older file keeps what the umask gave it
        warnings.append(f"warning: the database is readable by other users ({mode_bits:04o}): "
                        f"chmod 600 {path} (children's data is personal data)")
    if as_json:
        click.echo(json.dumps({"database": str(path), "ok": not problems, "problems": problems,
                               "warnings": warnings, "journal_mode": mode, "migrations_applied": len(applied),
                               "migrations_pending": pending}, ensure_ascii=False, indent=2))
    else:
        for p in [*problems, *warnings]:
            click.echo(p)
        note = f"; {len(pending)} migration(s) to apply at the next start" if pending else ""
        click.echo(f"{path}: {'ok' if not problems else f'{len(problems)} problem(s)'}, journal mode {mode}, "
                   f"{len(applied)} of {len(known)} migrations applied{note}")
    if problems:
        raise SystemExit(1)


@db.command("purge")
@click.option("--months", type=click.IntRange(1, 1200),
              help="Delete families inactive this many months (default: $ZJCARE_RETENTION_MONTHS or 24).")
@click.option("--today", help="Count inactivity up to this day (YYYY-MM-DD); default: today in Asia/Shanghai.")
@click.option("--dry-run", is_flag=True, help="Only say how many families would be deleted.")
@click.option("--db", "source", type=click.Path(dir_okay=False), help="Database file (default: $ZJCARE_DB).")
def purge(months: int | None, today: str | None, dry_run: bool, source: str | None) -> None:
    """The retention purge: delete every family with no activity (message, button, registration, a
    reminder or doctor's message delivered to them) for the retention period — children, plans,
    reminders, doctor links, visits and their reports, as /forget does — and unlink older institution
    reports from the account that filed them.

    Safe next to a running bot; run it daily from cron. Example: zjcare-guide db purge --dry-run
    """
    config = config_from_env()
    months = months or config.retention_months
    if today:
        try:
            day = dt.date.fromisoformat(today)
        except ValueError:
            raise click.BadParameter(f"{today!r} is not a date (YYYY-MM-DD)", param_hint="--today") from None
        now = dt.datetime.combine(day, dt.time(12), TZ)
    else:
        now = system_clock()
    if dry_run:  # read only: not even the migrations a start (or a real purge) would apply
        conn = _read_only(_source(source))
        try:
            wrapped = Database(conn)
            pending = migrations.pending(wrapped)
            if pending:
                raise click.ClickException(
                    f"the database needs {len(pending)} migration(s) first (the bot applies them at its next "
                    "start, as does a purge without --dry-run); nothing changed")
            keys = personal_data.inactive(wrapped, months, now.date())
        finally:
            conn.close()
        click.echo(f"{len(keys)} family(ies) inactive for {months} months would be deleted (dry run: nothing changed)")
        return
    store = existing_store(source)
    families, reports = personal_data.purge(store.db, months, now)
    click.echo(f"deleted {families} family(ies) inactive for {months} months; "
               f"{reports} older report(s) unlinked from their account")
