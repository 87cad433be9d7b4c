"""Which messages typed out of any flow are searches for childcare places (the finder's) and which are
questions about childcare (the guidance's): blind sets and every golden question."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from zjcare_guide.place_search import is_place_search

from .conftest import GOLDEN

# Development floors (both sets were tuned on; their first-run figures are in their headers).
FLOORS = {"place_search_blind_a.yaml": (0.97, 0.02), "place_search_blind_b.yaml": (0.97, 0.03)}


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_blind_sets_hold_their_floors(name: str) -> None:
    data = yaml.safe_load((GOLDEN / name).read_text(encoding="utf-8"))
    found = sum(map(is_place_search, data["search"])) / len(data["search"])
    stolen = sum(map(is_place_search, data["question"])) / len(data["question"])
    least_found, most_stolen = FLOORS[name]
    assert found >= least_found and stolen <= most_stolen, (found, stolen)


def _golden_questions() -> list[str]:
    out: list[str] = []
    for path in sorted(Path(GOLDEN).glob("questions*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for group in ("in_scope", "out_of_scope", "urgent", "not_urgent", "greetings"):
            out += [str(c["q"]) for c in data.get(group) or []]
    return out


def test_the_guidance_keeps_its_questions() -> None:
    questions = _golden_questions()
    claimed = [q for q in questions if is_place_search(q)]
    # The few claimed ask where one is ("诸暨有没有社区办的托育点"): the finder asks for the location.
    assert len(claimed) <= 0.002 * len(questions), claimed


@pytest.mark.parametrize("text, expected", [
    ("店口", True), ("diankou", True), ("风桥托育", True), ("王家井托育", True), ("附近有脱育点吗", True),
    ("any daycare in Diankou?", True), ("诸暨城西这块有托育伐", True),
    ("想找家托育机构 一岁半", True), ("医院大堂在哪", False), ("次坞打面哪家最正宗", False),
    ("店口那边托班一个月要几钿", False), ("璜山的托育暑假放不放假的", False), ("托班老师打小孩 去哪里投诉", False),
    ("宝宝发烧了怎么办", False), ("", False),
])
def test_kinds_of_message(text: str, expected: bool) -> None:
    assert is_place_search(text) is expected
