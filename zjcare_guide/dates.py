"""A calendar date as parents type it in a reply ("2026年3月1号", "二〇二六年三月一日", "3月1号生的",
"去年12月5号", "26.3.1", "2026 3 1", "昨日生个"), read against `today`.

The date may sit among other words ("伊是25年12月5号生个"); exactly one date must be found. Chinese
numerals go through cn2an; unit characters typed by pinyin input as a sound-alike (2026念3月1日) are read
as the unit. A lunar date (农历, 初一, 正月…) is refused rather than guessed: the schedules count from the
solar birth date, and converting needs the parent to confirm.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import unicodedata
import warnings

import cn2an
from dateutil import parser as date_parser
from dateutil.relativedelta import relativedelta
from pypinyin import lazy_pinyin

_UNITS = {"nian": "年", "yue": "月", "ri": "日", "hao": "号"}
_LUNAR = re.compile(r"农历|阴历|旧历|初[一二三四五六七八九十]|正月|腊月|冬月")
_SEP = r"\s*(?:[-/.,，、]|\s)\s*"
_NUM_Y = r"(?<!\d)(\d{4}|\d{2})"
_FULL = re.compile(
    rf"{_NUM_Y}(?:\s*年\s*的?\s*|{_SEP})(\d{{1,2}})(?:\s*月\s*|{_SEP})(\d{{1,2}})(?!\d)\s*[日号]?")
_COMPACT = re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})(?!\d)")
# Not the middle of 01/03/2026 (day-month or month-day: refused as unreadable, not guessed).
_MONTH_DAY = re.compile(r"(?<![\d/.-])(\d{1,2})\s*(?:月\s*|[/.-])(\d{1,2})(?!\d|[/.-]\d)\s*[日号]?")
# The parent is not sure: ask again (the certificate has it) rather than plan from a guess.
_UNSURE = re.compile(r"还是|记不.{0,2}清|不.{0,2}记得|记不得|不确定|忘记|忘了|或者|大概|左右|好像|差不多|可能是")
# An expected date, not a birth: 预产期, 预计, 快生了.
_EXPECTED = re.compile(r"预产期|预计|快要?生|要生了|还没生")
# A solar date given beside a lunar one ("农历3月初3（阳历4月22）"): that one is read.
_SOLAR = re.compile(r"阳历|公历|新历")
_YEAR_WORD = re.compile(r"(今年|去年|前年|明年)")
_DAY_ONLY = re.compile(r"(上个月|上月|这个月|本月)\s*(\d{1,2})\s*[日号]")
_DAY_WORD = {"今天": 0, "今日": 0, "今朝": 0, "昨天": 1, "昨日": 1, "昨夜": 1, "前天": 2, "前日": 2}
_ENGLISH = re.compile(r"\b(jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?\s+\d{1,2}(st|nd|rd|th)?,?"
                      r"\s+\d{4}\b|\b\d{1,2}(st|nd|rd|th)?\s+(jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)"
                      r"[a-z]*\.?,?\s+\d{4}\b", re.I)


class DateError(ValueError):
    """Why a typed date was refused: `reason` is format (no date found), ambiguous (two dates, or the
    parent is unsure), expected (a due date), lunar, impossible (2 月 30 日) — or, from the callers'
    checks, future / too_old."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def normalise(text: str) -> str:
    """Width, traditional 號, Chinese numerals to digits, and sound-alike unit characters."""
    t = unicodedata.normalize("NFKC", text).replace("號", "号").replace("卅", "三十")
    # cn2an warns (and may raise) on a numeral it cannot read, e.g. a lone 百: the text stays as typed.
    with warnings.catch_warnings(), contextlib.suppress(ValueError, KeyError, IndexError):
        warnings.simplefilter("ignore")
        t = cn2an.transform(t, "cn2an")

    def unit(m: re.Match[str]) -> str:
        sound = lazy_pinyin(m.group(2))[0]
        return m.group(1) + _UNITS.get(sound, m.group(2))

    # 2026念3约1好: a Han character right after digits that sounds like a unit is that unit.
    return re.sub(r"(\d\s*)([\u4e00-\u9fff])", unit, t)


def day_words(day: dt.date) -> str:
    """2026年3月1日."""
    return f"{day.year}年{day.month}月{day.day}日"


def parse_date(text: str, today: dt.date) -> dt.date:
    """The one date in `text`, read as described in the module docstring; a date without a year is
    the most recent such day not after `today`. Raises DateError (format, ambiguous, lunar, impossible);
    checking future or too-old dates is the caller's."""
    # Lunar words are looked for before numerals are converted (初一 would become 初1).
    raw = unicodedata.normalize("NFKC", text)
    t = normalise(text)
    if _EXPECTED.search(t):
        raise DateError("expected")
    if (lunar := _LUNAR.search(raw)) is not None:
        solar = _SOLAR.search(t)
        before = normalise(raw[:lunar.start()])
        if solar is not None:
            # "2023年农历3月初3（阳历4月22）": the solar date, with the year given before it.
            solar_year = re.search(r"(?<!\d)(\d{4})\s*年", t[:solar.start()])
            t = (f"{solar_year.group(1)}年" if solar_year else "") + t[solar.end():]
            if _LUNAR.search(t):
                raise DateError("lunar")
        elif _FULL.search(before) or _COMPACT.search(before):
            t = before  # "2026年3月1日 农历正月十三": the solar date comes first
        else:
            raise DateError("lunar")
    found: list[dt.date | None] = []
    spans: list[tuple[int, int]] = []

    def take(m: re.Match[str], day: dt.date | None) -> None:
        if any(m.start() < e and s < m.end() for s, e in spans):
            return  # part of a date already read (the month-day of a full date)
        spans.append(m.span())
        found.append(day)

    for m in _FULL.finditer(t):
        year = int(m.group(1))
        take(m, _date(2000 + year if year < 100 else year, int(m.group(2)), int(m.group(3))))
    for m in _COMPACT.finditer(t):
        take(m, _date(int(m.group(1)), int(m.group(2)), int(m.group(3))))
    for m in _ENGLISH.finditer(t):
        try:
            take(m, date_parser.parse(m.group(0)).date())
        except (ValueError, OverflowError):
            take(m, None)
    for m in _MONTH_DAY.finditer(t):
        month, mday = int(m.group(1)), int(m.group(2))
        word = _YEAR_WORD.search(t[:m.start()])
        if word and m.start() - word.end() <= 1:
            year = today.year - ("今年", "去年", "前年").index(word.group(1)) if word.group(1) != "明年" \
                else today.year + 1
            take(m, _date(year, month, mday))
        else:
            take(m, _recent(month, mday, today))
    for m in _DAY_ONLY.finditer(t):
        base = today - relativedelta(months=1) if m.group(1) in ("上个月", "上月") else today
        take(m, _date(base.year, base.month, int(m.group(2))))
    if not found and len(t.strip()) <= 8 and not re.search(r"[?？吗]", t):
        # 昨日生个, 今朝刚生: a short reply only ("今天能打疫苗吗" is a question, not a date).
        for day_word, back in _DAY_WORD.items():
            if day_word in t:
                found.append(today - dt.timedelta(days=back))
                break
    distinct = set(found)
    if not distinct:
        raise DateError("format")
    if len(distinct) > 1 or _UNSURE.search(t):
        raise DateError("ambiguous")  # two dates, or the parent says they are not sure: ask, never guess
    only = distinct.pop()
    if only is None:
        raise DateError("impossible")
    return only


def _date(year: int, month: int, day: int) -> dt.date | None:
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def _recent(month: int, day: int, today: dt.date) -> dt.date | None:
    """The most recent month/day not after today (2月29日: the last leap year's)."""
    for year in range(today.year, today.year - 8, -1):
        candidate = _date(year, month, day)
        if candidate is not None and candidate <= today:
            return candidate
        if candidate is None and (month, day) != (2, 29):
            return None
    return None


_CLOCK = re.compile(r"(上午|早上|早晨|中午|下午|傍晚|晚上)?\s*(\d{1,2})\s*(?:[:：点时]\s*(\d{1,2}|半)?\s*分?)")
_NEXT_DAY = {"今天": 0, "今日": 0, "明天": 1, "明日": 1, "后天": 2, "昨天": -1, "昨日": -1, "前天": -2}


def parse_appointment(text: str, now: dt.datetime) -> dt.datetime:
    """A future date and time as a doctor types it: "12月5日 14:30", "2026-12-05 9:00", "明天下午3点",
    "12月5号上午10点半". A date without a year is the next such day. Raises DateError: format (no date or
    no time), impossible, or past (not after `now`)."""
    t = normalise(text)
    today = now.date()
    day: dt.date | None = None
    rest = t
    for word, ahead in _NEXT_DAY.items():
        if word in t:
            day = today + dt.timedelta(days=ahead)
            rest = t.replace(word, " ")
            break
    if day is None:
        m = _FULL.search(t) or _COMPACT.search(t)
        if m:
            year = int(m.group(1))
            day = _date(2000 + year if year < 100 else year, int(m.group(2)), int(m.group(3)))
        elif m := _MONTH_DAY.search(t):
            month, mday = int(m.group(1)), int(m.group(2))
            day = _date(today.year, month, mday)
            if day is not None and day < today:
                day = _date(today.year + 1, month, mday)
        else:
            raise DateError("format")
        if day is None:
            raise DateError("impossible")
        rest = t[:m.start()] + " " + t[m.end():]
    clock = _CLOCK.search(rest)
    if clock is None:
        raise DateError("format")
    hour = int(clock.group(2))
    minute = 30 if clock.group(3) == "半" else int(clock.group(3) or 0)
    if clock.group(1) in ("下午", "傍晚", "晚上") and hour < 12:
        hour += 12
    if clock.group(1) == "中午" and hour < 6:
        hour += 12
    if hour > 23 or minute > 59:
        raise DateError("impossible")
    moment = dt.datetime.combine(day, dt.time(hour, minute), now.tzinfo)
    if moment <= now:
        raise DateError("past")
    return moment
