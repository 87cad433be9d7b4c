"""Ages as parents say them (golden cases in tests/golden/ages.yaml)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from zjcare_guide.ages import age_in_message

from .conftest import GOLDEN

CASES: list[dict[str, Any]] = yaml.safe_load((GOLDEN / "ages.yaml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", CASES, ids=[c["q"] for c in CASES])
def test_age_as_said(case: dict[str, Any]) -> None:
    got = age_in_message(case["q"])
    if case["months"] is None:
        assert got is None
    else:
        assert got == pytest.approx(case["months"], abs=0.05)
