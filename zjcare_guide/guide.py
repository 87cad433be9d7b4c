"""The guidance engine: a validated library with its triage, matcher and templates, built together so
a reload swaps all of them at once."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, replace
from pathlib import Path

from .content import Library, check_content, load_library
from .matching import Candidate, Matcher, MatchResult
from .model import Article, Problem
from .render import Renderer
from .text import clean, strip_punct
from .triage import Triage, TriageResult

MAX_CHOICES = 3


@dataclass(frozen=True)
class Outcome:
    """What the service decided for one message."""

    kind: str  # answer | choices | urgent | greeting | fallback
    candidates: tuple[Candidate, ...] = ()
    triage: TriageResult | None = None
    out_of_scope: bool = False
    # The text the decision was made on (a long message's question part).
    question: str = ""


class Guide:
    def __init__(self, library: Library) -> None:
        self.library = library
        self.triage = Triage(library.danger, library.danger_model, library.vocabulary())
        self.matcher = Matcher(library.articles.values(), library.normaliser)
        self.renderer = Renderer(library.templates_dir)
        scope = library.scope
        self._greetings = sorted({strip_punct(clean(g)) for g in scope.greetings}, key=len, reverse=True)
        self._greeting_re = re.compile("|".join(map(re.escape, self._greetings)))

        def words(ws: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(library.normaliser.synonyms(strip_punct(clean(w))) for w in ws)

        self._adult, self._child = words(scope.adult_subjects), words(scope.child_words)
        self._animals, self._contact = words(scope.animals), words(scope.animal_contact + scope.child_persons)
        self._self = words(scope.self_words)

    @classmethod
    def from_dir(cls, root: Path, today: dt.date) -> Guide:
        return cls(load_library(root, today))

    def article(self, article_id: str) -> Article | None:
        return self.library.articles.get(article_id)

    def is_greeting(self, text: str) -> bool:
        t = strip_punct(clean(text))
        return bool(t) and not self._greeting_re.sub("", t)

    def about_someone_else(self, text: str) -> bool:
        """About an adult, the writer, an older child or a pet, with nothing that places it with a
        young child (content/scope.yaml)."""
        t = self.library.normaliser.synonyms(strip_punct(clean(text)))
        if any(w in t for w in self._animals):
            return not any(w in t for w in self._contact)
        if any(w in t for w in self._child):
            return False
        if any(w in t for w in self._adult):
            return True
        t = t.replace("我们家", "").replace("我家", "")
        return any(w in t for w in self._self)

    def decide(self, text: str, age_months: float | None = None) -> Outcome:
        """Triage first, then greeting, scope and matching."""
        triage = self.triage.assess(text, age_months)
        if triage.urgent:
            return Outcome("urgent", triage=triage, question=text)
        if self.is_greeting(text):
            return Outcome("greeting", triage=triage, question=text)
        if self.about_someone_else(text):
            return Outcome("fallback", triage=triage, out_of_scope=True, question=text)
        age = triage.age_months
        result = self.matcher.match(text, age)
        return replace(self.outcome_for(result, triage), question=text)

    def outcome_for(self, result: MatchResult, triage: TriageResult) -> Outcome:
        """The decision a match leads to (also used by the leave-one-out self-test)."""
        th = self.matcher.thresholds
        cands = result.candidates
        if result.confident:
            return Outcome("answer", cands, triage)
        if not cands or result.known_share < th.min_known or cands[0].score < th.choice:
            return Outcome("fallback", cands[:MAX_CHOICES], triage)
        best = cands[0].score
        close = [c for c in cands[:MAX_CHOICES] if c.score >= max(th.choice, best - th.choice_window)]
        if len(close) < 2:
            # One plausible article but not a confident one: let the parent confirm it, next to the
            # runner-up, rather than answer outright or give up.
            close = list(cands[:2])
        return Outcome("choices", tuple(close), triage)


class GuideHolder:
    """Serves the last good guide; `reload` swaps in a new one only when the content passes the check."""

    def __init__(self, guide: Guide) -> None:
        self.guide = guide

    def reload(self, today: dt.date) -> list[Problem]:
        library, problems = check_content(self.guide.library.root, today)
        if library is not None:
            self.guide = Guide(library)
        return problems
