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
