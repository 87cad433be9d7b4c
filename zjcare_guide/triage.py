"""Danger-sign triage: runs before matching on every message.

False negatives are worse than false positives (reference/danger-signs.md), so a sign counts on any
plausible mention and stands down only for a negation right before it ("没有抽搐"), a past episode
("上次抽过"), or a question about it in general or about the future ("万一噎住了怎么急救",
"高热惊厥是怎么回事") without a word saying that it is happening now.

The message is read as parents write it (reference/colloquial-chinese.md): dialect spellings are
folded to the standard word (呕 → 吐, 弗 → 不, 困觉 → 睡觉), pinyin typos of the danger vocabulary are
read as the word they sound like when they stand where a symptom would (抽处了, 咀唇发紫), and a sign
made of parts (a fall, then vomiting and sleepiness) is found across the whole message, whatever
spaces or clauses lie between its parts, each part keeping its own negation.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import rjieba

from .ages import age_in_message
from .danger import DangerRules, DangerSign, MeasuredSign
from .danger_model import DangerModel, tokens
from .homophones import HomophoneIndex, SoundAlike
from .text import Replacer, clause_spans, clean, han_count, words_re

# In the content's patterns a gap `\S` never crosses a negation: "嘴唇没有发紫" must not match
# "嘴唇\S{0,5}发紫".
_GAP = "[^\\s没不未无弗勿]"
_ABOUT = r"(?:几|多|来|余)?"
_TEMPERATURE = re.compile(
    r"(\d{2}(?:\.\d{1,2})?)\s*度"
    r"|(?:体温|温度|耳温|腋温|肛温|额温|口温|腋下|量了|测了|量的|测的|烧到|烧了|发烧|发热|高烧|低烧|temperature|temp"
    r"|fever|thermometer)\D{0,6}?(\d{2}(?:\.\d{1,2})?)(?!\d)"
    # A number with a decimal in the body-temperature range is a temperature unless a unit says otherwise.
    r"|(?<![\d.])(3[4-9]\.\d|4[0-2]\.\d)(?!\d|\s*(?:斤|公斤|kg|cm|厘米|ml|毫升|克|g\b|%))"
)
_SECONDS = re.compile(r"(\d{1,2})\s*(?:秒|s\b|sec)")
_BREATHS = re.compile(
    r"(?:呼吸|喘气|喘|气)[^，。,]{0,8}?(\d{2,3})\s*" + _ABOUT + r"\s*(?:次|下)"
    r"|(\d{2,3})\s*" + _ABOUT + r"\s*(?:次|下)[^\d，。,]{0,4}(?:呼吸|喘)"
    r"|(?:半分钟|1分钟|每分钟|一分钟|\d{1,2}秒钟?)\D{0,6}?(\d{1,3})(?!\d|度|\.\d|秒)"
    r"|breath\w*\D{0,12}?(\d{2,3}) ?(?:times|breaths|per|/|a min)"
    r"|(\d{2,3}) ?(?:times|breaths) (?:a|per) minute"
)
# "纽扣电池吞下去为啥这么危险": a completion word may stand between a sign and the question about it.
_COMPLETION = re.compile(r"^(?:下去|进去|下来|起来|出来|以后|之后|后|下)")
# The experienced aspect right after a sign ("抽过", "噎住过一次") puts it in the past; 过来/过去/过气
# are other words.
# The learned model was trained on Chinese messages; with fewer Chinese characters than this it has
# nothing to go on and is not asked. Three characters are a reply, not a description: "不知道" (typed
# in answer to a step) read as poisoning, its n-grams being those of "不知道吃了什么". Short signs
# ("抽了", "叫不醒", "噎住了") are the rules' — the danger sets lost nothing at 4.
MODEL_MIN_HAN = 4
_EXPERIENCED = re.compile(r"[^\s过]{0,2}过(?![来去气敏头度])")


@dataclass(frozen=True)
class Finding:
    sign_id: str
    tier: int
    label: str
    article: str | None
    first_aid: str | None = None
    # Found by the learned model where the rules found nothing (for evaluation and the logs).
    by_model: bool = False


@dataclass(frozen=True)
class TriageResult:
    findings: tuple[Finding, ...]
    age_months: float | None
    # The message talks about a symptom or an injury (even one that is not a danger sign now):
    # a reply that cannot answer it still says when to call 120 or go to hospital.
    mentions_symptom: bool = False

    @property
    def urgent(self) -> bool:
        return bool(self.findings)

    @property
    def tier(self) -> int | None:
        return min((f.tier for f in self.findings), default=None)


def temperature_spans(text: str) -> list[tuple[float, int, int]]:
    """Body temperatures (°C, 34–43) stated in a cleaned message ("38.5度", "体温37.6", "fever 38.2"),
    each with where it stands."""
    out = []
    for m in _TEMPERATURE.finditer(text):
        group = next(i for i, g in enumerate(m.groups(), 1) if g)
        t = float(m.group(group))
        if 34 <= t <= 43:
            # The number's own place: in "不是发烧 是体温低 35.1", 35.1 is not what 不是 denies.
            out.append((t, m.start(group), m.end(group)))
    return out


def temperatures(text: str) -> list[float]:
    """The temperatures of `temperature_spans`, without their places."""
    return [t for t, _, _ in temperature_spans(text)]


@dataclass(frozen=True)
class _Part:
    patterns: tuple[re.Pattern[str], ...]
    earlier: bool = False


@dataclass(frozen=True)
class _Sign:
    sign: DangerSign
    any_of: tuple[re.Pattern[str], ...]
    parts: tuple[_Part, ...]
    unless_words: tuple[str, ...]


@dataclass(frozen=True)
class Reading:
    """A message as triage reads it: cleaned and dialect-folded, with sound-alike typos replaced by
    the word they sound like (same length, so positions agree), and its clauses."""

    text: str
    corrected: str
    typos: tuple[SoundAlike, ...]
    clauses: tuple[tuple[int, int], ...]
    # Per clause: True when the story is in the past there ("去年冬天…" until "现在…"/"今天…").
    in_past: tuple[bool, ...]


def _kept(text: str, alike: SoundAlike) -> float:
    """The share of the term's characters a sound-alike window keeps as written."""
    window = text[alike.start:alike.end]
    return sum(a == b for a, b in zip(window, alike.term, strict=False)) / len(alike.term)


class Triage:
    def __init__(self, rules: DangerRules, model: DangerModel | None = None,
                 vocabulary: frozenset[str] = frozenset(), vocabulary_sounds: HomophoneIndex | None = None) -> None:
        """`vocabulary`: words the library uses (食物, 托育, 要紧…); a sound-alike window that is one of
        them, or cuts through one, is a real word and no typo. `vocabulary_sounds` finds those words
        mistyped too (脱育 for 托育), so "脱育点" is no typo of 瘀点 either."""
        self.rules = rules
        self.model = model
        self._unless_res: dict[tuple[str, ...], re.Pattern[str] | None] = {}
        self._vocabulary = vocabulary
        self._vocabulary_sounds = vocabulary_sounds
        self._by_id: dict[str, DangerSign | MeasuredSign] = {s.id: s for s in rules.signs}
        self._by_id.update({rules.fever.id: rules.fever, rules.breathing.id: rules.breathing})
        self._age_limit = {s.id: s.max_age_months for s in rules.signs if s.max_age_months is not None}
        if rules.fever_rules:
            self._age_limit[rules.fever.id] = max(x.under_months for x in rules.fever_rules)
        self._spellings = Replacer({clean(k): clean(v) for k, v in rules.spellings.items() if clean(k)})

        def compile_all(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
            return tuple(re.compile(self._fold(p.replace("\\S", _GAP), pattern=True)) for p in patterns)

        def fold_all(words: tuple[str, ...]) -> tuple[str, ...]:
            """Words of the content read the way messages are: cleaned and dialect-folded."""
            return tuple(self._fold(clean(w)) for w in words if w)

        self._signs = [
            _Sign(s, compile_all(s.patterns), tuple(_Part(compile_all(p.patterns), p.earlier) for p in s.parts),
                  fold_all(s.unless_words))
            for s in rules.signs
        ]
        self._sign_by_id = {s.sign.id: s for s in self._signs}
        self._all_patterns = tuple((s.sign.id, p) for s in self._signs
                                   for p in (*s.any_of, *(q for part in s.parts for q in part.patterns)))
        self._sound_alikes = HomophoneIndex(fold_all(rules.sound_alike_words))
        long_neg = [re.escape(n) for n in fold_all(rules.negations) if len(n) > 1]
        short_neg = [re.escape(n) for n in fold_all(rules.negations) if len(n) == 1]
        # A two-character negation may stand one character off ("没有在抽"); a one-character one must
        # touch the sign, or "特别嗜睡" would read as negated by the 别 of 特别.
        alternatives = []
        if long_neg:
            alternatives.append("(?:" + "|".join(sorted(long_neg, key=len, reverse=True)) + ")\\S?$")
        if short_neg:
            # "没流脓", "没起泡": a one-character negation before the sign's verb.
            verbs = "".join(map(re.escape, fold_all(rules.negated_verbs)))
            alternatives.append("(?:" + "|".join(short_neg) + ")" + (f"[{verbs}]?" if verbs else "") + "$")
        self._negation = re.compile("|".join(alternatives)) if alternatives else None
        self._negation_word = re.compile("|".join(sorted(long_neg + short_neg, key=len, reverse=True)) or "(?!)")
        self._denial_replies = frozenset(fold_all(rules.denial_replies))
        self._past = words_re(fold_all(rules.past_markers))
        self._hypothetical = words_re(fold_all(rules.hypothetical_markers))
        self._present = words_re(fold_all(rules.present_markers))
        self._recent = words_re(fold_all(rules.present_markers + rules.recent_markers))
        self._not_the_child = words_re(fold_all(rules.not_the_child))
        self._general_suffixes = fold_all(rules.general_suffixes)
        self._past_suffixes = fold_all(rules.past_suffixes)
        self._treated = words_re(fold_all(rules.treated_markers))
        self._contrast = fold_all(rules.contrast_words)
        self._harmless = words_re(fold_all(rules.harmless_phrases))
        self._recovered = words_re(fold_all(rules.recovered_markers))
        self._hearsay = words_re(fold_all(rules.hearsay_markers))
        self._others = frozenset(fold_all(rules.other_subjects))
        self._pronouns = frozenset(fold_all(rules.pronouns))
        self._opinion = words_re(fold_all(rules.opinion_markers))
        self._comparison = words_re(fold_all(rules.comparison_words))
        self._subjects = words_re(tuple(self._others) + fold_all(rules.child_subjects))
        self._history = fold_all(rules.history_suffixes)
        self._typo_before = fold_all(rules.sound_alike_before)
        self._typo_after = fold_all(rules.sound_alike_after)
        self._symptoms = words_re(fold_all(rules.symptom_words))
        self._fever_words = words_re(fold_all(rules.fever_words))

    # ------------------------------------------------------------ reading

    def _fold(self, text: str, pattern: bool = False) -> str:
        """Dialect and colloquial spellings as the standard word (also inside the content's patterns,
        so an editor may write either)."""
        if pattern:
            # Only the Chinese runs of a pattern are cleaned and folded ("一块" → "1块"); its syntax
            # and Latin letters are left alone.
            return re.sub(r"[\u4e00-\u9fff]+", lambda m: self._fold(clean(m.group())), text)
        return self._spellings(text)

    def read(self, text: str) -> Reading:
        folded = self._fold(clean(text))
        if self._harmless is not None:
            # "吐口水", "抽血", "抽屉" are never symptoms: blank them, keeping every position.
            folded = self._harmless.sub(lambda m: "＿" * len(m.group()), folded)
        typos = tuple(self._typos(folded))
        corrected = folded
        if typos:
            chars = list(folded)
            for t in typos:
                chars[t.start:t.end] = t.term
            corrected = "".join(chars)
        spans = clause_spans(folded)
        # A time said once holds for the clauses after it until another is said: "去年冬天 喘得很厉害
        # 胸口都凹进去了 住了五天院" is all last winter.
        in_past: list[bool] = []
        past = False
        for a, b in spans:
            # A clause inherits the time of the clauses before it; its own past marker counts only
            # for what follows the marker (checked where a sign is matched).
            in_past.append(past)
            clause = folded[a:b]
            if self._recent and self._recent.search(clause):
                past = False
            elif self._past and self._past.search(clause):
                past = True
        return Reading(folded, corrected, typos, tuple(spans), tuple(in_past))

    def _typos(self, text: str) -> list[SoundAlike]:
        """Sound-alike windows that line up with word boundaries: "就是睡得很晚" is 就是 + 睡, so its
        是睡 is no typo of 嗜睡, while "一直是睡" (一直 + 是 + 睡) may be."""
        found = self._sound_alikes.find(text)
        if not found:
            return []
        bounds = {0}
        pos = 0
        for word in rjieba.cut(text, False):  # dictionary words only: no guessed words for typos
            pos += len(word)
            bounds.add(pos)
        candidates = [t for t in found if t.start in bounds and t.end in bounds]
        if not candidates:
            return []
        # The library's words as a parent may have mistyped them (脱育 for 托育), found only when needed.
        mistyped = self._vocabulary_sounds.find(text) if self._vocabulary_sounds is not None else []
        return [t for t in candidates if not self._real_word(text, t, mistyped)]

    def _real_word(self, text: str, t: SoundAlike, mistyped: list[SoundAlike]) -> bool:
        """The window is a word of the library's, or cuts through one ("托育点" is 托育 + 点, not 瘀点),
        or through one mistyped ("脱育点": 脱育 sounds like 托育)."""
        if text[t.start:t.end] in self._vocabulary:
            return True
        # A mistyped library word across the window's edge wins only when it is the likelier reading:
        # it keeps a larger share of its word's characters ("有脱育" keeps 2 of 有托育's 3, "育点" 1 of
        # 瘀点's 2) — "头汤" for 头上 keeps no more of its word than 汤伤 of 烫伤, so that burn stays.
        kept = _kept(text, t)
        if any(m.start < edge < m.end and _kept(text, m) > kept for m in mistyped for edge in (t.start, t.end)):
            return True
        for edge in (t.start, t.end):
            for i in range(max(0, edge - 3), edge):
                for j in range(edge + 1, min(len(text), edge + 3) + 1):
                    if text[i:j] in self._vocabulary:
                        return True
        return False

    # ------------------------------------------------------------ assessment

    def assess(self, text: str, age_months: float | None = None) -> TriageResult:
        """Danger signs described by `text`; an age stated in the message wins over the profile's."""
        stated = age_in_message(text)
        age = stated if stated is not None else age_months
        reading = self.read(text)
        findings: dict[str, Finding] = {}
        suppressed = False
        if self._not_the_child and self._not_the_child.search(reading.text):
            # "烫到了 不是宝宝 是我…": nothing here is the child's emergency.
            mentions = bool(self._symptoms and self._symptoms.search(reading.corrected))
            return TriageResult((), age, mentions)
        for s in self._signs:
            sign = s.sign
            if age is not None and sign.max_age_months is not None and age >= sign.max_age_months:
                continue
            if age is not None and sign.min_age_months is not None and age < sign.min_age_months:
                continue
            if self._excepted(reading, s.unless_words):
                continue
            lasting = sign.even_if_well
            found = self._found(s.any_of, reading, lasting=lasting) if s.any_of else False
            if not found and s.parts:
                found = all(self._found(p.patterns, reading, earlier=p.earlier, lasting=lasting) for p in s.parts)
            if found:
                findings[sign.id] = Finding(sign.id, sign.tier, sign.label, sign.article, sign.first_aid)
            elif not suppressed and any(p.search(reading.corrected) for p in s.any_of):
                suppressed = True  # mentioned, but negated, past or asked about in general
        rate_fast = self._breathing(reading, age)
        if rate_fast is False:
            # A counted rate below the age's limit outweighs "呼吸有点快": the number is the measure.
            findings.pop(self.rules.breathing_word_sign, None)
        for measured, hit in ((self.rules.fever, self._fever(reading, age)), (self.rules.breathing, rate_fast)):
            if hit:
                findings.setdefault(measured.id, _finding(measured))
        if not findings and self.model is not None:
            # A counted rate or a measured temperature under the age's limit is the measure: the model
            # must not call it fast breathing or a young infant's fever anyway.
            vetoed = set()
            if rate_fast is False:
                vetoed |= {self.rules.breathing.id, self.rules.breathing_word_sign}
            if temperature_spans(reading.text):
                vetoed.add(self.rules.fever.id)
            # "跌下来撞到头 没吐 也不想睡": the parent denied what would make it this sign.
            denials = self._denials(reading)
            vetoed |= {sign_id for sign_id, _, _ in denials}
            finding = self._second_opinion(reading, age, vetoed, denials)
            if finding is not None:
                findings[finding.sign_id] = finding
        ordered = sorted(findings.values(), key=lambda f: f.tier)
        mentions = suppressed or bool(self._symptoms and self._symptoms.search(reading.corrected))
        return TriageResult(tuple(ordered), age, mentions or bool(ordered))

    def _found(self, patterns: tuple[re.Pattern[str], ...], r: Reading, earlier: bool = False,
               lasting: bool = False) -> bool:
        texts = (r.text, r.corrected) if r.typos else (r.text,)
        negated_before = False
        for ci, (start, end) in enumerate(r.clauses):
            # "不是抽筋 是打嗝 肚子一抽一抽的": what follows a denied sign explains it away.
            explained = negated_before and r.text.startswith(self._contrast, start)
            negated_before = False
            for text in texts:
                clause = text[start:end]
                for p in patterns:
                    for m in p.finditer(clause):
                        fits = text is r.text or self._typo_fits(r, start, start + m.start(), start + m.end(), end)
                        if not fits:
                            continue
                        if self._negated(r.text[start:end], m.start()) or self._denied_after(r, ci):
                            negated_before = True
                            continue
                        if not explained and self._counts(r, ci, m.start(), m.end(), earlier, lasting):
                            return True
        return False

    def _excepted(self, r: Reading, words: tuple[str, ...]) -> bool:
        """One of a sign's `unless` words is in the message, and not as a comparison: "像吃过桑葚一样"
        says the lips look as if, not that the child ate mulberries."""
        if words not in self._unless_res:  # compiled once per sign's list, not per message
            self._unless_res[words] = words_re(words)
        pattern = self._unless_res[words]
        if pattern is None:
            return False
        for m in pattern.finditer(r.corrected):
            if not (self._comparison and self._comparison.search(r.text, max(0, m.start() - 4), m.start())):
                return True
        return False

    def _present_in(self, clause: str) -> bool:
        return bool(self._present and self._present.search(clause))

    def _denials(self, r: Reading) -> list[tuple[str, int, int]]:
        """Where the message denies a sign ("没吐", "嘴唇也没发紫"): (sign id, start, end with the negation)."""
        out = []
        for a, b in r.clauses:
            if self._negation is None or not self._negation_word.search(r.text, a, b):
                continue  # no negation word in the clause: nothing can be denied there
            clause = r.corrected[a:b]
            for sign_id, p in self._all_patterns:
                for m in p.finditer(clause):
                    if self._negated(r.text[a:b], m.start()):
                        out.append((sign_id, a + max(0, m.start() - 3), a + m.end()))
        return out

    def model_text(self, r: Reading, denials: list[tuple[str, int, int]] | None = None) -> str:
        """What the learned model reads: the corrected text with what the rules know is not happening
        now blanked out — a denied sign with its negation ("嘴唇也没发紫") and clauses told in the past.
        An n-gram model cannot see that "没发紫" denies 发紫; the rules can."""
        chars = list(r.corrected)
        for ci, (a, b) in enumerate(r.clauses):
            if r.in_past[ci]:
                chars[a:b] = "＿" * (b - a)
            elif self._past and (m := self._past.search(r.text, a, b)) and not self._present_in(r.text[a:b]):
                chars[m.start():b] = "＿" * (b - m.start())  # "上回呛奶面孔都紫了"
        for _, lo, hi in self._denials(r) if denials is None else denials:
            chars[lo:hi] = "＿" * (hi - lo)
        return "".join(chars)

    def _second_opinion(self, r: Reading, age: float | None, vetoed: set[str],
                        denials: list[tuple[str, int, int]]) -> Finding | None:
        """The learned model's finding where the rules found none (danger_model.py), unless the sign it
        names is `vetoed`, is for younger children, or the message is about someone else."""
        assert self.model is not None
        if han_count(r.text) < MODEL_MIN_HAN:
            return None  # it learned from Chinese: "hello thanks" gives it nothing to read
        if self._subjects is not None:
            named = [m.group() for m in self._subjects.finditer(r.text)]
            if named and all(n in self._others for n in named):
                return None  # "家里的仓鼠掉进水盆了": no child in the message
        vec = self.model.vector(tokens(self.model_text(r, denials), age, temperatures(r.text)))
        if not self.model.urgent(vec):
            return None
        sign = self._by_id.get(self.model.sign(vec) or "")
        if sign is None or sign.id in vetoed:
            return None
        if sign.id in self._sign_by_id and self._excepted(r, self._sign_by_id[sign.id].unless_words):
            return None  # "吃了紫薯 嘴巴紫紫的": the sign's own exceptions hold for the model too
        if age is not None and age >= self._age_limit.get(sign.id, math.inf):
            return None  # the sign it names is one of young infants, and this child is older
        return Finding(sign.id, sign.tier, sign.label, sign.article, sign.first_aid, by_model=True)

    def _denied_after(self, r: Reading, ci: int) -> bool:
        """"伊面孔发青? 不是 是灯光照的": the next clause is a bare denial of this one."""
        if ci + 1 >= len(r.clauses):
            return False
        a, b = r.clauses[ci + 1]
        return r.text[a:b] in self._denial_replies

    def _counts(self, r: Reading, ci: int, m_start: int, m_end: int, earlier: bool = False,
                lasting: bool = False) -> bool:
        """Whether a match (not negated) at clause[m_start:m_end] of clause `ci` speaks of the child, now."""
        start, end = r.clauses[ci]
        # Markers are read in the text as written: a correction only ever replaces a symptom's word.
        clause = r.text[start:end]
        if clause.startswith(self._history, m_end):
            return False
        if self._someone_else(r, ci, start + m_start):
            return False  # "外婆嘴唇发紫", "家里的狗抽搐了": not the child
        present = bool(self._present and self._present.search(clause))
        if not earlier and not present:
            if r.in_past[ci] or (self._past and self._past.search(clause[:m_start])):
                return False
            if clause.startswith(self._past_suffixes, m_end) or _EXPERIENCED.match(clause, m_end):
                return False  # "嘴唇发紫过一次", "高热惊厥抽过"
            if self._treated and self._treated.search(r.text, start + m_end):
                return False  # "…吞了磁铁 后来去医院做了胃镜取出来了"
            if not lasting and self._recovered_after(r, start + m_end):
                return False  # "…抽了一次 现在好好的"
        if present:
            return True
        if self._hearsay:
            # "看抖音说宝宝打完疫苗抽搐了", "…叫不醒 和真正的叫不醒有什么区别": the clause or its
            # neighbours tell a story or ask in general.
            lo = r.clauses[max(0, ci - 1)][0]
            hi = r.clauses[min(len(r.clauses) - 1, ci + 1)][1]
            if self._hearsay.search(r.text, lo, hi):
                return False
        if self._hypothetical and self._hypothetical.search(clause[:m_start]):
            return False
        rest = _COMPLETION.sub("", clause[m_end:], count=1)
        return not rest.startswith(self._general_suffixes)

    def _recovered_after(self, r: Reading, pos: int) -> bool:
        """A recovery told after `pos` as a fact; "婆婆说捂一捂出身汗就好了" is an opinion."""
        if self._recovered is None:
            return False
        for m in self._recovered.finditer(r.text, pos):
            clause_start = max((a for a, _ in r.clauses if a <= m.start()), default=0)
            if not (self._opinion and self._opinion.search(r.text, clause_start, m.start())):
                return True
        return False

    def _now_at(self, r: Reading, start: int, end: int) -> bool:
        """Whether a measurement at r.text[start:end] (a temperature, a breathing rate) is the child's,
        now, and not negated: "她五十天的时候发烧到38度 …现在四个月了" is history."""
        for ci, (a, b) in enumerate(r.clauses):
            if a <= start < b:
                clause = r.text[a:b]
                if self._negated(clause, start - a):
                    return False
                return self._counts(r, ci, start - a, min(end, b) - a)
        return False

    def _someone_else(self, r: Reading, ci: int, pos: int) -> bool:
        """The nearest person named before `pos` (in this clause or the one before) is an adult or a
        pet rather than the child. A pronoun (他, 她) stands for the last person named before it:
        in "我老公喝多了 叫他也叫不醒" he is the husband."""
        if self._subjects is None:
            return False
        first = r.clauses[max(0, ci - 1)][0]
        # "爷爷的降糖药": a person followed by 的 owns something; they are not who it happens to.
        named = [m.group() for m in self._subjects.finditer(r.text, 0, pos + 1) if r.text[m.end():m.end() + 1] != "的"]
        near = [m for m in self._subjects.finditer(r.text, first, pos + 1) if r.text[m.end():m.end() + 1] != "的"]
        if not near:
            return False
        last = near[-1].group()
        if last in self._pronouns:
            # A pronoun is the child whenever the message names a child at all ("哥哥喂了伊一块苹果"
            # is the baby); in a message about adults only it is the last adult named.
            nouns = [n for n in named if n not in self._pronouns]
            return bool(nouns) and all(n in self._others for n in nouns)
        return last in self._others

    def _typo_fits(self, r: Reading, clause_start: int, start: int, end: int, clause_end: int) -> bool:
        """A match that needed a sound-alike correction counts only in a symptom's context: the
        pattern reads on beyond the corrected word ("咀唇发紫"), or the word stands as what is
        happening ("抽处了", "一直是睡"), so 抽出时间 or a shop called 嘴纯 do not fire. A window that
        is a real word itself (抽出) must end its clause, bare or with one of the `after` words."""
        for t in r.typos:
            if t.end <= start or t.start >= end or start < t.start or end > t.end:
                continue  # not corrected, or the pattern reads on beyond the correction
            after = r.text[t.end:clause_end]
            before = r.text[clause_start:t.start]
            if rjieba.has_word(r.text[t.start:t.end]):
                if not after or any(after == a for a in self._typo_after):
                    continue
                return False
            if not after or after.startswith(self._typo_after) or before.endswith(self._typo_before):
                continue
            return False
        return True

    def _negated(self, clause: str, start: int) -> bool:
        before = clause[max(0, start - 5):start]
        if before.endswith(("是不是", "是不", "有没有")):
            return False  # "是不是抽搐了" asks whether it is happening: treat it as happening
        return bool(self._negation and self._negation.search(before))

    def _fever(self, r: Reading, age: float | None) -> bool:
        if age is None:
            return False
        rule = next((x for x in self.rules.fever_rules if age < x.under_months), None)
        if rule is None:
            return False
        temps = [(t, a, b) for t, a, b in temperature_spans(r.text) if self._now_at(r, a, b)]
        if any(t >= rule.at_or_above or (rule.below is not None and t < rule.below) for t, _, _ in temps):
            return True
        if temps:
            return False
        # "发烧" without a number: a parent who says fever means a temperature worth acting on.
        return self._fever_words is not None and self._found((self._fever_words,), r)

    def _breathing(self, r: Reading, age: float | None) -> bool | None:
        """Whether the last breathing rate the message counts (per minute) is at or over the age's
        limit; None when it counts none."""
        rules = self.rules.breathing_rules
        if not rules:
            return None
        counts = [m for m in _BREATHS.finditer(r.text) if self._now_at(r, m.start(), m.end())]
        # Parents count again after the child calms down: the last count is the one that stands.
        for m in counts[-1:]:
            rate = int(next(g for g in m.groups() if g))
            seconds = _SECONDS.search(r.text, max(0, m.start() - 10), m.end())
            if "半分钟" in m.group():
                rate *= 2
            elif seconds and 5 <= int(seconds.group(1)) < 60:
                rate = round(rate * 60 / int(seconds.group(1)))  # "15秒数了14下" is 56 a minute
            if age is None:
                # Unknown age: the lowest threshold, since a false alarm is the safer error.
                limit = min(x.per_minute for x in rules)
            else:
                rule = next((x for x in rules if age < x.under_months), None)
                if rule is None:
                    continue
                limit = rule.per_minute
            return rate >= limit
        return None


def _finding(m: MeasuredSign) -> Finding:
    return Finding(m.id, m.tier, m.label, m.article, m.first_aid)
