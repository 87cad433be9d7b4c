"""Property-based tests of `zjcare-guide institutions import` (CSV and XLSX registry files) run through the
CLI itself: random bytes, wrong and right encodings, wrong, missing, duplicate and extra headers, corrupt
XLSX files and any cell values. A file is imported (exit 0, its rows in the database) or refused: exit 1,
a message of one line (or one line per bad row and a summary) with no traceback, and the database
byte-for-byte as it was."""

from __future__ import annotations

import contextlib
import csv
import io
import re
import sqlite3
import unicodedata
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from bot.cli import main
from zjcare_guide.content import DEFAULT_CONTENT_DIR
from zjcare_guide.institutions import Directory
from zjcare_guide.registry_import import HEADERS, REQUIRED, import_file, load_demo
from zjcare_guide.store import Store

from .institution_rows import row, write_csv, write_xlsx
from .property_world import NOW, dump

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
TODAY = NOW.date().isoformat()
READABLE = ("utf-8", "utf-8-sig", "gbk", "gb18030", "utf-16")
UNREADABLE = ("utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be", "hz", "big5", "shift_jis", "cp1252",
              "koi8-r", "cp500")
_ROW_LINE = re.compile(r"^line \d+: [^:]+: .+$")
_SUMMARY = re.compile(r"^\d+ problem\(s\) in \d+ row\(s\); nothing was imported$")
_IMPORTED = re.compile(r"^(imported|would import) \d+ row\(s\) \([\w-]+\): \d+ new, \d+ updated, \d+ unchanged")


class Files:
    """A base database (the demo institutions and two of the test rows) copied afresh for each example."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.base = root / "base.db"
        store = Store.open(self.base)
        directory = Directory(store.db)
        load_demo(directory, DEFAULT_CONTENT_DIR, NOW.date())
        assert import_file(directory, write_csv(root / "seed.csv", [row(1), row(2)]), NOW.date()).ok
        store.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        store.db.conn.close()
        self.count = 0

    @contextlib.contextmanager
    def fresh(self) -> Iterator[tuple[Path, Path]]:
        """A copy of the base database and a directory for the file to import."""
        self.count += 1
        work = self.root / f"e{self.count}"
        work.mkdir()
        db = work / "z.db"
        src, dst = sqlite3.connect(self.base), sqlite3.connect(db)
        try:
            src.backup(dst)
        finally:
            src.close()
            dst.close()
        try:
            yield db, work
        finally:
            for p in work.iterdir():
                p.unlink()
            work.rmdir()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    return Files(tmp_path_factory.mktemp("imports"))


def db_dump(db: Path) -> object:
    store = Store.open(db)
    try:
        return dump(store)
    finally:
        store.db.conn.close()


def run_import(path: Path, db: Path, *extra: str) -> Result:
    return CliRunner().invoke(main, ["institutions", "import", str(path), "--db", str(db), "--today", TODAY, *extra])


def filing_numbers(db: Path) -> set[str]:
    conn = sqlite3.connect(db)
    try:
        return {r[0] for r in conn.execute("select filing_no from institutions")}
    finally:
        conn.close()


def check_outcome(result: Result, before: object, db: Path) -> str:
    """Imported, or refused with a clear message and nothing written. Returns "imported", "file" (the
    file as a whole refused: one line) or "rows" (a report of the bad rows)."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    out, err = result.stdout.splitlines(), result.stderr.splitlines()
    for line in [*out, *err]:  # nothing from the file reaches the terminal as a control or format character
        assert not any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in line), f"unprintable: {line!r}"
    if result.exit_code == 0:
        assert out and _IMPORTED.match(out[-1]), result.output
        assert all(line.startswith("ignored column(s): ") for line in err), err
        return "imported"
    assert result.exit_code == 1, result.output
    assert db_dump(db) == before, "a refused file changed the database"
    if len(err) == 1 and err[0].startswith("Error: "):
        assert not out and len(err[0]) <= 500, result.output  # one clear line
        return "file"
    assert err and _SUMMARY.match(err[-1]), err
    assert all(line.startswith("ignored column(s): ") for line in err[:-1]), err
    assert out and all(_ROW_LINE.match(line) for line in out), out
    return "rows"


# ---------------------------------------------------------------- any bytes


@SETTINGS
@given(raw=st.one_of(st.binary(max_size=3000),
                     st.builds(lambda head, tail: head + tail,
                               st.sampled_from([",".join(HEADERS).encode("utf-8") + b"\n",
                                                ",".join(HEADERS).encode("gbk") + b"\r\n", b"PK\x03\x04",
                                                b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b""]),
                               st.binary(max_size=2000))),
       suffix=st.sampled_from([".csv", ".xlsx", ".txt", ".CSV", ".xls", ".json", ""]))
@example(raw=b"\x1b[2J\x1b[31m,\n", suffix=".csv")
@example(raw=b'"a\nb",c\n', suffix=".csv")
@example(raw=b"\xfe\xff\x00", suffix=".csv")
@example(raw=b"\xef\xbb\xbf\x80", suffix=".csv")
@example(raw=b"\xff\xfe\x00\xd8a\x00", suffix=".csv")
def test_any_bytes_are_refused_with_one_clear_line(files: Files, raw: bytes, suffix: str) -> None:
    with files.fresh() as (db, work):
        path = work / f"registry{suffix}"
        path.write_bytes(raw)
        before = db_dump(db)
        result = run_import(path, db)
        kind = check_outcome(result, before, db)
        event(kind)
        assert kind != "imported"  # random bytes hold no valid registry row


# ---------------------------------------------------------------- encodings


def csv_bytes(rows: list[dict[str, str]], headers: tuple[str, ...] = HEADERS) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(headers)
    for r in rows:
        writer.writerow([r.get(h, "") for h in headers])
    return buf.getvalue()


@SETTINGS
@given(encoding=st.sampled_from(READABLE + UNREADABLE), numbers=st.lists(st.integers(3, 9999), min_size=1,
                                                                           max_size=4, unique=True))
def test_a_registry_in_any_encoding_is_imported_or_refused_whole(files: Files, encoding: str,
                                                                 numbers: list[int]) -> None:
    """UTF-8 (with or without BOM), GBK, GB18030 and UTF-16 with its BOM are read; any other encoding is
    refused as a whole, with one line, and nothing is written."""
    with files.fresh() as (db, work):
        path = work / "registry.csv"
        path.write_bytes(csv_bytes([row(n) for n in numbers]).encode(encoding, "replace"))
        before = db_dump(db)
        result = run_import(path, db)
        kind = check_outcome(result, before, db)
        if encoding in READABLE:
            assert kind == "imported", result.output
            assert {f"ZJ-TEST-{n:04d}" for n in numbers} <= filing_numbers(db)
            assert not any(n.startswith("DEMO-") for n in filing_numbers(db))  # real rows replace the demo
        else:
            assert kind == "file", result.output


# ---------------------------------------------------------------- headers


HEADER_NAME = st.one_of(st.sampled_from(HEADERS), st.sampled_from(HEADERS).map(lambda h: f" {h} "),
                        st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=8),
                        st.sampled_from(["备案号", "机构名", "Name", "", "经度 ", "\ufeff备案编号"]))


@SETTINGS
@given(headers=st.one_of(st.permutations(HEADERS).map(tuple),
                         st.lists(HEADER_NAME, max_size=24).map(tuple),
                         st.tuples(st.permutations(HEADERS), st.lists(HEADER_NAME, max_size=4)).map(
                             lambda t: (*t[0], *t[1]))),
       xlsx=st.booleans(), numbers=st.lists(st.integers(3, 9999), min_size=1, max_size=3, unique=True))
@example(headers=(*HEADERS, "备案编号"), xlsx=False, numbers=[3])
@example(headers=HEADERS[1:], xlsx=True, numbers=[3])
@example(headers=(*HEADERS[:-1], "状态\n"), xlsx=True, numbers=[3])
def test_headers_in_any_order_missing_duplicated_or_extra(files: Files, headers: tuple[str, ...], xlsx: bool,
                                                          numbers: list[int]) -> None:
    """Columns are found by their header wherever they are; a missing required header or one given twice
    refuses the file in one line; extra columns are ignored (and named on stderr); the rows are imported
    exactly when the headers allow."""
    with files.fresh() as (db, work):
        rows = [row(n) for n in numbers]
        if xlsx:
            path = write_xlsx(work / "registry.xlsx", [{h: r.get(h.strip().lstrip("\ufeff"), "") for h in headers}
                                                       for r in rows], headers=headers)
        else:
            path = work / "registry.csv"
            path.write_bytes(csv_bytes([{h: r.get(h.strip().lstrip("\ufeff"), "") for h in headers} for r in rows],
                                       headers).encode("utf-8"))
        before = db_dump(db)
        result = run_import(path, db)
        kind = check_outcome(result, before, db)
        names = [h.strip().lstrip("\ufeff") if not xlsx else h.strip() for h in headers]
        missing = [h for h in REQUIRED if h not in names]
        dupes = {h for h in names if h and names.count(h) > 1}
        if not any(names):
            assert kind == "file", result.output  # no header row at all: empty, or a sheet of nothing
        elif missing or dupes:
            assert kind == "file", result.output
            assert ("missing column(s)" if missing else "more than once") in result.stderr
        else:
            assert kind == "imported", result.output
            assert {f"ZJ-TEST-{n:04d}" for n in numbers} <= filing_numbers(db)
            if any(h and h not in HEADERS for h in names):
                assert "ignored column(s)" in result.stderr
            elif all(h in HEADERS for h in names):
                assert "ignored column(s)" not in result.stderr
        event(kind)


# ---------------------------------------------------------------- XLSX files that are not


@SETTINGS
@given(cut=st.integers(0, 100_000), flips=st.lists(st.tuples(st.integers(0, 100_000), st.integers(0, 255)),
                                                    max_size=8),
       damage=st.sampled_from(["truncate", "flip", "garbage_member", "empty_zip", "csv_named_xlsx", "merged"]))
def test_a_damaged_xlsx_is_refused_in_one_line(files: Files, cut: int, flips: list[tuple[int, int]],
                                               damage: str) -> None:
    with files.fresh() as (db, work):
        path = write_xlsx(work / "registry.xlsx", [row(3), row(4)], merge_header=damage == "merged")
        raw = path.read_bytes()
        if damage == "truncate":
            raw = raw[:cut % len(raw)]
        elif damage == "flip":
            data = bytearray(raw)
            for at, value in flips:
                data[at % len(data)] = value
            raw = bytes(data)
        elif damage == "garbage_member":
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w") as z:
                z.writestr("xl/workbook.xml", bytes(v for _, v in flips) or b"<not xml")
                z.writestr("[Content_Types].xml", b"\x00\x01")
            raw = buf.getvalue()
        elif damage == "empty_zip":
            buf = io.BytesIO()
            zipfile.ZipFile(buf, "w").close()
            raw = buf.getvalue()
        elif damage == "csv_named_xlsx":
            raw = csv_bytes([row(3)]).encode("utf-8")
        path.write_bytes(raw)
        before = db_dump(db)
        result = run_import(path, db)
        kind = check_outcome(result, before, db)
        event(f"{damage}: {kind}")
        if damage in ("truncate", "garbage_member", "empty_zip", "csv_named_xlsx", "merged"):
            assert kind == "file", result.output
        elif kind == "imported":  # a flipped byte in a part the reader skips
            assert {"ZJ-TEST-0003", "ZJ-TEST-0004"} <= filing_numbers(db)


# ---------------------------------------------------------------- any cell


CELL = st.one_of(st.text(max_size=30), st.text(st.characters(exclude_categories=()), max_size=10),
                 st.sampled_from(["", " ", "\n", "\r\n", "是", "否", "6-36", "40", "-1", "1e3", "nan", "inf",
                                  "2026-11-20", "2027-01-01", "\x1b[31m红\x1b[0m", "暨阳街道\n枫桥镇", '"', "=1+1"]))


@SETTINGS
@given(column=st.sampled_from(HEADERS), value=CELL, xlsx=st.booleans(), dry_run=st.booleans())
@example(column="机构类型", value="托育\n中心", xlsx=False, dry_run=False)
@example(column="所属镇街", value="\x1b[2J", xlsx=True, dry_run=False)
def test_any_cell_is_imported_or_reported_by_line(files: Files, column: str, value: str, xlsx: bool,
                                                  dry_run: bool) -> None:
    """One cell of the second of three rows set to anything: the file is imported (or, with --dry-run,
    counted and nothing written), or each bad row is reported on one line and nothing is written."""
    with files.fresh() as (db, work):
        rows = [row(3), row(4, **{column: value}), row(5)]
        if xlsx:
            try:
                path = write_xlsx(work / "registry.xlsx", [{**r, "经度": r["经度"] if _is_number(r["经度"]) else "0",
                                                            "纬度": r["纬度"] if _is_number(r["纬度"]) else "0",
                                                            "托位数": r["托位数"] if _is_number(r["托位数"]) else "0",
                                                            "空余托位": r["空余托位"] if _is_number(r["空余托位"])
                                                            else ""} for r in rows])
            except Exception:  # openpyxl refuses control characters in a cell: no such file can exist
                return
        else:
            path = work / "registry.csv"
            path.write_bytes(csv_bytes(rows).encode("utf-8", "surrogatepass"))
        before = db_dump(db)
        result = run_import(path, db, *(["--dry-run"] if dry_run else []))
        kind = check_outcome(result, before, db)
        event(kind)
        if kind == "imported":
            if dry_run:
                assert db_dump(db) == before and result.stdout.startswith("would import")
            else:
                assert {"ZJ-TEST-0003", "ZJ-TEST-0005"} <= filing_numbers(db)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
