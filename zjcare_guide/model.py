"""The domain's plain data: articles, topics, danger signs, problems."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

TOPICS = ("nutrition", "growth", "vaccination", "safety", "disease", "newborn", "checkup", "childcare")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the content, reported as `path:line: message`."""

    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass(frozen=True)
class Article:
    id: str
    title: str
    topic: str
    questions: tuple[str, ...]
    keywords: tuple[str, ...]
    age_months: tuple[int, int]
    related: tuple[str, ...]
    sources: tuple[str, ...]
    reviewed: dt.date
    body: str
    path: Path = field(compare=False)

    def fits_age(self, months: float) -> bool:
        return self.age_months[0] <= months <= self.age_months[1]


@dataclass(frozen=True)
class Topic:
    id: str
    name: str
    blurb: str


@dataclass(frozen=True)
class DangerSign:
    """One danger sign: regex patterns over cleaned text, optionally limited to an age range."""

    id: str
    tier: int
    label: str
    patterns: tuple[str, ...]
    article: str | None = None
    max_age_months: float | None = None
    min_age_months: float | None = None
    # Words of which one must appear somewhere in the message ("哭不出声" only counts with 卡/噎/呛…).
    with_words: tuple[str, ...] = ()
    # Words that cancel the sign anywhere in the message ("叫他名字没反应" is about hearing).
    unless_words: tuple[str, ...] = ()


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
