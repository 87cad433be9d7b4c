"""The database under operation: WAL and the busy timeout, migrations from an empty database and from
every earlier schema version, `db backup` while another process writes, and `db check`."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlite_utils.db import Database

from zjcare_guide.cli import main
from zjcare_guide.clock import TZ
from zjcare_guide.reports import file_report
from zjcare_guide.store import BUSY_TIMEOUT_S, Store, migrations

NAMES = [m.name for m in migrations._migrations]


def test_the_database_is_in_wal_mode_with_a_busy_timeout(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "z.db")
    assert store.db.execute("pragma journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("pragma busy_timeout").fetchone()[0] == int(BUSY_TIMEOUT_S * 1000)
    assert store.db.execute("pragma foreign_keys").fetchone()[0] == 1


def _fill(conn: sqlite3.Connection, applied: int) -> dict[str, int]:
    """A row in each table the first `applied` migrations created; returns the expected counts."""
    counts: dict[str, int] = {}
    if applied >= 1:
        conn.execute("insert into feedback (day, article_id, value, question, question_key) "
                     "values ('2026-01-05', 'fever', -1, '发烧怎么办', 'k')")
        counts["feedback"] = 1
    if applied >= 2:
        conn.execute("insert into reports (ref, day, created_at, filing_no, institution, town_code, text, reporter, "
                     "status) values ('JB20260105-0001', '2026-01-05', '2026-01-05T10:00:00+08:00', '', '', "
                     "'330681101', '举报内容', 'telegram:1', 'new')")
        counts["reports"] = 1
    if applied >= 3:
        conn.execute("insert into families (id, key, address, consent_at, paused, created) values "
                     "(1, 'telegram:1', 'telegram:1', '2026-01-05T10:00:00+08:00', 0, '2026-01-05T10:00:00+08:00')")
        conn.execute("insert into children (id, family_id, nickname, birth, created) values "
                     "(1, 1, '豆豆', '2026-01-01', '2026-01-05T10:00:00+08:00')")
        conn.execute("insert into records (child_id, item_id, done_on, recorded_at) values "
                     "(1, 'hepb-1', '2026-01-01', '2026-01-05T10:00:00+08:00')")
        counts.update(families=1, children=1, records=1)
    if applied >= 4:
        conn.execute("insert into reminders (family_id, child_id, item_id, kind, item_due, send_at, next_at) values "
                     "(1, 1, 'hepb-2', 'due', '2026-02-01', '2026-02-01T09:00:00+08:00', '2026-02-01T09:00:00+08:00')")
        counts["reminders"] = 1
    if applied >= 5:
        conn.execute("insert into doctors (id, name, clinic, created) values (1, '王医生', '店口镇卫生院', "
                     "'2026-01-05T10:00:00+08:00')")
        conn.execute("insert into links (family_id, doctor_id, since) values (1, 1, '2026-01-06T10:00:00+08:00')")
        conn.execute("insert into audit (at, doctor_id, actor, action, family_id) values "
                     "('2026-01-06T10:00:00+08:00', 1, 'telegram:1', 'link', 1)")
        counts.update(doctors=1, links=1, audit=1)
    conn.commit()
    return counts


@pytest.mark.parametrize("applied", range(len(NAMES)))
def test_an_earlier_schema_version_is_migrated_with_its_data(tmp_path: Path, applied: int) -> None:
    """From every earlier version (0: an empty database) to the current one, keeping every row."""
    path = tmp_path / "z.db"
    conn = sqlite3.connect(path)
    migrations.apply(Database(conn), stop_before=NAMES[applied])
    expected = _fill(conn, applied)
    conn.close()
    store = Store.open(path)
    assert [m.name for m in migrations.pending(store.db)] == []
    assert {t: store.db.table(t).count for t in expected} == expected
    if 3 <= applied <= 5:  # the family's last activity is filled in from its consent (006)
        assert store.db.execute("select last_seen from families").fetchone()[0] == "2026-01-05"
    if applied >= 2:  # the day's reference numbers go on from those in use (007)
        assert file_report(store.db, dt.datetime(2026, 1, 5, 11, tzinfo=TZ), "又一条举报", "").ref == "JB20260105-0002"
    result = CliRunner().invoke(main, ["db", "check", "--db", str(path)])
    assert result.exit_code == 0 and ": ok," in result.output and f"{len(NAMES)} of {len(NAMES)}" in result.output


def test_a_new_file_is_migrated_from_empty(tmp_path: Path) -> None:
    Store.open(tmp_path / "new.db")
    result = CliRunner().invoke(main, ["db", "check", "--db", str(tmp_path / "new.db"), "--json"])
    assert result.exit_code == 0 and '"ok": true' in result.output and '"journal_mode": "wal"' in result.output


_WRITER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], timeout=30)
for i in range(int(sys.argv[2])):
    conn.execute("insert into unanswered (day, kind, question, question_key) values ('2026-12-01', 'fallback', ?, ?)",
                 (f"问题{i}", f"k{i}"))
    conn.commit()
    if i == 499:
        print("writing", flush=True)  # 500 rows in: the backup starts while the rest are written
"""


def test_backup_while_another_process_writes_gives_a_consistent_checked_copy(tmp_path: Path) -> None:
    source, copy = tmp_path / "z.db", tmp_path / "backups" / "z-copy.db"
    Store.open(source)
    copy.parent.mkdir()
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(source), "3000"], stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
    result = CliRunner().invoke(main, ["db", "backup", str(copy), "--db", str(source)])
    writer.wait(timeout=120)
    assert result.exit_code == 0, result.output
    assert "integrity ok" in result.output
    assert [p.name for p in copy.parent.iterdir()] == ["z-copy.db"]  # one file, no temporary file left
    conn = sqlite3.connect(copy)
    assert conn.execute("pragma journal_mode").fetchone()[0] == "delete"
    assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"
    rows = conn.execute("select count(*) from unanswered").fetchone()[0]
    # A snapshot: every row committed up to some moment, in order, none half written.
    assert 500 <= rows <= 3000
    assert [r[0] for r in conn.execute("select question_key from unanswered order by id")] == \
        [f"k{i}" for i in range(rows)]
    print(f"backup taken while another process wrote: {rows} of 3000 rows in the copy")


def test_a_failed_backup_is_one_line_and_leaves_the_earlier_backup(tmp_path: Path) -> None:
    source = tmp_path / "z.db"
    Store.open(source)
    runner = CliRunner()
    missing = runner.invoke(main, ["db", "backup", str(tmp_path / "no" / "such" / "x.db"), "--db", str(source)])
    assert missing.exit_code == 1 and "not a writable folder" in missing.output and "Traceback" not in missing.output
    itself = runner.invoke(main, ["db", "backup", str(source), "--db", str(source)])
    assert itself.exit_code == 1 and "another file" in itself.output
    nothing = runner.invoke(main, ["db", "backup", str(tmp_path / "x.db"), "--db", str(tmp_path / "absent.db")])
    assert nothing.exit_code == 1 and "no database" in nothing.output and not (tmp_path / "x.db").exists()
    # No file name (the current folder, a folder not made yet), a folder only root can't write in,
    # FILE naming a folder that exists: one line each, and the earlier backup is left as it was.
    earlier = tmp_path / "earlier.db"
    assert runner.invoke(main, ["db", "backup", str(earlier), "--db", str(source)]).exit_code == 0
    kept = earlier.read_bytes()
    (tmp_path / "folder").mkdir()
    for file in ["", " ", str(tmp_path / "backups") + "/", "/proc/zjcare.db", str(tmp_path / "folder"),
                 str(tmp_path / "folder" / ".."), str(earlier) + "/x.db"]:
        result = runner.invoke(main, ["db", "backup", file, "--db", str(source)])
        assert result.exit_code != 0, file
        assert result.output.startswith(("Error:", "Usage:")) and "Traceback" not in result.output, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), (file, result.exception)
    assert earlier.read_bytes() == kept
    assert not [p for p in tmp_path.rglob(".backup-*")]  # no temporary copy left behind


def test_the_database_and_its_backups_are_readable_by_the_bots_user_only(tmp_path: Path) -> None:
    """Children's data is personal data: 0600 whatever the umask, for the database, its WAL and a backup."""
    old = os.umask(0o022)
    try:
        path = tmp_path / "data" / "z.db"
        store = Store.open(path)
        store.db.execute("insert into unanswered (day, kind, question, question_key) "
                         "values ('2026-12-01', 'f', 'q', 'k')")
        store.db.conn.commit()
        result = CliRunner().invoke(main, ["db", "backup", str(tmp_path / "b.db"), "--db", str(path)])
        assert result.exit_code == 0, result.output
    finally:
        os.umask(old)
    files = [tmp_path / "data" / n for n in ("z.db", "z.db-wal", "z.db-shm")] + [tmp_path / "b.db"]
    assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in files} == {f.name: 0o600 for f in files}
    ok = CliRunner().invoke(main, ["db", "check", "--db", str(tmp_path / "data" / "z.db")])
    assert ok.exit_code == 0 and "warning" not in ok.output
    # An existing file keeps what its operator chose; `db check` says when others can read it.
    (tmp_path / "mine.db").touch(mode=0o640)
    os.chmod(tmp_path / "mine.db", 0o640)
    Store.open(tmp_path / "mine.db")
    assert stat.S_IMODE((tmp_path / "mine.db").stat().st_mode) == 0o640
    warned = CliRunner().invoke(main, ["db", "check", "--db", str(tmp_path / "mine.db")])
    assert warned.exit_code == 0 and "readable by other users (0640): chmod 600" in warned.output


def test_check_and_backup_call_an_empty_file_what_it_is(tmp_path: Path) -> None:
    """SQLite reads a 0-byte file as an empty database with integrity "ok": a truncated database or a
    wrong path must not pass the operator's check, nor be backed up over a good backup."""
    empty, earlier = tmp_path / "empty.db", tmp_path / "earlier.db"
    empty.touch()
    earlier.write_bytes(b"an earlier backup")
    runner = CliRunner()
    check = runner.invoke(main, ["db", "check", "--db", str(empty)])
    assert check.exit_code == 1 and "no tables" in check.output and ": 1 problem(s)" in check.output
    as_json = runner.invoke(main, ["db", "check", "--db", str(empty), "--json"])
    assert as_json.exit_code == 1 and '"ok": false' in as_json.output
    backup = runner.invoke(main, ["db", "backup", str(earlier), "--db", str(empty)])
    assert backup.exit_code == 1 and "no tables" in backup.output
    assert earlier.read_bytes() == b"an earlier backup" and empty.stat().st_size == 0


def test_check_finds_a_damaged_database_and_changes_nothing(tmp_path: Path) -> None:
    source, damaged = tmp_path / "z.db", tmp_path / "damaged.db"
    store = Store.open(source)
    store.db.conn.executemany("insert into unanswered (day, kind, question, question_key) values (?, ?, ?, ?)",
                              [("2026-12-01", "fallback", "问题" * 50, f"k{i}") for i in range(2000)])
    store.db.conn.commit()
    store.db.conn.execute("pragma wal_checkpoint(truncate)")
    shutil.copy(source, damaged)
    size = damaged.stat().st_size
    with damaged.open("r+b") as f:  # scribble over pages in the middle of the file
        f.seek(size // 2)
        f.write(b"\x00garbage" * 4096)
    before = damaged.read_bytes()
    result = CliRunner().invoke(main, ["db", "check", "--db", str(damaged)])
    assert result.exit_code == 1 and "problem" in result.output and "Traceback" not in result.output
    assert damaged.read_bytes() == before
    ok = CliRunner().invoke(main, ["db", "check", "--db", str(source)])
    assert ok.exit_code == 0


def test_a_dry_run_purge_changes_nothing_not_even_the_schema(tmp_path: Path) -> None:
    """--dry-run reads only: a database from before the purge's columns (005) is not migrated by it."""
    path = tmp_path / "z.db"
    conn = sqlite3.connect(path)
    migrations.apply(Database(conn), stop_before=NAMES[5])
    _fill(conn, 5)
    conn.close()
    before = path.read_bytes()
    dry = CliRunner().invoke(main, ["db", "purge", "--dry-run", "--months", "1", "--today", "2030-01-01",
                                    "--db", str(path)])
    assert dry.exit_code == 1 and "migration" in dry.output and "nothing changed" in dry.output, dry.output
    assert path.read_bytes() == before
    done = CliRunner().invoke(main, ["db", "purge", "--months", "1", "--today", "2030-01-01", "--db", str(path)])
    assert done.exit_code == 0 and "deleted 1 family(ies)" in done.output, done.output
    again = CliRunner().invoke(main, ["db", "purge", "--dry-run", "--months", "1", "--today", "2030-01-01",
                                      "--db", str(path)])
    assert again.exit_code == 0 and again.output.startswith("0 family(ies)"), again.output
