"""Match a parent's question to guidance articles.

Two steps keep the cost flat as the library grows: a shortlist from an inverted index of character
bigrams, words and single characters (weighted by how rare they are across articles), then rapidfuzz
scoring of only the shortlisted articles' titles, questions and keywords. docs/matching.md has the why.
"""

from __future__ import annotations

import copy
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace

import rjieba
from rapidfuzz import fuzz, process

from .model import Article
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


@dataclass(frozen=True)
class Weights:
    """How the score (0–100) mixes its parts; tuned on the golden questions (see docs/matching.md)."""

    coverage: float = 45.0  # share of the question's weighted terms the article uses anywhere
    dice: float = 20.0      # weighted overlap with the article's closest single phrase, both ways
    ratio: float = 30.0     # rapidfuzz ratio with the closest phrase
    keyword: float = 10.0   # one of the article's keywords appears verbatim
    off_age: float = 0.9    # factor when a known age is outside the article's age range


@dataclass(frozen=True)
class Thresholds:
    """Score cut-offs (0–100) tuned on tests/golden/questions.yaml; see docs/matching.md."""

    answer: float = 45.0
    margin: float = 3.0
    choice: float = 30.0
    choice_window: float = 15.0
    min_known: float = 0.3


@dataclass(frozen=True)
class Candidate:
    article: Article
    score: float


@dataclass(frozen=True)
class MatchResult:
    """Ranked candidates, best first, and whether the best one is confident."""

    candidates: tuple[Candidate, ...]
    confident: bool
    known_share: float


def terms(compact: str) -> set[str]:
    """Character bigrams, jieba words of two or more characters, and single Chinese characters
    (marked with a leading "1", weighted down) so that "抬不起头" still meets "抬头"."""
    out = {compact[i:i + 2] for i in range(len(compact) - 1)}
    out.update(w for w in rjieba.cut(compact) if len(w) >= 2)
    if UNIGRAM_WEIGHT:
        out.update("1" + ch for ch in compact if _is_cjk(ch))
    return out


class Matcher:
    """An index over a fixed set of articles."""

    def __init__(self, articles: Iterable[Article], normaliser: Normaliser,
                 thresholds: Thresholds | None = None, shortlist: int = SHORTLIST,
                 weights: Weights | None = None) -> None:
        self.normaliser = normaliser
        self.thresholds = thresholds or Thresholds()
        self.weights = weights or Weights()
        self.shortlist = shortlist
        self.articles: list[Article] = list(articles)
        self._phrases: list[list[str]] = []
        self._phrase_terms: list[list[frozenset[str]]] = []
        self._vocab: list[frozenset[str]] = []
        self._term_phrases: list[dict[str, list[int]]] = []
        self._keywords: list[list[str]] = []
        postings: dict[str, list[int]] = defaultdict(list)
        for idx, article in enumerate(self.articles):
            phrases, keywords, pterms = self._index_article(article)
            self._phrases.append(phrases)
            self._keywords.append(keywords)
            self._phrase_terms.append(pterms)
            self._vocab.append(frozenset().union(*pterms))
            self._term_phrases.append(_by_term(pterms))
            for t in self._vocab[-1]:
                postings[t].append(idx)
        n = max(len(self.articles), 1)
        self._postings = dict(postings)
        self._idf = {t: self._idf_of(len(ids), t) for t, ids in postings.items()}
        self._unknown = math.log((n + 1) / 1.5) * UNKNOWN_WEIGHT_FACTOR
        self._common_df = max(8, int(n * COMMON_SHARE))
        self._weigh_phrases()

    def _idf_of(self, df: int, term: str = "") -> float:
        idf = math.log((len(self.articles) + 1) / (df + 0.5))
        return idf * UNIGRAM_WEIGHT if term.startswith("1") else idf

    def _index_article(self, article: Article) -> tuple[list[str], list[str], list[frozenset[str]]]:
        norm = self.normaliser.compact
        keywords = [norm(k) for k in article.keywords]
        phrases = [p for p in dict.fromkeys([norm(article.title), *map(norm, article.questions), *keywords]) if p]
        return phrases, [k for k in keywords if len(k) >= 2], [frozenset(terms(p)) for p in phrases]

    def _weigh_phrases(self) -> None:
        self._word_weight = [[sum(self._idf[t] for t in pt if not t.startswith("1")) for pt in pts]
                             for pts in self._phrase_terms]

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
        clone._phrase_terms = list(self._phrase_terms)
        clone._phrase_terms[idx] = pterms
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
        return clone

    def _features(self, q: str, qterms: set[str], total: float, short: list[int],
                  coverage: dict[int, float]) -> list[tuple[int, dict[str, float]]]:
        """Score parts (each 0–1) for the shortlisted articles."""
        out = []
        # Single characters are left out of the phrase overlap: they are in nearly every phrase, and
        # walking them cost more than everything else here while barely moving the ranking.
        words = {t for t in qterms if not t.startswith("1")}
        words_weight = total - sum(self._idf.get(t, 0.0) for t in qterms if t.startswith("1"))
        for idx in short:
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
            }))
        return out

    def explain(self, text: str) -> tuple[str, float, list[tuple[Article, dict[str, float]]]]:
        """The matching form of `text`, the share of its weight the library knows, and the score
        parts of each shortlisted article (for `match`, tuning and editors' questions)."""
        q = self.normaliser.compact(text)
        if not q or not any(_is_cjk(ch) for ch in q):
            # Digits, Latin letters or emoji alone ("123123", "asdf") are no question, unless they
            # name something an article lists as a keyword ("hib", "ev71").
            hits = [i for i, kws in enumerate(self._keywords) if q and q in kws]
            full = {"coverage": 1.0, "dice": 1.0, "ratio": 1.0, "keyword": 1.0}
            return q, (1.0 if hits else 0.0), [(self.articles[i], full) for i in hits]
        qterms = terms(q)
        total = 0.0
        known = 0.0
        coverage: dict[int, float] = defaultdict(float)
        common: list[tuple[str, float]] = []
        for t in qterms:
            idf = self._idf.get(t)
            if idf is None:
                total += self._unknown * (UNIGRAM_WEIGHT if t.startswith("1") else 1.0)
                continue
            total += idf
            known += idf
            ids = self._postings[t]
            if len(ids) > self._common_df:
                common.append((t, idf))
                continue
            for idx in ids:
                coverage[idx] += idf
        if sum(idf for _, idf in common) > known / 2:
            # The common terms carry most of the question ("宝宝要打疫苗"): let them pick the
            # shortlist after all, or it would be chosen by the leftovers.
            for t, idf in common:
                for idx in self._postings[t]:
                    coverage[idx] += idf
            common = []
        if not coverage or total <= 0:
            return q, 0.0, []
        short = sorted(coverage, key=coverage.__getitem__, reverse=True)[: self.shortlist]
        for idx in short:
            vocab = self._vocab[idx]
            coverage[idx] += sum(idf for t, idf in common if t in vocab)
        return q, known / total, [(self.articles[i], f) for i, f in self._features(q, qterms, total, short, coverage)]

    def score(self, features: dict[str, float], article: Article, age_months: float | None) -> float:
        w = self.weights
        s = (w.coverage * features["coverage"] + w.dice * features["dice"] + w.ratio * features["ratio"]
             + w.keyword * features["keyword"])
        if age_months is not None and not article.fits_age(age_months):
            s *= w.off_age
        return round(s, 1)

    def match(self, text: str, age_months: float | None = None) -> MatchResult:
        _, known_share, explained = self.explain(text)
        scored = sorted((Candidate(a, self.score(f, a, age_months)) for a, f in explained),
                        key=lambda c: c.score, reverse=True)
        if not scored:
            return MatchResult((), False, known_share)
        th = self.thresholds
        best = scored[0].score
        second = scored[1].score if len(scored) > 1 else 0.0
        confident = known_share >= th.min_known and best >= th.answer and best - second >= th.margin
        return MatchResult(tuple(scored), confident, round(known_share, 3))


def _by_term(pterms: list[frozenset[str]]) -> dict[str, list[int]]:
    """Which phrases of an article use each (multi-character) term."""
    out: dict[str, list[int]] = defaultdict(list)
    for pi, pt in enumerate(pterms):
        for t in pt:
            if not t.startswith("1"):
                out[t].append(pi)
    return dict(out)


def _is_cjk(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf"
