"""The guidance engine: a validated library with its triage, matcher and templates, built together so
a reload swaps all of them at once."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass, replace
from pathlib import Path

from .content import Library, check_content, load_library
from .matching import Candidate, Matcher, MatchResult
from .model import Article, Problem
from .render import Renderer
from .text import clean, han_count, strip_punct, words_re
from .triage import Triage, TriageResult

MAX_CHOICES = 3
# The service is for children under 3 (the seed); older children are answered only where an article
# is written for their age (check-ups and vaccinations run to 6 years).
SERVED_MONTHS = 36
# How many characters besides greeting words a greeting may have ("谢谢你 帮了大忙了").
GREETING_REST = 8
# Words of an English message: "don't", "check-up" and "pcv13" are one word each.
ENGLISH_WORD = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")


@dataclass(frozen=True)
class Outcome:
    """What the service decided for one message."""

    kind: str  # answer | choices | urgent | greeting | fallback
    candidates: tuple[Candidate, ...] = ()
    triage: TriageResult | None = None
    # Why a fallback is no article: "" (nothing matched), "adult" (someone other than a young child),
    # "mother" (the mother's own health) or "english" (English the term list could not read).
    scope: str = ""
    # The text the decision was made on (a long message's question part).
    question: str = ""

    @property
    def out_of_scope(self) -> bool:
        return self.scope in ("adult", "mother")


class Guide:
    def __init__(self, library: Library) -> None:
        self.library = library
        self.matcher = Matcher(library.articles.values(), library.normaliser)
        self.triage = Triage(library.danger, library.danger_model, library.vocabulary(), self.matcher.sounds)
        self.renderer = Renderer(library.templates_dir, library.snippets)
        scope = library.scope
        self._greeting_re = words_re(strip_punct(clean(g)) for g in (*scope.greetings, *scope.greeting_fillers))
        self._greeting_core = words_re(strip_punct(clean(g)) for g in scope.greetings)

        def words(ws: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(library.normaliser.synonyms(strip_punct(clean(w))) for w in ws)

        self._adult, self._child = words(scope.adult_subjects), words(scope.child_words)
        self._animals, self._contact = words(scope.animals), words(scope.animal_contact + scope.child_persons)
        self._self = words(scope.self_words)
        self._mother, self._mother_child = words(scope.mother_words), words(scope.mother_child_words)
        self._pronouns = words(scope.child_pronouns)
        self._older = words(scope.older_child_words)
        me = words_re(self._self)
        self._self_re = re.compile(f"(?:^|[\\s,，。.!！?？;；、])(?:{me.pattern})") if me else None
        alt, verbs = words_re(self._adult), words_re(words(scope.caregiver_verbs))
        company = words_re(words(scope.company_words))
        # An adult who cares for the child or keeps it company is no subject of the question.
        self._caregiver = re.compile(f"(?:{company.pattern})(?:{alt.pattern})"
                                     f"|(?:{alt.pattern})[一就也又还]?(?:{verbs.pattern})") \
            if alt and verbs and company else None
        english = library.english
        self._english_longest = max((len(k.split()) for k in english), default=0)

    @classmethod
    def from_dir(cls, root: Path, today: dt.date) -> Guide:
        return cls(load_library(root, today))

    def article(self, article_id: str) -> Article | None:
        return self.library.articles.get(article_id)

    def is_greeting(self, text: str) -> bool:
        """Only greetings, thanks and the polite words round them ("您好 请问有人吗", "谢谢医生"), or
        only emoji (👍, 🙏)."""
        t = strip_punct(clean(text))
        if not t:
            return any(unicodedata.category(ch) == "So" for ch in text)
        if self._greeting_core is None or self._greeting_re is None:
            return False
        core = [m.group() for m in self._greeting_core.finditer(t)]
        if not core:
            return False
        rest = self._greeting_re.sub("", t).strip()
        if not rest:
            return True
        # A few words more that the library does not use are still a greeting ("谢谢你 帮了大忙了",
        # "thanks a lot"); a word it uses makes it a question ("谢谢 那打疫苗要注意啥"). A one-character
        # greeting (早, 好) inside other words is no greeting at all ("早产儿").
        return any(len(c) >= 2 for c in core) and len(rest) <= GREETING_REST \
            and not self.matcher.mentions_known(rest)

    def scope_of(self, text: str) -> str:
        """"" for a question about a young child; "mother" for the mother's own health; "adult" for an
        adult, the writer, an older child or a pet, with nothing that places it with a young child
        (content/scope.yaml)."""
        t = self.library.normaliser.synonyms(strip_punct(clean(text)))
        if any(w in t for w in self._mother) and not any(w in t for w in self._mother_child):
            return "mother"
        child = any(w in t for w in self._child)
        if any(w in t for w in self._older):
            return "adult"  # "读二年级的儿子个子矮": a schoolchild, older than the service is for
        subjects = self._caregiver.sub("", t) if self._caregiver is not None else t
        if any(w in subjects for w in self._adult) and not child:
            return "adult"  # "老公被狗咬了": an adult, even with a bite
        if any(w in t for w in self._animals):
            return "" if any(w in t for w in self._contact) else "adult"
        if child:
            return ""
        t = t.replace("我们家", "").replace("我家", "")
        if any(w in t for w in self._pronouns):
            return ""  # "我想问问…伊精神还可以": the writer asks about the child
        # The writer as the subject: a clause that starts with 我 ("我最近头疼"), not "奶奶叫我去买".
        return "adult" if self._self_re is not None and self._self_re.search(clean(text)) else ""

    def from_english(self, text: str) -> str | None:
        """For a message written mostly in English, the Chinese words of its terms in content/english.yaml
        ("" when it has none); None for a Chinese message. The longest phrase wins."""
        lower = clean(text)
        words = ENGLISH_WORD.findall(lower)
        # Letters, not digits, make a message English: "D3一天吃400还是800" is Chinese.
        letters = sum(ch.isascii() and ch.isalpha() for ch in lower)
        if sum(any(ch.isalpha() for ch in w) for w in words) < 2 or letters <= han_count(lower):
            return None
        out: list[str] = []
        about = False
        i = 0
        while i < len(words):
            for n in range(min(self._english_longest, len(words) - i), 0, -1):
                phrase = " ".join(words[i:i + n])
                chinese = self.library.english.get(phrase)
                if chinese is not None:
                    out.append(chinese)
                    about = about or phrase not in self.library.english_people
                    i += n
                    break
            else:
                i += 1
        # Only "baby" understood: nothing to match on.
        return " ".join(dict.fromkeys(out)) if about else ""

    def decide(self, text: str, age_months: float | None = None) -> Outcome:
        """Triage first, then greeting, scope and matching."""
        question = text
        text = clean(text)  # once: every step below reads the cleaned text
        triage = self.triage.assess(text, age_months)
        if triage.urgent:
            return Outcome("urgent", triage=triage, question=question)
        if self.is_greeting(text):
            return Outcome("greeting", triage=triage, question=question)
        scope = self.scope_of(text)
        if scope:
            return Outcome("fallback", triage=triage, scope=scope, question=question)
        english = self.from_english(text)
        if english is not None:
            # Matched through the bilingual term list; what it cannot read gets a reply in both languages.
            if not english:
                return Outcome("fallback", triage=triage, scope="english", question=question)
            scope = self.scope_of(english)
            if scope:
                return Outcome("fallback", triage=triage, scope=scope, question=question)
            outcome = self.outcome_for(self.matcher.match(english, triage.age_months, translated=True), triage)
            if outcome.kind == "fallback":
                return Outcome("fallback", triage=triage, scope="english", question=question)
            return replace(outcome, question=question)
        result = self.matcher.match(text, triage.age_months)
        age = triage.age_months
        if age is not None and age > SERVED_MONTHS and not any(
                c.article.fits_age(age) for c in result.candidates[:MAX_CHOICES]):
            # "孩子十二岁 玩游戏停不下来": an older child, and nothing here is written for that age.
            return Outcome("fallback", triage=triage, scope="adult", question=question)
        return replace(self.outcome_for(result, triage), question=question)

    def outcome_for(self, result: MatchResult, triage: TriageResult) -> Outcome:
        """The decision a match leads to (also used by the leave-one-out self-test)."""
        conf = self.matcher.confidence
        cands = result.candidates
        if result.confident:
            return Outcome("answer", cands, triage)
        if not cands or result.p_choices < conf.choices or not cands[0].on_topic:
            # No choices that share no word saying what the question is about ("麻烦你了").
            return Outcome("fallback", cands[:MAX_CHOICES], triage)
        best = cands[0].score
        # A runner-up that shares no word saying what the question is about is no sensible choice
        # ("宝宝晚上老是醒" must not offer the fever article).
        close = [c for c in cands[1:MAX_CHOICES] if c.on_topic and c.score >= best - conf.choice_window]
        if not close:
            # Not sure of the best one and nothing close: let the parent confirm it next to the
            # runner-up, if that one is on topic at all, rather than answer outright or give up.
            close = [c for c in cands[1:2] if c.on_topic]
        return Outcome("choices", (cands[0], *close), triage)


class GuideHolder:
    """Serves the last good guide; `reload` swaps in a new one only when the content passes the check."""

    def __init__(self, guide: Guide) -> None:
        self.guide = guide

    def reload(self, today: dt.date) -> list[Problem]:
        library, problems = check_content(self.guide.library.root, today)
        if library is not None:
            self.guide = Guide(library)
        return problems
