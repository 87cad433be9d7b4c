"""Property-based tests of the date readers (zjcare_guide.dates, children.parse_birth_date and the registry
import's parse_date): every way of writing a date they document gives back the date it was written from,
and any other text gives a documented reason, never another exception."""

from __future__ import annotations

import calendar
import datetime as dt
import re

from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from zjcare_guide.children import BirthDateError, parse_birth_date
from zjcare_guide.clock import TZ
from zjcare_guide.dates import DateError, normalise, parse_appointment, parse_date
from zjcare_guide.registry_import import parse_date as registry_date

from .property_world import hostile_text

SETTINGS = settings(max_examples=200, deadline=None)
TODAY = dt.date(2026, 12, 1)
NOW = dt.datetime(2026, 12, 1, 10, 0, tzinfo=TZ)
DATE_REASONS = {"format", "ambiguous", "expected", "lunar", "impossible"}
BIRTH_REASONS = DATE_REASONS | {"future", "too_old"}
APPOINTMENT_REASONS = {"format", "impossible", "past"}

_CN_DIGIT = "〇一二三四五六七八九"
_FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
# Words around a date, as parents write them; none holds a digit, a date word or an "unsure" word.
_AROUND = st.sampled_from([("", ""), ("宝宝是", "生的"), ("", "出生"), ("生日", ""), ("伊是", "生个"),
                           ("出生日期：", "。"), (" ", " "), ("😀", "")])


def cn_number(n: int) -> str:
    """1–31 as Chinese numerals: 一, 十, 十一, 二十, 二十三, 三十一."""
    tens, ones = divmod(n, 10)
    return ("" if tens == 0 else "十" if tens == 1 else _CN_DIGIT[tens] + "十") + (_CN_DIGIT[ones] if ones else "")


def written(day: dt.date, style: int) -> str:
    """`day` with its year, in one of the ways parents and registries write it."""
    y, m, d = day.year, day.month, day.day
    forms = [f"{y}-{m:02d}-{d:02d}", f"{y}-{m}-{d}", f"{y}/{m}/{d}", f"{y}.{m}.{d}", f"{y} {m} {d}",
             f"{y}年{m}月{d}日", f"{y}年{m}月{d}号", f"{y}年{m:02d}月{d:02d}日", f"{y}{m:02d}{d:02d}",
             f"{y % 100:02d}.{m}.{d}", f"{y % 100:02d}年{m}月{d}号",
             "".join(_CN_DIGIT[int(c)] for c in str(y)) + f"年{cn_number(m)}月{cn_number(d)}日",
             f"{y}年{m}月{d}日".translate(_FULLWIDTH), f"{y}年{m}月{d}號", f"{y} 年 {m} 月 {d} 日",
             # English between spaces: "是March" has no word boundary for the reader to find.
             f" {calendar.month_name[m]} {d}, {y} ", f" {d} {calendar.month_abbr[m]} {y} "]
    return forms[style % len(forms)]


STYLES = st.integers(0, 16)


@SETTINGS
@given(day=st.dates(dt.date(2000, 1, 1), dt.date(2099, 12, 31)), style=STYLES, around=_AROUND)
@example(day=dt.date(2024, 2, 29), style=11, around=("", ""))
def test_a_written_date_reads_back(day: dt.date, style: int, around: tuple[str, str]) -> None:
    text = around[0] + written(day, style) + around[1]
    assert parse_date(text, TODAY) == day, text


@SETTINGS
@given(day=st.dates(TODAY.replace(year=TODAY.year - 6), TODAY), style=STYLES, around=_AROUND)
def test_a_birth_date_within_six_years_is_accepted_and_later_or_earlier_ones_say_why(
        day: dt.date, style: int, around: tuple[str, str]) -> None:
    text = around[0] + written(day, style) + around[1]
    assert parse_birth_date(text, TODAY) == day, text
    ahead = TODAY + dt.timedelta(days=(TODAY - day).days + 1)
    with_reason(lambda: parse_birth_date(around[0] + written(ahead, style) + around[1], TODAY), {"future"})
    if day.year > 2000:
        old = day.replace(year=day.year - 7) if (day.month, day.day) != (2, 29) else dt.date(day.year - 7, 2, 28)
        with_reason(lambda: parse_birth_date(written(old, style), TODAY), {"too_old"})


def with_reason(call: object, reasons: set[str]) -> None:
    assert callable(call)
    try:
        got = call()
    except (DateError, BirthDateError) as exc:
        assert exc.reason in reasons, exc.reason
    else:
        raise AssertionError(f"read as {got}, expected one of {reasons}")


def most_recent(month: int, day: int, today: dt.date) -> dt.date | None:
    for year in range(today.year, today.year - 8, -1):
        try:
            candidate = dt.date(year, month, day)
        except ValueError:
            continue
        if candidate <= today:
            return candidate
    return None


@SETTINGS
@given(today=st.dates(dt.date(2001, 1, 1), dt.date(2090, 12, 31)), month=st.integers(1, 12), mday=st.integers(1, 31),
       form=st.sampled_from(["{m}月{d}日", "{m}月{d}号", "{m}/{d}", "{m}.{d}", "{m}-{d}", "{cm}月{cd}号"]))
@example(today=dt.date(2026, 12, 1), month=2, mday=29, form="{m}月{d}日")
def test_a_day_without_a_year_is_the_most_recent_such_day(today: dt.date, month: int, mday: int, form: str) -> None:
    text = form.format(m=month, d=mday, cm=cn_number(month), cd=cn_number(mday))
    expected = most_recent(month, mday, today)
    if expected is None:
        with_reason(lambda: parse_date(text, today), {"impossible"})
    else:
        assert parse_date(text, today) == expected, text


@SETTINGS
@given(year=st.integers(2000, 2099), month=st.integers(0, 19), mday=st.integers(0, 39), style=st.integers(0, 10))
def test_a_day_that_does_not_exist_is_impossible_not_guessed(year: int, month: int, mday: int, style: int) -> None:
    try:
        dt.date(year, month, mday)
        return  # a real day: read back by the test above
    except ValueError:
        pass
    forms = [f"{year}-{month:02d}-{mday:02d}", f"{year}/{month}/{mday}", f"{year}.{month}.{mday}",
             f"{year}年{month}月{mday}日", f"{year}年{month}月{mday}号", f"{year}{month:02d}{mday:02d}",
             f"{year} {month} {mday}", f"{year}年{month:02d}月{mday:02d}日", f"{year % 100:02d}.{month}.{mday}",
             f"{year}-{month}-{mday}", f"{year}年{month}月{mday}日生"]
    with_reason(lambda: parse_date(forms[style], TODAY), {"impossible"})
    with_reason(lambda: parse_birth_date(forms[style], TODAY), {"impossible"})
    assert registry_date(forms[style]) is None


_DATE_WORDS = re.compile(r"今天|今日|今朝|昨天|昨日|昨夜|前天|前日|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec",
                         re.I)


@SETTINGS
@given(text=hostile_text(2000), today=st.dates(dt.date(2001, 1, 1), dt.date(2090, 12, 31)))
@example(text="\ud800", today=TODAY)
@example(text="百", today=TODAY)
@example(text="二〇二六念三约一好", today=TODAY)
@example(text="9" * 2000, today=TODAY)
def test_any_text_is_a_date_or_a_documented_reason(text: str, today: dt.date) -> None:
    """Nonsense gives a reason from the documented set, never another exception; text with no digit
    and no date word never gives a date; a birth date read is never in the future nor over six years old."""
    try:
        day = parse_date(text, today)
    except DateError as exc:
        assert exc.reason in DATE_REASONS
        event(exc.reason)
    else:
        event("a date")
        assert re.search(r"\d", normalise(text)) or _DATE_WORDS.search(text), text
        assert isinstance(day, dt.date)
    try:
        birth = parse_birth_date(text, today)
    except BirthDateError as exc:
        assert exc.reason in BIRTH_REASONS
    else:
        assert today.replace(year=today.year - 6, day=min(today.day, 28)) <= birth + dt.timedelta(days=3)
        assert birth <= today


def spoken_time(at: dt.datetime, style: int) -> str:
    """The time of day as a doctor types it: 14:30, 14：30, 下午2点半, 上午10点, 中午12点."""
    h, m = at.hour, at.minute
    if style % 3 == 0 or h == 0:
        return f"{h}:{m:02d}"
    if style % 3 == 1:
        return f"{h}：{m:02d}"
    part = "上午" if h < 12 else "中午" if h == 12 else "下午" if h < 18 else "晚上"
    hour = h - 12 if h > 12 else h
    minute = "" if m == 0 else "半" if m == 30 else f"{m}分"
    return f"{part}{hour}点{minute}"


@SETTINGS
@given(minutes=st.integers(1, 364 * 24 * 60), style=st.integers(0, 8), pad=st.sampled_from(["", " ", "  "]))
@example(minutes=5, style=0, pad=" ")
def test_a_written_appointment_reads_back(minutes: int, style: int, pad: str) -> None:
    at = (NOW + dt.timedelta(minutes=minutes)).replace(second=0, microsecond=0)
    day_forms = [f"{at.month}月{at.day}日", f"{at.month}月{at.day}号", f"{at.year}-{at.month:02d}-{at.day:02d}",
                 f"{at.year}年{at.month}月{at.day}日"]
    day = day_forms[style % len(day_forms)]
    if at.date() == NOW.date() + dt.timedelta(days=1) and style % 2:
        day = "明天"
    if day[-1].isdigit():
        pad = pad or " "  # 2026-12-05 9:00, not 2026-12-059:00
    text = f"{day}{pad}{spoken_time(at, style // 3)}"
    assert parse_appointment(text, NOW) == at, text


@SETTINGS
@given(minutes=st.integers(0, 5 * 365 * 24 * 60), style=st.integers(0, 8))
def test_an_appointment_not_after_now_is_past(minutes: int, style: int) -> None:
    at = (NOW - dt.timedelta(minutes=minutes)).replace(second=0, microsecond=0)
    text = f"{at.year}-{at.month:02d}-{at.day:02d} {spoken_time(at, style)}"
    with_reason(lambda: parse_appointment(text, NOW), {"past"})


@SETTINGS
@given(text=hostile_text(2000), hours=st.integers(-10**5, 10**5))
@example(text="明天25点", hours=0)
@example(text="12月5日 9:60", hours=0)
@example(text="2月30日 10点", hours=0)
@example(text="\udfff明天下午3点", hours=0)
def test_any_text_is_an_appointment_after_now_or_a_documented_reason(text: str, hours: int) -> None:
    now = NOW + dt.timedelta(hours=hours)
    try:
        at = parse_appointment(text, now)
    except DateError as exc:
        assert exc.reason in APPOINTMENT_REASONS
        event(exc.reason)
    else:
        event("a time")
        assert at > now and at.tzinfo is not None and 0 <= at.hour <= 23


@SETTINGS
@given(day=st.dates(dt.date(1900, 1, 1), dt.date(2999, 12, 31)), style=st.integers(0, 5))
def test_a_registry_date_reads_back(day: dt.date, style: int) -> None:
    y, m, d = day.year, day.month, day.day
    text = [f"{y}-{m:02d}-{d:02d}", f"{y}/{m}/{d}", f"{y}.{m}.{d}", f"{y}年{m}月{d}日", f" {y}-{m}-{d} ",
            f"{y}年{m:02d}月{d:02d}"][style]
    assert registry_date(text) == day


@SETTINGS
@given(text=hostile_text(200))
def test_any_registry_cell_is_a_date_or_none(text: str) -> None:
    day = registry_date(text)
    assert day is None or (isinstance(day, dt.date) and str(day.year) in text)
