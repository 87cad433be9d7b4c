"""Zhuji's 23 township-level units, and finding one from what a parent or a registry file writes.

Source: ../shared/reference/childcare-institutions.md (national statistics codes, 2022; 诸暨市 330681).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from pypinyin import lazy_pinyin
from rapidfuzz import fuzz, process

# Zhuji's area as the registry accepts it: (south, north) latitude and (west, east) longitude, WGS-84.
LAT_RANGE = (29.30, 30.05)
LON_RANGE = (119.85, 120.60)


@dataclass(frozen=True)
class Town:
    code: str  # the last three digits of the statistics code, e.g. "104" for 店口镇
    name: str  # full name: 店口镇

    @property
    def short(self) -> str:
        """The name parents say: 店口 for 店口镇, 暨阳 for 暨阳街道, 应店街 for 应店街镇."""
        return re.sub(r"(街道|镇|乡)$", "", self.name)


TOWNS: tuple[Town, ...] = tuple(Town(code, name) for code, name in (
    ("001", "暨阳街道"), ("002", "浣东街道"), ("003", "陶朱街道"), ("004", "暨南街道"), ("005", "大唐街道"),
    ("102", "应店街镇"), ("103", "次坞镇"), ("104", "店口镇"), ("106", "姚江镇"), ("108", "山下湖镇"),
    ("109", "枫桥镇"), ("110", "赵家镇"), ("111", "马剑镇"), ("112", "五泄镇"), ("115", "牌头镇"),
    ("116", "同山镇"), ("117", "安华镇"), ("119", "璜山镇"), ("120", "陈宅镇"), ("121", "岭北镇"),
    ("122", "浬浦镇"), ("124", "东白湖镇"), ("201", "东和乡"),
))
BY_CODE = {t.code: t for t in TOWNS}
BY_NAME = {t.name: t for t in TOWNS}
# Typed pinyin close enough to a town's is that town (diankuo → 店口); below it, no guess.
PINYIN_CUTOFF = 85


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


def find_town(text: str, in_sentence: bool = True) -> Town | None:
    """The unit a parent means: 店口, 店口镇, diankou, "Dian Kou", 店口真 (a homophone typo), or, when
    `in_sentence`, a sentence naming one town ("店口有托育吗"). None when nothing or more than one fits.

    Han text is compared by its characters, then by its toneless pinyin; Latin text by pinyin,
    allowing a small typo (rapidfuzz ratio ≥ 85)."""
    t = re.sub(r"[\s'·,，。？?！!]", "", text).lower()
    if not t:
        return None
    aliases = _aliases()
    if t in aliases:
        return aliases[t]
    if re.search(r"[\u4e00-\u9fff]", t):
        named = {town for town in TOWNS if town.short in t} if in_sentence else set()
        if len(named) == 1:
            return named.pop()
        if len(named) > 1:
            return None
        t = _pinyin(t)
        if t in aliases:
            return aliases[t]
        return None  # Chinese text that names no town is not guessed at by spelling
    if not re.fullmatch(r"[a-z]{3,}", t):
        return None
    best = process.extractOne(t, [a for a in aliases if a.isascii()], scorer=fuzz.ratio, score_cutoff=PINYIN_CUTOFF)
    return aliases[best[0]] if best else None
