"""Feedback and unanswered questions in a real SQLite database."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from zjcare_guide.clock import fixed_clock
from zjcare_guide.conversation import Conversation
from zjcare_guide.guide import Guide
from zjcare_guide.replies import Action, Press, Session, Text
from zjcare_guide.store import Store, anonymise, migrations

DAY = dt.date(2026, 11, 29)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "data" / "zjcare.db")


def test_migrations_are_recorded_and_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "z.db"
    Store.open(path)
    again = Store.open(path)
    assert {"feedback", "unanswered", "_sqlite_migrations"} <= set(again.db.table_names())
    assert again.db.table("_sqlite_migrations").count == len(migrations._migrations)
    assert {"institutions", "institutions_rtree", "operators", "places_audit", "reports"} <= set(again.db.table_names())


def test_anonymise_masks_long_numbers_and_bounds_length() -> None:
    assert "13812345678" not in anonymise("宝宝发烧，我电话13812345678")
    assert len(anonymise("问" * 1000)) == 200


def test_feedback_rejects_other_values(store: Store) -> None:
    with pytest.raises(ValueError):
        store.record_feedback("fever-basics", 5, None, DAY, "")
    assert store.counts()["feedback"] == 0


def test_conversation_stores_feedback_with_the_question_and_no_ids(guide: Guide, store: Store) -> None:
    conv = Conversation(guide, clock=fixed_clock(DAY), store=store)
    session = Session()
    [answer] = conv.handle(Text("宝宝湿疹怎么护理"), session)
    article_id = answer.articles[0].id
    conv.handle(Press(Action("feedback", article_id, value=-1)), session)
    [again] = conv.handle(Press(Action("feedback", article_id, value=-1)), session)
    assert "已经评价" in again.text
    rows = list(store.db.table("feedback").rows)
    assert len(rows) == 1
    assert rows[0]["question"] == "宝宝湿疹怎么护理" and rows[0]["value"] == -1 and rows[0]["day"] == "2026-11-29"
    assert set(rows[0]) == {"id", "day", "article_id", "value", "question", "question_key"}


def test_feedback_on_a_browsed_article_keeps_no_unrelated_question(guide: Guide, store: Store) -> None:
    conv = Conversation(guide, clock=fixed_clock(DAY), store=store)
    session = Session()
    conv.handle(Text("宝宝湿疹怎么护理"), session)
    conv.handle(Press(Action("article", "car-seat")), session)
    conv.handle(Press(Action("feedback", "car-seat", value=1)), session)
    [row] = store.db.table("feedback").rows
    assert row["question"] == ""


def test_gaps_rank_unanswered_and_disliked_questions(guide: Guide, store: Store) -> None:
    conv = Conversation(guide, clock=fixed_clock(DAY), store=store)
    for text in ("怎么给宝宝办护照", "怎么给宝宝办护照？", "怎么给 宝宝 办护照"):
        conv.handle(Text(text), Session())
    session = Session()
    conv.handle(Text("宝宝湿疹怎么护理"), session)
    conv.handle(Press(Action("feedback", session.last_article or "", value=-1)), session)
    gaps = store.gaps()
    assert gaps[0].unanswered >= 2 and "护照" in gaps[0].question
    assert any(g.disliked == 1 and g.articles == "eczema" for g in gaps)


def test_out_of_scope_questions_are_not_kept(guide: Guide, store: Store) -> None:
    conv = Conversation(guide, clock=fixed_clock(DAY), store=store)
    [reply] = conv.handle(Text("我老公最近失眠怎么办"), Session())
    assert reply.kind == "fallback"
    assert store.counts()["unanswered"] == 0


def test_a_failing_database_never_costs_the_parent_the_answer(guide: Guide, store: Store) -> None:
    conv = Conversation(guide, clock=fixed_clock(DAY), store=store)
    store.db.execute("drop table unanswered")
    store.db.execute("drop table feedback")
    [reply] = conv.handle(Text("怎么给宝宝办护照"), Session())
    assert reply.kind == "fallback" and "没有找到" in reply.text
    session = Session()
    conv.handle(Text("宝宝湿疹怎么护理"), session)
    [thanks] = conv.handle(Press(Action("feedback", "eczema", value=1)), session)
    assert "谢谢" in thanks.text


@pytest.mark.parametrize("noise", ["😀😀", "123456", "asdf qwer zxcv", "？？？"])
def test_only_chinese_questions_are_kept_as_gaps(guide: Guide, store: Store, noise: str) -> None:
    """Emoji, bare numbers and unreadable English give the editors nothing to write."""
    conv = Conversation(guide, clock=fixed_clock(DAY), store=store)
    conv.handle(Text(noise), Session())
    assert store.counts()["unanswered"] == 0
