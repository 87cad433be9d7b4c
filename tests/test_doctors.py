"""Family doctors: registration, invites, signing (签约) with a preview, unlinking, a doctor's own
families only, and the audit log — with a real SQLite database and a fixed clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import pytest

from zjcare_guide.children import Families, Family
from zjcare_guide.clock import TZ, fixed_clock
from zjcare_guide.conversation import Conversation
from zjcare_guide.dispatcher import Content, Dispatcher
from zjcare_guide.doctors import DOCTOR_PREFIX, Doctors, InviteError
from zjcare_guide.guide import Guide
from zjcare_guide.identity import Actor
from zjcare_guide.outbound import Blocked, Failed, SendResult, Sent
from zjcare_guide.outbox import Outbox, visit_reminder_times
from zjcare_guide.reminders import Counts, Policy, Reminders
from zjcare_guide.replies import Action, Command, Press, Reply, Session, Text
from zjcare_guide.store import Store

from .test_reminders import register

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
    register(conv, Session(), nickname, birth, actor)


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
    [confirm] = conv.handle(Command("unlink", "yes", actor=PARENT), session)  # typed words confirm nothing
    assert "确定" in confirm.text and store.db.table("links").count == 1
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


# ---------------------------------------------------------------- visits and pushes


class Recorder:
    """An outbound at the edge: records sends and edits; `script` answers the next sends."""

    transport = "test"

    def __init__(self, *script: object) -> None:
        self.sent: list[tuple[str, Reply]] = []
        self.edits: list[tuple[str, str, Reply]] = []
        self.script = list(script)

    async def send(self, address: str, replies: Sequence[Reply]) -> SendResult:
        result = self.script.pop(0) if self.script else Sent(str(len(self.sent) + 1))
        if isinstance(result, Sent):
            self.sent.append((address, replies[0]))
        return result  # type: ignore[return-value]

    async def edit(self, address: str, message_id: str, reply: Reply) -> SendResult:
        self.edits.append((address, message_id, reply))
        return Sent(message_id)


async def dispatch(store: Store, guide: Guide, out: Recorder, when: dt.datetime) -> Counts:
    async def no_sleep(seconds: float) -> None:
        return None

    return await Dispatcher(Reminders(store.db), {"test": out}, lambda: Content(guide.library.schedules,
                                                                                  guide.renderer),
                            Policy(), wall=fixed_clock(when), sleep=no_sleep, in_thread=False, rate=1000).run(when)


def signed_family(conv: Conversation, store: Store) -> tuple[int, Family]:
    """DOCTOR_A, and PARENT's family with one child signed with them; the child's reminders set aside."""
    doctor_id = doctor(store, DOCTOR_A)
    register_child(conv, PARENT)
    join(conv, PARENT, doctors(store).invite(doctor_id, NOW))
    only_visits_and_pushes(store)
    family = Families(store.db).get(PARENT.user_key)
    assert family is not None
    return doctor_id, family


def only_visits_and_pushes(store: Store) -> None:
    store.db.execute("update reminders set state = 'cancelled', reason = 'test'")  # reminders tested elsewhere


async def test_a_visit_is_told_reminded_answered_and_the_doctor_hears(conv: Conversation, store: Store,
                                                                      guide: Guide) -> None:
    doctor_id = doctor(store, DOCTOR_A)
    register_child(conv, PARENT, "豆豆", "2026-11-25")  # a newborn: listed first, marked 🍼
    register_child(conv, OTHER_PARENT, "阿福", "2026-03-01")
    for actor in (PARENT, OTHER_PARENT):
        join(conv, actor, doctors(store).invite(doctor_id, NOW))
    only_visits_and_pushes(store)
    session = Session()
    [pick] = conv.handle(Command("visit", actor=DOCTOR_A), session)
    first = pick.buttons[0][0]
    assert first.label.startswith("🍼") and "豆豆" in first.label
    conv.handle(Press(first.action, actor=DOCTOR_A), session)
    [bad] = conv.handle(Text("昨天下午3点", actor=DOCTOR_A), session)
    assert "已经过了" in bad.text
    [place] = conv.handle(Text("12月3日下午2点半", actor=DOCTOR_A), session)
    [note] = conv.handle(Press(place.actions()[0], actor=DOCTOR_A), session)  # 家中（上门访视）
    assert "备注" in note.text or "准备" in note.text
    [preview] = conv.handle(Text("请准备好母子健康手册，宝宝高热惊厥史请告诉我", actor=DOCTOR_A), session)
    assert preview.kind != "urgent" and "12月3日" in preview.text and "14:30" in preview.text
    [saved] = conv.handle(Press(preview.actions()[0], actor=DOCTOR_A), session)
    assert "已通知家长" in saved.text
    out = Recorder()
    await dispatch(store, guide, out, NOW)
    [(address, notice)] = out.sent
    assert address == PARENT.chat_key and "访视预约" in notice.text and "14:30" in notice.text
    # The day before at 09:00 and 2 hours before.
    await dispatch(store, guide, out, dt.datetime(2026, 12, 2, 9, 0, tzinfo=TZ))
    assert "明天" in out.sent[-1][1].text
    confirm = next(a for a in notice.actions() if a.value == 1)
    [forged] = conv.handle(Press(confirm, actor=OTHER_PARENT), Session())
    assert "过期" in forged.text
    [answered] = conv.handle(Press(confirm, actor=PARENT), Session())
    assert "已确认" in answered.text
    await dispatch(store, guide, out, NOW + dt.timedelta(minutes=1))
    told = [r for a, r in out.sent if a == DOCTOR_A.chat_key]
    assert len(told) == 1 and "家长已确认" in told[0].text and "豆豆" in told[0].text
    await dispatch(store, guide, out, dt.datetime(2026, 12, 3, 12, 30, tzinfo=TZ))
    assert "14:30开始" in out.sent[-1][1].text and not out.sent[-1][1].actions()  # confirmed: no buttons
    actions = [r["action"] for r in doctors(store).audit_log(doctor_id)]
    assert "visit" in actions and "visit_confirmed" in actions


def test_another_doctors_family_cannot_be_visited(conv: Conversation, store: Store) -> None:
    a = doctor(store, DOCTOR_A)
    doctor(store, DOCTOR_B, "陈医生")
    register_child(conv, PARENT)
    join(conv, PARENT, doctors(store).invite(a, NOW))
    family = Families(store.db).get(PARENT.user_key)
    assert family is not None
    before = dump(store)
    [refused] = conv.handle(Press(Action("visit_family", str(family.id)), actor=DOCTOR_B), Session())
    assert "没有与您签约" in refused.text and dump(store) == before


async def test_a_push_goes_to_the_chosen_families_within_the_daily_limit(conv: Conversation, store: Store,
                                                                          guide: Guide) -> None:
    doctor_id = doctor(store, DOCTOR_A)
    parents = [Actor("test", str(100 + n), str(100 + n)) for n in range(6)]
    for n, actor in enumerate(parents):
        register_child(conv, actor, f"宝{n}", "2026-03-01" if n % 2 else "2026-11-20")
        join(conv, actor, doctors(store).invite(doctor_id, NOW))
    only_visits_and_pushes(store)
    session = Session()
    [audience] = conv.handle(Command("push", actor=DOCTOR_A), session)
    conv.handle(Press(next(a for a in audience.actions() if a.arg == "age"), actor=DOCTOR_A), session)
    [again] = conv.handle(Text("十二到零", actor=DOCTOR_A), session)
    assert "没看懂" in again.text
    conv.handle(Text("0-3", actor=DOCTOR_A), session)
    [preview] = conv.handle(Text("本周六上午卫生院有免费体检，宝宝抽搐过的请提前告诉医生。", actor=DOCTOR_A), session)
    assert preview.kind != "urgent" and "共3个家庭" in preview.text
    [started] = conv.handle(Press(preview.actions()[0], actor=DOCTOR_A), session)
    assert "3个家庭" in started.text
    out = Recorder(Sent("1"), Failed("bad request: chat not found", permanent=True), Blocked())
    counts = await dispatch(store, guide, out, NOW)
    pushed = [a for a, r in out.sent if "免费体检" in r.text]
    assert len(pushed) == 1 and counts.failed == 1 and counts.blocked == 1  # 1 sent, 1 failed, 1 blocked
    assert out.sent[0][0] == DOCTOR_A.chat_key  # the progress message first
    final = out.edits[-1][2].text
    assert "发送完成" in final and "已发送：1" in final and "失败：1" in final and "屏蔽机器人：1" in final
    # The daily limit: a doctor with 1 left cannot push to 3.
    conv.doctor_flow.policy = Policy(push_daily_limit=2)
    session = Session()
    [audience] = conv.handle(Command("push", actor=DOCTOR_A), session)
    conv.handle(Press(next(a for a in audience.actions() if a.arg == "all"), actor=DOCTOR_A), session)
    [over] = conv.handle(Text("通知", actor=DOCTOR_A), session)
    assert "超过了今天的发送上限" in over.text and not over.actions()


@pytest.mark.parametrize("visit, expected", [
    ("2026-12-05T14:30", {"visit_day": "2026-12-04T09:00", "visit_2h": "2026-12-05T12:30"}),
    ("2026-12-05T09:30", {"visit_day": "2026-12-04T09:00", "visit_2h": "2026-12-05T08:00"}),  # 07:30 is quiet
    ("2026-12-05T07:45", {"visit_day": "2026-12-04T09:00"}),  # quiet until after the visit: skipped
    ("2026-12-01T15:00", {"visit_2h": "2026-12-01T13:00"}),  # the day before has passed
])
def test_visit_reminders_the_day_before_and_two_hours_before_quiet_hours_win(
        visit: str, expected: dict[str, str]) -> None:
    at = dt.datetime.fromisoformat(visit).replace(tzinfo=TZ)
    times = visit_reminder_times(at, NOW, Policy())
    assert {k: v.strftime("%Y-%m-%dT%H:%M") for k, v in times.items()} == expected


def test_cancel_under_a_push_preview_sends_nothing(conv: Conversation, store: Store) -> None:
    doctor_id = doctor(store, DOCTOR_A)
    register_child(conv, PARENT)
    join(conv, PARENT, doctors(store).invite(doctor_id, NOW))
    session = Session()
    [audience] = conv.handle(Command("push", actor=DOCTOR_A), session)
    conv.handle(Press(next(a for a in audience.actions() if a.arg == "all"), actor=DOCTOR_A), session)
    [preview] = conv.handle(Text("周六体检", actor=DOCTOR_A), session)
    send, cancel = preview.actions()
    conv.handle(Press(cancel, actor=DOCTOR_A), session)
    [late] = conv.handle(Press(send, actor=DOCTOR_A), session)
    assert "过期" in late.text and store.db.execute("select count(*) from pushes").fetchone()[0] == 0


async def test_unlinking_calls_off_what_the_doctor_queued(conv: Conversation, store: Store, guide: Guide) -> None:
    doctor_id, family = signed_family(conv, store)
    Outbox(store.db).add_visit(doctor_id, family.id, family.address, NOW + dt.timedelta(days=4), "家中", "", NOW,
                               Policy())
    Outbox(store.db).add_push(doctor_id, "周六体检", "全部签约家庭", [(family.id, family.address)],
                              DOCTOR_A.chat_key, NOW)
    session = Session()
    [confirm] = conv.handle(Command("unlink", actor=PARENT), session)
    conv.handle(Press(next(a for a in confirm.actions() if a.kind == "unlink"), actor=PARENT), session)
    out = Recorder()
    await dispatch(store, guide, out, NOW + dt.timedelta(minutes=1))
    await dispatch(store, guide, out, NOW + dt.timedelta(days=3, hours=1))
    assert [a for a, _ in out.sent if a == PARENT.chat_key] == []  # no visit notice, reminder or push
    assert store.db.execute("select state from visits").fetchone()[0] == "cancelled"
    # The doctor is told the visit still to come is off, once.
    [told] = [r.text for a, r in out.sent if a == DOCTOR_A.chat_key and "访视" in r.text]
    assert "解除签约" in told and "访视取消" in told and "豆豆" in told


async def test_forgetting_tells_the_doctor_of_a_visit_still_to_come_and_keeps_nothing_of_the_family(
        conv: Conversation, store: Store, guide: Guide) -> None:
    """/forget deletes the visits; the doctor of one still to come is told it is off (as unlinking
    does), by a notice that names neither the family nor the place; a visit already over is not told."""
    doctor_id, family = signed_family(conv, store)
    outbox = Outbox(store.db)
    outbox.add_visit(doctor_id, family.id, family.address, NOW - dt.timedelta(days=1), "家中", "", NOW, Policy())
    outbox.add_visit(doctor_id, family.id, family.address, NOW + dt.timedelta(days=4), "枫桥镇某小区5幢", "", NOW,
                     Policy())
    session = Session()
    [confirm] = conv.handle(Command("forget", actor=PARENT), session)
    assert "通知医生" in confirm.text
    [done] = conv.handle(Press(next(a for a in confirm.actions() if a.value == 1), actor=PARENT), session)
    assert "已通知医生：1次" in done.text
    out = Recorder()
    await dispatch(store, guide, out, NOW + dt.timedelta(minutes=1))
    await dispatch(store, guide, out, NOW + dt.timedelta(days=3, hours=1))
    assert [a for a, _ in out.sent if a == PARENT.chat_key] == []
    [told] = [r.text for a, r in out.sent if a == DOCTOR_A.chat_key]
    when = (NOW + dt.timedelta(days=4)).astimezone(TZ)
    assert "访视取消" in told and f"{when.month}月{when.day}日" in told and f"{when.hour:02d}:{when.minute:02d}" in told
    assert "豆豆" not in told and "枫桥" not in told
    assert store.db.execute("select count(*) from visits").fetchone()[0] == 0
    # Once the doctor is removed, a notice still queued says nothing.
    session2 = Session()
    register_child(conv, PARENT)
    join(conv, PARENT, doctors(store).invite(doctor_id, NOW))
    family = Families(store.db).get(PARENT.user_key)
    assert family is not None
    outbox.add_visit(doctor_id, family.id, family.address, NOW + dt.timedelta(days=5), "家中", "", NOW, Policy())
    [confirm] = conv.handle(Command("forget", actor=PARENT), session2)
    conv.handle(Press(next(a for a in confirm.actions() if a.value == 1), actor=PARENT), session2)
    doctors(store).remove(doctor_id, NOW)
    later = Recorder()
    await dispatch(store, guide, later, NOW + dt.timedelta(minutes=2))
    assert [a for a, _ in later.sent if a == DOCTOR_A.chat_key] == []


def test_switching_doctors_audits_both_and_the_daily_limit_counts_queued_pushes(
        conv: Conversation, store: Store) -> None:
    a, b = doctor(store, DOCTOR_A), doctor(store, DOCTOR_B, "陈医生")
    join(conv, PARENT, doctors(store).invite(a, NOW))
    join(conv, PARENT, doctors(store).invite(b, NOW))
    assert [r["action"] for r in doctors(store).audit_log(a)] == ["link", "unlink"]
    conv.doctor_flow.policy = Policy(push_daily_limit=1)
    for expected in ("已开始发送给1个家庭", "超过了今天的发送上限"):
        session = Session()
        [audience] = conv.handle(Command("push", actor=DOCTOR_B), session)
        conv.handle(Press(next(x for x in audience.actions() if x.arg == "all"), actor=DOCTOR_B), session)
        [preview] = conv.handle(Text("通知", actor=DOCTOR_B), session)
        if preview.actions():
            [preview] = conv.handle(Press(preview.actions()[0], actor=DOCTOR_B), session)
        assert expected in preview.text
