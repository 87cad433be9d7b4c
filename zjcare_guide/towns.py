"""Zhuji's 23 township-level units, and finding one from what a parent or a registry file writes.

Source: ../shared/reference/childcare-institutions.md (national statistics codes, 2022; 诸暨市 330681).
"""

from __future__ import annotations

import functools
import itertools
import re
from dataclasses import dataclass, field

from pypinyin import lazy_pinyin
from rapidfuzz import fuzz, process

from .homophones import fold_syllable, sounds

# Zhuji's area as the registry accepts it: (south, north) latitude and (west, east) longitude, WGS-84.
LAT_RANGE = (29.30, 30.05)
LON_RANGE = (119.85, 120.60)


@dataclass(frozen=True)
class Town:
    code: str  # the last three digits of the statistics code, e.g. "104" for 店口镇
    name: str  # full name: 店口镇
    # The name parents say: 店口 for 店口镇, 暨阳 for 暨阳街道, 应店街 for 应店街镇.
    short: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "short", re.sub(r"(街道|镇|乡)$", "", self.name))


TOWNS: tuple[Town, ...] = tuple(Town(code, name) for code, name in (
    ("001", "暨阳街道"), ("002", "浣东街道"), ("003", "陶朱街道"), ("004", "暨南街道"), ("005", "大唐街道"),
    ("102", "应店街镇"), ("103", "次坞镇"), ("104", "店口镇"), ("106", "姚江镇"), ("108", "山下湖镇"),
    ("109", "枫桥镇"), ("110", "赵家镇"), ("111", "马剑镇"), ("112", "五泄镇"), ("115", "牌头镇"),
    ("116", "同山镇"), ("117", "安华镇"), ("119", "璜山镇"), ("120", "陈宅镇"), ("121", "岭北镇"),
    ("122", "浬浦镇"), ("124", "东白湖镇"), ("201", "东和乡"),
))
# Older place names still seen in addresses; they belong to merged units, but the reference does not
# say which, so the service asks the parent to pick the unit instead of guessing.
OLD_NAMES = ("阮市", "江藻", "草塔", "王家井", "街亭", "直埠")
BY_CODE = {t.code: t for t in TOWNS}
BY_NAME = {t.name: t for t in TOWNS}
# Typed pinyin close enough to a town's is that town (diankuo → 店口); below it, no guess.
PINYIN_CUTOFF = 85


def towns_in(text: str) -> set[Town]:
    """Every unit a sentence names, by its name, a homophone of it or its pinyin ("我住陶朱 上班在暨阳")."""
    t = re.sub(r"[\s'·,，。？?！!]", "", text).lower()
    return {town for town in TOWNS if town.short in t} or _sound_alike_towns(t) or _latin_towns(text)


def old_place(text: str) -> str | None:
    """An older place name the text mentions (阮市, 江藻…), which belongs to a merged unit."""
    return next((n for n in OLD_NAMES if n in text), None)


def _sound_alike_towns(text: str) -> set[Town]:
    """Towns written with a homophone in a sentence (风桥 for 枫桥, 大堂 for 大唐, 次物 for 次坞): every
    character sounds like the name's, at least one is the name's own, and no changed one is a
    character too common to be a slip."""
    readings = [sounds(ch) for ch in text]
    found: set[Town] = set()
    for town, syllables in _town_syllables():
        n = len(syllables)
        for i in range(len(text) - n + 1):
            window = text[i:i + n]
            if window == town.short or not all(syllables[k] in readings[i + k] for k in range(n)):
                continue
            kept = [a == b for a, b in zip(window, town.short, strict=True)]
            if any(kept) and not any(c in _NOT_A_TYPO for c, same in zip(window, kept, strict=True) if not same):
                found.add(town)
    return found


def _latin_towns(text: str) -> set[Town]:
    """Towns written in pinyin inside a sentence: "daycare in Diankou", "dian kou tuo ban"."""
    words = re.findall(r"[a-z]+", text.lower())
    aliases = _aliases()
    candidates = [*words, *(a + b for a, b in itertools.pairwise(words))]
    return {aliases[w] for w in candidates if w.isascii() and len(w) >= 4 and w in aliases}


@functools.cache
def _town_syllables() -> list[tuple[Town, tuple[str, ...]]]:
    return [(t, tuple(fold_syllable(s) for s in lazy_pinyin(t.short))) for t in TOWNS]


def in_zhuji(latitude: float, longitude: float) -> bool:
    """Whether a WGS-84 point lies in the box the registry accepts for Zhuji."""
    return LAT_RANGE[0] <= latitude <= LAT_RANGE[1] and LON_RANGE[0] <= longitude <= LON_RANGE[1]


def _pinyin(text: str) -> str:
    return "".join(lazy_pinyin(text)).lower()


@functools.cache
def _aliases() -> dict[str, Town]:
    """Every accepted spelling → town: full and short names, and their toneless pinyin."""
    out: dict[str, Town] = {}
    for t in TOWNS:
        for alias in (t.name, t.short, _pinyin(t.name), _pinyin(t.short)):
            out[alias] = t
    return out


def town_by_name(text: str) -> Town | None:
    """The unit a registry cell names, exactly: 店口镇 or 店口 (not a fuzzy guess: a file is data)."""
    text = text.strip()
    town = BY_NAME.get(text)
    if town is None:
        town = next((t for t in TOWNS if t.short == text), None)
    return town


# Characters so common that a parent writing one did not mistype a town's (找家 is no 赵家).
_NOT_A_TYPO = frozenset("找在是的有家这那个一了和到去住想要我你他她们吗伐呢吧啊")


def find_town(text: str, in_sentence: bool = True) -> Town | None:
    """The unit a parent means: 店口, 店口镇, diankou, "Dian Kou", 店口真 (a homophone typo), or, when
    `in_sentence`, a sentence naming one town ("店口有托育吗", "风桥托育" with 枫桥 mistyped,
    "any daycare in Diankou"). None when nothing or more than one fits.

    Han text is compared by its characters, then by its toneless pinyin; Latin text by pinyin,
    allowing a small typo (rapidfuzz ratio ≥ 85) when it is the whole message."""
    t = re.sub(r"[\s'·,，。？?！!]", "", text).lower()
    if not t:
        return None
    aliases = _aliases()
    if t in aliases:
        return aliases[t]
    if in_sentence:
        named = towns_in(text)
        return named.pop() if len(named) == 1 else None
    if re.search(r"[\u4e00-\u9fff]", t):
        if len(t) > 6:
            return None  # longer than any name (应店街镇, 暨阳街道) with a typo: not a bare town
        t = _pinyin(t)
        if t in aliases:
            return aliases[t]
        return None  # Chinese text that names no town is not guessed at by spelling
    if not re.fullmatch(r"[a-z]{3,}", t):
        return None
    best = process.extractOne(t, [a for a in aliases if a.isascii()], scorer=fuzz.ratio, score_cutoff=PINYIN_CUTOFF)
    return aliases[best[0]] if best else None
