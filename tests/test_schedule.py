"""Plans from birth dates against the reference tables (golden YAML), and the schedules as content."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from bot.cli import main
from zjcare_guide.content import DEFAULT_CONTENT_DIR
from zjcare_guide.model import Problem
from zjcare_guide.schedule import ScheduleItem, load_schedules, plan

from .conftest import GOLDEN

CASES = yaml.safe_load((GOLDEN / "plans.yaml").read_text(encoding="utf-8"))


def schedules(root: Path = DEFAULT_CONTENT_DIR) -> tuple[list[ScheduleItem], list[Problem]]:
    problems: list[Problem] = []
    templates = {p.stem for p in (root / "templates").glob("*.j2")}
    return load_schedules(root / "schedules", templates, problems), problems


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_plans_follow_the_reference(case: dict) -> None:  # type: ignore[type-arg]
    items, problems = schedules()
    assert problems == []
    result = {p.id: p for p in plan(items, case["birth"], case.get("done") or {}, today=case["today"],
                                    discharge=case.get("discharge"))}
    for item_id, expected in case["expect"].items():
        got = result[item_id]
        for key, value in expected.items():
            assert getattr(got, key) == value, (item_id, key, getattr(got, key), value)


def test_the_plan_covers_birth_to_six_years_in_the_nip() -> None:
    items, _ = schedules()
    ids = {i.id for i in items}
    # The 2025 DTaP change: 2, 4, 6, 18 months and 6 years; later doses to 6 years.
    assert {"dtap-1", "dtap-2", "dtap-3", "dtap-4", "dtap-5", "bopv-4", "mpsvac-2", "check-6y"} <= ids
    dtap = sorted((i.age.months + 12 * i.age.years) for i in items if i.id.startswith("dtap-"))
    assert dtap == [2, 4, 6, 18, 72]
    checks = sorted(i.age.months + 12 * i.age.years for i in items if i.kind == "checkup" and i.age.days == 0)
    assert checks == [3, 6, 8, 12, 18, 24, 30, 36, 48, 60, 72]  # the 4-2-1 rule to 6 years
    assert all(i.schedule.edition and i.schedule.source for i in items)


def test_impossible_input_is_refused() -> None:
    items, _ = schedules()
    today = dt.date(2026, 12, 1)
    with pytest.raises(ValueError, match="future"):
        plan(items, dt.date(2027, 1, 1), today=today)
    with pytest.raises(ValueError, match="unknown item"):
        plan(items, dt.date(2026, 1, 1), {"nope-1": dt.date(2026, 2, 1)}, today=today)
    with pytest.raises(ValueError, match="between the birth date and today"):
        plan(items, dt.date(2026, 1, 1), {"hepb-1": dt.date(2025, 12, 1)}, today=today)


def test_content_check_reports_a_broken_schedule_by_line(content_copy: Path) -> None:
    path = content_copy / "schedules" / "nip.yaml"
    text = path.read_text(encoding="utf-8")
    text = text.replace("after: [{item: hepb-1, days: 28}]", "after: [{item: hepb-9, days: 28}]")
    path.write_text(text.replace("effective: 2025-01-01", "effective: soon")
                    .replace("reminder: reminder_vaccine", "reminder: no_such_template"), encoding="utf-8")
    _, problems = schedules(content_copy)
    messages = [f"{p.path.name}:{p.line}: {p.message}" for p in problems]
    assert any("nip.yaml:11: 'effective'" in m for m in messages), messages
    assert any("'reminder' names a template" in m for m in messages), messages
    path.write_text(text, encoding="utf-8")
    _, problems = schedules(content_copy)
    assert [p.message for p in problems if "hepb-9" in p.message], problems


def test_schedule_cli_json_and_text() -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["schedule", "--birth", "2026-03-01", "--done", "hepb-1=2026-03-01", "--json",
                                  "--today", "2026-03-10"])
    assert result.exit_code == 0, result.output
    items = json.loads(result.output)
    assert {"id", "kind", "name", "dose", "due", "window_end"} <= set(items[0])
    assert {i["kind"] for i in items} == {"vaccine", "checkup", "visit"}
    first = {i["id"]: i for i in items}
    assert first["hepb-1"]["status"] == "done" and first["hepb-2"]["due"] == "2026-04-01"
    result = runner.invoke(main, ["schedule", "--birth", "2026-03-01", "--today", "2026-03-10"])
    assert result.exit_code == 0 and "乙肝疫苗 第2剂" in result.output and "2021年版" in result.output
    for args in (["--birth", "2026-13-01"], ["--birth", "2027-01-01", "--today", "2026-12-01"],
                 ["--birth", "2026-03-01", "--done", "hepb-1"],
                 ["--birth", "2026-03-01", "--done", "x-1=2026-03-02"]):
        result = runner.invoke(main, ["schedule", *args])
        assert result.exit_code in (1, 2) and "Traceback" not in result.output, args
