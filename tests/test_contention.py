"""The database held by another process: what waits, what does not, and what a parent is told."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from zjcare_guide import store as store_module
from zjcare_guide.children import Families
from zjcare_guide.clock import fixed_clock
from zjcare_guide.conversation import Conversation
from zjcare_guide.guide import Guide
from zjcare_guide.identity import Actor
from zjcare_guide.replies import Action, Command, Press, Reply, Session, Text
from zjcare_guide.store import Store

from .locks import write_lock

TODAY = dt.date(2026, 12, 1)
PARENT = Actor("test", "4242", "4242")


def dump(store: Store) -> list[str]:
    return list(store.db.conn.iterdump())


def press(conv: Conversation, session: Session, kind: str, arg: str = "", value: int = 0) -> list[Reply]:
    return conv.safe_handle(Press(Action(kind, arg, value=value), actor=PARENT), session)


@pytest.fixture
def db_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # A short busy timeout so the test does not sit through the real 5 s; the behaviour is the same.
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 0.3)
    return tmp_path / "z.db"


def test_a_write_that_cannot_get_the_lock_is_not_saved_and_the_parent_can_send_it_again(
        guide: Guide, db_path: Path) -> None:
    store = Store.open(db_path)
    conv = Conversation(guide, clock=fixed_clock(TODAY), store=store)
    session = Session()
    conv.safe_handle(Command("child", actor=PARENT), session)
    press(conv, session, "child_consent", value=1)
    conv.safe_handle(Text("豆豆", actor=PARENT), session)
    conv.safe_handle(Text("2026-03-01", actor=PARENT), session)
    press(conv, session, "child_sex", "f")
    before, awaiting = dump(store), session.awaiting
    with write_lock(db_path):
        [reply] = press(conv, session, "child_preterm", "n")
    assert "没能保存" in reply.text and "120" in reply.text
    assert dump(store) == before  # neither the child nor its reminders half written
    assert session.awaiting == awaiting  # the step is still open: the same button works again
    [saved] = press(conv, session, "child_preterm", "n")
    assert "已登记" in saved.text
    family = Families(store.db).get(PARENT.user_key)
    assert family is not None and [c.nickname for c in Families(store.db).children(family.id)] == ["豆豆"]


def test_an_unanswered_question_is_recorded_after_the_reply_without_holding_it_up(
        guide: Guide, db_path: Path) -> None:
    store = Store.open(db_path)
    conv = Conversation(guide, clock=fixed_clock(TODAY), store=store)
    later: list = []  # type: ignore[type-arg]
    with write_lock(db_path):
        replies = conv.safe_handle(Text("宝宝的围兜用什么布料的好呢", actor=PARENT), Session(), later=later)
        # The reply is ready while another process holds the write lock: the record waits in `later`.
        assert replies and replies[0].kind == "fallback" and later
        assert store.counts()["unanswered"] == 0
    for write in later:
        write()
    assert store.counts()["unanswered"] == 1


def test_an_emergency_is_escalated_without_the_database(guide: Guide, db_path: Path) -> None:
    store = Store.open(db_path)
    conv = Conversation(guide, clock=fixed_clock(TODAY), store=store)
    session = Session()
    with write_lock(db_path):
        urgent = conv.urgent_first(Text("宝宝抽搐了，叫不醒", actor=PARENT), session)
    assert urgent and urgent[0].kind == "urgent" and "120" in urgent[0].text
    # Handled afterwards with escalated=True, the same text is not escalated twice.
    assert conv.safe_handle(Text("宝宝抽搐了，叫不醒", actor=PARENT), session, escalated=True) == []
    assert conv.urgent_first(Text("宝宝几个月加辅食", actor=PARENT), session) == []
