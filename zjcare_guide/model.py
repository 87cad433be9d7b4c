"""The domain's plain data: articles, topics, problems."""

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
