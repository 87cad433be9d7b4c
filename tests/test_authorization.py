"""The authorisation matrix, generated from the router's registry so that a new command or button cannot
be left out: every role that lacks a command's or action's permission is refused with a clear message and
the database is unchanged; every role that holds it gets past the check."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zjcare_guide.clock import TZ, fixed_clock
from zjcare_guide.content import DEFAULT_CONTENT_DIR
from zjcare_guide.conversation import Conversation
from zjcare_guide.doctors import Doctors
from zjcare_guide.guide import Guide
from zjcare_guide.identity import Actor
from zjcare_guide.institutions import Directory
from zjcare_guide.registry_import import load_demo
from zjcare_guide.replies import Action, Command, Press, Session, Text
from zjcare_guide.roles import PERMISSIONS
from zjcare_guide.store import Store

NOW = dt.datetime(2026, 12, 1, 10, 0, tzinfo=TZ)
ACTORS = {
    "stranger": Actor("test", "1", "1"),
    "parent": Actor("test", "4242", "4242"),
    "doctor_a": Actor("test", "7001", "7001"),
    "doctor_b": Actor("test", "7002", "7002"),
    "operator": Actor("test", "77", "77"),
    "admin": Actor("test", "9001", "9001"),
}
# Which permissions each role holds (doctor B has no families: resource checks are the handlers').
HOLDS = {
    "stranger": {"anyone"}, "parent": {"anyone", "parent"}, "doctor_a": {"anyone", "doctor"},
    "doctor_b": {"anyone", "doctor"}, "operator": {"anyone", "operator"}, "admin": {"anyone", "admin"},
}
REFUSALS = {"doctor": "家庭医生开放", "operator": "只有登记的托育机构工作人员", "admin": "仅限管理员",
            "parent": "请先发送 /child"}
GUIDE = Guide.from_dir(DEFAULT_CONTENT_DIR, NOW.date())


def build(tmp: Path) -> tuple[Conversation, Store]:
    store = Store.open(tmp / "z.db")
    directory = Directory(store.db)
    load_demo(directory, DEFAULT_CONTENT_DIR, NOW.date())
    directory.add_operator(ACTORS["operator"].user_key, "DEMO-010", NOW.date())
    conv = Conversation(GUIDE, clock=fixed_clock(NOW), store=store, admins=frozenset({ACTORS["admin"].user_key}),
                        bot_username="zjcare_test_bot")
    book = Doctors(store.db)
    a = book.add("王医生", "店口镇卫生院", NOW, ACTORS["doctor_a"].user_key)
    book.add("陈医生", "枫桥镇卫生院", NOW, ACTORS["doctor_b"].user_key)
    parent, session = ACTORS["parent"], Session()
    conv.handle(Command("child", actor=parent), session)
    conv.handle(Press(Action("child_consent", value=1), actor=parent), session)
    for step in ("豆豆", "2026-03-01"):
        conv.handle(Text(step, actor=parent), session)
    conv.handle(Press(Action("child_sex", "n"), actor=parent), session)
    conv.handle(Press(Action("child_preterm", "n"), actor=parent), session)
    family = conv.authority.families.get(parent.user_key)  # type: ignore[union-attr]
    assert family is not None
    book.link(family.id, a.id, NOW)
    return conv, store


def dump(store: Store) -> list[tuple[object, ...]]:
    tables = [r[0] for r in store.db.execute("select name from sqlite_master where type = 'table' and name not like "
                                              "'%rtree%' and name not like 'sqlite_%' and name != 'audit'")]
    return [(t, *r) for t in sorted(tables) for r in store.db.execute(f"select * from {t}")]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Conversation, Store]:
    return build(tmp_path_factory.mktemp("authz"))


def test_every_protected_command_and_action_names_a_known_permission(world: tuple[Conversation, Store]) -> None:
    conv, _ = world
    specs = [*(conv.router.command(n) for n in conv.router.command_names()), *conv.router.action_specs()]
    assert all(s is not None and s.permission in PERMISSIONS for s in specs)
    protected = {s.permission for s in specs if s is not None and s.permission != "anyone"}
    assert {"doctor", "operator"} <= protected  # the matrix below has something to check


@pytest.mark.parametrize("role", sorted(ACTORS))
def test_commands_matrix(world: tuple[Conversation, Store], role: str) -> None:
    conv, store = world
    for name in conv.router.command_names():
        spec = conv.router.command(name)
        assert spec is not None
        if spec.permission == "anyone":
            continue
        before = dump(store)
        [reply] = conv.handle(Command(name, actor=ACTORS[role]), Session())[:1]
        refused = REFUSALS[spec.permission] in reply.text
        if spec.permission in HOLDS[role]:
            assert not refused, (role, name)
        else:
            assert refused, (role, name, reply.text)
            assert dump(store) == before, (role, name)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_actions_matrix(world: tuple[Conversation, Store], data: st.DataObject) -> None:
    conv, store = world
    for spec in conv.router.action_specs():
        if spec.permission == "anyone":
            continue
        arg = data.draw(st.from_regex(spec.arg, fullmatch=True).filter(lambda a: "|" not in a)) if spec.arg else ""
        action = Action(spec.kind, arg, page=data.draw(st.integers(0, spec.pages - 1)),
                        value=data.draw(st.sampled_from(sorted(spec.values))))
        for role, actor in ACTORS.items():
            if spec.permission in HOLDS[role]:
                continue
            before = dump(store)
            [reply] = conv.handle(Press(action, actor=actor), Session())
            assert REFUSALS[spec.permission] in reply.text, (role, spec.kind, reply.text)
            assert dump(store) == before, (role, spec.kind)


def test_a_doctor_cannot_act_on_another_doctors_family(world: tuple[Conversation, Store]) -> None:
    """Every doctor button that names a family (its argument is a family id), pressed by doctor B with
    doctor A's family: refused, nothing changed — found from the registry, not listed by hand."""
    conv, store = world
    family = conv.authority.families.get(ACTORS["parent"].user_key)  # type: ignore[union-attr]
    assert family is not None
    family_actions = [s for s in conv.router.action_specs() if s.permission == "doctor" and s.arg == r"\d{1,9}"]
    assert family_actions  # visit_family at least
    for spec in family_actions:
        before = dump(store)
        [reply] = conv.handle(Press(Action(spec.kind, str(family.id)), actor=ACTORS["doctor_b"]), Session())
        assert "没有与您签约" in reply.text, spec.kind
        assert dump(store) == before, spec.kind
        # Doctor A, whose family it is, gets past the check.
        [ok] = conv.handle(Press(Action(spec.kind, str(family.id)), actor=ACTORS["doctor_a"]), Session())
        assert "没有与您签约" not in ok.text, spec.kind
