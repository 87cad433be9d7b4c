from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from zjcare_guide.guide import Guide
from zjcare_guide.text import clean

from .conftest import GOLDEN

CASES: dict[str, list[dict[str, Any]]] = yaml.safe_load((GOLDEN / "normalise.yaml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", CASES["clean"], ids=lambda c: c["in"])
def test_clean(case: dict[str, str]) -> None:
    assert clean(case["in"]) == case["out"]


@pytest.mark.parametrize("case", CASES["compact"], ids=lambda c: c["in"])
def test_compact(case: dict[str, str], guide: Guide) -> None:
    assert guide.library.normaliser.compact(case["in"]) == case["out"]


@given(st.text(max_size=200))
def test_normalising_never_fails(text: str) -> None:
    clean(text)


def test_clauses_split_where_parents_separate_thoughts() -> None:
    from zjcare_guide.text import clause_spans

    text = "摔下来 头着地,吐了但是还在玩 烧到38.5度 lips are blue"
    assert [text[a:b] for a, b in clause_spans(text)] == ["摔下来", "头着地", "吐了", "还在玩", "烧到38.5度",
                                                          "lips are blue"]


@given(st.text(max_size=200))
def test_cleaning_twice_changes_nothing(text: str) -> None:
    """A message is cleaned once and read by every step; a step that cleans it again must get the
    same text (and gets it at no cost)."""
    once = clean(text)
    assert clean(str(once)) == once
    assert clean(once) is once
