"""The directory of registered (备案) childcare institutions: the model, nearest and text search,
places updates by operators.

Facts: ../shared/reference/childcare-institutions.md (国卫人口发〔2019〕58号 forms and class types;
only filed institutions may operate, so only 状态 备案 is ever shown to parents).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlite_utils.db import Database

from .towns import BY_CODE, Town, find_town

KINDS = ("幼儿园托班", "社区托育", "单位办托", "民办托育", "其他")
FORMS = ("全日托", "半日托", "计时托", "临时托")
CLASSES = ("乳儿班", "托小班", "托大班", "混合编班")
STATUSES = ("备案", "整改中", "注销")
LISTED = "备案"
# A places figure older than this is shown as 空位待确认 (unconfirmed), not as a number.
STALE_AFTER_DAYS = 30
DEFAULT_RADIUS_KM = 10.0
EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG)
KM_PER_DEGREE_LAT = math.pi * EARTH_RADIUS_KM / 180
# Demo rows (content/institutions/demo.csv) carry these filing numbers; a real import replaces them.
DEMO_PREFIX = "DEMO-"
_COLUMNS = ("id, filing_no, name, kind, inclusive, town_code, address, longitude, latitude, phone, forms, "
            "age_min, age_max, classes, capacity, places, places_updated, fees, hours, status")
_I_COLUMNS = ", ".join("i." + c.strip() for c in _COLUMNS.split(","))
# haversine_km in SQL (SQLite's math functions), for the point bound to the first three parameters
# (latitude, latitude, longitude): the rows of a box are measured and sorted without leaving C.
_HAVERSINE_SQL = (f"2 * {EARTH_RADIUS_KM} * asin(min(1, sqrt(power(sin(radians(i.latitude - ?) / 2), 2) "
                  "+ cos(radians(?)) * cos(radians(i.latitude)) * power(sin(radians(i.longitude - ?) / 2), 2))))")
FIRST_RADIUS_KM = 0.25


@dataclass(frozen=True)
class Institution:
    """One filed institution. Coordinates are WGS-84 degrees; ages are months; `places` is the last
    known number of available places (None when never given) as of `places_updated`."""

    id: int
    filing_no: str  # 备案编号
    name: str
    kind: str  # one of KINDS
    inclusive: bool  # 普惠
    town_code: str
    address: str
    longitude: float
    latitude: float
    phone: str
    forms: tuple[str, ...]  # subset of FORMS, in FORMS order
    age_min: int
    age_max: int
    classes: tuple[str, ...]  # subset of CLASSES
    capacity: int  # 托位数
    places: int | None  # 空余托位
    places_updated: dt.date | None  # 空余更新日期
    fees: str
    hours: str
    status: str  # one of STATUSES

    @property
    def town(self) -> Town:
        return BY_CODE[self.town_code]

    def places_known(self, today: dt.date) -> int | None:
        """Available places, or None when never given or last updated more than 30 days before `today`."""
        if self.places is None or self.places_updated is None:
            return None
        return self.places if (today - self.places_updated).days <= STALE_AFTER_DAYS else None

    def takes_age(self, months: float) -> bool:
        return self.age_min <= months <= self.age_max

    @classmethod
    def from_row(cls, r: Sequence[Any]) -> Institution:
        """From a row of the institutions table's columns in table order."""
        return cls(
            id=int(r[0]), filing_no=str(r[1]), name=str(r[2]), kind=str(r[3]), inclusive=bool(r[4]),
            town_code=str(r[5]), address=str(r[6]), longitude=float(r[7]), latitude=float(r[8]),
            phone=str(r[9]), forms=split_list(str(r[10])), age_min=int(r[11]), age_max=int(r[12]),
            classes=split_list(str(r[13])), capacity=int(r[14]), places=None if r[15] is None else int(r[15]),
            places_updated=None if r[16] is None else dt.date.fromisoformat(str(r[16])),
            fees=str(r[17]), hours=str(r[18]), status=str(r[19]),
        )


def split_list(stored: str) -> tuple[str, ...]:
    return tuple(x for x in stored.split("、") if x)


@dataclass(frozen=True)
class Filters:
    """What a parent narrows a search to. `age_months` keeps institutions taking that age; `form`
    one service form; `inclusive` 普惠 only; `with_places` confirmed available places only."""

    age_months: float | None = None
    form: str | None = None
    inclusive: bool = False
    with_places: bool = False

    def sql(self, today: dt.date) -> tuple[str, list[object]]:
        """A WHERE fragment over `i` (the institutions table) and its parameters."""
        where: list[str] = ["i.status = ?"]
        params: list[object] = [LISTED]
        if self.age_months is not None:
            where.append("i.age_min <= ? and ? <= i.age_max")
            params += [self.age_months, self.age_months]
        if self.form:
            where.append("instr(i.forms, ?) > 0")
            params.append(self.form)
        if self.inclusive:
            where.append("i.inclusive = 1")
        if self.with_places:
            where.append("i.places > 0 and i.places_updated >= ?")
            params.append((today - dt.timedelta(days=STALE_AFTER_DAYS)).isoformat())
        return " and ".join(where), params


@dataclass(frozen=True)
class Hit:
    institution: Institution
    distance_km: float | None = None  # from the search's point; None for a text search


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km between two WGS-84 points (degrees), on a sphere of mean radius."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


@dataclass
class Directory:
    """The institutions in the service's SQLite database (tables from store migration 002)."""

    db: Database

    # ------------------------------------------------------------ reading

    def count(self, listed_only: bool = False) -> int:
        sql = "select count(*) from institutions" + (" where status = ?" if listed_only else "")
        return int(self.db.execute(sql, [LISTED] if listed_only else []).fetchone()[0])

    def get(self, institution_id: int) -> Institution | None:
        row = self.db.execute(f"select {_COLUMNS} from institutions where id = ?", [institution_id]).fetchone()
        return Institution.from_row(row) if row else None

    def by_filing_no(self, filing_no: str) -> Institution | None:
        row = self.db.execute(f"select {_COLUMNS} from institutions where filing_no = ?", [filing_no]).fetchone()
        return Institution.from_row(row) if row else None

    def all(self) -> list[Institution]:
        """Every institution, all states, by filing number (for export)."""
        return [Institution.from_row(r) for r in self.db.execute(
            f"select {_COLUMNS} from institutions order by filing_no")]

    def nearest(self, latitude: float, longitude: float, today: dt.date, *, filters: Filters = Filters(),
                radius_km: float = DEFAULT_RADIUS_KM, limit: int = 5) -> list[Hit]:
        """Listed institutions within `radius_km` of the point, nearest first, at most `limit`;
        distances in km (haversine).

        Reads the R*Tree with a box that starts at 250 m and doubles until the circle it encloses
        holds `limit` matches (those are then the nearest: anything outside is farther) or the
        radius is reached, so a dense town centre and an empty hillside both cost a few small
        queries, never the whole table."""
        if limit <= 0 or radius_km <= 0:
            return []
        where, params = filters.sql(today)
        r = min(FIRST_RADIUS_KM, radius_km)
        while True:
            dlat = r / KM_PER_DEGREE_LAT
            dlon = r / (KM_PER_DEGREE_LAT * max(math.cos(math.radians(latitude)), 1e-6))
            rows = self.db.execute(
                f"select {_I_COLUMNS}, {_HAVERSINE_SQL} as d "
                "from institutions_rtree t join institutions i on i.id = t.id "
                "where t.min_lat >= ? and t.max_lat <= ? and t.min_lon >= ? and t.max_lon <= ? "
                f"and {where} and d <= ? order by d, i.filing_no limit ?",
                [latitude, latitude, longitude, latitude - dlat, latitude + dlat, longitude - dlon,
                 longitude + dlon, *params, r, limit]).fetchall()
            if len(rows) >= limit or r >= radius_km:
                return [Hit(Institution.from_row(row), float(row[-1])) for row in rows]
            r = min(radius_km, r * 2)

    def search(self, text: str, today: dt.date, *, filters: Filters = Filters(), limit: int = 20) -> list[Hit]:
        """Listed institutions whose name contains `text`, then those of the town `text` is
        (店口, 店口镇, diankou…), best first; at most `limit`."""
        text = text.strip()
        if not text:
            return []
        where, params = filters.sql(today)
        out: dict[int, Institution] = {}
        for row in self.db.execute(
                f"select {_I_COLUMNS} from institutions i "
                f"where instr(i.name, ?) > 0 and {where} order by i.name limit ?", [text, *params, limit]):
            out[row[0]] = Institution.from_row(row)
        town = find_town(text, in_sentence=False)
        if town is not None and len(out) < limit:
            out.update((i.id, i) for i in self.in_town(town.code, today, filters=filters, limit=limit)
                       if i.id not in out)
        return [Hit(i) for i in list(out.values())[:limit]]

    def in_town(self, town_code: str, today: dt.date, *, filters: Filters = Filters(),
                limit: int = 20) -> list[Institution]:
        """Listed institutions of one unit: those with confirmed places first, then by name."""
        where, params = filters.sql(today)
        fresh = (today - dt.timedelta(days=STALE_AFTER_DAYS)).isoformat()
        rows = self.db.execute(
            f"select {_I_COLUMNS} from institutions i "
            f"where i.town_code = ? and {where} "
            "order by (i.places > 0 and i.places_updated >= ?) desc, i.name limit ?",
            [town_code, *params, fresh, limit])
        return [Institution.from_row(r) for r in rows]

    # ------------------------------------------------------------ operators and places

    def add_operator(self, user_key: str, filing_no: str, today: dt.date) -> Institution:
        """Register `user_key` as the operator of one institution (replacing an earlier one).
        Raises KeyError for an unknown filing number."""
        inst = self.by_filing_no(filing_no)
        if inst is None:
            raise KeyError(filing_no)
        self.db.table("operators").upsert({"user_key": user_key, "filing_no": filing_no,
                                           "added": today.isoformat()}, pk="user_key")
        return inst

    def remove_operator(self, user_key: str) -> bool:
        cur = self.db.execute("delete from operators where user_key = ?", [user_key])
        return cur.rowcount > 0

    def operators(self) -> list[tuple[str, str, str]]:
        """(user_key, filing_no, added) for every operator."""
        return [(r[0], r[1], r[2]) for r in self.db.execute(
            "select user_key, filing_no, added from operators order by filing_no, user_key")]

    def operated_by(self, user_key: str) -> Institution | None:
        row = self.db.execute("select filing_no from operators where user_key = ?", [user_key]).fetchone()
        return self.by_filing_no(row[0]) if row else None

    def set_places(self, filing_no: str, places: int, user_key: str, now: dt.datetime) -> Institution:
        """An operator's update of available places, dated `now`, with its audit row, in one transaction.
        Raises ValueError when `places` is negative or above the capacity, KeyError for an unknown number."""
        with self.db.atomic():
            inst = self.by_filing_no(filing_no)
            if inst is None:
                raise KeyError(filing_no)
            if not 0 <= places <= inst.capacity:
                raise ValueError(f"places must be 0–{inst.capacity}")
            self.db.execute("update institutions set places = ?, places_updated = ? where id = ?",
                            [places, now.date().isoformat(), inst.id])
            self.db.table("places_audit").insert({"filing_no": filing_no, "user_key": user_key,
                                                  "old": inst.places, "new": places,
                                                  "at": now.isoformat(timespec="seconds"), "source": "operator"})
        updated = self.by_filing_no(filing_no)
        assert updated is not None
        return updated

    def places_history(self, filing_no: str) -> list[dict[str, object]]:
        return list(self.db.query("select * from places_audit where filing_no = ? order by id", [filing_no]))

    # ------------------------------------------------------------ demo data

    def meta(self, key: str) -> str | None:
        row = self.db.execute("select value from meta where key = ?", [key]).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.db.table("meta").upsert({"key": key, "value": value}, pk="key")
