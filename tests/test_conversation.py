"""The conversation every transport shares: events and a session in, replies out."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zjcare_guide.clock import fixed_clock
from zjcare_guide.conversation import Conversation
from zjcare_guide.guidance import MAX_MESSAGE, PAGE_SIZE
from zjcare_guide.guide import Guide, Outcome
from zjcare_guide.replies import Action, Command, Press, Session, Text, Unsupported

from .conftest import GOLDEN, TODAY


def test_start_welcomes_with_emergency_numbers_and_main_menu(conversation: Conversation) -> None:
    [reply] = conversation.handle(Command("start"), Session())
    assert "120" in reply.text and "12320" in reply.text and "不能代替医生" in reply.text
    assert [a.arg or a.kind for a in reply.actions()] == ["ask", "find", "reminders", "child", "help"]


def test_menu_entries_without_a_database_say_so(conversation: Conversation) -> None:
    session = Session()
    [reply] = conversation.handle(Press(Action("reminders")), session)
    assert "暂时无法使用" in reply.text
    [expired] = conversation.handle(Press(Action("menu", "reminders")), session)
    assert "已过期" in expired.text
    [child] = conversation.handle(Press(Action("child")), session)
    assert "暂时无法使用" in child.text  # no database behind this conversation
    [ask] = conversation.handle(Press(Action("menu", "ask")), session)
    assert len(ask.actions()) == 8


def test_question_gets_article_with_related_and_feedback_buttons(conversation: Conversation) -> None:
    replies = conversation.handle(Text("宝宝发烧了怎么办"), Session(age_months=18))
    assert replies[0].kind == "answer"
    assert replies[0].articles[0].id == "fever-basics"
    kinds = [a.kind for a in replies[0].actions()]
    assert kinds.count("feedback") == 2 and "article" in kinds
    assert "来源" in replies[0].text


def test_urgent_comes_first_and_is_followed_by_first_aid(conversation: Conversation) -> None:
    replies = conversation.handle(Text("宝宝吃东西噎住了，脸憋得发紫"), Session())
    assert replies[0].kind == "urgent"
    assert "120" in replies[0].text
    assert any(r.kind == "article" for r in replies[1:])


def test_number_presses_a_button_of_the_last_reply_on_a_console(conversation: Conversation) -> None:
    session = Session(numbered_buttons=True)
    first = conversation.handle(Command("topics"), session)
    assert first[0].actions()[0] == Action("topic", "newborn")
    page = conversation.handle(Text("1"), session)
    assert page[0].kind == "menu" and "新生儿" in page[0].text
    article = conversation.handle(Text("1"), session)
    assert article[0].kind == "article"


def test_a_number_is_just_a_message_where_buttons_can_be_tapped(conversation: Conversation) -> None:
    session = Session()
    conversation.handle(Command("topics"), session)
    [reply] = conversation.handle(Text("1"), session)
    assert reply.kind == "fallback"


def test_out_of_range_number_keeps_the_choices(conversation: Conversation) -> None:
    session = Session(numbered_buttons=True)
    conversation.handle(Command("topics"), session)
    options = list(session.options)
    [reply] = conversation.handle(Text("42"), session)
    assert reply.kind == "notice"
    assert session.options == options


def test_topic_pages_cover_every_article_once(conversation: Conversation) -> None:
    library = conversation.guide.library
    for topic in library.topics:
        seen: list[str] = []
        page = 0
        while True:
            [reply] = conversation.press(Action("topic", topic.id, page))
            ids = [a.arg for a in reply.actions() if a.kind == "article"]
            assert 0 < len(ids) <= PAGE_SIZE
            seen += ids
            if not any(a.kind == "topic" and a.page == page + 1 for a in reply.actions()):
                break
            page += 1
        assert sorted(seen) == sorted(a.id for a in library.in_topic(topic.id))


def test_stale_or_forged_actions_get_expired_and_change_nothing(conversation: Conversation) -> None:
    session = Session(age_months=5)
    for action in (Action("article", "no-such"), Action("topic", "nutrition", 99), Action("topic", "x"),
                   Action("feedback", "fever-basics", value=7), Action("launch")):
        [reply] = conversation.handle(Press(action), session)
        assert reply.kind == "notice" and "过期" in reply.text
    assert session.age_months == 5


def test_bad_input_gets_a_friendly_reply(conversation: Conversation) -> None:
    session = Session()
    for event in (Text("   "), Text("啊" * (MAX_MESSAGE + 1)), Unsupported("sticker")):
        [reply] = conversation.handle(event, session)
        assert reply.kind == "notice" and reply.text


def test_age_command_validates_and_sets(conversation: Conversation) -> None:
    session = Session()
    [bad] = conversation.handle(Command("age", "两百"), session)
    assert session.age_months is None and "0到72" in bad.text
    [bad] = conversation.handle(Command("age", "-3"), session)
    assert session.age_months is None
    conversation.handle(Command("age", "8"), session)
    assert session.age_months == 8


def test_known_age_changes_triage(conversation: Conversation) -> None:
    assert conversation.handle(Text("宝宝发烧38度"), Session(age_months=2))[0].kind == "urgent"
    assert conversation.handle(Text("宝宝发烧38度"), Session(age_months=20))[0].kind != "urgent"


def test_adult_question_is_out_of_scope(conversation: Conversation) -> None:
    [reply] = conversation.handle(Text("我老公发烧了怎么办"), Session())
    assert reply.kind == "fallback"
    assert "12320" in reply.text


def test_urgent_follow_up_is_the_most_specific_article(conversation: Conversation) -> None:
    replies = conversation.handle(Text("宝宝吃葡萄噎住了，脸都发紫了"), Session())
    assert replies[0].kind == "urgent"
    assert replies[1].articles[0].id == "choking-first-aid"
    general = conversation.handle(Text("孩子叫不醒"), Session())
    assert general[1].articles[0].id == "when-to-hospital"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=80), age=st.one_of(st.none(), st.integers(0, 72)))
def test_any_text_gets_a_reply_and_never_raises(conversation: Conversation, text: str, age: int | None) -> None:
    replies = conversation.handle(Text(text), Session(age_months=age))
    assert replies and all(r.text.strip() for r in replies)


def test_safe_handle_turns_errors_into_an_apology(guide: Guide, caplog: pytest.LogCaptureFixture) -> None:
    class Exploding(Guide):
        def decide(self, text: str, age_months: float | None = None) -> Outcome:
            raise RuntimeError("boom")

    conv = Conversation(Exploding(guide.library), clock=fixed_clock(TODAY))
    [reply] = conv.safe_handle(Text("宝宝的名字叫小明，发烧了"), Session())
    assert "抱歉" in reply.text and "120" in reply.text
    assert "小明" not in caplog.text and "Text" in caplog.text


KINDS: list[dict[str, object]] = yaml.safe_load((GOLDEN / "conversation_kinds.yaml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", KINDS, ids=[str(c["q"]) for c in KINDS])
def test_kind_of_reply(case: dict[str, object], guide: Guide) -> None:
    """`article` without `kind`: that article answers, or is the first of the choices."""
    o = guide.decide(str(case["q"]))
    if "kind" in case:
        assert o.kind == case["kind"], (o.kind, [c.article.id for c in o.candidates])
    if "scope" in case:
        assert o.scope == case["scope"]
        if not case["scope"]:
            assert o.kind in ("answer", "choices"), (o.kind, [c.article.id for c in o.candidates])
    if "article" in case:
        assert o.kind in ("answer", "choices") and o.candidates[0].article.id == case["article"], \
            (o.kind, [c.article.id for c in o.candidates])


def test_mother_health_points_to_where_mothers_are_seen(conversation: Conversation) -> None:
    [reply] = conversation.handle(Text("产后腰疼怎么办"), Session())
    assert "妇幼保健院" in reply.text and "家庭医生" in reply.text and "42天" in reply.text


def test_unreadable_english_is_told_so_in_both_languages(conversation: Conversation) -> None:
    [reply] = conversation.handle(Text("How do I lower my blood pressure?"), Session())
    assert "Chinese" in reply.text and "中文" in reply.text and "120" in reply.text


def test_an_empty_message_is_asked_for_a_question(conversation: Conversation) -> None:
    [reply] = conversation.handle(Text("   \u200b "), Session())
    assert "请输入" in reply.text and "文字消息" not in reply.text


def test_a_thumbs_down_offers_the_runners_up(conversation: Conversation) -> None:
    session = Session()
    [answer] = conversation.handle(Text("宝宝湿疹怎么护理"), session)
    assert answer.kind == "answer" and session.last_others
    [offer] = conversation.handle(Press(Action("feedback", "eczema", value=-1)), session)
    assert offer.kind == "choices" and "是不是想问" in offer.text
    offered = [a.arg for a in offer.actions() if a.kind == "article"]
    assert offered and "eczema" not in offered and offered == session.last_choices
    [thanks] = conversation.handle(Press(Action("feedback", "fever-basics", value=-1)), Session())
    assert thanks.kind == "notice"  # not the answer to any question asked here: nothing to offer
