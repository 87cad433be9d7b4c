"""A child's age as parents say it, in months.

"2个月宝宝", "七十几天", "1岁3个多月", "两个月零十天", "双满月", "百天还差几天", "出生第九天", "10周",
"6 weeks old" (reference/colloquial-chinese.md). A number of days or weeks is an age only where it
reads as one — after the child or 出生, before 大/的/宝宝, or standing alone — and not where it is a
duration ("发烧3天了", "拉了两天"). With a corrected age for a preterm baby (矫正月龄) the corrected one
counts, the safer for age thresholds that protect young infants.
"""

from __future__ import annotations

import re

from .text import clean

DAYS_PER_MONTH = 30.44
_ABOUT = r"(?:几|多|来|余)?"
_UNDER = ("不到", "没到", "没满", "不满", "未满", "还差", "还不到")
_SUBJECT = ("宝宝", "宝贝", "娃", "孩子", "小孩", "儿子", "女儿", "囡囡", "婴儿", "小人", "毛头", "小家伙",
            "闺女", "孙子", "孙女", "外孙", "他", "她", "伊", "baby", "son", "daughter")
# Before a number: this is how long something has lasted, not how old the child is.
_DURATION_BEFORE = ("烧", "拉", "吐", "咳", "哭", "病", "持续", "连续", "这", "那", "第", "前", "过了", "了", "住院",
                    "打针", "吃药", "喂", "用", "停", "断", "吃", "有", "for", "in")
_AGE_AFTER = ("大", "龄", "的", "个小", "个毛", "宝", "娃", "孩", "小", "毛", "男", "女", "新生", " old", "-old", "old")
_AGE_BEFORE = ("出生", "出生第", "出生后第", "生下来第", "生下来", "生了", "刚生", "今天", "今朝", "现在", "刚好",
               "刚满", "才", "刚", "满", "到今天", "到今朝", "实际", "矫正", "纠正", "已经", "快", "is ", "is about ")
_THEN = ("的时候", "时候", "时", "那会", "那阵", "的那会", "大的时候", "那年")
_DURATION_AFTER = ("前", "后", "以来", "以后", "左右没", "没", "都", "内", "里", "多次", "1次", " ago")

_COMPOSITE = (
    (re.compile(r"(\d+)\s*(?:周岁|岁)\s*(?:零|又)?\s*(\d+(?:\.\d+)?)\s*" + _ABOUT + r"\s*个\s*" + _ABOUT + r"\s*月"),
     12.0, 1.0),
    (re.compile(r"(\d+(?:\.\d+)?)\s*个\s*" + _ABOUT + r"\s*月\s*(?:零|又)?\s*(\d+)\s*" + _ABOUT + r"\s*天"),
     1.0, 1 / DAYS_PER_MONTH),
)
_SINGLE = re.compile(
    r"(\d+(?:\.\d+)?)\s*" + _ABOUT + r"\s*"
    r"(个\s*" + _ABOUT + r"\s*月|月龄|月大|周岁|岁|天|周|个?\s*星期|个?\s*礼拜"
    r"|weeks?|months?|days?|years?|yrs?|mos?(?![a-z]))"
)
_FACTOR = {"月": 1.0, "岁": 12.0, "天": 1 / DAYS_PER_MONTH, "周": 7 / DAYS_PER_MONTH, "星期": 7 / DAYS_PER_MONTH,
           "礼拜": 7 / DAYS_PER_MONTH, "week": 7 / DAYS_PER_MONTH, "month": 1.0, "day": 1 / DAYS_PER_MONTH,
           "year": 12.0, "yr": 12.0, "mo": 1.0}
_NAMED = (("新生儿", 0.5), ("双满月", 2.0), ("百天", 3.0), ("满月", 1.0), ("刚出生", 0.3), ("周岁", 12.0))


def _factor(unit: str) -> float:
    unit = unit.replace(" ", "")
    for key in ("星期", "礼拜", "week", "month", "year", "day", "yr", "mo", "月", "岁", "天", "周"):
        if key in unit:
            return _FACTOR[key]
    raise ValueError(unit)  # pragma: no cover - the regex only admits the units above


def _reads_as_age(t: str, start: int, end: int, unit: str) -> bool:
    """Whether a number of days or weeks (or months) at t[start:end] is the child's age."""
    before, after = t[max(0, start - 10):start], t[end:end + 4]
    if after.startswith(_THEN):
        return False  # "两个月的时候发烧住过院": the age something happened at, not the age now
    if before.endswith(_AGE_BEFORE) or any(before.endswith(s) for s in _SUBJECT) or _under(t, start, end):
        return True
    if after.startswith(_DURATION_AFTER) or before.endswith(_DURATION_BEFORE):
        return False
    if after.startswith(_AGE_AFTER):
        return True
    if "月" in unit or "岁" in unit or "month" in unit or "year" in unit:
        return True  # months and years are mostly ages
    # A number of days or weeks standing alone at the start of a clause: "七十几天 体温38度".
    return start == 0 or t[start - 1] in " ,，。.!！?？;；:：、\n"


def _under(t: str, start: int, end: int) -> bool:
    return t[max(0, start - 3):start].endswith(_UNDER) or t[end:end + 4].lstrip(" 的").startswith(_UNDER)


def ages_in(text: str) -> list[tuple[int, float]]:
    """Every age the message states, as (position in the cleaned text, months), in order."""
    # "半个月大" is half a month; written as a number it reads like any other age.
    t = clean(text).replace("半个月", "0.5个月")
    found: list[tuple[int, float]] = []
    taken: list[tuple[int, int]] = []
    for pattern, f1, f2 in _COMPOSITE:
        for m in pattern.finditer(t):
            found.append((m.start(), float(m.group(1)) * f1 + float(m.group(2)) * f2))
            taken.append((m.start(), m.end()))
    for m in _SINGLE.finditer(t):
        if any(a <= m.start() < b for a, b in taken):
            continue
        unit = m.group(2)
        if not _reads_as_age(t, m.start(), m.end(), unit):
            continue
        months = float(m.group(1)) * _factor(unit)
        if unit.endswith("岁") and t[m.end():m.end() + 1] == "半":
            months += 6
        if _under(t, m.start(), m.end()):
            months *= 0.9  # "不到3个月", "百天还差几天": under the age said
        if 0 <= months <= 216:
            found.append((m.start(), months))
            taken.append((m.start(), m.end()))
    for word, months in _NAMED:
        for m in re.finditer(word, t):
            if any(a <= m.start() < b for a, b in taken):
                continue
            under = _under(t, m.start(), m.end())
            found.append((m.start(), months * 0.9 if under else months))
            taken.append((m.start(), m.end()))
    return sorted(found)


def age_in_message(text: str) -> float | None:
    """The child's age in months when the message states it; the first one said, or the corrected
    age (矫正/纠正) when one is given."""
    ages = ages_in(text)
    if not ages:
        return None
    t = clean(text).replace("半个月", "0.5个月")
    corrected = max(t.find("矫正"), t.find("纠正"))
    if corrected >= 0:
        after = [a for a in ages if a[0] > corrected]
        if after:
            return after[0][1]
    return ages[0][1]
