"""A small world for the property-based tests (tests/test_properties_*.py): one SQLite file holding an
actor of every role and two families, copied afresh for each example; a dump of every table to compare
before and after; the checks every reply must pass; and the strategies for hostile text.

Family A (PARENT, child 豆豆) is signed with DOCTOR; family V (VICTIM, child 暗号宝) with OTHER_DOCTOR.
V is nobody's business but its own and OTHER_DOCTOR's: its child's nickname, its visit's place and note
are the markers of a leak. A padding family comes first, so that no id of A equals the same kind of id
of V, and V's child, family and visit ids differ from each other (a handler reading one kind of id as
another is caught).
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hypothesis import strategies as st

from bot.telegram_html import encode_action, tg_len
from zjcare_guide.children import Families
from zjcare_guide.clock import TZ, fixed_clock
from zjcare_guide.content import DEFAULT_CONTENT_DIR
from zjcare_guide.conversation import Conversation
from zjcare_guide.doctors import Doctors
from zjcare_guide.guide import Guide
from zjcare_guide.identity import Actor
from zjcare_guide.institutions import Directory
from zjcare_guide.outbox import Outbox
from zjcare_guide.registry_import import load_demo
from zjcare_guide.reminders import Policy
from zjcare_guide.replies import Action, Command, Press, Reply, Session, Text
from zjcare_guide.store import Store

NOW = dt.datetime(2026, 12, 1, 10, 0, tzinfo=TZ)
GUIDE = Guide.from_dir(DEFAULT_CONTENT_DIR, NOW.date())
BOT = "zjcare_test_bot"

STRANGER = Actor("test", "1", "1")
PARENT = Actor("test", "4242", "4242")
VICTIM = Actor("test", "5353", "5353")
OPERATOR = Actor("test", "77", "77")
DOCTOR = Actor("test", "7001", "7001")
OTHER_DOCTOR = Actor("test", "7002", "7002")
ADMIN = Actor("test", "9001", "9001")
# Families registered around A's, so that none of A's ids equals one of V's (see build_template).
PADDING = (Actor("test", "6161", "6161"), Actor("test", "6262", "6262"))
# Every role, by name; VICTIM and OTHER_DOCTOR are the ones whose data the others must never reach.
ROLES = {"stranger": STRANGER, "parent": PARENT, "operator": OPERATOR, "doctor": DOCTOR, "admin": ADMIN}
ALL_ROLES = {**ROLES, "victim": VICTIM, "other_doctor": OTHER_DOCTOR}

NICK_A = "豆豆"
NICK_V = "暗号宝"
VISIT_PLACE_V = "梧桐秘径七号"
VISIT_NOTE_V = "带上绿色病历本"
# Nothing of family V may appear in a reply to anyone else.
SECRETS = (NICK_V, VISIT_PLACE_V, VISIT_NOTE_V)

# "Short": one message a parent reads without scrolling, and the replies of one event within one
# Telegram message's worth (the longest article renders at about 1,200 characters).
MAX_REPLY = 1500
MAX_TOTAL = 4096
APOLOGY = GUIDE.renderer.render("error").strip()
_HAN = re.compile(r"[\u4e00-\u9fff]")
# What must never reach a parent: a traceback, a Python repr, template syntax left unrendered.
_LEAKS = ("Traceback", "object at 0x", "<class ", "{{", "}}", "{%", "%}", "Error:", "Exception")


@dataclass(frozen=True)
class Ids:
    """The rows of the template world, the same in every copy."""

    family_a: int
    family_v: int
    child_a: int
    child_v: int
    doctor: int
    other_doctor: int
    visit_a: int
    visit_v: int
    institution: int  # DEMO-010, OPERATOR's
    invite: str  # a live invite of DOCTOR's


@dataclass
class World:
    store: Store
    conv: Conversation
    ids: Ids
    path: Path

    def close(self) -> None:
        self.store.db.conn.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)


def conversation(store: Store) -> Conversation:
    return Conversation(GUIDE, clock=fixed_clock(NOW), store=store, admins=frozenset({ADMIN.user_key}),
                        bot_username=BOT)


def register(conv: Conversation, actor: Actor, nickname: str, birth: str) -> None:
    session = Session()
    [start] = conv.handle(Command("child", actor=actor), session)
    first = any(a.kind == "child_consent" for a in start.actions())
    conv.handle(Press(Action("child_consent", value=1) if first else Action("child_add"), actor=actor), session)
    conv.handle(Text(nickname, actor=actor), session)
    conv.handle(Text(birth, actor=actor), session)
    conv.handle(Press(Action("child_sex", "n"), actor=actor), session)
    [summary] = conv.handle(Press(Action("child_preterm", "n"), actor=actor), session)
    assert nickname in summary.text, summary.text


def build_template(path: Path) -> Ids:
    store = Store.open(path)
    directory = Directory(store.db)
    load_demo(directory, DEFAULT_CONTENT_DIR, NOW.date())
    inst = directory.add_operator(OPERATOR.user_key, "DEMO-010", NOW.date())
    conv = conversation(store)
    book = Doctors(store.db)
    doctor = book.add("王医生", "店口镇卫生院", NOW, DOCTOR.user_key)
    other = book.add("陈医生", "枫桥镇卫生院", NOW, OTHER_DOCTOR.user_key)
    register(conv, PADDING[0], "一号", "2026-01-01")
    register(conv, PADDING[0], "二号", "2026-01-02")
    register(conv, PARENT, NICK_A, "2026-03-01")
    register(conv, PADDING[1], "三号", "2026-01-03")
    register(conv, VICTIM, NICK_V, "2025-06-15")
    families = Families(store.db)
    family_a, family_v, padding = (families.get(a.user_key) for a in (PARENT, VICTIM, PADDING[0]))
    assert family_a is not None and family_v is not None and padding is not None
    [child_a], [child_v] = families.children(family_a.id), families.children(family_v.id)
    book.link(family_a.id, doctor.id, NOW)
    book.link(family_v.id, other.id, NOW)
    outbox = Outbox(store.db)
    for days in range(1, 6):
        outbox.add_visit(doctor.id, padding.id, padding.address, NOW + dt.timedelta(days=days), "卫生院", "", NOW,
                         Policy())
    visit_v = outbox.add_visit(other.id, family_v.id, family_v.address, NOW + dt.timedelta(days=5), VISIT_PLACE_V,
                               VISIT_NOTE_V, NOW, Policy())
    visit_a = outbox.add_visit(doctor.id, family_a.id, family_a.address, NOW + dt.timedelta(days=3), "家中", "",
                               NOW, Policy())
    families.record(child_v.id, "hepb-1", child_v.birth, NOW)
    reminders = conv.planner.reminders if conv.planner is not None else None
    assert reminders is not None
    reminders.mute(child_v, "bcg-1", NOW)
    invite = book.invite(doctor.id, NOW)
    ids = {"family_a": family_a.id, "child_a": child_a.id, "visit_a": visit_a.id,
           "family_v": family_v.id, "child_v": child_v.id, "visit_v": visit_v.id}
    assert len(set(ids.values())) == len(ids), ids  # a: 2, 3, 7; v: 4, 5, 6
    store.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.db.conn.close()
    return Ids(family_a.id, family_v.id, child_a.id, child_v.id, doctor.id, other.id, visit_a.id, visit_v.id,
               inst.id, invite)


class Worlds:
    """Fresh copies of one template database, one per example (a write in one example never shows in
    the next)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.template = root / "template.db"
        self.ids = build_template(self.template)
        self.count = 0

    def fresh(self) -> World:
        self.count += 1
        path = self.root / f"w{self.count}.db"
        src = sqlite3.connect(self.template)
        dst = sqlite3.connect(path)
        try:
            src.backup(dst)
        finally:
            src.close()
            dst.close()
        store = Store.open(path)
        return World(store, conversation(store), self.ids, path)


# ---------------------------------------------------------------- the database, before and after


def dump(store: Store) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table (the R*Tree's shadow tables aside), in a stable order."""
    tables = [r[0] for r in store.db.execute(
        "select name from sqlite_master where type = 'table' and name not like 'sqlite_%' "
        "and name not like 'institutions_rtree_%' order by name")]
    return {t: sorted(store.db.execute(f"select * from [{t}]").fetchall(), key=repr) for t in tables}


def changed(before: dict[str, list[tuple[object, ...]]], after: dict[str, list[tuple[object, ...]]]) -> set[str]:
    return {t for t in before.keys() | after.keys() if before.get(t) != after.get(t)}


def family_rows(store: Store, ids: Ids) -> list[tuple[object, ...]]:
    """Everything stored about family V: the rows nobody but V and V's doctor may change."""
    f, c = ids.family_v, ids.child_v
    queries = [("families", "id = ?", f), ("children", "family_id = ?", f), ("records", "child_id = ?", c),
               ("reminders", "family_id = ?", f), ("muted", "child_id = ?", c), ("links", "family_id = ?", f),
               ("visits", "family_id = ?", f), ("outbox", "family_id = ?", f)]
    return [(t, *r) for t, where, v in queries
            for r in sorted(store.db.execute(f"select * from {t} where {where}", [v]).fetchall(), key=repr)]


# ---------------------------------------------------------------- replies


def check_replies(replies: Sequence[Reply], conv: Conversation, *, typed: str = "", echo: int = 0,
                  secrets: Iterable[str] = SECRETS) -> None:
    """Short and friendly: at least one reply; each with Chinese text of at most MAX_REPLY characters
    (Telegram's count; plus `echo` where the step shows back what was `typed`: a push's preview), all
    of them within MAX_TOTAL; no apology for a crash, no traceback, no Python repr or raw template
    (unless the person typed it); text the transport can send (no lone surrogate); every button one
    the router accepts and can encode in 64 bytes; nothing of another family (`secrets`)."""
    assert replies, "no reply at all"
    shown = typed + unicodedata.normalize("NFKC", typed.encode("utf-8", "replace").decode("utf-8"))
    total = 0
    for r in replies:
        text = r.text
        assert text.strip(), f"empty {r.kind} reply"
        assert text.strip() != APOLOGY and APOLOGY not in text, "the crash apology was sent"
        assert _HAN.search(text), f"no Chinese in {text[:200]!r}"
        for leak in _LEAKS:
            assert leak not in text or leak in shown, f"{leak!r} in a reply: {text[:300]!r}"
        text.encode("utf-8")  # a lone surrogate here would make the send fail
        n = tg_len(text)
        assert n <= MAX_REPLY + echo, f"{r.kind} reply of {n} characters: {text[:200]!r}…"
        total += n
        for secret in secrets:
            assert secret not in text or secret in typed, f"another family's {secret!r} shown"
        for row in r.buttons:
            for b in row:
                assert b.label.strip() and b.label.encode("utf-8")
                assert not any(s in b.label for s in secrets)
                encode_action(b.action, conv.router)  # raises for an action the router would refuse
        if r.venue is not None:
            assert r.venue.title.encode("utf-8") and r.venue.address.encode("utf-8")
    assert total <= MAX_TOTAL, f"{total} characters in {len(replies)} replies"


def notice_text(template: str, **context: object) -> str:
    return GUIDE.renderer.render(template, **context)


# ---------------------------------------------------------------- hostile text

# Right-to-left and bidi controls, zero-width and other format characters, C0/C1 controls, BOM.
_SPECIAL = ("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200b\u200c\u200d\u2060\ufeff"
            "\u00ad\x00\x01\x07\x08\x0b\x0c\x1b\x7f\x85\x9f\r\n\t \u3000\u00a0")
LONE_SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
# The alphabet of everything: any code point (lone surrogates included), with the awkward ones and
# Chinese, emoji and digits made likely.
ANY_CHAR = st.one_of(
    st.characters(exclude_categories=()),  # any code point, unpaired surrogates included
    st.sampled_from(_SPECIAL),
    st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),  # Han
    st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF),  # emoji
    st.sampled_from("0123456789年月日号-/.:： 点半上午下午岁个天?？吗"),
    st.characters(min_codepoint=0x0590, max_codepoint=0x06FF),  # Hebrew, Arabic
    LONE_SURROGATES,
)
# Chinese words the flows react to, so generated text reaches their branches and not only the fallback.
WORDS = st.sampled_from(["店口", "暨阳", "取消", "发烧", "抽搐", "宝宝", "疫苗", "2026年3月1日", "3月1日",
                         "明天下午3点", "6-12", "今天", "农历初一", "预产期", "吗", "豆豆", "😀", "\u202e", "\u200b",
                         "\ud800", "13812345678", "身份证330681202603011234"])


def hostile_text(max_size: int = 10_000) -> st.SearchStrategy[str]:
    """Text up to `max_size` code points from ANY_CHAR: short random text, text built of words the
    flows know (so it reaches their branches, not only the fallback), and long text made by repeating
    a random piece up to a random length (generating 10,000 independent characters is slow)."""
    short = st.text(ANY_CHAR, max_size=min(max_size, 60))
    worded = st.lists(st.one_of(WORDS, st.text(ANY_CHAR, max_size=5)), max_size=12).map("".join)
    piece = st.one_of(st.lists(st.one_of(WORDS, st.text(ANY_CHAR, min_size=1, max_size=5)), min_size=1,
                               max_size=12).map("".join), st.text(ANY_CHAR, min_size=1, max_size=40))
    long = st.tuples(piece, st.integers(min_value=1, max_value=max_size)).map(
        lambda t: (t[0] * (t[1] // len(t[0]) + 1))[:t[1]])
    return st.one_of(short, worded, long).map(lambda s: s[:max_size])


def printable(text: str) -> str:
    return "".join(ch for ch in text if unicodedata.category(ch) not in ("Cs", "Cc", "Cf"))
