"""The institution directory: registry import and export, validation, upsert rules, search."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import random
from pathlib import Path

import prcoords
import pytest

from zjcare_guide.content import DEFAULT_CONTENT_DIR
from zjcare_guide.institutions import Directory, Filters, haversine_km
from zjcare_guide.registry_import import ImportFileError, export_file, import_file, load_demo
from zjcare_guide.store import Store

from .institution_rows import random_rows, row, write_csv, write_xlsx

TODAY = dt.date(2026, 12, 1)
NOW = dt.datetime(2026, 12, 1, 10, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))


@pytest.fixture
def directory() -> Directory:
    return Directory(Store.open(":memory:").db)


def dump(d: Directory) -> list[tuple[object, ...]]:
    """Every row of every table that import or the bot writes, to show that nothing changed."""
    out: list[tuple[object, ...]] = []
    for table in ("institutions", "institutions_rtree", "operators", "places_audit", "reports", "meta"):
        out += [(table, *r) for r in d.db.execute(f"select * from {table} order by 1")]
    return out


def test_demo_data_loads_once_over_all_23_units(directory: Directory) -> None:
    assert load_demo(directory, DEFAULT_CONTENT_DIR, TODAY) >= 55
    assert load_demo(directory, DEFAULT_CONTENT_DIR, TODAY) == 0
    towns = {i.town_code for i in directory.all()}
    assert len(towns) == 23
    assert all("示例" in i.name and i.phone.startswith("0575-0000") for i in directory.all())


@pytest.mark.parametrize("fmt", ["utf-8", "utf-8-sig", "gbk", "gb18030", "xlsx"])
def test_each_registry_encoding_imports_the_same(tmp_path: Path, directory: Directory, fmt: str) -> None:
    rows = [row(1), row(2, 所属镇街="店口", 机构名称="店口镇测试托育园", 纬度="29.88", 经度="120.33"), row(3, 班型="")]
    path = write_xlsx(tmp_path / "r.xlsx", rows) if fmt == "xlsx" else write_csv(tmp_path / "r.csv", rows, fmt)
    result = import_file(directory, path, TODAY)
    assert result.ok and (result.inserted, result.updated) == (3, 0)
    inst = directory.by_filing_no("ZJ-TEST-0002")
    assert inst is not None and inst.town.name == "店口镇" and inst.name == "店口镇测试托育园"
    assert inst.forms == ("全日托", "计时托") and (inst.age_min, inst.age_max) == (6, 36)
    assert inst.capacity == 40 and inst.places == 5 and inst.places_updated == dt.date(2026, 11, 20)


def test_every_problem_is_reported_by_line_and_column_and_nothing_is_written(tmp_path: Path,
                                                                              directory: Directory) -> None:
    import_file(directory, write_csv(tmp_path / "ok.csv", [row(1)]), TODAY)
    before = dump(directory)
    rows = [row(2), row(3, 备案编号=""), row(2), row(4, 所属镇街="杭州"), row(5, 纬度="31.2"),
            row(6, 空余托位="50"), row(7, 空余更新日期="2026-13-01"), row(8, 空余更新日期="2027-01-01"),
            row(9, 机构类型="托儿所"), row(10, 服务形式="全日托、周末托"), row(11, 托位数="-3"),
            row(12, 经度="NaN"), row(13, 招收月龄="36-6"), row(14, 是否普惠="yes")]
    result = import_file(directory, write_csv(tmp_path / "bad.csv", rows), TODAY)
    got = [str(p).split(": ")[0] + ": " + str(p).split(": ")[1] for p in result.problems]
    assert got == ["line 3: 备案编号", "line 4: 备案编号", "line 5: 所属镇街", "line 6: 经度/纬度",
                   "line 7: 空余托位", "line 8: 空余更新日期", "line 9: 空余更新日期", "line 10: 机构类型",
                   "line 11: 服务形式", "line 12: 托位数", "line 13: 经度", "line 14: 招收月龄", "line 15: 是否普惠"]
    assert "also on line 2" in str(result.problems[1])
    assert dump(directory) == before


def test_a_quoted_newline_keeps_line_numbers_right(tmp_path: Path, directory: Directory) -> None:
    rows = [row(1, 收费标准="全日托 2000元/月\n计时托 30元/小时"), row(2, 所属镇街="火星")]
    result = import_file(directory, write_csv(tmp_path / "r.csv", rows), TODAY)
    assert [str(p).split(":")[0] for p in result.problems] == ["line 4"]


@pytest.mark.parametrize("content, message", [
    ("名称,地址\n示例,示例路\n".encode(), "missing column"),
    (b"\xff\xfe\x00\x00garbage" * 20, "binary"),
    ("机构,地址\n示例,示例路\n".encode("utf-16"), "missing column"),
    (b"", "empty"),
    (b"\x00\x01\x02\x03" * 50, "binary"),
])
def test_unreadable_files_are_one_clear_error_and_change_nothing(tmp_path: Path, directory: Directory,
                                                                   content: bytes, message: str) -> None:
    load_demo(directory, DEFAULT_CONTENT_DIR, TODAY)
    before = dump(directory)
    path = tmp_path / "x.csv"
    path.write_bytes(content)
    with pytest.raises(ImportFileError, match=message):
        import_file(directory, path, TODAY)
    assert dump(directory) == before


def test_xlsx_with_merged_header_cells_is_refused(tmp_path: Path, directory: Directory) -> None:
    path = write_xlsx(tmp_path / "m.xlsx", [row(1)], merge_header=True)
    with pytest.raises(ImportFileError, match="merged"):
        import_file(directory, path, TODAY)
    assert directory.count() == 0


def test_a_file_that_is_not_xlsx_is_refused(tmp_path: Path, directory: Directory) -> None:
    path = tmp_path / "fake.xlsx"
    path.write_text("备案编号,机构名称\n", encoding="utf-8")
    with pytest.raises(ImportFileError, match="XLSX"):
        import_file(directory, path, TODAY)


def test_dry_run_counts_without_writing(tmp_path: Path, directory: Directory) -> None:
    import_file(directory, write_csv(tmp_path / "a.csv", [row(1), row(2)]), TODAY)
    before = dump(directory)
    result = import_file(directory, write_csv(tmp_path / "b.csv", [row(1), row(2, 机构名称="改名"), row(3)]), TODAY,
                         dry_run=True)
    assert (result.inserted, result.updated, result.unchanged) == (1, 1, 1)
    assert dump(directory) == before


def test_places_keep_the_newer_of_the_file_and_the_operator(tmp_path: Path, directory: Directory) -> None:
    import_file(directory, write_csv(tmp_path / "a.csv", [row(1, 空余托位=5, 空余更新日期="2026-11-20")]), TODAY)
    directory.set_places("ZJ-TEST-0001", 2, "telegram:1", NOW)  # the operator, on 2026-12-01
    # An older registry figure does not overwrite the operator's; other columns still update.
    result = import_file(directory, write_csv(tmp_path / "b.csv", [row(1, 空余托位=9, 空余更新日期="2026-11-25",
                                                                       机构名称="新名字")]), TODAY)
    inst = directory.by_filing_no("ZJ-TEST-0001")
    assert inst is not None and (inst.places, inst.name) == (2, "新名字") and result.updated == 1
    # The same day: the stored figure stays.
    import_file(directory, write_csv(tmp_path / "c.csv", [row(1, 空余托位=7, 空余更新日期="2026-12-01",
                                                              机构名称="新名字")]), TODAY)
    assert directory.by_filing_no("ZJ-TEST-0001").places == 2  # type: ignore[union-attr]
    # A newer registry figure wins.
    later = TODAY + dt.timedelta(days=3)
    import_file(directory, write_csv(tmp_path / "d.csv", [row(1, 空余托位=4, 空余更新日期=later.isoformat(),
                                                              机构名称="新名字")]), later)
    inst = directory.by_filing_no("ZJ-TEST-0001")
    assert inst is not None and (inst.places, inst.places_updated) == (4, later)
    assert [h["source"] for h in directory.places_history("ZJ-TEST-0001")] == ["import", "operator", "import"]


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_importing_an_export_changes_nothing(tmp_path: Path, directory: Directory, suffix: str) -> None:
    load_demo(directory, DEFAULT_CONTENT_DIR, TODAY)
    import_file(directory, write_csv(tmp_path / "a.csv", [*random_rows(40), row(999, 空余托位="", 空余更新日期="")]),
                TODAY)
    directory.set_places("ZJ-TEST-0003", 1, "telegram:1", NOW)
    before = dump(directory)
    assert export_file(directory, tmp_path / f"out{suffix}") == directory.count() == 41
    if suffix == ".csv":
        assert (tmp_path / "out.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    result = import_file(directory, tmp_path / f"out{suffix}", TODAY)
    assert result.ok and (result.inserted, result.updated, result.unchanged) == (0, 0, 41)
    assert dump(directory) == before


def test_a_real_import_replaces_the_demo_institutions(tmp_path: Path, directory: Directory) -> None:
    load_demo(directory, DEFAULT_CONTENT_DIR, TODAY)
    result = import_file(directory, write_csv(tmp_path / "real.csv", [row(1)]), TODAY)
    assert result.demo_removed >= 55 and directory.count() == 1


def test_gcj02_coordinates_are_converted_to_wgs84(tmp_path: Path, directory: Directory) -> None:
    import_file(directory, write_csv(tmp_path / "g.csv", [row(1, 纬度="29.714479", 经度="120.232550")]), TODAY,
                coords="gcj02")
    inst = directory.by_filing_no("ZJ-TEST-0001")
    assert inst is not None
    expected = prcoords.gcj_wgs_bored((29.714479, 120.232550))
    assert (inst.latitude, inst.longitude) == (round(expected.lat, 6), round(expected.lon, 6))
    assert 0.3 < haversine_km(29.714479, 120.232550, inst.latitude, inst.longitude) < 0.8  # GCJ's offset here


def test_haversine_on_a_known_distance() -> None:
    assert haversine_km(29.712, 120.237, 29.712, 120.237) == 0
    # One degree of latitude is about 111.2 km on the mean sphere.
    assert haversine_km(29.0, 120.0, 30.0, 120.0) == pytest.approx(111.195, abs=0.01)


@pytest.mark.parametrize("filters", [Filters(), Filters(age_months=8), Filters(form="计时托", inclusive=True),
                                     Filters(with_places=True)], ids=["none", "age", "form+inclusive", "places"])
def test_nearest_agrees_with_a_haversine_scan(tmp_path: Path, directory: Directory, filters: Filters) -> None:
    rows = random_rows(1500)
    import_file(directory, write_csv(tmp_path / "many.csv", rows), TODAY)
    every = directory.all()
    rng = random.Random(3)
    for _ in range(60):
        lat, lon = rng.uniform(29.3, 30.05), rng.uniform(119.85, 120.6)
        radius, limit = rng.choice([1.0, 3.0, 10.0, 25.0]), rng.choice([1, 5, 12])
        scan = sorted((haversine_km(lat, lon, i.latitude, i.longitude), i.filing_no) for i in every
                       if i.status == "备案" and (filters.age_months is None or i.takes_age(filters.age_months))
                       and (filters.form is None or filters.form in i.forms)
                       and (not filters.inclusive or i.inclusive)
                       and (not filters.with_places or (i.places_known(TODAY) or 0) > 0))
        expected = [(round(d, 9), f) for d, f in scan if d <= radius][:limit]
        got = [(round(h.distance_km or 0, 9), h.institution.filing_no)
               for h in directory.nearest(lat, lon, TODAY, filters=filters, radius_km=radius, limit=limit)]
        assert got == expected


def test_only_filed_institutions_appear_and_old_places_are_unconfirmed(tmp_path: Path,
                                                                       directory: Directory) -> None:
    rows = [row(1, 状态="整改中"), row(2, 状态="注销"), row(3, 空余更新日期="2026-10-31"), row(4)]
    import_file(directory, write_csv(tmp_path / "s.csv", rows), TODAY)
    hits = directory.nearest(29.712, 120.237, TODAY)
    assert [h.institution.filing_no for h in hits] == ["ZJ-TEST-0003", "ZJ-TEST-0004"]
    stale, fresh = (h.institution for h in hits)
    assert stale.places_known(TODAY) is None and fresh.places_known(TODAY) == 5
    assert [h.institution.filing_no for h in directory.nearest(29.712, 120.237, TODAY,
                                                               filters=Filters(with_places=True))] == ["ZJ-TEST-0004"]
    assert directory.search("测试托育园1号", TODAY) == []


@pytest.mark.parametrize("query", ["店口", "店口镇", "diankou", "DianKou", "店口镇测试"])
def test_search_by_town_in_any_spelling_and_by_name(tmp_path: Path, directory: Directory, query: str) -> None:
    rows = [row(1), row(2, 所属镇街="店口镇", 机构名称="店口镇测试托育园", 纬度="29.88", 经度="120.33"),
            row(3, 所属镇街="店口镇", 机构名称="阳光宝贝", 纬度="29.87", 经度="120.33")]
    import_file(directory, write_csv(tmp_path / "t.csv", rows), TODAY)
    names = [h.institution.name for h in directory.search(query, TODAY)]
    assert names[0] == "店口镇测试托育园"
    assert ("阳光宝贝" in names) == (query != "店口镇测试")


def test_operator_places_are_checked_and_audited(tmp_path: Path, directory: Directory) -> None:
    import_file(directory, write_csv(tmp_path / "o.csv", [row(1)]), TODAY)
    with pytest.raises(ValueError):
        directory.set_places("ZJ-TEST-0001", 41, "telegram:1", NOW)
    with pytest.raises(ValueError):
        directory.set_places("ZJ-TEST-0001", -1, "telegram:1", NOW)
    inst = directory.set_places("ZJ-TEST-0001", 0, "telegram:1", NOW)
    assert (inst.places, inst.places_updated) == (0, NOW.date())
    [_, audit] = directory.places_history("ZJ-TEST-0001")
    assert (audit["old"], audit["new"], audit["user_key"]) == (5, 0, "telegram:1")


def test_institution_fields_round_trip(tmp_path: Path, directory: Directory) -> None:
    import_file(directory, write_csv(tmp_path / "f.csv", [row(1, 空余托位="", 空余更新日期="")]), TODAY)
    inst = directory.by_filing_no("ZJ-TEST-0001")
    assert inst is not None
    assert dataclasses.replace(inst, id=0) == dataclasses.replace(directory.all()[0], id=0)
    assert inst.places is None and inst.places_known(TODAY) is None and not math.isnan(inst.latitude)
