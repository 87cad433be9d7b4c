"""A learned second opinion for triage: character n-grams and a linear model.

The rules in `danger_signs.yaml` are precise but only know the wording someone wrote down; parents
find new wording every day (reference/colloquial-chinese.md). This model was trained on a corpus of
colloquial danger-sign messages and look-alikes (training/danger/, written by people other than the
authors of the blind test sets) and escalates when the rules do not. It reads the same text as the
rules — cleaned, dialect-folded, sound-alike typos corrected, harmless phrases blanked — as TF-IDF
weighted character 1–3-grams plus a few tokens for the child's age and a measured temperature, and
scores it with logistic regression. A second, multinomial model names the most likely sign, which
chooses the tier and the first aid.

Inference is plain Python over a JSON file (`content/danger_model.json`) built by
`scripts/train_danger_model.py`; no numeric library is needed at run time.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .model import Problem

FORMAT = 1
NGRAMS = (1, 2, 3)


def age_token(age_months: float | None) -> str:
    """The age band a model sees: the bands the danger signs use (2 and 3 months, 1 year)."""
    if age_months is None:
        return "#age?"
    for limit in (1, 2, 3, 12, 36):
        if age_months < limit:
            return f"#age<{limit}"
    return "#age>=36"


def temperature_tokens(temperatures: list[float]) -> list[str]:
    """Tokens for the temperatures a message states (°C)."""
    out = []
    for t in temperatures:
        if t >= 39:
            out.append("#t>=39")
        if t >= 38:
            out.append("#t>=38")
        elif t >= 37.5:
            out.append("#t>=37.5")
        if t < 35.5:
            out.append("#t<35.5")
    return out


def tokens(text: str, age_months: float | None, temperatures: list[float]) -> list[str]:
    """The features of one message: character n-grams of `text` (triage's reading of it, spaces
    collapsed to one boundary mark), its age band and its temperature tokens."""
    t = " ".join(text.replace("＿", " ").split())
    t = f" {t} "
    out: list[str] = []
    for n in NGRAMS:
        out.extend(t[i:i + n] for i in range(len(t) - n + 1) if not t[i:i + n].isspace())
    out.append(age_token(age_months))
    out.extend(temperature_tokens(temperatures))
    return out


@dataclass(frozen=True)
class DangerModel:
    """Logistic regression over TF-IDF features (sublinear tf, L2-normalised), as trained."""

    idf: dict[str, float]
    weights: dict[str, float]
    intercept: float
    threshold: float
    sign_weights: dict[str, dict[str, float]]
    sign_intercepts: dict[str, float]
    # The model's sign names (those of the training corpus) → the content's sign ids.
    sign_ids: dict[str, str]
    corpus_sha256: str

    def vector(self, toks: list[str]) -> dict[str, float]:
        counts = Counter(t for t in toks if t in self.idf)
        vec = {t: (1.0 + math.log(c)) * self.idf[t] for t, c in counts.items()}
        norm = math.sqrt(sum(v * v for v in vec.values()))
        return {t: v / norm for t, v in vec.items()} if norm else {}

    def probability(self, vec: dict[str, float]) -> float:
        """The probability that the message describes a danger sign now (0–1)."""
        z = self.intercept + sum(v * self.weights.get(t, 0.0) for t, v in vec.items())
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def urgent(self, vec: dict[str, float]) -> bool:
        return self.probability(vec) >= self.threshold

    def sign(self, vec: dict[str, float]) -> str | None:
        """The content's id of the most likely sign, or None when the model knows no signs."""
        best: tuple[float, str] | None = None
        for name, weights in self.sign_weights.items():
            z = self.sign_intercepts.get(name, 0.0) + sum(v * weights.get(t, 0.0) for t, v in vec.items())
            if best is None or z > best[0]:
                best = (z, name)
        return self.sign_ids.get(best[1]) if best else None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DangerModel:
        features = data["features"]
        return cls(
            idf={f: float(v[0]) for f, v in features.items()},
            weights={f: float(v[1]) for f, v in features.items() if v[1]},
            intercept=float(data["intercept"]),
            threshold=float(data["threshold"]),
            sign_weights={k: {f: float(w) for f, w in v.items()} for k, v in data["sign_weights"].items()},
            sign_intercepts={k: float(v) for k, v in data["sign_intercepts"].items()},
            sign_ids=dict(data["sign_ids"]),
            corpus_sha256=str(data.get("corpus_sha256", "")),
        )


def corpus_digest(files: Iterable[Path]) -> str:
    """SHA-256 over the training files (name and bytes, in the order given): the shipped model
    records it, so a test notices a corpus changed without the model being rebuilt."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def load_danger_model(path: Path, sign_ids: set[str], problems: list[Problem]) -> DangerModel | None:
    """The model at `path` (None without a file: triage then runs on its rules alone).

    A file that cannot be read, is of another format, or maps to a sign the content does not have
    is a content problem."""
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
        if data.get("format") != FORMAT:
            problems.append(Problem(path, 1, f"danger model format {data.get('format')!r}, expected {FORMAT}: "
                                             "rebuild it with scripts/train_danger_model.py"))
            return None
        model = DangerModel.from_json(data)
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        problems.append(Problem(path, 1, f"cannot read the danger model: {exc}"))
        return None
    unknown = sorted(set(model.sign_ids.values()) - sign_ids)
    if unknown:
        problems.append(Problem(path, 1, f"danger model names signs that danger_signs.yaml does not have: "
                                         f"{', '.join(unknown)}"))
        return None
    if not 0 < model.threshold < 1:
        problems.append(Problem(path, 1, f"danger model threshold {model.threshold} is not between 0 and 1"))
        return None
    return model
