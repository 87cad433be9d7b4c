"""The danger signs as editors keep them in `content/danger_signs.yaml`, loaded and checked.

Source of the signs and tiers: reference/danger-signs.md (WHO IMCI, NICE NG143, 新生儿访视技术规范
2012); of the first actions: reference/first-aid.md (中国红十字会应急救护培训, WHO and AAP advice for
parents). The rules that read a message with them are in `triage`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .model import Problem
from .yamlfile import child, items, line, line_of, load_yaml, str_list


@dataclass(frozen=True)
class SignPart:
    """One part of a sign: any of `patterns` (regular expressions over the cleaned message).

    `earlier` lets the part lie in the past ("昨天摔了一跤" before "今天一直吐"): what happened
    earlier can still explain a sign that is there now."""

    patterns: tuple[str, ...]
    earlier: bool = False


@dataclass(frozen=True)
class DangerSign:
    """One danger sign. It is found when any of `patterns` is, or when every one of `parts` is
    found somewhere in the message, each with its own negation."""

    id: str
    tier: int
    label: str
    patterns: tuple[str, ...] = ()
    parts: tuple[SignPart, ...] = ()
    article: str | None = None
    first_aid: str | None = None
    max_age_months: float | None = None
    min_age_months: float | None = None
    # Words that cancel the sign anywhere in the message ("叫他名字没反应" is about hearing).
    unless_words: tuple[str, ...] = ()
    # Still urgent when the child seems well again: a swallowed battery, poison, a burn, electric
    # shock, drowning (reference/first-aid.md). "现在好好的" does not stand it down.
    even_if_well: bool = False


@dataclass(frozen=True)
class FirstAidStep:
    """The first actions for one emergency, for children under `under_months` (None: any age)."""

    steps: tuple[str, ...]
    under_months: float | None = None
    label: str = ""


@dataclass(frozen=True)
class FirstAid:
    id: str
    variants: tuple[FirstAidStep, ...]

    def for_age(self, age_months: float | None) -> tuple[FirstAidStep, ...]:
        """The variant for a known age; every variant (each with its label) when the age is unknown."""
        if age_months is None:
            return self.variants
        for v in self.variants:
            if v.under_months is None or age_months < v.under_months:
                return (v,)
        return ()


@dataclass(frozen=True)
class FeverRule:
    """A temperature that is a danger sign below a given age (months)."""

    under_months: float
    at_or_above: float
    below: float | None = None
    tier: int = 2


@dataclass(frozen=True)
class BreathingRule:
    """A breathing rate (per minute) that counts as fast below a given age (months)."""

    under_months: float
    per_minute: int
    tier: int = 2


@dataclass(frozen=True)
class MeasuredSign:
    """A sign read from a number (temperature, breathing rate) rather than from words."""

    id: str
    tier: int
    label: str
    article: str | None
    first_aid: str | None


@dataclass(frozen=True)
class DangerRules:
    signs: tuple[DangerSign, ...]
    spellings: dict[str, str]
    negations: tuple[str, ...]
    past_markers: tuple[str, ...]
    history_suffixes: tuple[str, ...]
    hypothetical_markers: tuple[str, ...]
    general_suffixes: tuple[str, ...]
    hearsay_markers: tuple[str, ...]
    past_suffixes: tuple[str, ...]
    recovered_markers: tuple[str, ...]
    treated_markers: tuple[str, ...]
    contrast_words: tuple[str, ...]
    harmless_phrases: tuple[str, ...]
    negated_verbs: tuple[str, ...]
    denial_replies: tuple[str, ...]
    child_subjects: tuple[str, ...]
    other_subjects: tuple[str, ...]
    pronouns: tuple[str, ...]
    opinion_markers: tuple[str, ...]
    comparison_words: tuple[str, ...]
    # The sign that words such as "呼吸很快" raise; a counted rate under the age's limit withdraws it.
    breathing_word_sign: str
    present_markers: tuple[str, ...]
    recent_markers: tuple[str, ...]
    not_the_child: tuple[str, ...]
    sound_alike_words: tuple[str, ...]
    sound_alike_before: tuple[str, ...]
    sound_alike_after: tuple[str, ...]
    symptom_words: tuple[str, ...]
    first_aid: dict[str, FirstAid]
    fever_words: tuple[str, ...]
    fever_rules: tuple[FeverRule, ...]
    fever: MeasuredSign
    breathing_rules: tuple[BreathingRule, ...]
    breathing: MeasuredSign
    general_article: str | None
    sources: tuple[str, ...]

    def follow_up(self, articles: list[str]) -> str | None:
        """The article to send after an escalation: the first specific one, else the general one."""
        return next((a for a in articles if a != self.general_article), articles[0] if articles else None)


# ---------------------------------------------------------------- loading


class _Reader:
    """Checks one danger_signs.yaml and records each problem at its line."""

    def __init__(self, path: Path, article_ids: set[str], problems: list[Problem]) -> None:
        self.path, self.article_ids, self.problems = path, article_ids, problems
        self.aid_ids: set[str] = set()

    def problem(self, node: yaml.Node | None, message: str) -> None:
        self.problems.append(Problem(self.path, line(node), message))

    def patterns(self, value: Any, node: yaml.Node | None, what: str) -> tuple[str, ...] | None:
        words = str_list(value)
        if not words:
            self.problem(node, f"{what} must be a non-empty list of patterns")
            return None
        ok = True
        for pattern, pnode in zip(words, items(node) or [node] * len(words), strict=False):
            try:
                re.compile(pattern)
            except re.error as exc:
                self.problem(pnode, f"invalid pattern '{pattern}': {exc}")
                ok = False
        return tuple(words) if ok else None

    def article(self, value: Any, node: yaml.Node | None, what: str) -> str | None:
        if value is not None and value not in self.article_ids:
            self.problem(node, f"{what}: article '{value}' does not exist")
            return None
        return value if isinstance(value, str) else None

    def words(self, data: dict[str, Any], node: yaml.Node | None, key: str) -> tuple[str, ...]:
        value = str_list(data.get(key))
        if value is None:
            self.problems.append(Problem(self.path, line_of(node, key), f"'{key}' must be a list of words"))
            return ()
        return tuple(value)

    def age(self, value: Any, node: yaml.Node | None, what: str) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 216:
            self.problem(node, f"{what} must be a number of months between 0 and 216")
            return None
        return float(value)

    def first_aid(self, data: Any, node: yaml.Node | None) -> dict[str, FirstAid]:
        out: dict[str, FirstAid] = {}
        if not isinstance(data, dict):
            self.problem(node, "'first_aid' must map an id to its steps")
            return out
        for aid_id, variants in data.items():
            vnode = child(node, str(aid_id))
            if not isinstance(variants, list) or not variants:
                self.problem(vnode, f"first aid '{aid_id}' must be a list of {{steps: […]}} entries")
                continue
            parsed: list[FirstAidStep] = []
            for v, n in zip(variants, items(vnode), strict=False):
                steps = str_list(v.get("steps")) if isinstance(v, dict) else None
                if not steps:
                    self.problem(n, f"first aid '{aid_id}': each entry needs a non-empty 'steps' list")
                    continue
                under = self.age(v.get("under_months"), child(n, "under_months"), f"first aid '{aid_id}' under_months")
                parsed.append(FirstAidStep(tuple(steps), under, str(v.get("label") or "")))
            if parsed and parsed[-1].under_months is not None:
                self.problem(vnode, f"first aid '{aid_id}': the last entry must have no under_months (it covers "
                                    "every older child)")
            out[str(aid_id)] = FirstAid(str(aid_id), tuple(parsed))
        return out

    def sign(self, item: Any, node: yaml.Node | None, seen: set[str]) -> DangerSign | None:
        if not isinstance(item, dict):
            self.problem(node, "each sign must be a mapping")
            return None
        sid, tier, label = item.get("id"), item.get("tier"), item.get("label")
        if not isinstance(sid, str) or not re.match(r"^[a-z0-9]+(-[a-z0-9]+)*$", sid) or sid in seen:
            self.problem(node, f"sign id '{sid}' is missing, malformed or repeated")
            return None
        seen.add(sid)
        if tier not in (1, 2):
            self.problem(child(node, "tier") or node, f"sign '{sid}': tier must be 1 or 2")
            return None
        if not isinstance(label, str) or not label:
            self.problem(child(node, "label") or node, f"sign '{sid}' needs a label")
            return None
        patterns: tuple[str, ...] = ()
        if "patterns" in item:
            found = self.patterns(item["patterns"], child(node, "patterns"), f"sign '{sid}': patterns")
            if found is None:
                return None
            patterns = found
        parts: list[SignPart] = []
        raw_parts = item.get("parts")
        if raw_parts is not None:
            pnode = child(node, "parts")
            if not isinstance(raw_parts, list) or len(raw_parts) < 2:
                self.problem(pnode, f"sign '{sid}': parts must list at least two parts")
                return None
            for part, n in zip(raw_parts, items(pnode), strict=False):
                earlier = False
                if isinstance(part, dict):
                    earlier = bool(part.get("earlier"))
                    part, n = part.get("patterns"), child(n, "patterns")
                found = self.patterns(part, n, f"sign '{sid}': each part")
                if found is None:
                    return None
                parts.append(SignPart(found, earlier))
        if not patterns and not parts:
            self.problem(node, f"sign '{sid}' has no patterns")
            return None
        return DangerSign(
            id=sid, tier=tier, label=label, patterns=patterns, parts=tuple(parts),
            article=self.article(item.get("article"), child(node, "article"), f"sign '{sid}'"),
            first_aid=self.aid(item.get("first_aid"), child(node, "first_aid"), f"sign '{sid}'"),
            max_age_months=self.age(item.get("under_months"), child(node, "under_months"),
                                    f"sign '{sid}': under_months"),
            min_age_months=self.age(item.get("from_months"), child(node, "from_months"),
                                    f"sign '{sid}': from_months"),
            unless_words=tuple(str_list(item.get("unless")) or ()),
            even_if_well=bool(item.get("even_if_well", False)),
        )

    def aid(self, value: Any, node: yaml.Node | None, what: str) -> str | None:
        if value is not None and value not in self.aid_ids:
            self.problem(node, f"{what}: first aid '{value}' is not defined under first_aid")
            return None
        return value if isinstance(value, str) else None

    def measured(self, data: Any, node: yaml.Node | None, key: str,
                 sign_id: str) -> tuple[dict[str, Any], MeasuredSign]:
        """The fever or fast-breathing section: rules by age plus how the sign is reported."""
        if not isinstance(data, dict):
            self.problem(node, f"'{key}' must be a mapping")
            data = {}
        tier = data.get("tier", 2)
        if tier not in (1, 2):
            self.problem(child(node, "tier") or node, f"{key}: tier must be 1 or 2")
            tier = 2
        return data, MeasuredSign(sign_id, tier, str(data.get("label", "")),
                                  self.article(data.get("article"), child(node, "article"), key),
                                  self.aid(data.get("first_aid"), child(node, "first_aid"), key))

    def spellings(self, data: Any, node: yaml.Node | None) -> dict[str, str]:
        out: dict[str, str] = {}
        if data is None:
            return out
        if not isinstance(data, dict):
            self.problem(node, "'spellings' must map a word to the ways parents write it")
            return out
        for standard, variants in data.items():
            words = str_list(variants)
            if not words:
                self.problem(child(node, str(standard)), f"spellings of '{standard}' must be a non-empty list")
                continue
            for w in words:
                out[w] = str(standard)
        return out


def load_danger_rules(path: Path, article_ids: set[str], problems: list[Problem]) -> DangerRules:
    """Read and check `danger_signs.yaml`; every problem goes to `problems` as path:line."""
    data, node = load_yaml(path, problems)
    r = _Reader(path, article_ids, problems)
    if not isinstance(data, dict):
        if node is not None or not problems:
            problems.append(Problem(path, 1, "danger_signs.yaml must be a mapping"))
        data = {}
    first_aid = r.first_aid(data.get("first_aid") or {}, child(node, "first_aid"))
    r.aid_ids = set(first_aid)
    signs: list[DangerSign] = []
    raw_signs = data.get("signs")
    if not isinstance(raw_signs, list) or not raw_signs:
        problems.append(Problem(path, line_of(node, "signs"), "'signs' must be a non-empty list"))
        raw_signs = []
    seen: set[str] = set()
    for item, snode in zip(raw_signs, items(child(node, "signs")) or [None] * len(raw_signs), strict=False):
        sign = r.sign(item, snode, seen)
        if sign is not None:
            signs.append(sign)
    fever, fever_sign = r.measured(data.get("fever"), child(node, "fever"), "fever", "fever-young-infant")
    breathing, breathing_sign = r.measured(data.get("fast_breathing"), child(node, "fast_breathing"),
                                           "fast_breathing", "fast-breathing-rate")

    fever_rules: list[FeverRule] = []
    for rule in fever.get("rules") or []:
        try:
            fever_rules.append(FeverRule(float(rule["under_months"]), float(rule["at_or_above"]),
                                         float(rule["below"]) if rule.get("below") is not None else None,
                                         fever_sign.tier))
        except (KeyError, TypeError, ValueError):
            problems.append(Problem(path, line_of(node, "fever"),
                                    f"fever rule {rule!r} needs under_months and at_or_above"))
    breathing_rules: list[BreathingRule] = []
    for rule in breathing.get("rules") or []:
        try:
            breathing_rules.append(BreathingRule(float(rule["under_months"]), int(rule["per_minute"]),
                                                 breathing_sign.tier))
        except (KeyError, TypeError, ValueError):
            problems.append(Problem(path, line_of(node, "fast_breathing"),
                                    f"breathing rule {rule!r} needs under_months and per_minute"))
    word_sign = str(breathing.get("word_sign", ""))
    if word_sign and word_sign not in seen:
        r.problem(child(child(node, "fast_breathing"), "word_sign"),
                  f"fast_breathing: word_sign '{word_sign}' is not a sign id")
    general = r.article(data.get("general_article"), child(node, "general_article"), "general_article")
    sound_alike: dict[str, Any] = data["sound_alike"] if isinstance(data.get("sound_alike"), dict) else {}
    subjects: dict[str, Any] = data["subjects"] if isinstance(data.get("subjects"), dict) else {}
    subjects_node = child(node, "subjects")
    snode = child(node, "sound_alike")
    return DangerRules(
        signs=tuple(signs),
        spellings=r.spellings(data.get("spellings"), child(node, "spellings")),
        negations=r.words(data, node, "negations"), past_markers=r.words(data, node, "past_markers"),
        history_suffixes=r.words(data, node, "history_suffixes"),
        hypothetical_markers=r.words(data, node, "hypothetical_markers"),
        general_suffixes=r.words(data, node, "general_suffixes"),
        hearsay_markers=r.words(data, node, "hearsay_markers"),
        past_suffixes=r.words(data, node, "past_suffixes"),
        recovered_markers=r.words(data, node, "recovered_markers"),
        treated_markers=r.words(data, node, "treated_markers"),
        contrast_words=r.words(data, node, "contrast_words"),
        harmless_phrases=r.words(data, node, "harmless_phrases"),
        negated_verbs=r.words(data, node, "negated_verbs"),
        denial_replies=r.words(data, node, "denial_replies"),
        child_subjects=r.words(subjects, subjects_node, "child"),
        other_subjects=r.words(subjects, subjects_node, "others"),
        pronouns=r.words(subjects, subjects_node, "pronouns"),
        opinion_markers=r.words(data, node, "opinion_markers"),
        comparison_words=r.words(data, node, "comparison_words"),
        breathing_word_sign=word_sign,
        present_markers=r.words(data, node, "present_markers"),
        recent_markers=r.words(data, node, "recent_markers"),
        not_the_child=r.words(data, node, "not_the_child"),
        sound_alike_words=r.words(sound_alike, snode, "words"),
        sound_alike_before=r.words(sound_alike, snode, "before"),
        sound_alike_after=r.words(sound_alike, snode, "after"),
        symptom_words=r.words(data, node, "symptom_words"),
        first_aid=first_aid,
        fever_words=tuple(str_list(fever.get("words")) or ()),
        fever_rules=tuple(sorted(fever_rules, key=lambda x: x.under_months)),
        fever=fever_sign,
        breathing_rules=tuple(sorted(breathing_rules, key=lambda x: x.under_months)),
        breathing=breathing_sign,
        general_article=general,
        sources=tuple(str_list(data.get("sources")) or ()),
    )
