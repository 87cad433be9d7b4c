"""Quality figures for editors and developers: the golden-set report and the leave-one-out self-test."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .guide import Guide, Outcome


@dataclass
class Miss:
    group: str
    question: str
    expected: str
    got: str


@dataclass
class GoldenReport:
    in_scope: int = 0
    answered_correct: int = 0
    within_choices: int = 0
    urgent: int = 0
    escalated: int = 0
    tier_right: int = 0
    # Escalations that only the learned model made (the rules found nothing).
    by_model: int = 0
    not_urgent: int = 0
    false_alarms: int = 0
    out_of_scope: int = 0
    out_answered: int = 0
    greetings: int = 0
    greeted: int = 0
    misses: list[Miss] = field(default_factory=list)

    @staticmethod
    def share(n: int, d: int) -> float:
        return n / d if d else 0.0

    def figures(self) -> dict[str, float]:
        return {
            "answered_correct": self.share(self.answered_correct, self.in_scope),
            "within_choices": self.share(self.within_choices, self.in_scope),
            "urgent_escalated": self.share(self.escalated, self.urgent),
            "urgent_tier_right": self.share(self.tier_right, self.urgent),
            "not_urgent_false_alarms": self.share(self.false_alarms, self.not_urgent),
            "out_of_scope_answered": self.share(self.out_answered, self.out_of_scope),
            "greetings_greeted": self.share(self.greeted, self.greetings),
        }


def _describe(o: Outcome) -> str:
    ids = ",".join(c.article.id for c in o.candidates[:3])
    if o.kind == "urgent" and o.triage is not None:
        ids = ",".join(f.sign_id + ("*" if f.by_model else "") for f in o.triage.findings)
    return f"{o.kind}[{ids}]"


def load_golden(path: Path) -> dict[str, list[dict[str, Any]]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8-sig")) or {}
    return {k: list(data.get(k) or []) for k in ("in_scope", "urgent", "not_urgent", "out_of_scope", "greetings")}


def evaluate(guide: Guide, golden: dict[str, list[dict[str, Any]]]) -> GoldenReport:
    """Run every golden case through the same decision the parent gets."""
    r = GoldenReport()
    for case in golden["in_scope"]:
        expect = case["expect"] if isinstance(case["expect"], list) else [case["expect"]]
        o = guide.decide(str(case["q"]), case.get("age_months"))
        r.in_scope += 1
        ids = [c.article.id for c in o.candidates]
        if o.kind == "answer" and ids[0] in expect:
            r.answered_correct += 1
        if (o.kind == "answer" and ids[0] in expect) or (o.kind == "choices" and set(ids) & set(expect)):
            r.within_choices += 1
        if not (o.kind == "answer" and ids[0] in expect):
            r.misses.append(Miss("in_scope", str(case["q"]), ",".join(expect), _describe(o)))
    for case in golden["urgent"]:
        o = guide.decide(str(case["q"]), case.get("age_months"))
        r.urgent += 1
        if o.kind == "urgent" and o.triage is not None:
            r.escalated += 1
            r.tier_right += o.triage.tier == case.get("tier", o.triage.tier)
            r.by_model += any(f.by_model for f in o.triage.findings)
        else:
            r.misses.append(Miss("urgent", str(case["q"]), f"tier {case.get('tier')}", _describe(o)))
    for case in golden["not_urgent"]:
        o = guide.decide(str(case["q"]), case.get("age_months"))
        r.not_urgent += 1
        if o.kind == "urgent":
            r.false_alarms += 1
            r.misses.append(Miss("not_urgent", str(case["q"]), "not urgent", _describe(o)))
    for case in golden["out_of_scope"]:
        q = case["q"] if isinstance(case, dict) else case
        o = guide.decide(str(q), None)
        r.out_of_scope += 1
        if o.kind == "answer":
            r.out_answered += 1
            r.misses.append(Miss("out_of_scope", str(q), "fallback", _describe(o)))
    for case in golden["greetings"]:
        q = case["q"] if isinstance(case, dict) else case
        o = guide.decide(str(q), None)
        r.greetings += 1
        if o.kind == "greeting":
            r.greeted += 1
        else:
            r.misses.append(Miss("greetings", str(q), "greeting", _describe(o)))
    return r


@dataclass
class SelfTest:
    asked: int = 0
    routed: int = 0
    offered: int = 0
    misses: list[tuple[str, str, str]] = field(default_factory=list)


def leave_one_out(guide: Guide) -> SelfTest:
    """Ask each example question with that question removed from the index."""
    result = SelfTest()
    for article in guide.library.articles.values():
        for question in article.questions:
            matcher = guide.matcher.without(article.id, question)
            triage = guide.triage.assess(question)
            if triage.urgent:
                o = Outcome("urgent", triage=triage)
            else:
                o = guide.outcome_for(matcher.match(question, triage.age_months), triage)
            ids = [c.article.id for c in o.candidates]
            result.asked += 1
            escalated_here = o.kind == "urgent" and any(f.article == article.id for f in triage.findings)
            if (o.kind == "answer" and ids and ids[0] == article.id) or escalated_here:
                result.routed += 1
                result.offered += 1
            else:
                if o.kind == "choices" and article.id in ids:
                    result.offered += 1
                result.misses.append((article.id, question, _describe(o)))
    return result
