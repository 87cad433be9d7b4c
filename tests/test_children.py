"""我的孩子: consent, the guided steps, birth dates as parents type them, and a family's own children only."""

from __future__ import annotations

import datetime as dt

import pytest

from zjcare_guide.children import BirthDateError, Families, parse_birth_date
from zjcare_guide.clock import fixed_clock
from zjcare_guide.conversation import Conversation
from zjcare_guide.guide import Guide
from zjcare_guide.identity import Actor
from zjcare_guide.replies import Action, Command, Press, Reply, Session, Text
from zjcare_guide.store import Store

TODAY = dt.date(2026, 12, 1)
PARENT = Actor("test", "4242", "4242")
OTHER = Actor("test", "5151", "5151")


@pytest.mark.parametrize("text, expected", [
    ("2026-03-01", "2026-03-01"), ("2026/3/1", "2026-03-01"), ("2026.3.1", "2026-03-01"),
    ("2026年3月1日", "2026-03-01"), ("2026年3月1号", "2026-03-01"), ("20260301", "2026-03-01"),
    ("26.3.1", "2026-03-01"), ("3月1日", "2026-03-01"), ("12月2日", "2025-12-02"), ("１２月１日", "2026-12-01"),
    ("2月29日", "2024-02-29"),
])
def test_birth_dates_as_parents_type_them(text: str, expected: str) -> None:
    assert parse_birth_date(text, TODAY).isoformat() == expected


@pytest.mark.parametrize("text, reason", [
    ("2027-01-01", "future"), ("2020-11-30", "too_old"), ("2026-02-30", "impossible"), ("明天", "format"),
    ("", "format"), ("2026-3", "format"), ("99999999", "impossible"),
])
def test_bad_birth_dates_say_why(text: str, reason: str) -> None:
    with pytest.raises(BirthDateError) as err:
        parse_birth_date(text, TODAY)
    assert err.value.reason == reason


@pytest.fixture
def store() -> Store:
    return Store.open(":memory:")


@pytest.fixture
def conv(guide: Guide, store: Store) -> Conversation:
    return Conversation(guide, clock=fixed_clock(TODAY), store=store)


def press(conv: Conversation, session: Session, kind: str, arg: str = "", value: int = 0,
          actor: Actor = PARENT) -> list[Reply]:
    return conv.handle(Press(Action(kind, arg, value=value), actor=actor), session)


def dump(store: Store) -> list[tuple[object, ...]]:
    return [(t, *r) for t in ("families", "children", "records") for r in store.db.execute(f"select * from {t}")]


def register(conv: Conversation, session: Session, nickname: str = "豆豆", birth: str = "2026-03-01") -> Reply:
    [consent] = conv.handle(Command("child", actor=PARENT), session)
    if any(a.kind == "child_consent" for a in consent.actions()):
        press(conv, session, "child_consent", value=1)
    else:
        press(conv, session, "child_add")
    conv.handle(Text(nickname, actor=PARENT), session)
    conv.handle(Text(birth, actor=PARENT), session)
    press(conv, session, "child_sex", "f")
    [summary] = press(conv, session, "child_preterm", "n")
    return summary


def test_nothing_is_stored_before_consent(conv: Conversation, store: Store) -> None:
    session = Session()
    [consent] = conv.handle(Command("child", actor=PARENT), session)
    assert "同意保存吗" in consent.text and "/child" in consent.text
    press(conv, session, "child_consent", value=-1)
    assert dump(store) == []


def test_adding_a_child_gives_the_plan_and_the_age_for_questions(conv: Conversation, store: Store) -> None:
    session = Session()
    summary = register(conv, session)
    assert "已登记" in summary.text and "豆豆" in summary.text and "9个月" in summary.text
    assert "可能需要补种/补检" in summary.text  # registered late: the past items, shown once
    assert session.age_months == 9 and session.awaiting == ""
    family = Families(store.db).get(PARENT.user_key)
    assert family is not None and family.consent_at is not None
    [child] = Families(store.db).children(family.id)
    assert (child.nickname, child.birth, child.sex, child.preterm) == ("豆豆", dt.date(2026, 3, 1), "f", False)


def test_a_bad_birth_date_is_asked_again_and_nothing_is_saved(conv: Conversation, store: Store) -> None:
    session = Session()
    conv.handle(Command("child", actor=PARENT), session)
    press(conv, session, "child_consent", value=1)
    conv.handle(Text("豆豆", actor=PARENT), session)
    before = dump(store)
    for text, words in (("2027-01-01", "还没到"), ("2019-05-01", "6岁"), ("不知道", "没看懂")):
        [reply] = conv.handle(Text(text, actor=PARENT), session)
        assert words in reply.text and dump(store) == before
    [cancelled] = conv.handle(Command("cancel", actor=PARENT), session)
    assert "已取消" in cancelled.text and dump(store) == before


def test_a_danger_sign_in_a_step_is_escalated(conv: Conversation) -> None:
    session = Session()
    conv.handle(Command("child", actor=PARENT), session)
    press(conv, session, "child_consent", value=1)
    replies = conv.handle(Text("宝宝抽搐了叫不醒", actor=PARENT), session)
    assert replies[0].kind == "urgent"


def test_twins_edit_and_remove(conv: Conversation, store: Store) -> None:
    session = Session()
    register(conv, session, "大宝", "2026-05-10")
    register(conv, session, "小宝", "2026-05-10")
    families = Families(store.db)
    family = families.get(PARENT.user_key)
    assert family is not None
    big, small = families.children(family.id)
    press(conv, session, "child_edit", f"{small.id}-birth")
    [edited] = conv.handle(Text("2026.5.11", actor=PARENT), session)
    assert "已修改" in edited.text and families.child(family.id, small.id).birth == dt.date(2026, 5, 11)  # type: ignore[union-attr]
    [confirm] = press(conv, session, "child_remove", str(big.id))
    assert "不能恢复" in confirm.text and len(families.children(family.id)) == 2
    press(conv, session, "child_remove", str(big.id), value=1)
    assert [c.nickname for c in families.children(family.id)] == ["小宝"]


def test_another_familys_child_cannot_be_seen_or_changed(conv: Conversation, store: Store) -> None:
    register(conv, Session())
    family = Families(store.db).get(PARENT.user_key)
    assert family is not None
    [child] = Families(store.db).children(family.id)
    session = Session()
    press(conv, session, "child_consent", value=1, actor=OTHER)
    before = dump(store)
    for kind, arg, value in (("child_view", str(child.id), 0), ("child_edit", f"{child.id}-birth", 0),
                             ("child_remove", str(child.id), 1)):
        [reply] = press(conv, session, kind, arg, value, actor=OTHER)
        assert "过期" in reply.text and "豆豆" not in reply.text, kind
    assert dump(store) == before


def test_children_are_registered_in_private_chats_only(conv: Conversation) -> None:
    [reply] = conv.handle(Command("child", actor=Actor("test", "4242", "-100")), Session())
    assert "私聊" in reply.text
