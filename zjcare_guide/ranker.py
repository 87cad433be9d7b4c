"""A learned second opinion for matching: multinomial naive Bayes over character n-grams.

The hand-set score (matching.py) rewards words a question shares with an article's phrases; it was
tuned on the project's own questions and generalised less well to wording nobody tuned for. This
model learns from the articles' own titles, questions and keywords which character 1–3-grams speak
for which article (TF-IDF weighted, sublinear term frequency, as scikit-learn's TfidfVectorizer with
MultinomialNB, alpha 0.1). It is trained by counting when the library loads — no model file, so an
editor's new question counts at the next reload — and is asked only about the shortlisted articles,
so its cost does not grow with the library. docs/matching.md compares it with the alternatives.
"""

from __future__ import annotations

import copy
import math
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

NGRAMS = (1, 2, 3)
ALPHA = 0.1


def grams(text: str) -> Counter[str]:
    """Character n-grams of `text` (lengths in NGRAMS) with their counts."""
    out: Counter[str] = Counter()
    for n in NGRAMS:
        out.update(text[i:i + n] for i in range(len(text) - n + 1))
    return out


class NaiveBayesRanker:
    """Scores of a question against a given set of classes (article ids)."""

    def __init__(self, examples: Iterable[tuple[str, str]]) -> None:
        """`examples`: (class, text) pairs; texts already in matching form."""
        docs = [(cls, grams(text)) for cls, text in examples if text]
        df: Counter[str] = Counter()
        for _, g in docs:
            df.update(g.keys())
        n = len(docs)
        # Smoothed IDF as scikit-learn computes it: ln((1 + n) / (1 + df)) + 1.
        self._idf = {sys.intern(t): math.log((1 + n) / (1 + d)) + 1.0 for t, d in df.items()}
        counts: dict[str, dict[str, float]] = defaultdict(dict)
        self._totals: dict[str, float] = defaultdict(float)
        for cls, g in docs:
            self._add(counts, cls, self._vector(g), 1.0)
        # Only the log-probabilities are kept, worked out here once per class and n-gram rather
        # than per question (the counts would double the memory; `without` recovers them).
        self._logp = {cls: self._log_probs(cls, c) for cls, c in counts.items()}

    def _log_probs(self, cls: str, counts: dict[str, float]) -> tuple[dict[str, float], float]:
        """(log P(n-gram | cls) for the n-grams seen in `cls`, the same for any other n-gram)."""
        denom = math.log(self._totals[cls] + ALPHA * len(self._idf))
        # Interned: the same n-gram in a thousand articles is one string, not a thousand.
        return ({sys.intern(t): math.log(max(c, 0.0) + ALPHA) - denom for t, c in counts.items()},
                math.log(ALPHA) - denom)

    def _counts_of(self, cls: str) -> dict[str, float]:
        """The TF-IDF mass of each n-gram in `cls`, recovered from its log-probabilities."""
        logp, _ = self._logp[cls]
        denom = math.log(self._totals[cls] + ALPHA * len(self._idf))
        return {t: math.exp(lp + denom) - ALPHA for t, lp in logp.items()}

    def _vector(self, g: Counter[str]) -> dict[str, float]:
        """Sublinear TF × IDF, L2-normalised; n-grams never seen in training are dropped."""
        v = {t: (1.0 + math.log(c)) * self._idf[t] for t, c in g.items() if t in self._idf}
        norm = math.sqrt(sum(x * x for x in v.values())) or 1.0
        return {t: x / norm for t, x in v.items()}

    def _add(self, counts: dict[str, dict[str, float]], cls: str, vec: dict[str, float], sign: float) -> None:
        mine = counts[cls]
        for t, x in vec.items():
            mine[t] = mine.get(t, 0.0) + sign * x
        self._totals[cls] += sign * sum(vec.values())

    def without(self, cls: str, text: str) -> NaiveBayesRanker:
        """A copy that never saw `text` as an example of `cls` (for the leave-one-out self-test;
        the IDF is kept, a negligible difference)."""
        clone = copy.copy(self)
        counts = {cls: self._counts_of(cls)}
        clone._totals = dict(self._totals)
        clone._add(counts, cls, self._vector(grams(text)), -1.0)
        clone._logp = dict(self._logp)
        clone._logp[cls] = clone._log_probs(cls, counts[cls])
        return clone

    def log_scores(self, text: str, classes: Sequence[str]) -> list[float]:
        """Log-likelihood of `text` under each of `classes` (uniform prior); -inf for an unknown class."""
        vec = self._vector(grams(text)).items()
        out = []
        for cls in classes:
            if cls not in self._logp:
                out.append(-math.inf)
                continue
            logp, unseen = self._logp[cls]
            out.append(sum(x * logp.get(t, unseen) for t, x in vec))
        return out

    def posterior(self, text: str, classes: Sequence[str]) -> list[float]:
        """Probabilities (summing to 1) of `classes` for `text`, as if they were the only ones."""
        scores = self.log_scores(text, classes)
        top = max(scores, default=0.0)
        if top == -math.inf:
            return [0.0] * len(scores)
        exps = [math.exp(s - top) for s in scores]
        total = sum(exps)
        return [e / total for e in exps]
