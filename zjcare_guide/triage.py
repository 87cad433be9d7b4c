"""Danger-sign triage: runs before matching on every message.

False negatives are worse than false positives (reference/danger-signs.md), so the rules escalate on
any plausible mention and stand down only for a negation right before the sign ("没有抽搐"), a past
episode ("上次抽过"), or a message that asks in general or about the future ("万一噎住了怎么急救")
without saying that something is happening now.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .content import DangerRules
from .model import DangerSign
from .text import clauses, clean

# In the content's patterns a gap `\S` never crosses a negation: "嘴唇没有发紫" must not match
# "嘴唇\S{0,5}发紫".
_GAP = "[^\\s没不未无]"
_SUBJECT = r"(?:宝宝|宝贝|娃娃|娃|孩子|小孩|儿子|女儿|囡囡|婴儿)"
_AGE_PATTERNS: tuple[tuple[re.Pattern[str], float], ...] = (
    (re.compile(r"(\d+(?:\.\d+)?)\s*个\s*(?:多)?\s*月"), 1.0),
    (re.compile(r"(\d+(?:\.\d+)?)\s*(?:周|星期)(?:大|龄|的|宝|娃|孩|婴)"), 12 / 52),
    (re.compile(r"(?:出生|生下来|刚生|刚出生)(?:才|了)?\s*(\d+)\s*天"), 1 / 30),
    (re.compile(r"(\d+)\s*天(?:大|龄|的(?:宝|娃|孩|新生|小)|宝|娃|孩|新生)"), 1 / 30),
    # "我家宝宝70天，…": a number of days right after the child and at the end of the clause.
    (re.compile(_SUBJECT + r"(?:才|刚|刚刚)?\s*(\d+)\s*天(?:了|啦)?(?=$|[\s,，。.!！?？])"), 1 / 30),
    (re.compile(r"(\d+(?:\.\d+)?)\s*(?:周岁|岁)"), 12.0),
)
_TEMPERATURE = re.compile(
    r"(\d{2}(?:\.\d{1,2})?)\s*度"
    r"|(?:体温|温度|耳温|腋温|肛温|额温|口温|量了|测了|烧到|烧了|发烧|发热|高烧)\D{0,3}?(\d{2}(?:\.\d{1,2})?)(?!\d)"
)
_BREATHS = re.compile(
    r"(?:呼吸|喘气|气)[^，。,]{0,8}?(\d{2,3})\s*(?:次|下)"
    r"|(\d{2,3})\s*(?:次|下)[^\d，。,]{0,4}(?:呼吸|喘)"
)


@dataclass(frozen=True)
class Finding:
    sign_id: str
    tier: int
    label: str
    article: str | None


@dataclass(frozen=True)
class TriageResult:
    findings: tuple[Finding, ...]
    age_months: float | None

    @property
    def urgent(self) -> bool:
        return bool(self.findings)

    @property
    def tier(self) -> int | None:
        return min((f.tier for f in self.findings), default=None)


def age_in_message(text: str) -> float | None:
    """The child's age in months when the message states it ("2个月宝宝", "出生10天", "1岁半")."""
    t = clean(text)
    if "新生儿" in t or ("刚出生" in t and "天" not in t):
        return 0.5
    if "满月" in t and "月" not in t.replace("满月", ""):
        return 1.0
    for pattern, factor in _AGE_PATTERNS:
        m = pattern.search(t)
        if m:
            months = float(m.group(1)) * factor
            if factor == 12.0 and t[m.end():m.end() + 1] == "半":
                months += 6
            # "3个月不到", "不满2个月": just under the number said.
            if t[m.end():m.end() + 4].lstrip(" 的").startswith(("不到", "没到", "没满", "不满")) \
                    or t[max(0, m.start() - 2):m.start()] in ("不到", "没到", "没满", "不满", "未满"):
                months -= 0.5 * factor
            if 0 <= months <= 216:
                return months
    return None


def _words_re(words: tuple[str, ...]) -> re.Pattern[str] | None:
    ws = sorted({clean(w) for w in words if w}, key=len, reverse=True)
    return re.compile("|".join(map(re.escape, ws))) if ws else None


class Triage:
    def __init__(self, rules: DangerRules) -> None:
        self.rules = rules
        self._signs: list[tuple[DangerSign, list[re.Pattern[str]]]] = [
            (s, [re.compile(p.replace("\\S", _GAP)) for p in s.patterns]) for s in rules.signs
        ]
        long_neg = [re.escape(clean(n)) for n in rules.negations if len(n) > 1]
        short_neg = [re.escape(clean(n)) for n in rules.negations if len(n) == 1]
        # A two-character negation may stand one character off ("没有在抽"); a one-character one must
        # touch the sign, or "特别嗜睡" would read as negated by the 别 of 特别.
        alternatives = []
        if long_neg:
            alternatives.append("(?:" + "|".join(sorted(long_neg, key=len, reverse=True)) + ")\\S?$")
        if short_neg:
            alternatives.append("(?:" + "|".join(short_neg) + ")$")
        self._negation = re.compile("|".join(alternatives)) if alternatives else None
        self._past = _words_re(rules.past_markers)
        self._hypothetical = _words_re(rules.hypothetical_markers)
        self._present = _words_re(rules.present_markers)
        self._fever_words = tuple(clean(w) for w in rules.fever_words)
        # Cleaned once here rather than on every message.
        self._with = {s.id: tuple(clean(w) for w in s.with_words) for s in rules.signs}
        self._unless = {s.id: tuple(clean(w) for w in s.unless_words) for s in rules.signs}

    def _negated(self, clause: str, start: int) -> bool:
        before = clause[max(0, start - 5):start]
        if before.endswith(("是不是", "是不", "有没有")):
            return False  # "是不是抽搐了" asks whether it is happening: treat it as happening
        return bool(self._negation and self._negation.search(before))

    def _in_past(self, clause: str, start: int) -> bool:
        return bool(self._past and self._past.search(clause[:start]))

    def _general_question(self, message: str) -> bool:
        return bool(self._hypothetical and self._hypothetical.search(message)
                    and not (self._present and self._present.search(message)))

    def assess(self, text: str, age_months: float | None = None) -> TriageResult:
        """Danger signs described by `text`; an age stated in the message wins over the profile's."""
        message = clean(text)
        stated = age_in_message(text)
        age = stated if stated is not None else age_months
        if self._general_question(message):
            return TriageResult((), age)
        findings: dict[str, Finding] = {}
        parts = clauses(message)
        for sign, patterns in self._signs:
            if age is not None and sign.max_age_months is not None and age >= sign.max_age_months:
                continue
            if age is not None and sign.min_age_months is not None and age < sign.min_age_months:
                continue
            if self._with[sign.id] and not any(w in message for w in self._with[sign.id]):
                continue
            if any(w in message for w in self._unless[sign.id]):
                continue
            if self._found(patterns, parts):
                findings[sign.id] = Finding(sign.id, sign.tier, sign.label, sign.article)
        for extra in (self._fever(message, parts, age), self._breathing(message, age)):
            if extra is not None:
                findings.setdefault(extra.sign_id, extra)
        ordered = sorted(findings.values(), key=lambda f: f.tier)
        return TriageResult(tuple(ordered), age)

    def _found(self, patterns: list[re.Pattern[str]], parts: list[str]) -> bool:
        for clause in parts:
            for p in patterns:
                for m in p.finditer(clause):
                    if (not self._negated(clause, m.start()) and not self._in_past(clause, m.start())
                            and not clause.startswith(self.rules.history_suffixes, m.end())):
                        return True
        return False

    def _fever(self, message: str, parts: list[str], age: float | None) -> Finding | None:
        r = self.rules
        if age is None:
            return None
        rule = next((x for x in r.fever_rules if age < x.under_months), None)
        if rule is None:
            return None
        temps = [t for t in (float(m.group(1) or m.group(2)) for m in _TEMPERATURE.finditer(message))
                 if 34 <= t <= 43]
        if any(t >= rule.at_or_above or (rule.below is not None and t < rule.below) for t in temps):
            return Finding("fever-young-infant", rule.tier, r.fever_label, r.fever_article)
        if not temps:
            # "发烧" without a number: a parent who says fever means a temperature worth acting on.
            for clause in parts:
                for w in self._fever_words:
                    i = clause.find(w)
                    if i >= 0 and not self._negated(clause, i) and not self._in_past(clause, i):
                        return Finding("fever-young-infant", rule.tier, r.fever_label, r.fever_article)
        return None

    def _breathing(self, message: str, age: float | None) -> Finding | None:
        r = self.rules
        if not r.breathing_rules:
            return None
        for m in _BREATHS.finditer(message):
            rate = int(next(g for g in m.groups() if g))
            if age is None:
                # Unknown age: the lowest threshold, since a false alarm is the safer error.
                limit = min(x.per_minute for x in r.breathing_rules)
            else:
                rule = next((x for x in r.breathing_rules if age < x.under_months), None)
                if rule is None:
                    continue
                limit = rule.per_minute
            if rate >= limit:
                return Finding("fast-breathing-rate", r.breathing_rules[0].tier, r.breathing_label,
                               r.breathing_article)
        return None
