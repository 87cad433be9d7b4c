"""Fit matching's confidence model (zjcare_guide/matching.py `Confidence`) on the development sets.

    pip install -e ".[train]"
    python scripts/tune_matching.py        # prints cross-validated figures and the Confidence(...) to use
    python scripts/tune_matching.py --self-test   # also fits on the leave-one-out self-test's questions

The development sets are the project's own questions and the blind sets whose first run is already
reported (docs/matching.md). A set written for a final measurement must never be listed here: its
figure would stop being evidence. Cross-validation holds out one fold of questions at a time; the
answer cut-off is the lowest that keeps out-of-scope questions answered within the budget there.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from zjcare_guide.content import DEFAULT_CONTENT_DIR  # noqa: E402
from zjcare_guide.guide import MAX_CHOICES, Guide  # noqa: E402
from zjcare_guide.matching import confidence_features  # noqa: E402

DEV_SETS = [ROOT / "tests" / "golden" / n for n in ("questions.yaml", "questions_blind.yaml",
                                                     "questions_held_out_a.yaml", "questions_held_out_b.yaml",
                                                     "questions_held_out_c.yaml")]
OUT_OF_SCOPE_BUDGET = 0.05
CHOICES_CUT = 0.3


def rows(guide: Guide) -> tuple[list[tuple[tuple[float, ...], bool, bool, bool]], int, int]:
    """(features, best is right, a right one is among the first three, in scope) for every dev
    question that reaches matching; the numbers of in-scope and out-of-scope questions in all."""
    out = []
    totals = {"in_scope": 0, "out_of_scope": 0}
    m = guide.matcher
    for path in DEV_SETS:
        data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
        for group in ("in_scope", "out_of_scope"):
            for case in data.get(group) or []:
                q = str(case["q"] if isinstance(case, dict) else case)
                expect = set(case.get("expect") or []) if isinstance(case, dict) else set()
                totals[group] += 1
                pre = guide.decide(q, case.get("age_months") if isinstance(case, dict) else None)
                if pre.kind in ("urgent", "greeting") or pre.scope in ("adult", "mother"):
                    continue  # decided before matching
                text = guide.from_english(q)
                age = pre.triage.age_months if pre.triage else None
                _, known, explained = m.explain(q if text is None else text)
                ranked = sorted(((m.score(f, a, age), a, f) for a, f in explained), key=lambda t: t[0], reverse=True)
                if not ranked:
                    continue
                ids = [a.id for _, a, _ in ranked[:MAX_CHOICES]]
                out.append((confidence_features(ranked, known, m.weights, age, text is not None), ids[0] in expect,
                            bool(set(ids) & expect), group == "in_scope"))
    return out, totals["in_scope"], totals["out_of_scope"]


def self_test_rows(guide: Guide) -> list[tuple[tuple[float, ...], bool, bool, bool]]:
    """The same rows for the articles' own example questions, each asked with itself left out of
    the index (the leave-one-out self-test): wording the editors wrote, never seen by the index."""
    out = []
    m = guide.matcher
    for article in guide.library.articles.values():
        for question in article.questions:
            triage = guide.triage.assess(question)
            if triage.urgent:
                continue
            without = m.without(article.id, question)
            _, known, explained = without.explain(question)
            ranked = sorted(((without.score(f, a, triage.age_months), a, f) for a, f in explained),
                            key=lambda t: t[0], reverse=True)
            if not ranked:
                continue
            ids = [a.id for _, a, _ in ranked[:MAX_CHOICES]]
            out.append((confidence_features(ranked, known, m.weights, triage.age_months), ids[0] == article.id,
                        article.id in ids, True))
    return out


def main() -> None:
    guide = Guide.from_dir(DEFAULT_CONTENT_DIR, dt.date.today())
    data, n_in, n_out = rows(guide)
    if "--self-test" in sys.argv:
        # Fit on the articles' own questions too: many more in-scope examples of editors' wording.
        extra = self_test_rows(guide)
        data += extra
        n_in += len(extra)
    x = np.array([r[0] for r in data])
    y1 = np.array([r[1] for r in data])
    y3 = np.array([r[2] for r in data])
    inside = np.array([r[3] for r in data])
    p1 = np.zeros(len(data))
    p3 = np.zeros(len(data))
    for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(x, y1):
        p1[test] = LogisticRegression(max_iter=2000).fit(x[train], y1[train]).predict_proba(x[test])[:, 1]
        p3[test] = LogisticRegression(max_iter=2000).fit(x[train], y3[train]).predict_proba(x[test])[:, 1]
    outside = ~inside
    print(f"{n_in} in-scope and {n_out} out-of-scope questions, {len(data)} reach matching")
    chosen = None
    for cut in np.arange(0.3, 0.95, 0.05):
        answered = p1 >= cut
        # Shares of all questions: those decided before matching (urgent, out of scope) count as
        # not answered by an article.
        oos = (answered & outside).sum() / max(n_out, 1)
        right = (answered & y1).sum() / max(n_in, 1)
        within = ((answered & y1) | (~answered & (p3 >= CHOICES_CUT) & y3)).sum() / max(n_in, 1)
        print(f"answer ≥ {cut:.2f}: right {right:.1%}, right within choices {within:.1%}, "
              f"out of scope answered {oos:.1%} (held-out folds)")
        if chosen is None and oos <= OUT_OF_SCOPE_BUDGET:
            chosen = round(float(cut), 2)
    a = LogisticRegression(max_iter=2000).fit(x, y1)
    c = LogisticRegression(max_iter=2000).fit(x, y3)
    print("\nConfidence(")
    print(f"    answer_coef={tuple(round(float(v), 3) for v in a.coef_[0])},")
    print(f"    answer_intercept={round(float(a.intercept_[0]), 3)},")
    print(f"    choices_coef={tuple(round(float(v), 3) for v in c.coef_[0])},")
    print(f"    choices_intercept={round(float(c.intercept_[0]), 3)},")
    print(f"    answer={chosen}, choices={CHOICES_CUT})")


if __name__ == "__main__":
    main()
