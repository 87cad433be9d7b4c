"""The institution finder, reports and operators in the conversation (the core, no transport)."""

from __future__ import annotations

import datetime as dt
import math
import re

import pytest

from zjcare_guide.cli import console_event
from zjcare_guide.clock import fixed_clock
from zjcare_guide.content import DEFAULT_CONTENT_DIR
from zjcare_guide.conversation import Conversation
from zjcare_guide.guide import Guide
from zjcare_guide.identity import Actor
from zjcare_guide.institutions import Directory
from zjcare_guide.registry_import import load_demo
from zjcare_guide.replies import Action, Command, Location, Press, Reply, Session, Text
from zjcare_guide.reports import list_reports
from zjcare_guide.store import Store

from .test_institutions import dump

TODAY = dt.date(2026, 12, 1)
PARENT = Actor("test", "4242", "4242")
OPERATOR = Actor("test", "77", "77")
CENTRE = (29.712, 120.237)


@pytest.fixture
def store() -> Store:
    s = Store.open(":memory:")
    load_demo(Directory(s.db), DEFAULT_CONTENT_DIR, TODAY)
    return s


@pytest.fixture
def conv(guide: Guide, store: Store) -> Conversation:
    return Conversation(guide, clock=fixed_clock(TODAY), store=store)


def press(conv: Conversation, session: Session, kind: str, arg: str = "", page: int = 0) -> list[Reply]:
    return conv.handle(Press(Action(kind, arg, page), actor=PARENT), session)


def test_the_menu_entry_asks_for_the_location_or_a_town(conv: Conversation) -> None:
    session = Session()
    [reply] = press(conv, session, "find")
    assert reply.ask_location is not None and "镇街" in reply.text
    assert session.awaiting == "finder"


def test_a_location_gives_the_nearest_filed_institutions_with_pins_and_pages(conv: Conversation) -> None:
    session = Session()
    [reply] = conv.handle(Location(*CENTRE, actor=PARENT), session)
    assert reply.kind == "results" and "公里" in reply.text
    distances = [float(x) for x in re.findall(r"(\d+\.\d) 公里", reply.text)]
    assert len(distances) == 5 and distances == sorted(distances)
    venues = [a for a in reply.actions() if a.kind == "find_venue"]
    assert len(venues) == 5
    [pin] = conv.handle(Press(venues[0], actor=PARENT), session)
    assert pin.venue is not None and pin.venue.title in reply.text
    assert abs(pin.venue.latitude - CENTRE[0]) < 0.05
    [page2] = press(conv, session, "find_page", page=1)
    assert "6. " in page2.text and "1. " not in page2.text
    # Only 备案 institutions: the demo's 整改中 and 注销 ones never show.
    shown = " ".join(r.text for r in [reply, page2])
    assert "恒远五金" not in shown  # DEMO-003 is 整改中, 0.7 km from the centre


def test_filters_narrow_the_search_and_the_known_age_is_used_unasked(conv: Conversation, store: Store) -> None:
    session = Session(age_months=8)
    [reply] = conv.handle(Location(*CENTRE, actor=PARENT), session)
    assert "8个月宝宝" in reply.text
    directory = Directory(store.db)
    ids = [int(a.arg) for a in reply.actions() if a.kind == "find_venue"]
    assert ids and all(directory.get(i).takes_age(8) for i in ids)  # type: ignore[union-attr]
    [menu] = press(conv, session, "find_filters")
    assert any(a.kind == "find_toggle" for a in menu.actions())
    [inclusive] = press(conv, session, "find_toggle", "incl")
    ids = [int(a.arg) for a in inclusive.actions() if a.kind == "find_venue"]
    assert all(directory.get(i).inclusive for i in ids)  # type: ignore[union-attr]
    [places] = press(conv, session, "find_toggle", "places")
    assert "空位待确认" not in places.text and "暂无" not in places.text
    [any_age] = press(conv, session, "find_toggle", "agenone")
    assert "8个月宝宝" not in any_age.text


def test_a_town_typed_in_any_spelling_lists_its_institutions(conv: Conversation) -> None:
    for text in ("店口", "店口镇", "diankou"):
        session = Session()
        press(conv, session, "find")
        [reply] = conv.handle(Text(text, actor=PARENT), session)
        assert "店口镇的备案托育机构" in reply.text and "示例·店口" in reply.text


def test_a_location_outside_zhuji_gets_the_town_list(conv: Conversation) -> None:
    [reply] = conv.handle(Location(30.27, 120.15, actor=PARENT), Session())  # Hangzhou
    assert "不在诸暨" in reply.text and len([a for a in reply.actions() if a.kind == "find_town"]) == 23


@pytest.mark.parametrize("lat, lon", [(math.nan, 120.2), (29.7, math.inf), (91.0, 120.0), (29.7, -181.0)])
def test_an_impossible_location_is_a_friendly_notice_and_changes_nothing(conv: Conversation, store: Store,
                                                                        lat: float, lon: float) -> None:
    before = dump(Directory(store.db))
    session = Session()
    [reply] = conv.handle(Location(lat, lon, actor=PARENT), session)
    assert reply.kind == "notice" and "位置" in reply.text
    assert "finder" not in session.state and dump(Directory(store.db)) == before


def test_a_danger_sign_typed_instead_of_a_town_is_escalated(conv: Conversation) -> None:
    session = Session()
    press(conv, session, "find")
    replies = conv.handle(Text("宝宝抽搐了叫不醒", actor=PARENT), session)
    assert replies[0].kind == "urgent" and session.awaiting == ""


def test_a_question_after_the_results_is_answered_as_a_question(conv: Conversation) -> None:
    session = Session()
    conv.handle(Location(*CENTRE, actor=PARENT), session)
    replies = conv.handle(Text("宝宝湿疹怎么护理", actor=PARENT), session)
    assert replies[0].kind == "answer" and session.awaiting == ""


def test_an_unknown_town_after_the_prompt_lists_the_towns(conv: Conversation) -> None:
    session = Session()
    press(conv, session, "find")
    [reply] = conv.handle(Text("火星镇", actor=PARENT), session)
    assert "没有找到" in reply.text and len(reply.actions()) == 23


def test_stale_buttons_after_a_restart_expire(conv: Conversation) -> None:
    for kind, arg, page in [("find_page", "", 1), ("find_toggle", "incl", 0), ("find_filters", "", 0),
                            ("find_venue", "999999", 0), ("find_town", "999", 0), ("report_inst", "999999", 0)]:
        [reply] = conv.handle(Press(Action(kind, arg, page), actor=PARENT), Session())
        assert "过期" in reply.text, kind


def test_a_report_on_a_listed_institution_gets_a_reference(conv: Conversation, store: Store) -> None:
    session = Session()
    conv.handle(Location(*CENTRE, actor=PARENT), session)
    [start] = conv.handle(Command("report", actor=PARENT), session)
    picks = [a for a in start.actions() if a.kind == "report_inst"]
    assert len(picks) == 5
    conv.handle(Press(picks[0], actor=PARENT), session)
    [short] = conv.handle(Text("差", actor=PARENT), session)
    assert "5到1000" in short.text and list_reports(store.db) == []
    [filed] = conv.handle(Text("午睡时没有老师看护，孩子哭了很久", actor=PARENT), session)
    [report] = list_reports(store.db)
    assert report.ref in filed.text and report.ref == "JB20261201-0001"
    assert report.filing_no.startswith("DEMO-") and "午睡" in report.text
    assert store.db.execute("select reporter from reports").fetchone()[0] == "test:4242"


def test_an_unfiled_operator_is_reported_with_its_town(conv: Conversation, store: Store) -> None:
    session = Session()
    [start] = conv.handle(Command("report", actor=PARENT), session)
    assert any(a.kind == "find" for a in start.actions())
    press(conv, session, "report_unfiled")
    press(conv, session, "report_town", "104")
    conv.handle(Text("店口镇某小区里有人在家里收托十几个孩子，没有备案", actor=PARENT), session)
    [report] = list_reports(store.db)
    assert report.town == "店口镇" and report.filing_no == ""


def test_cancel_leaves_a_report_unfiled(conv: Conversation, store: Store) -> None:
    session = Session()
    conv.handle(Command("report", actor=PARENT), session)
    press(conv, session, "report_unfiled")
    press(conv, session, "report_town", "104")
    conv.handle(Command("cancel", actor=PARENT), session)
    replies = conv.handle(Text("宝宝湿疹怎么护理", actor=PARENT), session)
    assert replies[0].kind == "answer" and list_reports(store.db) == []


def test_operators_update_their_places_and_others_are_refused(conv: Conversation, store: Store) -> None:
    directory = Directory(store.db)
    directory.add_operator(OPERATOR.user_key, "DEMO-002", TODAY)
    before = dump(directory)
    [refused] = conv.handle(Command("places", "3", actor=PARENT), Session())
    assert "只有登记" in refused.text and dump(directory) == before
    for bad in ("-1", "abc", "3.5", "99999", "NaN"):
        [reply] = conv.handle(Command("places", bad, actor=OPERATOR), Session())
        assert reply.kind == "notice" and dump(directory) == before, bad
    [done] = conv.handle(Command("places", "4", actor=OPERATOR), Session())
    assert "4 个空余托位" in done.text
    inst = directory.by_filing_no("DEMO-002")
    assert inst is not None and (inst.places, inst.places_updated) == (4, TODAY)
    assert directory.places_history("DEMO-002")[-1]["user_key"] == OPERATOR.user_key


@pytest.mark.parametrize("line, expected", [
    ("/loc 29.71 120.24", Location(29.71, 120.24)),
    ("/loc 29.71,120.24", Location(29.71, 120.24)),
    ("/location 29.71 120.24", Location(29.71, 120.24)),
])
def test_the_console_reads_a_location(line: str, expected: Location) -> None:
    event = console_event(line)
    assert isinstance(event, Location)
    assert (event.latitude, event.longitude) == (expected.latitude, expected.longitude)


@pytest.mark.parametrize("line", ["/loc", "/loc abc", "/loc 1 2 3", "/loc nan nan"])
def test_a_console_location_that_cannot_be_read_is_invalid(line: str) -> None:
    event = console_event(line)
    assert isinstance(event, Location) and not event.valid


def test_without_a_database_the_finder_says_so(guide: Guide) -> None:
    conv = Conversation(guide, clock=fixed_clock(TODAY))
    [reply] = conv.handle(Press(Action("find")), Session())
    assert "暂时无法使用" in reply.text


@pytest.mark.parametrize("text, town", [("店口有托育机构吗", "店口镇"), ("枫桥", "枫桥镇"),
                                        ("暨阳街道的托班", "暨阳街道")])
def test_a_search_typed_out_of_any_flow_is_the_finders(conv: Conversation, text: str, town: str) -> None:
    [reply] = conv.handle(Text(text, actor=PARENT), Session())
    assert f"{town}的备案托育机构" in reply.text


def test_a_nearby_search_without_a_town_asks_for_the_location(conv: Conversation) -> None:
    session = Session(numbered_buttons=True)
    conv.handle(Command("start", actor=PARENT), session)
    [reply] = conv.handle(Text("附近有托儿所吗", actor=PARENT), session)
    assert reply.ask_location is not None
    assert session.options == []  # "1" now presses nothing of the earlier menu


@pytest.mark.parametrize("text", ["选托育机构要看哪些方面", "托班老师打小孩 去哪里投诉", "托育机构有哪些类型"])
def test_questions_about_childcare_stay_with_the_guidance(conv: Conversation, text: str) -> None:
    replies = conv.handle(Text(text, actor=PARENT), Session())
    assert replies[0].kind in ("answer", "choices")


def test_a_report_describing_a_danger_sign_is_escalated_and_still_filed(conv: Conversation, store: Store) -> None:
    session = Session()
    conv.handle(Location(*CENTRE, actor=PARENT), session)
    [start] = conv.handle(Command("report", actor=PARENT), session)
    conv.handle(Press(next(a for a in start.actions() if a.kind == "report_inst"), actor=PARENT), session)
    replies = conv.handle(Text("孩子在托育园被打了，现在嘴唇发紫呼吸困难", actor=PARENT), session)
    assert replies[0].kind == "urgent" and "JB20261201-0001" in replies[-1].text
    [report] = list_reports(store.db)
    assert "嘴唇发紫" in report.text


def test_the_unfiled_operators_town_can_be_typed(conv: Conversation, store: Store) -> None:
    session = Session()
    conv.handle(Command("report", actor=PARENT), session)
    press(conv, session, "report_unfiled")
    [again] = conv.handle(Text("火星", actor=PARENT), session)
    assert "没有认出" in again.text and len(again.actions()) == 23
    [describe] = conv.handle(Text("diankou", actor=PARENT), session)
    assert "店口镇" in describe.text
    conv.handle(Text("小区里有人在家收托十几个孩子", actor=PARENT), session)
    [report] = list_reports(store.db)
    assert report.town == "店口镇"


def test_cancel_says_when_there_was_nothing_to_cancel(conv: Conversation) -> None:
    [nothing] = conv.handle(Command("cancel", actor=PARENT), Session())
    assert "没有需要取消" in nothing.text
    session = Session()
    press(conv, session, "find")
    [cancelled] = conv.handle(Command("cancel", actor=PARENT), session)
    assert "已取消" in cancelled.text and session.awaiting == ""
    press(conv, session, "find")
    [cancelled] = conv.handle(Text("取消", actor=PARENT), session)  # the location keyboard's 取消 button
    assert "已取消" in cancelled.text and session.awaiting == ""


def test_no_results_without_filters_says_so_and_offers_no_filters(conv: Conversation, store: Store) -> None:
    store.db.execute("update institutions set status = '注销' where town_code = '201'")  # 东和乡
    [reply] = press(conv, Session(), "find_town", "201")
    assert "还没有备案的托育机构" in reply.text
    assert not any(a.kind == "find_filters" for a in reply.actions())


def test_the_age_given_is_a_choice_in_the_filters(conv: Conversation) -> None:
    session = Session(age_months=8)
    conv.handle(Location(*CENTRE, actor=PARENT), session)
    [menu] = press(conv, session, "find_filters")
    labels = [b.label for row in menu.buttons for b in row]
    assert "✅ 8个月" in labels


def test_the_places_buttons_update_for_the_operator_only(conv: Conversation, store: Store) -> None:
    directory = Directory(store.db)
    directory.add_operator(OPERATOR.user_key, "DEMO-002", TODAY)  # 25 places, 5 available
    [menu] = conv.handle(Command("places", actor=OPERATOR), Session())
    assert [a.arg for a in menu.actions()] == ["0", "4", "6"]
    before = dump(directory)
    [refused] = conv.handle(Press(Action("places_set", "4"), actor=PARENT), Session())  # a forged press
    assert "只有登记" in refused.text and dump(directory) == before
    [done] = conv.handle(Press(Action("places_set", "4"), actor=OPERATOR), Session())
    assert "4 个空余托位" in done.text and directory.by_filing_no("DEMO-002").places == 4  # type: ignore[union-attr]
