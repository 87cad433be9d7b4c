"""Text normalisation for everyday Chinese parent messages.

Two layers: `clean()` is language-neutral (width, script, case, numerals) and keeps clause punctuation
so triage can see clause boundaries; `Normaliser.compact()` adds the content's synonyms and drops
punctuation and filler so matching compares only what carries meaning.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping

import opencc

# "tw2s" rather than "t2s": it converts by phrase, so the 著 of 噎著了 / 睡著 becomes 着 while 著名 stays.
_T2S = opencc.OpenCC("tw2s")

_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "俩": 2, "三": 3, "四": 4, "五": 5,
           "六": 6, "七": 7, "八": 8, "九": 9}
_NUMERAL = re.compile(r"[零〇一二两俩三四五六七八九十百廿卅]+")
# A numeral only becomes digits when a unit or another number follows it (八个月, 三十九度, 两岁), also
# through an approximation (七十几天, 四十多天, 二十来天), so words such as 一直, 一样, 十分 keep
# their meaning.
_UNIT_AFTER = re.compile(r"(?:几|多|来|余)?(个|岁|周|天|度|点|次|月|年|小时|分钟|毫升|克|斤|颗|块|下|℃|°|\d)")
_CLAUSE_BREAK = re.compile(
    r"[,，。!！?？;；:：、\n\r\t~～…]+|(?<!\d)\.|\.(?!\d)"
    r"|(?<![a-z0-9'])\s+|\s+(?![a-z0-9'])"
    r"|但是|可是|不过|但"
)
_STRIP = re.compile(r"[^\w.]+", re.UNICODE)
# Ages and other numbers say nothing about the topic (the age is used separately, from the message
# or the child's profile); numbers that do name a topic (13价, ev71, 42天) are synonyms by then.
_AGE = re.compile(r"\d+(?:\.\d+)?(?:个多月|个半月|个月|月龄|周岁|岁半|岁|天|周|星期)(?:大|龄)?|\d+(?:\.\d+)?|\.")


def _numeral_value(s: str) -> int | None:
    """Value of a Chinese numeral below 1000, or None for an unusual form."""
    # 廿 = 20 and 卅 = 30 stand for "二十" / "三十" in dates and temperatures (卅八度).
    s = s.replace("廿", "二十").replace("卅", "三十")
    if "百" in s:
        head, _, rest = s.partition("百")
        h = _DIGITS.get(head, 1) if head else 1
        r = _numeral_value(rest.lstrip("零〇")) if rest else 0
        return None if r is None else h * 100 + r
    if "十" in s:
        head, _, tail = s.partition("十")
        if len(head) > 1 or len(tail) > 1:
            return None
        tens = _DIGITS.get(head, 1) if head else 1
        ones = _DIGITS.get(tail, 0) if tail else 0
        return tens * 10 + ones
    if len(s) == 1:
        return _DIGITS.get(s)
    return None


def _convert_numerals(text: str) -> str:
    out: list[str] = []
    pos = 0
    for m in _NUMERAL.finditer(text):
        following = text[m.end():m.end() + 2]
        if m.group().startswith(("零", "〇")) and len(m.group()) > 1:
            # "两个月零十天": 零 joins two amounts; the number is what follows it.
            start = m.start() + 1
            value = _numeral_value(m.group()[1:])
            if value is not None and _UNIT_AFTER.match(following):
                out.append(text[pos:start])
                out.append(str(value))
                pos = m.end()
            continue
        value = _numeral_value(m.group())
        prev = text[m.start() - 1] if m.start() else ""
        # 38度五 / 39点一: a numeral right after 度, or after 点 following a number, is a decimal.
        before_point = text[m.start() - 2:m.start() - 1]
        number_before = before_point.isdigit() or before_point in _DIGITS or before_point == "十"
        after_degree = len(m.group()) == 1 and (prev == "度" or (prev == "点" and number_before))
        if value is None or not (_UNIT_AFTER.match(following) or after_degree):
            continue
        out.append(text[pos:m.start()])
        out.append(str(value))
        pos = m.end()
    out.append(text[pos:])
    return "".join(out)


_INVISIBLE = frozenset({"Cf", "Cs", "Co", "Cn"})


def sanitize(text: str) -> str:
    """Text safe to process and store: lone surrogates (from a terminal that was not UTF-8) become
    U+FFFD, format characters (zero-width space, soft hyphen, BOM: Unicode category Cf) go, and
    other control characters become spaces, so "抽\u200b搐" reads as 抽搐."""
    if not text.isascii():
        # A valid surrogate pair survives the round trip; a lone surrogate becomes U+FFFD.
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    out = []
    for ch in text:
        if ch in "\n\t" or ch.isprintable():
            out.append(ch)
            continue
        category = unicodedata.category(ch)
        if category in _INVISIBLE:
            continue
        out.append(" ")  # Cc, Zl, Zp: a line or field break in disguise
    return "".join(out)


def words_re(words: Iterable[str]) -> re.Pattern[str] | None:
    """One pattern for a list of words, the longest first (None for no words)."""
    ws = sorted(set(words), key=len, reverse=True)
    return re.compile("|".join(map(re.escape, ws))) if ws else None


class Replacer:
    """Rewrites every word of `mapping` to its value, the longest word first."""

    def __init__(self, mapping: Mapping[str, str]) -> None:
        self.mapping = dict(mapping)
        self._re = words_re(self.mapping)

    def __call__(self, text: str) -> str:
        if self._re is None:
            return text
        return self._re.sub(lambda m: self.mapping[m.group()], text)


def han_count(text: str) -> int:
    """How many Chinese characters `text` has."""
    return len(_HAN.findall(text))


_HAN = re.compile(r"[\u4e00-\u9fff]")


class Cleaned(str):
    """Text `clean` has already read. A message is cleaned once and then read by triage, the scope
    check and matching in turn: cleaning it again costs nothing."""

    __slots__ = ()


def clean(text: str) -> str:
    """Width-fold, simplify, lower-case and turn numerals into digits; keeps punctuation.
    Idempotent; a `Cleaned` text is returned as it is."""
    if isinstance(text, Cleaned):
        return text
    t = unicodedata.normalize("NFKC", sanitize(text))
    t = _T2S.convert(t).lower()
    t = t.replace("°c", "度").replace("℃", "度").replace("°", "度")
    t = _convert_numerals(t)
    t = re.sub(r"(\d)\s*度\s*半", r"\1.5度", t)
    t = re.sub(r"(\d)\s*度\s*(\d)(?!\d)", r"\1.\2度", t)
    t = re.sub(r"(\d)\s*点\s*(\d)\s*度", r"\1.\2度", t)
    # "烧到39点1" without 度: a number in the body-temperature range is a temperature, not a time.
    t = re.sub(r"(?<!\d)(3[4-9]|4[0-2])点(\d)(?!\d)", r"\1.\2", t)
    t = re.sub(r"半岁", "6个月", t)
    t = re.sub(r"(\d+)\s*个?\s*半月", lambda m: f"{m.group(1)}.5个月", t)
    return Cleaned(t)


def clause_spans(text: str) -> list[tuple[int, int]]:
    """Where the clauses of a cleaned message lie: split at punctuation, at a space between Chinese
    words (parents separate thoughts with spaces) and at contrast words; a decimal point and a space
    between two Latin words do not split."""
    spans: list[tuple[int, int]] = []
    pos = 0
    for m in _CLAUSE_BREAK.finditer(text):
        if m.start() > pos:
            spans.append((pos, m.start()))
        pos = m.end()
    if pos < len(text):
        spans.append((pos, len(text)))
    return spans


_SENTENCE_END = re.compile(r"(?<=[。！？!?；;\n])|\s+")


def question_part(text: str, limit: int, markers: Iterable[str]) -> str | None:
    """The question in a long message: its sentences that ask something (they contain one of
    `markers`), the last first as parents put the key sentence last, joined while they fit in
    `limit` characters. None when no sentence asks anything or even the last one is too long."""
    sentences = [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]
    asking = [s for s in sentences if any(m in s for m in markers)]
    chosen: list[str] = []
    size = 0
    for s in reversed(asking):
        if size + len(s) + 1 > limit:
            break
        chosen.insert(0, s)
        size += len(s) + 1
    return " ".join(chosen) or None


def strip_punct(text: str) -> str:
    """Drop everything but letters, digits, CJK and decimal points."""
    return _STRIP.sub("", text).replace("_", "")


# "没有抽搐，就是有点低烧": a denied clause followed by one that says what it is instead. The denied
# symptom is not the question, so it is left out of matching (triage reads the whole message).
_DENIAL = re.compile(r"(?:宝宝|孩子|娃|他|她)?(?:也|并|倒|都)?(?:没有|没|不是|无)")
_BREAK_CHARS = ",，。!！?？;；:：、 \n\r\t~～…."
_INSTEAD = re.compile(r"(?:就是|只是|但是|可是|不过|而是|就|但|只)")


def drop_denied(text: str) -> str:
    """A cleaned message without the clauses that deny something when the next clause says what is
    the matter instead ("没有抽搐，就是有点低烧" → "有点低烧"); otherwise unchanged."""
    spans = clause_spans(text)
    # The contrast word may be the clause break itself (但是) or begin the next clause (就是); a run
    # of denials before it goes together ("没有咳嗽 没有流鼻涕 就是发烧").
    drop: list[int] = []
    for i in range(len(spans) - 2, -1, -1):
        a, b = spans[i]
        if not _DENIAL.match(text, a):
            continue
        if _INSTEAD.match(text[b:spans[i + 1][1]].lstrip(_BREAK_CHARS)) or (i + 1) in drop:
            drop.insert(0, i)
    if not drop:
        return text
    out, pos = [], 0
    for i in drop:
        out.append(text[pos:spans[i][0]])
        pos = spans[i][1]
        if i + 1 not in drop:
            # The contrast word goes too: what is left is what the parent asks about.
            rest = text[pos:].lstrip(_BREAK_CHARS)
            m = _INSTEAD.match(rest)
            pos = len(text) - len(rest) + (m.end() if m else 0)
    return "".join(out) + text[pos:]


class Normaliser:
    """Applies the content's synonyms and filler list on top of `clean`."""

    def __init__(self, synonyms: Mapping[str, Iterable[str]], fillers: Iterable[str] = (),
                 spellings: Mapping[str, str] | None = None) -> None:
        """`spellings`: dialect spelling → standard word (content/danger_signs.yaml), read first so
        that 困觉, 汏浴 and 嬉 meet the articles' 睡觉, 洗澡 and 玩."""
        self._spell = Replacer({strip_punct(clean(k)): clean(v) for k, v in (spellings or {}).items()
                                if strip_punct(clean(k))})
        mapping: dict[str, str] = {}
        for canonical, variants in synonyms.items():
            for v in variants:
                key = strip_punct(clean(v))
                if key:
                    mapping[key] = canonical
        # A canonical word maps to itself so that a shorter variant inside it ("咳" in "咳嗽") is not
        # rewritten again.
        for canonical in synonyms:
            mapping.setdefault(strip_punct(clean(canonical)), canonical)
        self._syn = Replacer(mapping)
        self._fill = words_re(clean(f) for f in fillers if f)

    def known_words(self) -> set[str]:
        """Every word the synonym and spelling lists name, variants and standard words alike."""
        spell, syn = self._spell.mapping, self._syn.mapping
        return {*syn, *syn.values(), *spell, *spell.values()}

    def synonyms(self, text: str) -> str:
        """Dialect spellings, then synonyms, read as the standard word."""
        return self._syn(self._spell(text))

    def compact(self, text: str) -> str:
        """The matching form of a message: cleaned, synonym-folded, without punctuation or filler."""
        t = strip_punct(drop_denied(clean(text)))
        t = _AGE.sub("", self.synonyms(t))
        if self._fill is not None:
            # Folding again after the filler is gone turns "打什么针" (→ "打针") into "打疫苗".
            t = self.synonyms(self._fill.sub("", t))
        return t
