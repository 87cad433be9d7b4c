"""Pinyin input-method typos: a word written with characters that sound like a known term.

Parents type on pinyin keyboards or by voice, and the wrong character with the same sound is the
commonest slip (抽处 for 抽搐, 咀唇 for 嘴唇, 踹不上气 for 喘不上气; reference/colloquial-chinese.md).
Zhejiang speakers also merge z/zh, c/ch, s/sh and in/ing, en/eng, so those count as the same sound.
Every reading of a character counts (咀 is both jǔ and zuǐ). A window counts as a typo of a term
only when it keeps at least one of the term's characters and changes no more than half of them, so
two unrelated words that merely sound alike are left alone. Whether a typo is meant as the term is
the caller's decision: this module only finds the candidates.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from pypinyin import Style, lazy_pinyin, pinyin


def fold_syllable(syllable: str) -> str:
    """A syllable as a Zhejiang speaker may say it: no retroflex initials, -ing/-eng as -in/-en."""
    s = syllable.lower().replace("ü", "v")
    if s[:2] in ("zh", "ch", "sh"):
        s = s[0] + s[2:]
    if s.endswith(("ing", "eng")):
        s = s[:-1]
    return s


def _is_han(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf"


@lru_cache(maxsize=20000)
def sounds(ch: str) -> frozenset[str]:
    """Every folded toneless reading of one Chinese character (empty for anything else)."""
    if not _is_han(ch):
        return frozenset()
    readings = pinyin(ch, style=Style.NORMAL, heteronym=True, errors="ignore")
    # A rare character pypinyin has no reading for (䶺) has no sound to compare.
    return frozenset(fold_syllable(s) for s in (readings[0] if readings else ()) if s)


@dataclass(frozen=True)
class SoundAlike:
    """`text[start:end]` sounds like `term` but is written differently."""

    start: int
    end: int
    term: str


class HomophoneIndex:
    """Finds windows of a text that sound like one of `terms` (Chinese words of two or more characters).

    The terms are keyed by their syllables, worked out once here; a text pays only for the readings
    of its own characters, however many terms there are."""

    def __init__(self, terms: Iterable[str]) -> None:
        by_sound: dict[tuple[str, ...], list[str]] = defaultdict(list)
        for term in sorted({t for t in terms if len(t) >= 2 and all(_is_han(c) for c in t)}):
            # The term's own reading in context (嗜睡 = shi shui), not every reading of its characters.
            syllables = tuple(fold_syllable(s) for s in lazy_pinyin(term, style=Style.NORMAL))
            if len(syllables) == len(term):
                by_sound[syllables].append(term)
        self._by_sound = dict(by_sound)
        # Every beginning of a term's syllables: a window's readings are extended only while they
        # can still lead to a term, so heteronyms do not multiply the work.
        self._prefixes = {k[:j] for k in by_sound for j in range(1, len(k) + 1)}

    def find(self, text: str) -> list[SoundAlike]:
        """Sound-alike windows, longest first where they overlap; exact spellings are not reported."""
        found: list[SoundAlike] = []
        readings = [sounds(ch) for ch in text]
        for i in range(len(text)):
            keys: list[tuple[str, ...]] = [()]
            j = i
            while keys and j < len(text):
                keys = [(*k, s) for k in keys for s in readings[j] if (*k, s) in self._prefixes]
                j += 1
                window = text[i:j]
                for key in keys:
                    for term in self._by_sound.get(key, ()):
                        n = len(term)
                        same = sum(a == b for a, b in zip(window, term, strict=True))
                        if window == term or same == 0 or n - same > max(1, n // 2):
                            continue
                        found.append(SoundAlike(i, j, term))
        chosen: list[SoundAlike] = []
        for f in sorted(found, key=lambda f: (-(f.end - f.start), f.start)):
            if all(f.end <= c.start or f.start >= c.end for c in chosen):
                chosen.append(f)
        return sorted(chosen, key=lambda f: f.start)
