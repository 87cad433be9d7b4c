"""Triage and matching quality on the golden files (figures, not timings)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from zjcare_guide.evaluation import evaluate, leave_one_out, load_golden
from zjcare_guide.guide import Guide

from .conftest import GOLDEN

TRIAGE: list[dict[str, Any]] = yaml.safe_load((GOLDEN / "triage.yaml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", TRIAGE, ids=[c["q"] for c in TRIAGE])
def test_triage_case(case: dict[str, Any], guide: Guide) -> None:
    result = guide.triage.assess(case["q"], case.get("age_months"))
    assert result.tier == case["tier"], result.findings


@pytest.fixture(scope="module")
def report(guide: Guide):  # type: ignore[no-untyped-def]
    return evaluate(guide, load_golden(GOLDEN / "questions.yaml"))


def test_in_scope_answered_correctly(report) -> None:  # type: ignore[no-untyped-def]
    assert report.figures()["answered_correct"] >= 0.85


def test_in_scope_within_choices(report) -> None:  # type: ignore[no-untyped-def]
    assert report.figures()["within_choices"] >= 0.95


def test_danger_signs_escalated(report) -> None:  # type: ignore[no-untyped-def]
    assert report.figures()["urgent_escalated"] >= 0.95


def test_few_false_alarms(report) -> None:  # type: ignore[no-untyped-def]
    assert report.figures()["not_urgent_false_alarms"] <= 0.10


def test_out_of_scope_rarely_answered(report) -> None:  # type: ignore[no-untyped-def]
    assert report.figures()["out_of_scope_answered"] <= 0.10


def test_leave_one_out_self_test(guide: Guide) -> None:
    """Each article's example questions asked with themselves left out. Issue 7 added ~970 harder
    examples (dialect, typos, long stories) written to teach the learned ranker: on the 1,294 older
    ones this stays ≥ 90 % (91.0 %, docs/matching.md), on all of them it is lower (73.6 %)."""
    result = leave_one_out(guide)
    assert result.routed / result.asked >= 0.70, result.misses[:20]
    assert result.offered / result.asked >= 0.85, result.misses[:20]


# Each held-out set's first run is in its header and in docs/matching.md; all were read (A–C tuned
# on) afterwards, so these floors (a little under today's figures) only guard against regressions.
HELD_OUT_FLOORS = {
    "questions_held_out_a.yaml": (0.82, 0.92, 0.06, 0.95),
    "questions_held_out_b.yaml": (0.81, 0.90, 0.08, 0.95),
    "questions_held_out_c.yaml": (0.78, 0.88, 0.08, 0.80),
    "questions_held_out_d.yaml": (0.82, 0.89, 0.05, 0.65),
}


@pytest.mark.parametrize("name", sorted(HELD_OUT_FLOORS))
def test_held_out_sets_stay_above_their_floors(guide: Guide, name: str) -> None:
    answered, within, out_answered, greeted = HELD_OUT_FLOORS[name]
    report = evaluate(guide, load_golden(GOLDEN / name))
    f = report.figures()
    assert f["answered_correct"] >= answered, [m for m in report.misses if m.group == "in_scope"][:20]
    assert f["within_choices"] >= within
    assert f["out_of_scope_answered"] <= out_answered, [m for m in report.misses if m.group == "out_of_scope"]
    assert f["greetings_greeted"] >= greeted, [m for m in report.misses if m.group == "greetings"]


@pytest.mark.parametrize("name", ["danger_blind_a.yaml", "danger_blind_b.yaml"])
def test_danger_blind_sets_stay_above_the_target(guide: Guide, name: str) -> None:
    """Both sets were read after their first runs (A: 53 % escalated before this work; B: 97.5 %, the
    figure that carries the target): now guards against regressions, not evidence."""
    report = evaluate(guide, load_golden(GOLDEN / name))
    f = report.figures()
    assert f["urgent_escalated"] >= 0.97, [m for m in report.misses if m.group == "urgent"]
    assert f["urgent_tier_right"] >= 0.90
    assert f["not_urgent_false_alarms"] <= 0.10, [m for m in report.misses if m.group == "not_urgent"]
