"""Dates as parents type them: the two blind sets (A tuned on, B the evidence; figures in their headers)
and the refusals that must hold whatever the wording."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from zjcare_guide.children import BirthDateError, parse_birth_date
from zjcare_guide.dates import DateError, parse_date

TODAY = dt.date(2026, 12, 1)
GOLDEN = Path(__file__).parent / "golden"


def cases(name: str) -> list[tuple[str, str]]:
    data = yaml.safe_load((GOLDEN / name).read_text(encoding="utf-8"))
    return [(c["text"], str(c["expect"])) for c in data["cases"]]


def read(text: str) -> str:
    try:
        return parse_birth_date(text, TODAY).isoformat()
    except BirthDateError:
        return "refuse"


@pytest.mark.parametrize("text, expect", cases("birth_dates_blind.yaml") + cases("birth_dates_blind_b.yaml"))
def test_blind_sets(text: str, expect: str) -> None:
    assert read(text) == expect


@pytest.mark.parametrize("text, reason", [
    ("农历三月初一", "lunar"), ("阴历八月十五", "lunar"), ("三月初一", "lunar"), ("腊月廿三", "lunar"),
    ("3月1号还是2号", "ambiguous"),
    ("2026年3月1日或者3月2日", "ambiguous"), ("2026年3月", "format"), ("两岁半", "format"), ("百", "format"),
    ("01/03/2026", "format"), ("2026年2月30日", "impossible"), ("今天能打疫苗吗", "format"),
    ("预产期是2027年1月5号", "expected"), ("大概3月1号左右", "ambiguous"),
])
def test_what_is_refused_and_why(text: str, reason: str) -> None:
    with pytest.raises(DateError) as err:
        parse_date(text, TODAY)
    assert err.value.reason == reason


def test_a_solar_date_given_with_its_lunar_one_is_read() -> None:
    assert parse_date("2026年3月1日 农历正月十三", TODAY) == dt.date(2026, 3, 1)
    assert parse_date("2023年农历3月初3（阳历4月22）", TODAY) == dt.date(2023, 4, 22)


def test_a_phone_number_beside_the_date_is_not_a_date() -> None:
    assert parse_date("宝宝2025年5月3日出生，电话13812345678", TODAY) == dt.date(2025, 5, 3)
