"""Match a parent's question to guidance articles.

Two steps keep the cost flat as the library grows: a shortlist from an inverted index of character
bigrams, words and single characters (weighted by how rare they are across articles), then scoring of
only the shortlisted articles — half a hand-set score (rapidfuzz and term overlap with their titles,
questions and keywords), half the learned ranker's probability (ranker.py) — and a calibrated
confidence that decides between an answer, choices and a fallback. docs/matching.md has the why.
"""

from __future__ import annotations

import copy
import functools
import math
import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace

import rjieba
from rapidfuzz import fuzz, process

from .homophones import HomophoneIndex
from .model import Article
from .ranker import NaiveBayesRanker
from .text import Normaliser

SHORTLIST = 12
# Weight given to a query term no article uses: it counts against confidence (an unknown word is
# usually what the question is really about) but less than the rarest known term.
UNKNOWN_WEIGHT_FACTOR = 0.3
# Single characters carry little meaning in Chinese; they count for this share of their IDF.
UNIGRAM_WEIGHT = 0.5
# Terms used by more than this share of articles (宝, 吃…) do not pick the shortlist unless they carry
# most of the question: walking their long posting lists would make the cost grow with the library.
# They are still scored exactly for the shortlisted articles.
COMMON_SHARE = 0.2
# A word the library does not know that sounds like one it does (幅食 → 辅食, 湿诊 → 湿疹, 拖班 → 托班:
# pinyin input-method slips) is read as that word, at this share of its weight, so that an exact
# spelling still wins.
SOUND_ALIKE_WEIGHT = 0.8
# At most this many articles of a term's posting list are walked to pick the shortlist, so the cost
# of a question does not grow with the library; the rest are scored exactly if shortlisted.
MAX_WALK = 64


@dataclass(frozen=True)
class Weights:
    """How the score (0–100) mixes its parts; tuned on the golden questions (see docs/matching.md)."""

    coverage: float = 45.0  # share of the question's weighted terms the article uses anywhere
    dice: float = 20.0      # weighted overlap with the article's closest single phrase, both ways
    ratio: float = 30.0     # rapidfuzz ratio with the closest phrase
    keyword: float = 10.0   # one of the article's keywords appears verbatim
    off_age: float = 0.9    # factor when a known age is outside the article's age range
    # Share of the final score that is the learned ranker's probability (ranker.py) among the
    # shortlisted articles, × 100; the rest is the hand-set score above.
    learned: float = 0.5


# The figures of a match the confidence model reads, in this order (`confidence_features`).
CONFIDENCE_FEATURES = ("best", "margin", "next_margin", "known", "learned", "hand", "coverage", "ratio", "dice",
                       "keyword", "topic", "fits_age", "words_known", "translated")


@dataclass(frozen=True)
class Confidence:
    """How sure a match is, as two logistic models over `CONFIDENCE_FEATURES`: the chance that the
    best article is right, and that a right one is among the first three. Fitted by
    scripts/tune_matching.py on the development question sets (docs/matching.md has the figures);
    the hand-set cut-offs they replace generalised worse to wording nobody tuned for."""

    answer_coef: tuple[float, ...] = (1.494, 2.708, 0.351, 2.068, 2.595, 0.151, 0.251, 1.215, -2.1, 0.935,
                                      0.54, 1.557, 1.973, -1.446)
    answer_intercept: float = -7.478
    choices_coef: tuple[float, ...] = (1.703, 0.589, 1.338, 2.51, 2.567, 0.629, 1.191, 0.988, -1.409, 0.79,
                                       0.729, 0.75, 2.562, -1.864)
    choices_intercept: float = -7.417
    # Answer outright from this chance that the best article is right…
    answer: float = 0.65
    # …otherwise offer the first few when a right one is among them with at least this chance.
    choices: float = 0.3
    # Choices are the candidates within this many points of the best (at least two).
    choice_window: float = 15.0

    @staticmethod
    def _p(coef: tuple[float, ...], intercept: float, x: tuple[float, ...]) -> float:
        z = intercept + sum(c * v for c, v in zip(coef, x, strict=True))
        return 1.0 / (1.0 + math.exp(-z))

    def of(self, x: tuple[float, ...]) -> tuple[float, float]:
        """(chance the best is right, chance a right one is among the first three)."""
        return (self._p(self.answer_coef, self.answer_intercept, x),
                self._p(self.choices_coef, self.choices_intercept, x))


@dataclass(frozen=True)
class Candidate:
    article: Article
    score: float
    # Whether it shares a word that says what the question is about (not only common words).
    on_topic: bool = True


@dataclass(frozen=True)
class MatchResult:
    """Ranked candidates, best first, and how sure the match is."""

    candidates: tuple[Candidate, ...]
    confident: bool
    known_share: float
    # Chance that the best candidate is right / that a right one is among the first three.
    p_best: float = 0.0
    p_choices: float = 0.0


def words_of(compact: str) -> list[str]:
    """The jieba words of two or more characters."""
    return [w for w in rjieba.cut(compact) if len(w) >= 2]


def terms(compact: str, words: list[str] | None = None) -> set[str]:
    """Character bigrams, jieba words of two or more characters (`words`, when already cut), and
    single Chinese characters (marked with a leading "1", weighted down) so that "抬不起头" still
    meets "抬头"."""
    out = {compact[i:i + 2] for i in range(len(compact) - 1)}
    out.update(words_of(compact) if words is None else words)
    if UNIGRAM_WEIGHT:
        out.update("1" + ch for ch in compact if _is_cjk(ch))
    return out


class Matcher:
    """An index over a fixed set of articles."""

    def __init__(self, articles: Iterable[Article], normaliser: Normaliser,
                 confidence: Confidence | None = None, shortlist: int = SHORTLIST,
                 weights: Weights | None = None) -> None:
        self.normaliser = normaliser
        self.confidence = confidence or Confidence()
        self.weights = weights or Weights()
        self.shortlist = shortlist
        self.articles: list[Article] = list(articles)
        self._phrases: list[list[str]] = []
        self._vocab: list[frozenset[str]] = []
        self._term_phrases: list[dict[str, tuple[int, ...]]] = []
        self._keywords: list[list[str]] = []
        postings: dict[str, list[int]] = defaultdict(list)
        for idx, article in enumerate(self.articles):
            phrases, keywords, pterms = self._index_article(article)
            self._phrases.append(phrases)
            self._keywords.append(keywords)
            self._vocab.append(frozenset().union(*pterms))
            self._term_phrases.append(_by_term(pterms))
            for t in self._vocab[-1]:
                postings[t].append(idx)
        n = max(len(self.articles), 1)
        # Each posting list in impact order: the articles in whose phrases the term is most often
        # first, so that walking only its head (MAX_WALK) finds the articles it matters most to.
        for t, ids in postings.items():
            if len(ids) > MAX_WALK:
                ids.sort(key=functools.partial(self._impact, term=t), reverse=True)
        self._postings = dict(postings)
        self._heads = {t: frozenset(ids[:MAX_WALK]) for t, ids in postings.items() if len(ids) > MAX_WALK}
        self._idf = {t: self._idf_of(len(ids), t) for t, ids in postings.items()}
        self._unknown = math.log((n + 1) / 1.5) * UNKNOWN_WEIGHT_FACTOR
        self._common_df = max(8, int(n * COMMON_SHARE))
        # Keyword → articles, for a question that is only a keyword in Latin letters ("hib").
        by_keyword: dict[str, list[int]] = defaultdict(list)
        for idx, kws in enumerate(self._keywords):
            for k in dict.fromkeys(kws):
                by_keyword[k].append(idx)
        self._by_keyword = dict(by_keyword)
        self._weigh_phrases()
        # The library's words (not the bigrams that straddle two words), whose pinyin is worked out
        # here once; a question pays only for the characters of the words it does not know.
        self._ranker = NaiveBayesRanker((a.id, p) for a, phrases in zip(self.articles, self._phrases, strict=True)
                                        for p in phrases)
        library_words = {w for phrases in self._phrases for p in phrases for w in rjieba.cut(p) if len(w) >= 2}
        self._library_words = frozenset(library_words)
        self._longest_word = max(map(len, library_words), default=2)
        self._sounds = HomophoneIndex([*library_words, *normaliser.known_words()])
        # Shared with triage: a mistyped library word is no danger-sign typo (脱育点 is not 瘀点).
        self.sounds = self._sounds
        # Words that can say what a question is about: the library's words that are not in most of
        # its articles (宝宝, 怎么办 are in everything and say nothing).
        self._topic_words = frozenset(w for w in library_words
                                      if w in self._postings and len(self._postings[w]) <= self._common_df)

    def _impact(self, idx: int, *, term: str) -> float:
        """The share of article `idx`'s phrases that use `term`."""
        text = term[1:] if term.startswith("1") else term
        phrases = self._phrases[idx]
        return sum(text in p for p in phrases) / len(phrases)

    def _idf_of(self, df: int, term: str = "") -> float:
        idf = math.log((len(self.articles) + 1) / (df + 0.5))
        return idf * UNIGRAM_WEIGHT if term.startswith("1") else idf

    def _index_article(self, article: Article) -> tuple[list[str], list[str], list[frozenset[str]]]:
        norm = self.normaliser.compact
        keywords = [norm(k) for k in article.keywords]
        phrases = [p for p in dict.fromkeys([norm(article.title), *map(norm, article.questions), *keywords]) if p]
        # Interned: a term shared by many phrases and articles is stored once.
        return phrases, [k for k in keywords if len(k) >= 2], [frozenset(map(sys.intern, terms(p))) for p in phrases]

    def _weigh_phrases(self) -> None:
        """Each phrase's weight: the IDF of its (multi-character) terms."""
        self._word_weight = []
        for phrases, by_term in zip(self._phrases, self._term_phrases, strict=True):
            weights = [0.0] * len(phrases)
            for t, pis in by_term.items():
                for pi in pis:
                    weights[pi] += self._idf[t]
            self._word_weight.append(weights)

    def without(self, article_id: str, question: str) -> Matcher:
        """A copy whose article `article_id` lacks `question`, for the leave-one-out self-test.

        Only the postings of that article's terms change, so this costs a fraction of a rebuild."""
        idx = next(i for i, a in enumerate(self.articles) if a.id == article_id)
        clone = copy.copy(self)
        article = replace(self.articles[idx], questions=tuple(q for q in self.articles[idx].questions
                                                              if q != question))
        clone.articles = list(self.articles)
        clone.articles[idx] = article
        phrases, keywords, pterms = self._index_article(article)
        clone._phrases = list(self._phrases)
        clone._phrases[idx] = phrases
        clone._keywords = list(self._keywords)
        clone._keywords[idx] = keywords
        clone._vocab = list(self._vocab)
        clone._vocab[idx] = frozenset().union(*pterms)
        clone._term_phrases = list(self._term_phrases)
        clone._term_phrases[idx] = _by_term(pterms)
        clone._postings = dict(self._postings)
        clone._idf = dict(self._idf)
        for t in self._vocab[idx] - clone._vocab[idx]:
            ids = [i for i in clone._postings[t] if i != idx]
            if ids:
                clone._postings[t] = ids
                clone._idf[t] = clone._idf_of(len(ids), t)
            else:
                del clone._postings[t], clone._idf[t]
        clone._weigh_phrases()
        clone._ranker = self._ranker.without(article_id, self.normaliser.compact(question))
        return clone

    def _features(self, q: str, qterms: set[str], total: float, short: list[int],
                  coverage: dict[int, float]) -> list[tuple[int, dict[str, float]]]:
        """Score parts (each 0–1) for the shortlisted articles."""
        out = []
        # Single characters are left out of the phrase overlap: they are in nearly every phrase, and
        # walking them cost more than everything else here while barely moving the ranking.
        words = {t for t in qterms if not t.startswith("1")}
        words_weight = total - sum(self._idf.get(t, 0.0) for t in qterms if t.startswith("1"))
        topic = words & self._topic_words
        learned = self._ranker.posterior(q, [self.articles[i].id for i in short])
        for idx, p in zip(short, learned, strict=True):
            best = process.extractOne(q, self._phrases[idx], scorer=fuzz.ratio)
            ratio = best[1] if best else 0.0
            shared: dict[int, float] = defaultdict(float)
            by_term = self._term_phrases[idx]
            for t in words & self._vocab[idx]:
                w = self._idf[t]
                for pi in by_term[t]:
                    shared[pi] += w
            weights = self._word_weight[idx]
            dice = max((2 * v / (words_weight + weights[pi]) for pi, v in shared.items()), default=0.0)
            out.append((idx, {
                "coverage": coverage[idx] / total,
                "dice": dice,
                "ratio": float(ratio) / 100,
                "keyword": float(any(k in q for k in self._keywords[idx])),
                "topic": float(bool(topic & self._vocab[idx])),
                "learned": p,
            }))
        return out

    def explain(self, text: str) -> tuple[str, float, list[tuple[Article, dict[str, float]]]]:
        """The matching form of `text`, the share of its weight the library knows, and the score
        parts of each shortlisted article (for `match`, tuning and editors' questions)."""
        q = self.normaliser.compact(text)
        if not q or not any(_is_cjk(ch) for ch in q):
            # Digits, Latin letters or emoji alone ("123123", "asdf") are no question, unless they
            # name something an article lists as a keyword ("hib", "ev71").
            hits = self._by_keyword.get(q, []) if q else []
            full = {"coverage": 1.0, "dice": 1.0, "ratio": 1.0, "keyword": 1.0, "topic": 1.0, "learned": 1.0,
                    "words_known": 1.0}
            return q, (1.0 if hits else 0.0), [(self.articles[i], full) for i in hits]
        q, heard = self._correct(q)
        cut = words_of(q)
        qterms = terms(q, cut)
        # The share of the question's words the library uses at all: "车险哪家便宜" is about 车险,
        # which no article mentions, however well 便宜 matches.
        words_known = sum(w in self._idf for w in cut) / len(cut) if cut else 1.0
        total = 0.0
        known = 0.0
        coverage: dict[int, float] = defaultdict(float)
        common: list[tuple[str, float]] = []
        partial: list[tuple[str, float]] = []
        for t in qterms:
            idf = self._idf.get(t)
            if idf is None:
                total += self._unknown * (UNIGRAM_WEIGHT if t.startswith("1") else 1.0)
                continue
            if heard and t in heard:
                idf *= SOUND_ALIKE_WEIGHT
            total += idf
            known += idf
            ids = self._postings[t]
            if len(ids) > self._common_df:
                common.append((t, idf))
                continue
            for idx in ids[:MAX_WALK]:
                coverage[idx] += idf
            if len(ids) > MAX_WALK:
                partial.append((t, idf))
        if sum(idf for _, idf in common) > known / 2:
            # The common terms carry most of the question ("宝宝要打疫苗"): let them pick the
            # shortlist after all, or it would be chosen by the leftovers.
            for t, idf in common:
                for idx in self._postings[t][:MAX_WALK]:
                    coverage[idx] += idf
            partial.extend((t, idf) for t, idf in common if t in self._heads)
            common = []
        if not coverage or total <= 0:
            return q, 0.0, []
        short = sorted(coverage, key=coverage.__getitem__, reverse=True)[: self.shortlist]
        for idx in short:
            # What the walks left out is added exactly, for the shortlisted articles only.
            vocab = self._vocab[idx]
            coverage[idx] += sum(idf for t, idf in common if t in vocab)
            coverage[idx] += sum(idf for t, idf in partial if t in vocab and idx not in self._heads[t])
        features = self._features(q, qterms, total, short, coverage)
        for _, f in features:
            f["words_known"] = words_known
        return q, known / total, [(self.articles[i], f) for i, f in features]

    def mentions_known(self, text: str) -> bool:
        """Whether `text` uses any word the library's phrases use."""
        q = self.normaliser.compact(text)
        return any(w in self._idf for w in words_of(q)) or any(q[i:i + 2] in self._library_words
                                                               for i in range(len(q) - 1))

    def _correct(self, q: str) -> tuple[str, frozenset[str]]:
        """`q` with each unknown window that sounds like a library word replaced by that word, and
        the terms only the replacements brought in (weighted down)."""
        fixes = [f for f in self._sounds.find(q) if q[f.start:f.end] not in self._idf
                 and not self._cuts_a_word(q, f.start, f.end)]
        if not fixes:
            return q, frozenset()
        parts: list[str] = []
        pos = 0
        for f in fixes:
            parts.extend((q[pos:f.start], f.term))
            pos = f.end
        # A variant heard (发惹 → 发热) is then read as its canonical word (发烧), as the articles are.
        fixed = self.normaliser.synonyms("".join(parts) + q[pos:])
        return fixed, frozenset(terms(fixed) - terms(q))

    def _cuts_a_word(self, q: str, start: int, end: int) -> bool:
        """Whether a library word written in `q` overlaps q[start:end] without lying inside it:
        "没有咳嗽" is no typo of 有害 (咳 is also read hāi), nor 自己量 of 计量."""
        for i in range(max(0, start - self._longest_word + 1), end):
            for n in range(2, self._longest_word + 1):
                j = i + n
                if j > len(q):
                    break
                if (i < start < j or i < end < j) and q[i:j] in self._library_words:
                    return True
        return False

    def score(self, features: dict[str, float], article: Article, age_months: float | None) -> float:
        w = self.weights
        hand = (w.coverage * features["coverage"] + w.dice * features["dice"] + w.ratio * features["ratio"]
                + w.keyword * features["keyword"])
        s = (1 - w.learned) * hand + w.learned * 100 * features["learned"]
        if age_months is not None and not article.fits_age(age_months):
            s *= w.off_age
        return round(s, 1)

    def match(self, text: str, age_months: float | None = None, translated: bool = False) -> MatchResult:
        """`translated`: `text` is the Chinese terms of an English message (less sure than a question
        written in Chinese; the confidence model knows it)."""
        _, known_share, explained = self.explain(text)
        ranked = sorted(((self.score(f, a, age_months), a, f) for a, f in explained),
                        key=lambda t: t[0], reverse=True)
        if not ranked:
            return MatchResult((), False, known_share)
        x = confidence_features(ranked, known_share, self.weights, age_months, translated)
        p_best, p_choices = self.confidence.of(x)
        cands = tuple(Candidate(a, score, bool(f["topic"])) for score, a, f in ranked)
        return MatchResult(cands, p_best >= self.confidence.answer, round(known_share, 3),
                           round(p_best, 3), round(p_choices, 3))


def confidence_features(ranked: list[tuple[float, Article, dict[str, float]]], known_share: float,
                        weights: Weights, age_months: float | None, translated: bool = False) -> tuple[float, ...]:
    """`CONFIDENCE_FEATURES` of a ranking ((score, article, score parts), best first): scores as
    shares of 100, the score parts of the best article."""
    best, article, f = ranked[0]
    second = ranked[1][0] if len(ranked) > 1 else 0.0
    third = ranked[2][0] if len(ranked) > 2 else 0.0
    w = weights
    hand = w.coverage * f["coverage"] + w.dice * f["dice"] + w.ratio * f["ratio"] + w.keyword * f["keyword"]
    fits = age_months is None or article.fits_age(age_months)
    return (best / 100, (best - second) / 100, (second - third) / 100, known_share, f["learned"], hand / 100,
            f["coverage"], f["ratio"], f["dice"], f["keyword"], f["topic"], float(fits), f["words_known"],
            float(translated))


def _by_term(pterms: list[frozenset[str]]) -> dict[str, tuple[int, ...]]:
    """Which phrases of an article use each (multi-character) term."""
    out: dict[str, list[int]] = defaultdict(list)
    for pi, pt in enumerate(pterms):
        for t in pt:
            if not t.startswith("1"):
                out[t].append(pi)
    return {t: tuple(v) for t, v in out.items()}  # tuples: half the memory of lists here


def _is_cjk(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf"
