"""Build content/danger_model.json, triage's learned second opinion, from training/danger/*.yaml.

    pip install -e ".[train]"
    python scripts/train_danger_model.py            # cross-validate, then train on everything and write
    python scripts/train_danger_model.py --check    # cross-validate only

The corpus was written by helpers who saw only the reference files (never the rules, the articles or
the blind test sets in tests/golden/danger_blind_*.yaml, which must never be added here). Each file is
one writer's set: cross-validation holds out one whole file at a time, so the figures estimate how the
model does on wording from a writer it has not seen. The model escalates only where the rules do not;
the threshold is the one that keeps false alarms of rules + model, on held-out files, within the budget.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import yaml
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from zjcare_guide.content import DEFAULT_CONTENT_DIR, load_library  # noqa: E402
from zjcare_guide.danger_model import FORMAT, corpus_digest, tokens  # noqa: E402
from zjcare_guide.triage import Triage, temperatures  # noqa: E402

CORPUS = ROOT / "training" / "danger"
# The project's own question set (tuned on already, never blind): its questions and look-alikes are
# more examples of what must not be escalated, its danger signs more of what must.
QUESTIONS = ROOT / "tests" / "golden" / "questions.yaml"
OUT = DEFAULT_CONTENT_DIR / "danger_model.json"
# The corpus's sign names (and tier) → the content's sign ids.
SIGN_IDS = {
    "convulsion": "convulsion", "unresponsive": "unresponsive", "cyanosis": "cyanosis",
    "breathing-difficulty": "breathing", "choking": "choking", "shock-or-rash": "shock-rash",
    "head-injury": "head-injury", "fall-or-injury": "serious-injury", "drowning": "drowning",
    "burn/1": "burn-large", "burn/2": "burn", "electric-shock": "electric-shock", "bleeding": "bleeding",
    "battery-magnet": "battery-magnet", "poisoning/1": "poisoning", "poisoning/2": "chemical-eye-skin",
    "young-infant-fever": "fever-young-infant", "unable-to-feed": "unable-to-feed", "lethargic": "lethargic",
    "fast-breathing": "fast-breathing", "dehydration": "dehydration", "newborn-jaundice": "newborn-jaundice",
    "fontanelle": "fontanelle", "umbilical": "umbilical-infection", "belly-vomit": "belly-vomit",
}
MAX_FEATURES = 40000
MIN_DF = 3
TOP_PER_SIGN = 1500
FALSE_ALARM_BUDGET = 0.08


def sign_class(case: dict) -> str:  # type: ignore[type-arg]
    """The sign the sign model learns for an urgent case ("" when the case names none)."""
    if not case.get("sign"):
        return ""
    sign = str(case["sign"])
    return f"{sign}/{case.get('tier')}" if f"{sign}/1" in SIGN_IDS else sign


def corpus_files() -> list[Path]:
    return [*sorted(CORPUS.glob("*.yaml")), QUESTIONS]


def load_corpus() -> tuple[list[dict], str]:  # type: ignore[type-arg]
    """Every case with its file's name as `group`, and the corpus digest."""
    cases = []
    for path in sorted(CORPUS.glob("*.yaml")):
        data = yaml.safe_load(path.read_bytes())
        for label, key in ((1, "urgent"), (0, "not_urgent")):
            for case in data.get(key) or []:
                cases.append({**case, "label": label, "group": path.stem})
    data = yaml.safe_load(QUESTIONS.read_bytes())
    for label, key in ((1, "urgent"), (0, "not_urgent"), (0, "in_scope"), (0, "out_of_scope")):
        for case in data.get(key) or []:
            case = case if isinstance(case, dict) else {"q": case}
            cases.append({"q": case["q"], "age_months": case.get("age_months"), "tier": case.get("tier"),
                          "why": "look-alike" if key == "not_urgent" else "ordinary",
                          "label": label, "group": "questions"})
    return cases, corpus_digest(corpus_files())


def featurise(triage: Triage, cases: list[dict]) -> tuple[list[list[str]], np.ndarray]:  # type: ignore[type-arg]
    """Model tokens for each case, and whether the rules alone escalate it."""
    docs, rules = [], []
    for case in cases:
        q, age = str(case["q"]), case.get("age_months")
        result = triage.assess(q, age)
        reading = triage.read(q)
        docs.append(tokens(triage.model_text(reading), result.age_months, temperatures(reading.text)))
        rules.append(result.urgent)
    return docs, np.array(rules)


def fit(docs: list[list[str]], labels: np.ndarray, classes: list[str], c: float
        ) -> tuple[TfidfVectorizer, LogisticRegression, LogisticRegression]:
    vec = TfidfVectorizer(analyzer=lambda d: d, sublinear_tf=True, min_df=MIN_DF, max_features=MAX_FEATURES)
    x = vec.fit_transform(docs)
    binary = LogisticRegression(C=c, max_iter=2000, class_weight="balanced").fit(x, labels)
    named = (labels == 1) & (np.array(classes) != "")
    signs = LogisticRegression(C=c, max_iter=2000).fit(x[named], np.array(classes)[named])
    return vec, binary, signs


def cross_validate(cases: list[dict], docs: list[list[str]], rules: np.ndarray, c: float,  # type: ignore[type-arg]
                   thresholds: list[float]) -> dict[float, tuple[float, float]]:
    """Leave-one-writer-out: (recall, false alarms) of rules + model, pooled over held-out files."""
    labels = np.array([case["label"] for case in cases])
    classes = [sign_class(case) for case in cases]
    groups = sorted({case["group"] for case in cases})
    probs = np.zeros(len(cases))
    for g in groups:
        held = np.array([case["group"] == g for case in cases])
        vec, binary, _ = fit([d for d, h in zip(docs, held, strict=True) if not h], labels[~held],
                             [k for k, h in zip(classes, held, strict=True) if not h], c)
        probs[held] = binary.predict_proba(vec.transform([d for d, h in zip(docs, held, strict=True) if h]))[:, 1]
    out = {}
    pos, neg = labels == 1, labels == 0
    # The false-alarm budget is spent on look-alikes (negations, past events, general questions, mild
    # cases, other people), the messages that test triage; everyday questions would flatter it.
    lookalike = neg & np.array([case.get("why") != "ordinary" for case in cases])
    print(f"rules alone: recall {rules[pos].mean():.1%}, false alarms {rules[lookalike].mean():.1%} on look-alikes, "
          f"{rules[neg & ~lookalike].mean():.1%} on everyday questions")
    for t in thresholds:
        union = rules | (probs >= t)
        out[t] = (float(union[pos].mean()), float(union[lookalike].mean()))
        per = []
        for g in groups:
            m = np.array([case["group"] == g for case in cases])
            per.append(f"{g} {union[m & pos].mean():.0%}/{union[m & neg].mean():.0%}")
        print(f"  t={t:.2f}: rules+model recall {out[t][0]:.1%}, false alarms {out[t][1]:.1%} on look-alikes, "
              f"{union[neg & ~lookalike].mean():.1%} on everyday questions   " + "  ".join(per))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="cross-validate only; write nothing")
    parser.add_argument("-c", type=float, default=16.0, help="inverse regularisation strength")
    args = parser.parse_args()

    library = load_library(DEFAULT_CONTENT_DIR, dt.date.today())
    triage = Triage(library.danger, None, library.vocabulary())  # the rules alone: the model is being built
    cases, digest = load_corpus()
    print(f"{len(cases)} cases ({sum(c['label'] for c in cases)} urgent) from {CORPUS}")
    docs, rules = featurise(triage, cases)
    thresholds = [0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
    figures = cross_validate(cases, docs, rules, args.c, thresholds)
    within = [t for t in thresholds if figures[t][1] <= FALSE_ALARM_BUDGET]
    threshold = max(within, key=lambda t: figures[t][0]) if within else max(thresholds)
    print(f"chosen threshold {threshold} (false alarms of rules + model within {FALSE_ALARM_BUDGET:.0%})")
    if args.check:
        return

    labels = np.array([case["label"] for case in cases])
    classes = [sign_class(case) for case in cases]
    unknown = sorted({classes[i] for i in np.flatnonzero(labels == 1)} - set(SIGN_IDS) - {""})
    if unknown:
        raise SystemExit(f"corpus signs without a content sign: {unknown}")
    vec, binary, signs = fit(docs, labels, classes, args.c)
    names = vec.get_feature_names_out()
    features = {str(f): [round(float(i), 5), round(float(w), 5)]
                for f, i, w in zip(names, vec.idf_, binary.coef_[0], strict=True)}
    sign_weights: dict[str, dict[str, float]] = {}
    coef = signs.coef_ if len(signs.classes_) > 2 else np.vstack([-signs.coef_[0], signs.coef_[0]])
    for k, row in zip(signs.classes_, coef, strict=True):
        top = np.argsort(-np.abs(row))[:TOP_PER_SIGN]
        sign_weights[str(k)] = {str(names[i]): round(float(row[i]), 4) for i in top if row[i]}
    intercepts = signs.intercept_ if len(signs.classes_) > 2 else np.array([-signs.intercept_[0], signs.intercept_[0]])
    model = {
        "format": FORMAT,
        "built": dt.date.today().isoformat(),
        "corpus_sha256": digest,
        "cases": len(cases),
        "cross_validation": {"threshold": threshold, "recall": round(figures[threshold][0], 4),
                             "false_alarms": round(figures[threshold][1], 4),
                             "method": "leave one writer's file out, rules + model"},
        "threshold": threshold,
        "intercept": round(float(binary.intercept_[0]), 5),
        "features": features,
        "sign_weights": sign_weights,
        "sign_intercepts": {str(k): round(float(i), 4) for k, i in zip(signs.classes_, intercepts, strict=True)},
        "sign_ids": {k: SIGN_IDS[k] for k in map(str, signs.classes_)},
        "sign_counts": dict(Counter(classes[i] for i in np.flatnonzero(labels == 1) if classes[i])),
    }
    OUT.write_text(json.dumps(model, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KiB, {len(features)} features)")


if __name__ == "__main__":
    main()
