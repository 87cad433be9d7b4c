"""Property-based tests over every inbound path of the conversation: text of any Unicode at every step
of every flow, every registered command with any arguments for every role, every registered button
with any argument, forged callback data and forged ids, locations of any value, and the kinds of
message the service cannot read. Each example runs on a fresh copy of one SQLite database
(tests/property_world.py) and calls `Conversation.handle` itself, so an exception fails the test.

Every reply must be short and friendly (`check_replies`); the tables an event may change are listed per
step, command and action, so a write anywhere else fails; family V's rows never change and its data
never shows; invalid input changes nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from bot.telegram_html import decode_action, encode_action
from zjcare_guide.child_flow import BIRTH, NICKNAME, Draft
from zjcare_guide.children import MAX_NICKNAME, BirthDateError, clean_nickname, parse_birth_date
from zjcare_guide.cli import console_event, from_terminal
from zjcare_guide.dates import DateError, normalise, parse_appointment, parse_date
from zjcare_guide.doctor_flow import MAX_PUSH, DoctorDraft
from zjcare_guide.identity import Actor
from zjcare_guide.replies import Action, Command, Event, Location, Press, Reply, Session, Text, Unsupported
from zjcare_guide.reports import MAX_REPORT, MIN_REPORT
from zjcare_guide.router import ActionSpec
from zjcare_guide.text import sanitize
from zjcare_guide.towns import TOWNS, in_zhuji

from .property_world import (
    ALL_ROLES,
    DOCTOR,
    GUIDE,
    NOW,
    OPERATOR,
    PARENT,
    ROLES,
    STRANGER,
    World,
    Worlds,
    changed,
    check_replies,
    dump,
    family_rows,
    hostile_text,
    notice_text,
)

# Examples per property: enough to reach every step, command and button several times; the whole file runs
# in about half a minute.
SETTINGS = settings(max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
MORE = settings(SETTINGS, max_examples=300)
TOWN = TOWNS[0].code
UNANSWERED = frozenset({"unanswered"})  # text that falls through to the questions may be kept for the editors
REPORT = frozenset({"reports", "report_refs"})  # a report and the day's reference counter
EXPIRED = notice_text("expired").strip()
BAD_LOCATION = notice_text("bad_input", reason="location").strip()
UNSUPPORTED = notice_text("bad_input", reason="unsupported").strip()
BAD_AGE = notice_text("bad_input", reason="age").strip()

# What each command may write, whatever its arguments; every other command writes nothing.
COMMAND_WRITES: dict[str, frozenset[str]] = {
    "places": frozenset({"institutions", "places_audit"}),
    "pause": frozenset({"families"}), "resume": frozenset({"families"}),
    "families": frozenset({"audit"}), "overdue": frozenset({"audit"}),  # a doctor's look is audited
    "invite": frozenset({"invites", "audit"}),
}
# What each button may write when pressed in a fresh chat (no flow under way); every other writes nothing.
ACTION_WRITES: dict[str, frozenset[str]] = {
    "child_consent": frozenset({"families"}),
    "child_remove": frozenset({"children", "records", "reminders", "muted"}),
    "remind_done": frozenset({"records", "reminders"}),
    "remind_snooze": frozenset({"reminders"}),
    "remind_mute": frozenset({"muted", "reminders"}),
    "remind_unmute": frozenset({"muted", "reminders"}),
    "reminders_pause": frozenset({"families"}),
    "places_set": frozenset({"institutions", "places_audit"}),
    "unlink": frozenset({"links", "visits", "outbox", "audit", "reminders"}),
    "families": frozenset({"audit"}),
    "feedback": frozenset({"feedback"}),
    "visit_answer": frozenset({"visits", "outbox", "audit"}),
    "join": frozenset({"families", "links", "visits", "outbox", "audit"}),
}


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> Worlds:
    return Worlds(tmp_path_factory.mktemp("props"))


@contextlib.contextmanager
def fresh(worlds: Worlds) -> Iterator[World]:
    world = worlds.fresh()
    try:
        yield world
    finally:
        world.close()


def handle(world: World, event: Event, session: Session) -> list[Reply]:
    return world.conv.handle(event, session)


# ---------------------------------------------------------------- the steps a chat can be waiting at


@dataclass(frozen=True)
class Step:
    """A place in a flow: who is there, how to get there, and what text typed there may write."""

    name: str
    actor: Actor
    drive: Callable[[World, Session], None]
    writes: frozenset[str] = frozenset()
    echo: int = 0  # how much of the typed text (Telegram's count) the step's reply may show back


def _do(world: World, session: Session, actor: Actor, *events: Command | Text | Action) -> None:
    for e in events:
        sent: Event = Press(e, actor=actor) if isinstance(e, Action) else \
            Command(e.name, e.args, actor=actor) if isinstance(e, Command) else Text(e.text, actor=actor)
        replies = handle(world, sent, session)
        assert replies and all(r.text.strip() != EXPIRED for r in replies), (sent, replies)


def _child_add(world: World, s: Session) -> None:
    _do(world, s, PARENT, Command("child"), Action("child_add"))


def _item(world: World) -> str:
    """An item of 豆豆's plan that is due or past: its ✅ waits for the real date."""
    families, planner = world.conv.families, world.conv.planner
    assert families is not None and planner is not None
    child = families.child(world.ids.family_a, world.ids.child_a)
    assert child is not None
    return next(p.id for p in planner.plan(child, NOW.date()) if p.status in ("due", "overdue"))


def _visit(world: World, s: Session) -> None:
    _do(world, s, DOCTOR, Command("visit"), Action("visit_family", str(world.ids.family_a)))


def _then(*steps: Callable[[World, Session], None]) -> Callable[[World, Session], None]:
    def drive(world: World, session: Session) -> None:
        for step in steps:
            step(world, session)
    return drive


def _say(actor: Actor, *events: Command | Text | Action) -> Callable[[World, Session], None]:
    return lambda world, session: _do(world, session, actor, *events)


def _nothing(world: World, session: Session) -> None:
    return None


def _edit(what: str) -> Callable[[World, Session], None]:
    return lambda w, s: _do(w, s, PARENT, Action("child_edit", f"{w.ids.child_a}-{what}"))


_CHILD_NAMED = _then(_child_add, _say(PARENT, Text("小米")))
_CHILD_BORN = _then(_CHILD_NAMED, _say(PARENT, Text("2026-05-01")))
_VISIT_TIMED = _then(_visit, _say(DOCTOR, Text("12月5日 14:30")))
_REPORT_TOWN = _say(STRANGER, Command("report"), Action("report_unfiled"))

STEPS = [
    *(Step(f"idle:{role}", actor, _nothing, UNANSWERED) for role, actor in ALL_ROLES.items()),
    Step("consent", STRANGER, _say(STRANGER, Command("child")), UNANSWERED),
    Step("child:nickname", PARENT, _child_add, UNANSWERED, echo=2 * MAX_NICKNAME),
    Step("child:birth", PARENT, _CHILD_NAMED, UNANSWERED),
    Step("child:sex", PARENT, _CHILD_BORN, UNANSWERED),
    Step("child:preterm", PARENT, _then(_CHILD_BORN, _say(PARENT, Action("child_sex", "f"))), UNANSWERED),
    *(Step(f"child:edit_{what}", PARENT, _edit(what), UNANSWERED | {"children", "reminders"}, echo=2 * MAX_NICKNAME)
      for what in ("nickname", "birth", "discharge")),
    Step("finder:prompt", PARENT, _say(PARENT, Command("find")), UNANSWERED),
    Step("finder:results", STRANGER, _say(STRANGER, Action("find_town", TOWN)), UNANSWERED),
    Step("report:town", STRANGER, _REPORT_TOWN, UNANSWERED | REPORT),
    Step("report:unfiled", STRANGER, _then(_REPORT_TOWN, _say(STRANGER, Action("report_town", TOWN))),
         UNANSWERED | REPORT),
    Step("report:institution", PARENT,
         lambda w, s: _do(w, s, PARENT, Action("report_inst", str(w.ids.institution))), UNANSWERED | REPORT),
    Step("reminders:done_date", PARENT,
         lambda w, s: _do(w, s, PARENT, Action("remind_done", f"{w.ids.child_a}-{_item(w)}", value=1)),
         UNANSWERED | {"records", "reminders"}),
    Step("doctor:visit_time", DOCTOR, _visit, UNANSWERED),
    Step("doctor:visit_place", DOCTOR, _VISIT_TIMED, UNANSWERED, echo=2 * 60),
    Step("doctor:visit_note", DOCTOR, _then(_VISIT_TIMED, _say(DOCTOR, Text("家中"))), UNANSWERED, echo=2 * 200),
    Step("doctor:push_ages", DOCTOR, _say(DOCTOR, Command("push"), Action("push_audience", "age")), UNANSWERED),
    Step("doctor:push_text", DOCTOR, _say(DOCTOR, Command("push"), Action("push_audience", "all")), UNANSWERED,
         echo=2 * MAX_PUSH),  # the preview shows the whole push
    Step("operator:places", OPERATOR, _say(OPERATOR, Command("places")), UNANSWERED),
]
STEP_NAMES = [s.name for s in STEPS]
BY_NAME = {s.name: s for s in STEPS}


def test_every_flow_step_is_reached(worlds: Worlds) -> None:
    """The drivers reach the step they are named for (or the properties below would test the wrong place)."""
    expect = {"child:nickname": ("children", NICKNAME), "child:birth": ("children", BIRTH),
              "child:sex": ("children", "sex"), "child:preterm": ("children", "preterm"),
              "child:edit_birth": ("children", "edit_birth"), "doctor:visit_time": ("doctors", "visit_time"),
              "doctor:visit_place": ("doctors", "visit_place"), "doctor:visit_note": ("doctors", "visit_note"),
              "doctor:push_ages": ("doctors", "push_ages"), "doctor:push_text": ("doctors", "push_text")}
    for name, (feature, step) in expect.items():
        with fresh(worlds) as world:
            session = Session()
            BY_NAME[name].drive(world, session)
            draft = session.state[feature]
            assert isinstance(draft, Draft | DoctorDraft) and draft.step == step, name
    awaiting = {"finder:prompt": "finder", "finder:results": "finder", "report:town": "reports",
                "report:unfiled": "reports", "report:institution": "reports", "reminders:done_date": "reminders"}
    for name, feature in awaiting.items():
        with fresh(worlds) as world:
            session = Session()
            BY_NAME[name].drive(world, session)
            assert session.awaiting == feature, name


# ---------------------------------------------------------------- text at every step


def _reached(world: World, step: Step) -> tuple[Session, dict[str, list[tuple[object, ...]]]]:
    session = Session()
    step.drive(world, session)
    return session, dump(world.store)


@MORE
@given(step=st.sampled_from(STEP_NAMES), text=hostile_text())
@example(step="doctor:visit_note", text="\ud800家中")
@example(step="doctor:visit_place", text="\udfff")
@example(step="doctor:push_text", text="周六体检\udc80")
@example(step="finder:prompt", text="\ud83d")
@example(step="finder:results", text="暨阳\ud800")
def test_any_text_at_any_step(worlds: Worlds, step: str, text: str) -> None:
    """Any text at any step: short, friendly replies; only the tables that step may write change; family V
    is untouched. Where a step validates what is typed, the outcome is exactly the validator's."""
    with fresh(worlds) as world:
        s = BY_NAME[step]
        session, before = _reached(world, s)
        v_before = family_rows(world.store, world.ids)
        replies = handle(world, Text(text, actor=s.actor), session)
        check_replies(replies, world.conv, typed=text, echo=s.echo)
        after = dump(world.store)
        assert changed(before, after) <= s.writes, (step, changed(before, after))
        assert family_rows(world.store, world.ids) == v_before
        if "unanswered" in changed(before, after):
            [row] = [r for r in after["unanswered"] if r not in before["unanswered"]]
            question = str(row[3])
            assert len(question) <= 200 and not re.search(r"\d{5,}", question)  # anonymised for the editors
            question.encode("utf-8")
        if step in CHECKS:
            CHECKS[step](world, session, text.strip(), replies, before, after)
        _complete(world, s, session, text)


def _urgent(replies: list[Reply]) -> bool:
    return replies[0].kind == "urgent"


def _check_birth(world: World, session: Session, text: str, replies: list[Reply], before: object,
                 after: object) -> None:
    if _urgent(replies):
        return
    draft = session.state.get("children")
    assert isinstance(draft, Draft)
    try:
        birth = parse_birth_date(text, NOW.date())
    except BirthDateError as exc:
        assert draft.step == BIRTH and draft.birth is None and before == after
        assert [r.text for r in replies] == [GUIDE.renderer.render("child", **_child_context(
            step="bad_birth", reason=exc.reason))]
        return
    assert draft.birth == birth and draft.step == "sex"


def _child_context(**context: object) -> dict[str, object]:
    return {"children": [], "again": False, "reason": "", "nickname": "", "age": "", "upcoming": [], "missed": [],
            "added": False, "updated": False, "preterm": False, "cases": [], **context}


def _check_nickname(world: World, session: Session, text: str, replies: list[Reply], before: object,
                    after: object) -> None:
    if _urgent(replies):
        return
    draft = session.state.get("children")
    assert isinstance(draft, Draft)
    try:
        nickname = clean_nickname(text)
    except ValueError:
        assert draft.step == NICKNAME and before == after
        return
    assert draft.step == BIRTH and draft.nickname == nickname and len(nickname) <= 20
    assert all(ch.isprintable() or ch == " " for ch in nickname), nickname


def _a_child(world: World) -> tuple[str, str, str | None]:
    row = world.store.db.execute("select nickname, birth, discharge from children where id = ?",
                                 [world.ids.child_a]).fetchone()
    return str(row[0]), str(row[1]), row[2]


def _check_edit_birth(world: World, session: Session, text: str, replies: list[Reply], before: object,
                      after: object) -> None:
    if _urgent(replies):
        return
    try:
        birth = parse_birth_date(text, NOW.date())
    except BirthDateError:
        assert before == after
        return
    assert _a_child(world)[1] == birth.isoformat()


def _check_edit_discharge(world: World, session: Session, text: str, replies: list[Reply], before: object,
                          after: object) -> None:
    if _urgent(replies):
        return
    try:
        day = parse_date(text, NOW.date())
    except DateError:
        assert before == after
        return
    if dt.date(2026, 3, 1) <= day <= NOW.date():
        assert _a_child(world)[2] == day.isoformat()
    else:
        assert before == after


def _check_visit_time(world: World, session: Session, text: str, replies: list[Reply], before: object,
                      after: object) -> None:
    draft = session.state.get("doctors")
    assert isinstance(draft, DoctorDraft)  # a doctor's text is not triaged: the step always reads it
    try:
        at = parse_appointment(sanitize(text), NOW)  # the doctor flow reads sanitized text
    except DateError:
        assert draft.step == "visit_time" and draft.at is None and before == after
        return
    assert draft.at == at and at > NOW and draft.step == "visit_place"


def _check_push_ages(world: World, session: Session, text: str, replies: list[Reply], before: object,
                     after: object) -> None:
    draft = session.state.get("doctors")
    assert isinstance(draft, DoctorDraft)
    m = re.fullmatch(r"\s*(\d{1,2})\s*[-~～到至]\s*(\d{1,2})\s*(?:个?月)?\s*", normalise(sanitize(text)))
    if m is None or int(m.group(1)) > int(m.group(2)) or int(m.group(2)) > 72:
        assert draft.step == "push_ages" and draft.ages is None and before == after
    else:
        assert draft.ages == (int(m.group(1)), int(m.group(2))) and draft.step == "push_text"


def _check_push_text(world: World, session: Session, text: str, replies: list[Reply], before: object,
                     after: object) -> None:
    draft = session.state.get("doctors")
    assert isinstance(draft, DoctorDraft)
    body = sanitize(text).strip()
    if 0 < len(body) <= MAX_PUSH:
        assert draft.step == "push_ready" and draft.text == body
    else:
        assert draft.step == "push_text" and not draft.text and before == after


def _check_report(world: World, session: Session, text: str, replies: list[Reply], before: object,
                  after: object) -> None:
    assert isinstance(before, dict) and isinstance(after, dict)
    new = [r for r in after["reports"] if r not in before["reports"]]
    body = sanitize(text).strip()
    if new:
        [row] = new
        assert row[7] == body and MIN_REPORT <= len(body) <= MAX_REPORT
        assert any(str(row[1]) in r.text for r in replies)  # the reference number is given
    elif not _urgent(replies) and session.awaiting == "reports":
        assert not MIN_REPORT <= len(body) <= MAX_REPORT


def _check_done_date(world: World, session: Session, text: str, replies: list[Reply], before: object,
                     after: object) -> None:
    assert isinstance(before, dict) and isinstance(after, dict)
    if before["records"] != after["records"]:
        [row] = [r for r in after["records"] if r not in before["records"]]
        assert row[2] == parse_birth_date(text, NOW.date()).isoformat()


CHECKS: dict[str, Callable[[World, Session, str, list[Reply], object, object], None]] = {
    "child:birth": _check_birth, "child:nickname": _check_nickname, "child:edit_birth": _check_edit_birth,
    "child:edit_discharge": _check_edit_discharge, "doctor:visit_time": _check_visit_time,
    "doctor:push_ages": _check_push_ages, "doctor:push_text": _check_push_text, "report:unfiled": _check_report,
    "report:institution": _check_report, "reminders:done_date": _check_done_date,
}


def _complete(world: World, step: Step, session: Session, typed: str) -> None:
    """Finish the flow the text was typed into, so what was kept of it reaches the database: a stored
    visit, push or child must hold text the database and the transport can take."""
    draft = session.state.get("doctors") if step.actor == DOCTOR else session.state.get("children")
    if isinstance(draft, DoctorDraft) and draft.step in ("visit_ready", "push_ready"):
        kind = "visit_save" if draft.step == "visit_ready" else "push_send"
        replies = handle(world, Press(Action(kind), actor=DOCTOR), session)
        check_replies(replies, world.conv, typed=typed, echo=step.echo)
        for table in ("visits", "pushes"):
            for row in world.store.db.execute(f"select * from {table}"):
                for value in row:
                    if isinstance(value, str):
                        value.encode("utf-8")
    elif isinstance(draft, Draft) and draft.step == "sex":
        handle(world, Press(Action("child_sex", "m"), actor=PARENT), session)
        replies = handle(world, Press(Action("child_preterm", "n"), actor=PARENT), session)
        check_replies(replies, world.conv)
        assert world.store.db.execute("select count(*) from children where family_id = ?",
                                      [world.ids.family_a]).fetchone()[0] == 2


# ---------------------------------------------------------------- commands


COMMAND_ARGS = st.one_of(
    hostile_text(300),
    st.sampled_from(["", "yes", "0", "12", "１２", "73", "-1", "999999", "1e3", "8.5", " 8 ", "join_", "doc_",
                     "join_AAAAAAAAAAAAAAAAAAAA", "doc_AAAAAAAAAAAAAAAAAAAA", "店口", "all", "\ud800"]),
    st.integers().map(str),
)


@MORE
@given(data=st.data(), role=st.sampled_from(sorted(ROLES)))
def test_every_command_with_any_arguments(worlds: Worlds, data: st.DataObject, role: str) -> None:
    """Every registered command (read from the router, so a new one is covered), for every role, with any
    arguments (a live invite's deep link among them): short, friendly replies; only the tables that
    command may write change; family V is untouched."""
    with fresh(worlds) as world:
        name = data.draw(st.sampled_from(world.conv.router.command_names()), label="command")
        args = data.draw(st.one_of(COMMAND_ARGS, st.just(f"join_{world.ids.invite}")), label="args")
        session = Session()
        before, v_before = dump(world.store), family_rows(world.store, world.ids)
        replies = handle(world, Command(name, args, actor=ROLES[role]), session)
        check_replies(replies, world.conv, typed=args)
        after = dump(world.store)
        assert changed(before, after) <= COMMAND_WRITES.get(name, frozenset()), (name, changed(before, after))
        assert family_rows(world.store, world.ids) == v_before
        if name == "age":
            try:
                months = int(args.strip())
            except ValueError:
                months = -1
            if 0 <= months <= 72:
                assert session.age_months == months
            else:
                assert [r.text.strip() for r in replies] == [BAD_AGE]


@SETTINGS
@given(name=st.text(max_size=40), args=COMMAND_ARGS)
def test_unknown_commands_get_the_help(worlds: Worlds, name: str, args: str) -> None:
    """A command nobody registered, with any name and arguments: the help, and nothing written."""
    with fresh(worlds) as world:
        if world.conv.router.command(name.lower()) is not None:
            return
        before = dump(world.store)
        replies = handle(world, Command(name, args, actor=PARENT), Session())
        check_replies(replies, world.conv, typed=args)
        assert [r.text for r in replies] == [world.conv.guidance.help().text]
        assert dump(world.store) == before


# ---------------------------------------------------------------- buttons: any argument, forged data, forged ids


def _arg_for(spec: ActionSpec) -> st.SearchStrategy[str]:
    regex = st.from_regex(spec.arg, fullmatch=True) if spec.arg else st.just("")
    return st.one_of(regex, hostile_text(40))


@MORE
@given(data=st.data(), role=st.sampled_from(sorted(ROLES)))
def test_every_action_with_any_argument(worlds: Worlds, data: st.DataObject, role: str) -> None:
    """Every registered button (from the router), with an argument from its own pattern or any text and any
    page and value, for every role, in a fresh chat: one the service could not have sent gets the
    'expired' notice and changes nothing; any other a short, friendly reply that changes only the tables
    that button may write. Family V is untouched."""
    with fresh(worlds) as world:
        router = world.conv.router
        spec = data.draw(st.sampled_from(router.action_specs()), label="action")
        action = Action(spec.kind, data.draw(_arg_for(spec), label="arg"),
                        data.draw(st.one_of(st.integers(0, spec.pages - 1), st.integers()), label="page"),
                        data.draw(st.one_of(st.sampled_from(sorted(spec.values)), st.integers()), label="value"))
        before, v_before = dump(world.store), family_rows(world.store, world.ids)
        replies = handle(world, Press(action, actor=ROLES[role]), Session())
        check_replies(replies, world.conv, typed=action.arg)
        after = dump(world.store)
        if not router.accepts(action):
            assert [r.text.strip() for r in replies] == [EXPIRED]
            assert after == before
        else:
            assert changed(before, after) <= ACTION_WRITES.get(spec.kind, frozenset()), (spec.kind, action)
        assert family_rows(world.store, world.ids) == v_before


def _callback_data(specs: list[ActionSpec]) -> st.SearchStrategy[str]:
    """Callback data as anyone could forge it: random text, random bytes, and the version|code|arg|page|value
    layout with any parts — or with a registered code and an argument of its pattern, so that many decode."""
    part = st.one_of(st.text(max_size=20), st.integers().map(str), st.sampled_from(["", "0", "1", "-1", "999"]))
    layout = st.builds(lambda v, c, parts: "|".join([v, c, *parts]),
                       st.sampled_from(["2", "1", "3", "", "２"]),
                       st.one_of(st.sampled_from([s.code for s in specs]), st.text(max_size=4)),
                       st.lists(part, max_size=4))
    registered = st.sampled_from(specs).flatmap(lambda spec: st.builds(
        lambda arg, page, value, n: "|".join(["2", spec.code, arg, page, value][:n]),
        st.from_regex(spec.arg, fullmatch=True) if spec.arg else st.just(""),
        st.one_of(st.integers(0, spec.pages - 1).map(str), st.from_regex(r"\d{1,4}", fullmatch=True)),
        st.one_of(st.sampled_from(sorted(spec.values)).map(str), st.from_regex(r"-?\d{1,3}", fullmatch=True)),
        st.integers(2, 5)))
    return st.one_of(registered, st.text(max_size=70), layout, registered,
                     st.binary(max_size=64).map(lambda b: b.decode("utf-8", "replace")),
                     st.binary(max_size=64).map(lambda b: b.decode("latin-1")))


@SETTINGS
@given(data=st.data())
def test_forged_callback_data_is_refused_or_a_real_button(worlds: Worlds, data: st.DataObject) -> None:
    """Callback data as anyone could forge it (random text and bytes, the version|code|arg|page|value layout
    with any parts): `decode_action` either refuses it (the bot says 'expired') or gives an action the
    router accepts and encodes back to the same action; pressed by any role it gives a short, friendly
    reply and changes only what that button may write. Family V is untouched."""
    with fresh(worlds) as world:
        router = world.conv.router
        raw = data.draw(_callback_data(router.action_specs()), label="data")
        action = decode_action(raw, router)
        event("decoded" if action is not None else "refused")
        if action is None:
            return
        assert router.accepts(action) and decode_action(encode_action(action, router), router) == action
        assert len(raw.encode("utf-8")) <= 64
        for actor in ROLES.values():
            before, v_before = dump(world.store), family_rows(world.store, world.ids)
            replies = handle(world, Press(action, actor=actor), Session())
            check_replies(replies, world.conv, typed=raw)
            assert changed(before, dump(world.store)) <= ACTION_WRITES.get(action.kind, frozenset())
            assert family_rows(world.store, world.ids) == v_before


def _id_specs(specs: list[ActionSpec]) -> list[ActionSpec]:
    """Buttons whose argument starts with a row id (a child, a family, a visit, an institution)."""
    return [s for s in specs if s.arg.startswith(r"\d{1,9}")]


# Items of family V's child's plan: one recorded (hepb-1), one muted (bcg-1), one neither.
V_ITEMS = ("hepb-1", "bcg-1", "hepb-2")


@settings(SETTINGS, max_examples=4)
@given(data=st.data())
def test_buttons_with_forged_ids_change_nothing_and_show_nothing(worlds: Worlds, data: st.DataObject) -> None:
    """Every button whose argument names a row (from the registry), carrying an id that is not the presser's:
    family V's child, family and visit ids, ids that do not exist, and family A's ids pressed by anyone but
    parent A — each pressed by every role with every value the button takes (delete, confirm…). Nothing
    is written (sqlite's change counter stands still, and the dump is the same at the end), nothing of
    family V shows, and a child's or reminder's button says 'expired' (or refuses the role)."""
    with fresh(worlds) as world:
        ids, router, conn = world.ids, world.conv.router, world.store.db.conn
        victim, own = {ids.child_v, ids.family_v, ids.visit_v}, {ids.child_a, ids.family_a, ids.visit_a}
        nobody = {0, 999_999_999, data.draw(st.integers(8, 10**9 - 1), label="unknown id")}
        before, presses = dump(world.store), 0
        for spec in _id_specs(router.action_specs()):
            tails = [data.draw(st.from_regex(spec.arg, fullmatch=True), label=spec.kind),
                     *(f"0-{item}" for item in V_ITEMS)]
            for forged in sorted(victim | own | nobody):
                for tail in tails:
                    for value in sorted(spec.values):
                        action = Action(spec.kind, re.sub(r"^\d+", str(forged), tail), 0, value)
                        if not spec.accepts(action):
                            continue
                        for role, actor in ROLES.items():
                            if forged in own and role == "parent":
                                continue
                            changes = conn.total_changes
                            replies = handle(world, Press(action, actor=actor), Session())
                            presses += 1
                            check_replies(replies, world.conv, typed=action.arg)
                            assert conn.total_changes == changes, (action, role)
                            if spec.kind.startswith(("child_", "remind_")) and forged not in own:
                                assert [r.text.strip() for r in replies] in ([EXPIRED], [_refusal(spec.permission)])
        assert presses > 100 and dump(world.store) == before


def _refusal(permission: str) -> str:
    return GUIDE.renderer.render("not_allowed", permission=permission).strip()


# ---------------------------------------------------------------- locations, contacts and other kinds


COORDINATE = st.one_of(st.floats(), st.floats(allow_nan=True, allow_infinity=True),
                       st.sampled_from([math.nan, math.inf, -math.inf, 90.0, -90.0, 90.000001, 180.0, -180.0,
                                        180.000001, 1e308, -0.0, 5e-324]),
                       st.floats(min_value=29.0, max_value=30.3), st.floats(min_value=119.8, max_value=120.7))
LOCATION_STEPS = ["idle:stranger", "idle:parent", "idle:doctor", "finder:prompt", "finder:results", "report:unfiled",
                  "doctor:visit_time", "child:birth"]


@SETTINGS
@given(step=st.sampled_from(LOCATION_STEPS), lat=COORDINATE, lon=COORDINATE)
@example(step="finder:prompt", lat=math.nan, lon=120.2)
@example(step="idle:parent", lat=29.7, lon=math.inf)
def test_any_location(worlds: Worlds, step: str, lat: float, lon: float) -> None:
    """A location of any value at any step: NaN, infinities or out of range get exactly the bad-location
    notice and change neither the database nor the step; a valid one never writes, and gives results
    exactly when it is in Zhuji."""
    with fresh(worlds) as world:
        s = BY_NAME[step]
        session, before = _reached(world, s)
        awaiting = session.awaiting
        replies = handle(world, Location(lat, lon, actor=s.actor), session)
        check_replies(replies, world.conv)
        assert dump(world.store) == before
        if not Location(lat, lon).valid:
            assert [r.text.strip() for r in replies] == [BAD_LOCATION]
            assert session.awaiting == awaiting
        else:
            assert (replies[0].kind == "results") == in_zhuji(lat, lon)


@SETTINGS
@given(step=st.sampled_from(STEP_NAMES),
       what=st.one_of(st.sampled_from(["contact", "photo", "sticker", "voice", "video", "document", "poll", "dice",
                                       "venue", "animation", "story", ""]), st.text(max_size=30)))
def test_contacts_and_other_kinds_get_one_notice(worlds: Worlds, step: str, what: str) -> None:
    """A contact, photo, sticker… (anything but text, a command, a button or a location) at any step: the one
    'text only' notice, no change to the database, the step still waiting."""
    with fresh(worlds) as world:
        s = BY_NAME[step]
        session, before = _reached(world, s)
        awaiting = session.awaiting
        replies = handle(world, Unsupported(what, actor=s.actor), session)
        check_replies(replies, world.conv)
        assert [r.text.strip() for r in replies] == [UNSUPPORTED]
        assert dump(world.store) == before and session.awaiting == awaiting


# ---------------------------------------------------------------- the console


CONSOLE_LINES = st.one_of(
    hostile_text(300),
    st.builds(lambda p, rest: p + rest, st.sampled_from(["/loc", "/loc ", "/location ", "/LOC "]),
              st.one_of(hostile_text(40), st.builds("{} {}".format, st.floats(), st.floats()),
                        st.builds("{},{}".format, st.floats(29.3, 30.0), st.floats(119.9, 120.5)))),
    st.builds(lambda n, a: f"/{n} {a}", st.from_regex(r"[A-Za-z0-9_]{1,33}", fullmatch=True), hostile_text(40)),
    st.integers(-5, 30).map(str),
)


@SETTINGS
@given(lines=st.lists(CONSOLE_LINES, min_size=1, max_size=4))
def test_console_lines(worlds: Worlds, lines: list[str]) -> None:
    """Lines typed at `zjcare-guide chat`, read as its loop reads them (from_terminal, then console_event:
    numbers press the last reply's buttons, /loc shares a location): no lone surrogate gets past
    from_terminal, console_event never fails, an unreadable /loc gets the bad-location notice, every reply
    is short and friendly, and the console's anonymous person can at most leave a question for the
    editors, agree to store a family (a numbered consent button) or rate an answer."""
    with fresh(worlds) as world:
        session = Session(numbered_buttons=True)
        before = dump(world.store)
        handle(world, Command("start", actor=console_event("/start").actor), session)
        for raw in lines:
            line = from_terminal(raw).strip()
            line.encode("utf-8")
            incoming = console_event(line)
            if isinstance(incoming, Location) and not incoming.valid:
                state = session.awaiting
                replies = handle(world, incoming, session)
                assert [r.text.strip() for r in replies] == [BAD_LOCATION] and session.awaiting == state
            else:
                replies = handle(world, incoming, session)
            check_replies(replies, world.conv, typed=line, echo=2 * MAX_NICKNAME)
        assert changed(before, dump(world.store)) <= UNANSWERED | {"families", "feedback"}
