"""The health bureau's registry file in and out: CSV (UTF-8, UTF-8 with BOM, GBK/GB18030) or XLSX with
Chinese column headers, validated row by row and applied all or nothing, upserting by filing number.

Readers are libraries: Python's csv module and python-calamine (XLSX); openpyxl writes XLSX; prcoords
converts GCJ-02 (高德/腾讯 map) coordinates to WGS-84.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import math
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import prcoords
from python_calamine import CalamineWorkbook

from .institutions import CLASSES, DEMO_PREFIX, FORMS, KINDS, STATUSES, Directory, Institution
from .towns import BY_CODE, in_zhuji, town_by_name

# File column → what it holds. The order is the export's.
HEADERS = ("备案编号", "机构名称", "机构类型", "是否普惠", "所属镇街", "地址", "经度", "纬度", "联系电话",
           "服务形式", "招收月龄", "班型", "托位数", "空余托位", "空余更新日期", "收费标准", "开放时间", "状态")

REQUIRED = tuple(h for h in HEADERS if h != "班型")  # 班型 is an optional column
_LIST_SEP = re.compile(r"[、,，/／;；\s]+")
_AGE = re.compile(r"^\s*(\d{1,2})\s*[-~～—至到]\s*(\d{1,2})\s*$")
_DATE = re.compile(r"^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?$")
MAX_AGE_MONTHS = 36
# A card shows these; a registry cell longer than this is a paste gone wrong.
MAX_NAME = 100
MAX_TEXT = 300
PROGRESS_EVERY = 1000
_INSERT_COLUMNS = ("filing_no", "name", "kind", "inclusive", "town_code", "address", "longitude", "latitude",
                   "phone", "forms", "age_min", "age_max", "classes", "capacity", "places", "places_updated",
                   "fees", "hours", "status")


def one_line(text: str) -> str:
    """A message quoting the file as one printable line: line breaks, control and format characters
    from a cell or header (a newline in a quoted CSV field, ESC from a file in another encoding) are
    shown escaped, as \\n or \\x1b, instead of breaking the line or reaching the operator's terminal."""
    return "".join(ch.encode("unicode_escape").decode("ascii")
                   if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp") else ch for ch in text)


class ImportFileError(ValueError):
    """The file as a whole cannot be read (encoding, format, headers); one line for the operator."""

    def __str__(self) -> str:
        return one_line(super().__str__())


@dataclass(frozen=True)
class RowProblem:
    line: int
    column: str
    message: str

    def __str__(self) -> str:
        return one_line(f"line {self.line}: {self.column}: {self.message}")


@dataclass
class ImportResult:
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    demo_removed: int = 0
    encoding: str = ""
    # Whether any valid row is a real institution (not DEMO-…): such a file replaces the demo data.
    real_rows: bool = False
    problems: list[RowProblem] = field(default_factory=list)
    ignored_columns: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


# ---------------------------------------------------------------- reading files


@dataclass
class Table:
    """A file's header and its rows as text cells, with the line (CSV) or row (XLSX) numbers."""

    header: list[str]
    rows: Iterator[tuple[int, list[str]]]
    total: int  # data rows expected, for a progress bar
    encoding: str


def _decode(raw: bytes) -> tuple[str, str]:
    """Text and the encoding it was in: a BOM decides; else strict UTF-8, else GB18030 (a superset of
    GBK, which registry exports from Chinese Excel use). GB18030 decodes almost any bytes, so a file
    that is neither still fails later, at its headers."""
    for bom, codec, name in ((codecs.BOM_UTF8, "utf-8-sig", "UTF-8"), (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
                             (codecs.BOM_UTF16_BE, "utf-16", "UTF-16")):
        if raw.startswith(bom):
            try:
                return raw.decode(codec, "strict"), codec
            except UnicodeDecodeError:  # bytes that are not UTF-8, an odd length, a broken surrogate pair
                raise ImportFileError(f"the file starts like {name} text but is not valid {name}: "
                                      "save it as CSV UTF-8 or XLSX") from None
    try:
        return raw.decode("utf-8", "strict"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("gb18030", "strict"), "gb18030"
    except UnicodeDecodeError:
        raise ImportFileError("the file is neither UTF-8 nor GBK/GB18030 text: save it as CSV UTF-8 or XLSX") \
            from None


def _cell(value: Any) -> str:
    """An XLSX cell as the text a CSV would hold: 40.0 → "40", a date → 2026-11-05."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value).strip()


def read_table(path: Path) -> Table:
    """Open a registry file by its extension (.csv or .xlsx). Raises ImportFileError."""
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        return _read_xlsx(path)
    if suffix in (".csv", ".txt"):
        return _read_csv(path)
    raise ImportFileError(f"{path.name}: give a .csv or .xlsx file")


def _read_csv(path: Path) -> Table:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ImportFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    text, encoding = _decode(raw)
    if "\x00" in text:
        raise ImportFileError("the file holds binary data, not CSV text: save it as CSV UTF-8 or XLSX")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFileError("the file is empty") from None
    except csv.Error as exc:
        raise ImportFileError(f"the file is not valid CSV: {exc}") from None
    total = max(0, text.count("\n") - 1)

    def rows() -> Iterator[tuple[int, list[str]]]:
        line = reader.line_num + 1
        try:
            for cells in reader:
                if any(c.strip() for c in cells):
                    yield line, [c.strip() for c in cells]
                line = reader.line_num + 1
        except csv.Error as exc:
            raise ImportFileError(f"line {line}: the CSV is malformed: {exc}") from None

    return Table([h.strip().lstrip("\ufeff") for h in header], rows(), total, encoding)


def _read_xlsx(path: Path) -> Table:
    try:
        book = CalamineWorkbook.from_path(str(path))
        sheet = book.get_sheet_by_index(0)
    except Exception as exc:  # calamine raises its own errors for damaged or non-XLSX files
        raise ImportFileError(f"cannot read {path.name} as XLSX: {exc}") from None
    merged = sheet.merged_cell_ranges or []
    start_row = sheet.start[0] if sheet.start else 0
    if any(r[0][0] <= start_row <= r[1][0] for r in merged):
        raise ImportFileError("the header row has merged cells: give one header per column, in one row")
    it = iter(sheet.iter_rows())
    try:
        header = [_cell(v) for v in next(it)]
    except StopIteration:
        raise ImportFileError("the sheet is empty") from None

    def rows() -> Iterator[tuple[int, list[str]]]:
        for n, values in enumerate(it, start=start_row + 2):
            cells = [_cell(v) for v in values]
            if any(cells):
                yield n, cells

    return Table(header, rows(), max(0, sheet.height - 1), "xlsx")


# ---------------------------------------------------------------- validating rows


def parse_date(text: str) -> dt.date | None:
    """2026-11-05, 2026/11/5, 2026.11.5 or 2026年11月5日; None when it is none of those or impossible."""
    m = _DATE.match(text.strip())
    if not m:
        return None
    try:
        return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _count(text: str) -> int | None:
    return int(text) if re.fullmatch(r"\d{1,6}", text) else None


def _items(text: str, allowed: tuple[str, ...]) -> tuple[tuple[str, ...], list[str]]:
    parts = [p for p in _LIST_SEP.split(text) if p]
    unknown = [p for p in parts if p not in allowed]
    return tuple(a for a in allowed if a in parts), unknown


def validate(line: int, cell: dict[str, str], today: dt.date, coords: str) -> tuple[tuple[Any, ...] | None,
                                                                                   list[RowProblem]]:
    """One row's values in `_INSERT_COLUMNS` order, or None with every problem it has."""
    problems: list[RowProblem] = []

    def bad(column: str, message: str) -> None:
        problems.append(RowProblem(line, column, message))

    filing_no = cell["备案编号"]
    if not filing_no:
        bad("备案编号", "missing")
    elif len(filing_no) > 64:
        bad("备案编号", "longer than 64 characters")
    name = cell["机构名称"]
    if not name:
        bad("机构名称", "missing")
    elif len(name) > MAX_NAME:
        bad("机构名称", f"longer than {MAX_NAME} characters")
    kind = cell["机构类型"]
    if kind not in KINDS:
        bad("机构类型", f"{kind or 'empty'}: not one of {' / '.join(KINDS)}")
    inclusive = {"是": 1, "否": 0}.get(cell["是否普惠"])
    if inclusive is None:
        bad("是否普惠", f"{cell['是否普惠'] or 'empty'}: write 是 or 否")
    town = town_by_name(cell["所属镇街"])
    if town is None:
        bad("所属镇街", f"{cell['所属镇街'] or 'empty'}: not one of Zhuji's 23 township-level units")
    address = cell["地址"]
    if not address:
        bad("地址", "missing")
    elif len(address) > MAX_TEXT:
        bad("地址", f"longer than {MAX_TEXT} characters")
    for column in ("联系电话", "收费标准", "开放时间"):
        if len(cell[column]) > MAX_TEXT:
            bad(column, f"longer than {MAX_TEXT} characters")
    lon, lat = _number(cell["经度"]), _number(cell["纬度"])
    if lon is None:
        bad("经度", f"{cell['经度'] or 'empty'}: not a number")
    if lat is None:
        bad("纬度", f"{cell['纬度'] or 'empty'}: not a number")
    if lon is not None and lat is not None:
        if coords == "gcj02" and -90 <= lat <= 90 and -180 <= lon <= 180:
            converted = prcoords.gcj_wgs_bored((lat, lon))
            lat, lon = round(converted.lat, 6), round(converted.lon, 6)
        if not in_zhuji(lat, lon):
            bad("经度/纬度", f"{lon}, {lat}: outside Zhuji (29.30–30.05 °N, 119.85–120.60 °E); "
                "is longitude in 经度 and latitude in 纬度?")
    forms, unknown_forms = _items(cell["服务形式"], FORMS)
    if unknown_forms:
        bad("服务形式", f"{'、'.join(unknown_forms)}: not one of {'、'.join(FORMS)}")
    elif not forms:
        bad("服务形式", "missing")
    age = _AGE.match(cell["招收月龄"])
    age_min = age_max = 0
    if age is None:
        bad("招收月龄", f"{cell['招收月龄'] or 'empty'}: write months as MIN-MAX, e.g. 6-36")
    else:
        age_min, age_max = int(age.group(1)), int(age.group(2))
        if not age_min <= age_max <= MAX_AGE_MONTHS:
            bad("招收月龄", f"{cell['招收月龄']}: months from 0 to 36, the smaller first")
    classes, unknown_classes = _items(cell.get("班型", ""), CLASSES)
    if unknown_classes:
        bad("班型", f"{'、'.join(unknown_classes)}: not one of {'、'.join(CLASSES)}")
    capacity = _count(cell["托位数"])
    if capacity is None:
        bad("托位数", f"{cell['托位数'] or 'empty'}: not a whole number of places")
    places: int | None = None
    if cell["空余托位"]:
        places = _count(cell["空余托位"])
        if places is None:
            bad("空余托位", f"{cell['空余托位']}: not a whole number of places")
        elif capacity is not None and places > capacity:
            bad("空余托位", f"{places} available is more than the capacity 托位数 {capacity}")
    updated: dt.date | None = None
    if cell["空余更新日期"]:
        updated = parse_date(cell["空余更新日期"])
        if updated is None:
            bad("空余更新日期", f"{cell['空余更新日期']}: not a date (YYYY-MM-DD)")
        elif updated > today:
            bad("空余更新日期", f"{updated.isoformat()}: in the future")
    if (places is None) != (updated is None) and not problems:
        bad("空余更新日期" if updated is None else "空余托位", "空余托位 and 空余更新日期 go together")
    status = cell["状态"]
    if status not in STATUSES:
        bad("状态", f"{status or 'empty'}: not one of {' / '.join(STATUSES)}")
    if problems:
        return None, problems
    assert town is not None and capacity is not None
    return (filing_no, name, kind, inclusive, town.code, address, lon, lat, cell["联系电话"], "、".join(forms),
            age_min, age_max, "、".join(classes), capacity, places,
            updated.isoformat() if updated else None, cell["收费标准"], cell["开放时间"], status), []


# ---------------------------------------------------------------- applying


def import_file(directory: Directory, path: Path, today: dt.date, *, coords: str = "wgs84",
                dry_run: bool = False, progress: Callable[[int, int], None] | None = None,
                stamp_places: dt.date | None = None) -> ImportResult:
    """Validate every row of `path`, then upsert them all by 备案编号 in one transaction — or, with
    any problem or `dry_run`, write nothing. Places keep whichever of the file's 空余更新日期 and the
    stored (operator's) date is newer; on a tie the stored figure stays. A file of real rows removes
    the demo institutions. `stamp_places` dates every given places figure (the demo data);
    `progress(rows_read, rows_expected)` is called every 1,000 rows with the rows read since the last call.

    Raises ImportFileError when the file cannot be read at all; row problems are in the result."""
    if coords not in ("wgs84", "gcj02"):
        raise ValueError("coords is wgs84 or gcj02")
    table = read_table(path)
    missing = [h for h in REQUIRED if h not in table.header]
    if missing:
        got = "、".join(h for h in table.header if h) or "nothing"
        raise ImportFileError(f"missing column(s) {'、'.join(missing)} (the header row has {got}); "
                              f"the file's encoding was read as {table.encoding}")
    dupes = sorted({h for h in table.header if h and table.header.count(h) > 1})
    if dupes:
        raise ImportFileError(f"column(s) {'、'.join(dupes)} appear more than once in the header row")
    index = {h: i for i, h in enumerate(table.header) if h in HEADERS}
    result = ImportResult(encoding=table.encoding,
                          ignored_columns=tuple(h for h in table.header if h not in HEADERS))
    seen: dict[str, int] = {}
    db = directory.db
    conn = db.conn
    try:
        with db.atomic():
            conn.execute("create temp table if not exists incoming as select * from institutions where 0")
            conn.execute("delete from temp.incoming")
            batch: list[tuple[Any, ...]] = []
            for line, cells in table.rows:
                result.rows += 1
                cell = {h: (cells[i] if i < len(cells) else "") for h, i in index.items()}
                cell.setdefault("班型", "")
                values, problems = validate(line, cell, today, coords)
                filing_no = cell["备案编号"]
                if filing_no:
                    if filing_no in seen:
                        problems.append(RowProblem(line, "备案编号", f"{filing_no} also on line {seen[filing_no]}"))
                        values = None
                    else:
                        seen[filing_no] = line
                if values is None:
                    result.problems.extend(problems)
                else:
                    if stamp_places is not None and values[14] is not None:
                        values = (*values[:15], stamp_places.isoformat(), *values[16:])
                    result.real_rows = result.real_rows or not filing_no.startswith(DEMO_PREFIX)
                    if not result.problems:  # after the first problem, only keep validating
                        batch.append(values)
                if len(batch) >= PROGRESS_EVERY:
                    _stage(conn, batch)
                    batch.clear()
                if progress is not None and result.rows % PROGRESS_EVERY == 0:
                    progress(PROGRESS_EVERY, table.total)
            if progress is not None and result.rows % PROGRESS_EVERY:
                progress(result.rows % PROGRESS_EVERY, table.total)
            if result.rows == 0:
                raise ImportFileError("the file has a header row but no institutions")
            if result.problems:
                raise _Rollback
            _stage(conn, batch)
            _apply(conn, result, remove_demo=result.real_rows)
            if dry_run:
                raise _Rollback
    except _Rollback:
        pass
    finally:
        conn.execute("drop table if exists temp.incoming")
    return result


class _Rollback(Exception):
    """Leaves `db.atomic()` by rolling back: a dry run or a file with problems writes nothing."""


def _stage(conn: Any, batch: list[tuple[Any, ...]]) -> None:
    marks = ", ".join("?" * len(_INSERT_COLUMNS))
    conn.executemany(f"insert into temp.incoming ({', '.join(_INSERT_COLUMNS)}) values ({marks})", batch)


# Places come from the file only when its date is newer than the stored one (or nothing is stored).
_FILE_PLACES_WIN = ("(i.places_updated is null "
                    "or (n.places_updated is not null and n.places_updated > i.places_updated))")


def _apply(conn: Any, result: ImportResult, *, remove_demo: bool) -> None:
    plain = [c for c in _INSERT_COLUMNS if c not in ("filing_no", "places", "places_updated")]
    differs = " or ".join(f"i.{c} is not n.{c}" for c in plain)
    differs += (f" or ({_FILE_PLACES_WIN} and (i.places is not n.places "
                "or i.places_updated is not n.places_updated))")
    result.inserted = conn.execute(
        "select count(*) from temp.incoming n where not exists "
        "(select 1 from institutions i where i.filing_no = n.filing_no)").fetchone()[0]
    result.updated = conn.execute(
        f"select count(*) from temp.incoming n join institutions i on i.filing_no = n.filing_no where {differs}"
    ).fetchone()[0]
    total = conn.execute("select count(*) from temp.incoming").fetchone()[0]
    result.unchanged = total - result.inserted - result.updated
    # The places history records each figure the file actually changes, before it changes it.
    conn.execute(
        "insert into places_audit (filing_no, user_key, old, new, at, source) "
        "select n.filing_no, '', i.places, n.places, n.places_updated, 'import' "
        "from temp.incoming n left join institutions i on i.filing_no = n.filing_no "
        f"where n.places is not null and (i.id is null or ({_FILE_PLACES_WIN} "
        "and (i.places is not n.places or i.places_updated is not n.places_updated)))")
    sets = ", ".join(f"{c} = excluded.{c}" for c in plain)
    win = _FILE_PLACES_WIN.replace("i.", "institutions.").replace("n.", "excluded.")
    conn.execute(
        f"insert into institutions ({', '.join(_INSERT_COLUMNS)}) "
        f"select {', '.join(_INSERT_COLUMNS)} from temp.incoming where true "
        f"on conflict(filing_no) do update set {sets}, "
        f"places = case when {win} then excluded.places else institutions.places end, "
        f"places_updated = case when {win} then excluded.places_updated else institutions.places_updated end "
        f"where {differs.replace('i.', 'institutions.').replace('n.', 'excluded.')}")
    if remove_demo:
        result.demo_removed = conn.execute(
            "delete from institutions where filing_no like ? and filing_no not in "
            "(select filing_no from temp.incoming)", [DEMO_PREFIX + "%"]).rowcount
        # An operator registered for a demo institution goes with it.
        conn.execute("delete from operators where filing_no not in (select filing_no from institutions)")


# ---------------------------------------------------------------- export


def export_rows(directory: Directory) -> Iterator[list[Any]]:
    """Every institution (all states) as file rows in HEADERS order, header first."""
    yield list(HEADERS)
    for i in directory.all():
        yield _row(i)


def _row(i: Institution) -> list[Any]:
    return [i.filing_no, i.name, i.kind, "是" if i.inclusive else "否", BY_CODE[i.town_code].name, i.address,
            repr(i.longitude), repr(i.latitude), i.phone, "、".join(i.forms), f"{i.age_min}-{i.age_max}",
            "、".join(i.classes), i.capacity, "" if i.places is None else i.places,
            i.places_updated.isoformat() if i.places_updated else "", i.fees, i.hours, i.status]


def export_file(directory: Directory, path: Path) -> int:
    """Write every institution to `path`: XLSX for .xlsx, otherwise CSV in UTF-8 with BOM (Excel opens
    it as Chinese). Returns the number of institutions written."""
    rows = list(export_rows(directory))
    write_rows(path, rows, sheet_name="托育机构")
    return len(rows) - 1


def write_rows(path: Path, rows: list[list[Any]], sheet_name: str) -> None:
    """Rows (header first) to XLSX for a .xlsx path, else to CSV in UTF-8 with BOM. Raises OSError."""
    if path.suffix.lower() == ".xlsx":
        from openpyxl import Workbook  # only exports need it

        book = Workbook(write_only=True)
        sheet = book.create_sheet(sheet_name)
        for row in rows:
            sheet.append(row)
        book.save(str(path))
    else:
        with path.open("w", encoding="utf-8-sig", newline="") as f:
            csv.writer(f).writerows(rows)


def load_demo(directory: Directory, content_dir: Path, today: dt.date) -> int:
    """Load `content/institutions/*.csv` once, into a directory that has never held institutions,
    so a newcomer can search at once. Demo places count as updated on the day they are loaded
    (they are fictional; without it every figure would show as unconfirmed a month after release).
    Returns the number of institutions loaded (0 when already done or not wanted)."""
    if directory.meta("demo_loaded") is not None or directory.count() > 0:
        return 0
    loaded = 0
    for path in sorted((content_dir / "institutions").glob("*.csv")):
        result = import_file(directory, path, today, stamp_places=today)
        if not result.ok:
            raise ImportFileError(f"{path}: {result.problems[0]}")
        loaded += result.inserted
    directory.set_meta("demo_loaded", today.isoformat())
    return loaded


def check_demo(content_dir: Path, today: dt.date) -> list[str]:
    """Problems of `content/institutions/*.csv` as `path: line N: column: problem`, found by a dry
    import into an empty in-memory database (for `content check`)."""
    from .store import Store

    out: list[str] = []
    for path in sorted((content_dir / "institutions").glob("*.csv")):
        try:
            result = import_file(Directory(Store.open(":memory:").db), path, today, dry_run=True)
        except ImportFileError as exc:
            out.append(f"{path}: {exc}")
            continue
        out += [f"{path}: {p}" for p in result.problems]
        if result.ok and result.real_rows:
            out.append(f"{path}: demo filing numbers start with {DEMO_PREFIX} (a real import replaces them)")
    return out
