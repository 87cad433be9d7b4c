"""Family doctors: registration, invites, signing (签约) with a preview, unlinking, a doctor's own
families only, and the audit log — with a real SQLite database and a fixed clock."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from zjcare_guide.children import Families
from zjcare_guide.clock import TZ, fixed_clock
from zjcare_guide.conversation import Conversation
from zjcare_guide.doctors import DOCTOR_PREFIX, Doctors, InviteError
from zjcare_guide.guide import Guide
from zjcare_guide.identity import Actor
from zjcare_guide.replies import Action, Command, Press, Reply, Session, Text
from zjcare_guide.store import Store

NOW = dt.datetime(2026, 12, 1, 10, 0, tzinfo=TZ)
PARENT = Actor("test", "4242", "4242")
OTHER_PARENT = Actor("test", "5151", "5151")
DOCTOR_A = Actor("test", "7001", "7001")
DOCTOR_B = Actor("test", "7002", "7002")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "z.db")


@pytest.fixture
def conv(guide: Guide, store: Store) -> Conversation:
    return Conversation(guide, clock=fixed_clock(NOW), store=store, bot_username="zjcare_test_bot")


def doctors(store: Store) -> Doctors:
    return Doctors(store.db)


def register_child(conv: Conversation, actor: Actor, nickname: str = "豆豆", birth: str = "2026-03-01") -> None:
    session = Session()
    [consent] = conv.handle(Command("child", actor=actor), session)
    if any(a.kind == "child_consent" for a in consent.actions()):
        conv.handle(Press(Action("child_consent", value=1), actor=actor), session)
    else:
        conv.handle(Press(Action("child_add"), actor=actor), session)
    conv.handle(Text(nickname, actor=actor), session)
    conv.handle(Text(birth, actor=actor), session)
    conv.handle(Press(Action("child_sex", "n"), actor=actor), session)
    conv.handle(Press(Action("child_preterm", "n"), actor=actor), session)


def doctor(store: Store, actor: Actor, name: str = "王医生") -> int:
    return doctors(store).add(name, "店口镇卫生院", NOW, actor.user_key).id


def join(conv: Conversation, actor: Actor, code: str) -> tuple[Reply, list[Reply]]:
    session = Session()
    [preview] = conv.handle(Command("start", f"join_{code}", actor=actor), session)
    confirm = next(a for a in preview.actions() if a.kind == "join")
    return preview, conv.handle(Press(confirm, actor=actor), session)


def dump(store: Store) -> list[tuple[object, ...]]:
    return [(t, *r) for t in ("families", "children", "doctors", "invites", "links", "doctor_codes")
            for r in store.db.execute(f"select * from {t}")]


def test_a_doctor_registers_with_a_one_time_code(conv: Conversation, store: Store) -> None:
    book = doctors(store)
    new = book.add("李医生", "枫桥镇卫生院", NOW)
    code = book.registration_code(new.id, NOW)
    [done] = conv.handle(Command("start", f"{DOCTOR_PREFIX}{code}", actor=DOCTOR_A), Session())
    assert "已登记为家庭医生" in done.text and book.by_user(DOCTOR_A.user_key) == book.get(new.id)
    [again] = conv.handle(Command("start", f"{DOCTOR_PREFIX}{code}", actor=DOCTOR_B), Session())
    assert "用过" in again.text and book.by_user(DOCTOR_B.user_key) is None
    expired = book.registration_code(new.id, NOW - dt.timedelta(days=8))
    with pytest.raises(InviteError):
        book.claim(expired, DOCTOR_B.user_key, NOW)


def test_a_parent_sees_what_the_doctor_will_see_then_signs(conv: Conversation, store: Store) -> None:
    doctor_id = doctor(store, DOCTOR_A)
    register_child(conv, PARENT)
    code = doctors(store).invite(doctor_id, NOW)
    preview, [joined] = join(conv, PARENT, code)
    assert "王医生" in preview.text and "豆豆" in preview.text and "9个月" in preview.text and "/unlink" in preview.text
    assert "已与" in joined.text
    family = Families(store.db).get(PARENT.user_key)
    assert family is not None and doctors(store).doctor_of(family.id).id == doctor_id  # type: ignore[union-attr]
    [families] = conv.handle(Command("families", actor=DOCTOR_A), Session())
    assert "豆豆" in families.text and "9个月" in families.text
    actions = [r["action"] for r in doctors(store).audit_log(doctor_id)]
    assert actions == ["link", "families"]


def test_signing_without_children_is_the_consent_and_another_doctor_replaces_after_a_warning(
        conv: Conversation, store: Store) -> None:
    a, b = doctor(store, DOCTOR_A), doctor(store, DOCTOR_B, "陈医生")
    _, [joined] = join(conv, OTHER_PARENT, doctors(store).invite(a, NOW))
    family = Families(store.db).get(OTHER_PARENT.user_key)
    assert family is not None and family.consent_at is not None and "/child" in joined.text
    preview, _ = join(conv, OTHER_PARENT, doctors(store).invite(b, NOW))
    assert "现在的签约医生是王医生" in preview.text
    assert doctors(store).doctor_of(family.id).id == b  # type: ignore[union-attr]
    [empty] = conv.handle(Command("families", actor=DOCTOR_A), Session())
    assert "还没有家庭签约" in empty.text


def test_bad_invites_change_nothing(conv: Conversation, store: Store) -> None:
    doctor_id = doctor(store, DOCTOR_A)
    book = doctors(store)
    revoked = book.invite(doctor_id, NOW)
    book.revoke(doctor_id, revoked, NOW)
    expired = book.invite(doctor_id, NOW - dt.timedelta(days=10), valid_days=3)
    before = dump(store)
    for code, words in ((revoked, "作废"), (expired, "过期"), ("A" * 20, "无效"), ("short", "无效")):
        replies = conv.handle(Command("start", f"join_{code}", actor=PARENT), Session())
        assert words in replies[0].text and dump(store) == before
    # Revoked between the preview and the confirmation.
    live = book.invite(doctor_id, NOW)
    session = Session()
    [preview] = conv.handle(Command("start", f"join_{live}", actor=PARENT), session)
    book.revoke(doctor_id, live, NOW)
    before = dump(store)
    [refused] = conv.handle(Press(next(a for a in preview.actions() if a.kind == "join"), actor=PARENT), session)
    assert "作废" in refused.text and dump(store) == before


def test_unlink_ends_what_the_doctor_sees(conv: Conversation, store: Store) -> None:
    doctor_id = doctor(store, DOCTOR_A)
    register_child(conv, PARENT)
    join(conv, PARENT, doctors(store).invite(doctor_id, NOW))
    session = Session()
    [confirm] = conv.handle(Command("unlink", actor=PARENT), session)
    assert "确定" in confirm.text
    conv.handle(Press(next(a for a in confirm.actions() if a.kind == "unlink"), actor=PARENT), session)
    [families] = conv.handle(Command("families", actor=DOCTOR_A), Session())
    assert "豆豆" not in families.text
    [nothing] = conv.handle(Command("unlink", actor=PARENT), Session())
    assert "没有签约" in nothing.text


def test_doctor_commands_are_for_doctors_only(conv: Conversation, store: Store) -> None:
    doctor(store, DOCTOR_A)
    before = dump(store)
    for name in ("families", "overdue", "invite"):
        [refused] = conv.handle(Command(name, actor=PARENT), Session())
        assert "家庭医生开放" in refused.text, name
    [forged] = conv.handle(Press(Action("families", page=1), actor=PARENT), Session())
    assert "家庭医生开放" in forged.text and dump(store) == before


def test_invite_is_a_qr_code_of_the_deep_link(conv: Conversation, store: Store) -> None:
    doctor(store, DOCTOR_A)
    [invite] = conv.handle(Command("invite", actor=DOCTOR_A), Session())
    assert invite.photo is not None and invite.photo.startswith(b"\x89PNG")
    link = next(line for line in invite.text.splitlines() if line.startswith("https://t.me/"))
    code = link.split("start=join_")[1]
    assert len("join_" + code) <= 64 and all(c.isalnum() or c in "_-" for c in code)
    assert doctors(store).check_invite(code, NOW).name == "王医生"


def test_overdue_lists_only_families_with_overdue_items(conv: Conversation, store: Store) -> None:
    doctor_id = doctor(store, DOCTOR_A)
    register_child(conv, PARENT, "豆豆", "2026-03-01")  # registered late: past items overdue
    register_child(conv, OTHER_PARENT, "阿福", "2026-11-28")
    for actor in (PARENT, OTHER_PARENT):
        join(conv, actor, doctors(store).invite(doctor_id, NOW))
    [overdue] = conv.handle(Command("overdue", actor=DOCTOR_A), Session())
    assert "豆豆" in overdue.text and "阿福" not in overdue.text and "逾期" in overdue.text
