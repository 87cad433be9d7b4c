"""`zjcare-guide institutions|operators|reports` as the bureau's staff and a newcomer use them."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from bot.cli import main
from zjcare_guide.institutions import Directory
from zjcare_guide.reports import file_report
from zjcare_guide.store import Store

from .institution_rows import random_rows, row, write_csv, write_xlsx
from .test_institutions import NOW, dump

TODAY = "2026-12-01"


def run(*args: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), input=input)
    return result.exit_code, result.output


def test_near_on_a_fresh_database_loads_the_demo_and_prints_json(tmp_path: Path) -> None:
    db = str(tmp_path / "z.db")
    code, out = run("institutions", "near", "--lat", "29.71", "--lon", "120.24", "--age-months", "18", "--json",
                    "--db", db, "--today", TODAY)
    assert code == 0, out
    items = json.loads(out)
    assert len(items) == 5
    keys = {"id", "name", "town", "distance_km", "places_available", "inclusive", "forms", "age_months"}
    assert keys <= set(items[0])
    assert [i["distance_km"] for i in items] == sorted(i["distance_km"] for i in items)
    assert all(i["age_months"][0] <= 18 <= i["age_months"][1] for i in items)
    assert all(round(i["distance_km"], 1) == i["distance_km"] for i in items)


def test_near_refuses_a_point_outside_zhuji(tmp_path: Path) -> None:
    for lat, lon in (("31.2", "121.5"), ("nan", "120.2")):
        code, out = run("institutions", "near", "--lat", lat, "--lon", lon, "--db", str(tmp_path / "z.db"))
        assert code == 2 and "outside Zhuji" in out and "Traceback" not in out


def test_search_by_pinyin_and_stale_places_are_null(tmp_path: Path) -> None:
    db = str(tmp_path / "z.db")
    code, out = run("institutions", "search", "diankou", "--json", "--db", db, "--today", TODAY)
    assert code == 0 and {i["town"] for i in json.loads(out)} == {"店口镇"}
    # Demo places count as updated on the day they were loaded: 31 days later they are unconfirmed.
    code, out = run("institutions", "search", "店口", "--json", "--db", db, "--today", "2027-01-02")
    assert code == 0 and all(i["places_available"] is None for i in json.loads(out))


def test_import_prints_each_problem_and_exits_1(tmp_path: Path) -> None:
    db = str(tmp_path / "z.db")
    bad = write_csv(tmp_path / "bad.csv", [row(1), row(2, 所属镇街="西湖区"), row(3, 空余托位="99")], "gbk")
    code, out = run("institutions", "import", str(bad), "--db", db)
    assert code == 1
    assert "line 3: 所属镇街: 西湖区: not one of Zhuji's 23 township-level units" in out
    assert "line 4: 空余托位: 99 available is more than the capacity 托位数 40" in out
    assert "nothing was imported" in out
    assert Directory(Store.open(db).db).count() == 0


def test_import_dry_run_then_import_then_export_round_trip(tmp_path: Path) -> None:
    db = str(tmp_path / "z.db")
    path = write_xlsx(tmp_path / "r.xlsx", random_rows(30))
    code, out = run("institutions", "import", str(path), "--dry-run", "--db", db, "--today", TODAY)
    assert code == 0 and "would import 30 row(s) (xlsx): 30 new, 0 updated, 0 unchanged" in out
    assert Directory(Store.open(db).db).count() == 0
    code, out = run("institutions", "import", str(path), "--db", db, "--today", TODAY)
    assert code == 0 and "imported 30 row(s)" in out
    before = dump(Directory(Store.open(db).db))
    for name in ("out.csv", "out.xlsx"):
        code, out = run("institutions", "export", str(tmp_path / name), "--db", db)
        assert code == 0 and "wrote 30 institution(s)" in out
        code, out = run("institutions", "import", str(tmp_path / name), "--db", db, "--today", TODAY)
        assert code == 0 and "0 new, 0 updated, 30 unchanged" in out
    assert dump(Directory(Store.open(db).db)) == before


def test_a_large_import_shows_a_progress_bar(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "big.csv", random_rows(2500))
    code, out = run("institutions", "import", str(path), "--db", str(tmp_path / "z.db"), "--dry-run")
    assert code == 0 and "checking rows" in out and "2500 new" in out


def test_import_of_a_missing_or_wrong_file_is_one_line(tmp_path: Path) -> None:
    db = str(tmp_path / "z.db")
    code, out = run("institutions", "import", str(tmp_path / "none.csv"), "--db", db)
    assert code == 2 and "Traceback" not in out
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("name,address\nA,B\n", encoding="utf-8")
    code, out = run("institutions", "import", str(wrong), "--db", db)
    assert code == 1 and "missing column(s) 备案编号" in out and "Traceback" not in out
    odt = tmp_path / "x.ods"
    odt.write_bytes(b"PK")
    code, out = run("institutions", "import", str(odt), "--db", db)
    assert code == 1 and "give a .csv or .xlsx file" in out


def test_operators_add_list_remove(tmp_path: Path) -> None:
    db = str(tmp_path / "z.db")
    run("institutions", "near", "--lat", "29.71", "--lon", "120.24", "--db", db)  # loads the demo
    code, out = run("operators", "add", "--telegram-id", "123456789", "--institution", "DEMO-001", "--db", db)
    assert code == 0 and "DEMO-001" in out
    code, out = run("operators", "add", "--telegram-id", "5", "--institution", "NOPE", "--db", db)
    assert code == 1 and "no institution" in out
    code, out = run("operators", "list", "--json", "--db", db)
    [op] = json.loads(out)
    assert (op["user"], op["institution"]) == ("telegram:123456789", "DEMO-001")
    code, out = run("operators", "remove", "--telegram-id", "123456789", "--db", db)
    assert code == 0
    code, out = run("operators", "remove", "--telegram-id", "123456789", "--db", db)
    assert code == 1 and "not an operator" in out


def test_reports_list_and_export_without_the_reporter(tmp_path: Path) -> None:
    db = tmp_path / "z.db"
    store = Store.open(db)
    file_report(store.db, NOW, "午睡时无人看护", "telegram:4242", filing_no="DEMO-001", institution="示例·A",
                town_code="001")
    file_report(store.db, NOW, "小区里无证收托", "telegram:4242", town_code="104")
    code, out = run("reports", "list", "--db", str(db))
    assert code == 0 and "JB20261201-0001" in out and "JB20261201-0002" in out and "未备案 · 店口镇" in out
    code, out = run("reports", "list", "--json", "--db", str(db))
    assert [r["ref"] for r in json.loads(out)] == ["JB20261201-0001", "JB20261201-0002"]
    for name in ("r.csv", "r.xlsx"):
        code, out = run("reports", "export", str(tmp_path / name), "--db", str(db))
        assert code == 0 and "wrote 2 report(s)" in out
    text = (tmp_path / "r.csv").read_text(encoding="utf-8-sig")
    assert "午睡时无人看护" in text and "4242" not in text and "telegram" not in text


def test_readers_do_not_create_a_database_at_a_mistyped_path(tmp_path: Path) -> None:
    for args in (("reports", "list"), ("operators", "list"), ("institutions", "export", str(tmp_path / "o.csv"))):
        code, out = run(*args, "--db", str(tmp_path / "typo.db"))
        assert code == 1 and "no database" in out
    assert not (tmp_path / "typo.db").exists()


def test_content_check_validates_the_demo_institutions(content_copy: Path) -> None:
    demo = content_copy / "institutions" / "demo.csv"
    demo.write_text(demo.read_text(encoding="utf-8").replace("DEMO-007,", "REAL-007,", 1)
                    .replace(",店口镇,", ",杭州,", 1), encoding="utf-8")
    code, out = run("content", "check", str(content_copy))
    assert code == 1 and "demo.csv: line" in out and "所属镇街: 杭州" in out
    demo.write_text(demo.read_text(encoding="utf-8").replace(",杭州,", ",店口镇,"), encoding="utf-8")
    code, out = run("content", "check", str(content_copy))
    assert code == 1 and "start with DEMO-" in out


def test_a_dry_run_creates_no_database_and_operators_go_with_the_demo(tmp_path: Path) -> None:
    db = tmp_path / "z.db"
    code, out = run("institutions", "import", str(write_csv(tmp_path / "r.csv", [row(1)])), "--dry-run",
                    "--db", str(db))
    assert code == 0 and "would import" in out and not db.exists()
    code, out = run("operators", "add", "--telegram-id", "9", "--institution", "DEMO-003", "--db", str(db))
    assert code == 0 and "parents do not see it" in out  # DEMO-003 is 整改中; the demo loaded first
    code, out = run("institutions", "import", str(tmp_path / "r.csv"), "--db", str(db))
    assert code == 0 and "demo institution(s) removed" in out
    code, out = run("operators", "list", "--db", str(db))
    assert "DEMO-003" not in out
