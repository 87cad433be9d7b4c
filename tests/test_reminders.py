"""Reminders: planned from each child's plan, sent through the outbound port with a fixed clock and a
real SQLite database; a fake outbound at the edge scripts 429s, 5xx, 403s and slow sends."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest

from zjcare_guide.children import Child, Families
from zjcare_guide.clock import TZ, fixed_clock
from zjcare_guide.config import Config, ConfigError
from zjcare_guide.conversation import Conversation
from zjcare_guide.dispatcher import Content, Dispatcher
from zjcare_guide.guide import Guide
from zjcare_guide.identity import Actor
from zjcare_guide.outbound import Blocked, Failed, RetryAfter, SendResult, Sent
from zjcare_guide.reminders import Policy, Reminders, process_id
from zjcare_guide.replies import Action, Command, Press, Reply, Session, Text
from zjcare_guide.schedule import plan
from zjcare_guide.store import Store

PARENT = Actor("test", "4242", "4242")
OTHER = Actor("test", "5151", "5151")


def at(day: str, time: str = "09:00") -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T{time}").replace(tzinfo=TZ)


class FakeOutbound:
    """Records every attempt; answers from `script` first, then Sent."""

    transport = "test"

    def __init__(self, *script: SendResult | Exception, delay: float = 0.0) -> None:
        self.script = list(script)
        self.attempts: list[tuple[str, Reply]] = []
        self.delivered: list[tuple[str, Reply]] = []
        self.delay = delay

    async def send(self, address: str, replies: Sequence[Reply]) -> SendResult:
        self.attempts.append((address, replies[0]))
        if self.delay:
            await asyncio.sleep(self.delay)
        result = self.script.pop(0) if self.script else Sent()
        if isinstance(result, Exception):
            raise result
        if isinstance(result, Sent):
            self.delivered.append((address, replies[0]))
        return result


class Sleeps:
    def __init__(self) -> None:
        self.waited: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waited.append(seconds)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "z.db")


@pytest.fixture
def book(store: Store) -> Reminders:
    return Reminders(store.db)


def add(book: Reminders, guide: Guide, birth: str, *, key: str = "test:4242", nickname: str = "豆豆",
        now: dt.datetime | None = None, policy: Policy | None = None) -> Child:
    now = now or at("2026-12-01", "10:00")
    family = book.families.get(key) or book.families.consent(key, key, now)
    child = book.families.add_child(family.id, nickname, dt.date.fromisoformat(birth), now=now)
    book.sync_child(child, guide.library.schedules, policy or Policy(), now)
    return child


def rows(book: Reminders, child: Child, item: str, state: str = "pending") -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in book.db.execute(
        "select kind, send_at from reminders where child_id = ? and item_id = ? and state = ? order by send_at",
        [child.id, item, state])]


def dispatcher(book: Reminders, guide: Guide, outbound: FakeOutbound, sleeps: Sleeps | None = None,
               policy: Policy | None = None, claimer: str | None = None,
               wall: dt.datetime | None = None) -> Dispatcher:
    return Dispatcher(book, {"test": outbound}, lambda: Content(guide.library.schedules, guide.renderer),
                      policy or Policy(), wall=fixed_clock(wall or at("2026-12-29", "09:00")), sleep=sleeps or Sleeps(),
                      claimer=claimer, in_thread=False, rate=1000)


# ---------------------------------------------------------------- planning


def test_three_days_before_on_the_day_and_a_week_after_at_nine(book: Reminders, guide: Guide) -> None:
    child = add(book, guide, "2026-11-01")  # registered 2026-12-01 10:00
    # DTaP 1 at 2 months: 2027-01-01.
    assert rows(book, child, "dtap-1") == [("before", "2026-12-29T09:00:00+08:00"),
                                           ("due", "2027-01-01T09:00:00+08:00"),
                                           ("overdue", "2027-01-08T09:00:00+08:00")]
    # HepB 2 fell due today: its 09:00 reminders have passed; only the overdue one a week later is left.
    assert rows(book, child, "hepb-2") == [("overdue", "2026-12-08T09:00:00+08:00")]


def test_a_late_registration_is_not_reminded_of_what_is_long_past(book: Reminders, guide: Guide) -> None:
    child = add(book, guide, "2025-06-01")
    assert rows(book, child, "hepb-1") == rows(book, child, "bcg-1") == rows(book, child, "dtap-3") == []
    # …but the plan ahead is reminded as usual (MMR 2 at 18 months: 2026-12-01 → overdue 12-08).
    assert rows(book, child, "mmr-2") == [("overdue", "2026-12-08T09:00:00+08:00")]


def test_a_late_dose_moves_the_next_doses_and_their_reminders(book: Reminders, guide: Guide) -> None:
    child = add(book, guide, "2026-11-01")
    assert rows(book, child, "hepb-3")[1] == ("due", "2027-05-01T09:00:00+08:00")
    # HepB 2 given late, on 2027-02-20: dose 3 at least 60 days later (2027-04-21) and 4 months after
    # dose 1 — still 6 months of age, 2027-05-01. Given on 2027-04-01: 60 days → 2027-05-31.
    now = at("2027-04-02", "10:00")
    book.families.record(child.id, "hepb-1", dt.date(2026, 11, 1), now)
    book.families.record(child.id, "hepb-2", dt.date(2027, 4, 1), now)
    book.sync_child(child, guide.library.schedules, Policy(), now)
    assert rows(book, child, "hepb-3") == [("before", "2027-05-28T09:00:00+08:00"),
                                           ("due", "2027-05-31T09:00:00+08:00"),
                                           ("overdue", "2027-06-07T09:00:00+08:00")]
    assert {k for k, _ in rows(book, child, "hepb-3", "cancelled")} == {"before", "due", "overdue"}
    assert rows(book, child, "hepb-2") == []  # done: nothing more about it


def test_quiet_hours_move_the_send_time_to_their_end() -> None:
    policy = Policy(quiet_start=dt.time(20, 0), quiet_end=dt.time(10, 0))
    assert policy.at(dt.date(2026, 12, 4)) == at("2026-12-04", "10:00")
    assert Policy().at(dt.date(2026, 12, 4)) == at("2026-12-04", "09:00")
    assert Policy().quiet(at("2026-12-04", "21:00")) and Policy().quiet(at("2026-12-04", "07:59"))
    assert not Policy().quiet(at("2026-12-04", "08:00"))


def test_settings_from_the_environment() -> None:
    config = Config.from_env({"ZJCARE_QUIET_HOURS": "22:00-07:30", "ZJCARE_REMINDER_MAX_LATE_DAYS": "3"})
    assert (config.policy.quiet_start, config.policy.quiet_end) == (dt.time(22, 0), dt.time(7, 30))
    assert config.policy.max_late == dt.timedelta(days=3)
    for env in ({"ZJCARE_QUIET_HOURS": "晚上"}, {"ZJCARE_REMINDER_MAX_LATE_DAYS": "two"}):
        with pytest.raises(ConfigError):
            Config.from_env(env)


# ---------------------------------------------------------------- dispatching


async def test_one_message_per_family_with_a_row_of_buttons_per_item(book: Reminders, guide: Guide) -> None:
    big = add(book, guide, "2026-11-01", nickname="大宝")
    small = add(book, guide, "2026-11-01", nickname="小宝")
    other = add(book, guide, "2026-11-01", key="test:5151", nickname="阿福")
    out = FakeOutbound()
    counts = await dispatcher(book, guide, out).run(at("2026-12-29"))
    assert (counts.sent, counts.rows_sent) == (2, 6)
    assert sorted(a for a, _ in out.delivered) == ["test:4242", "test:5151"]
    twins = next(r for a, r in out.delivered if a == "test:4242")
    assert "大宝" in twins.text and "小宝" in twins.text and "百白破疫苗第1剂" in twins.text
    assert "3天后" in twins.text and "1月1日" in twins.text
    assert len(twins.buttons) == 4 and all(len(row) == 3 for row in twins.buttons)
    assert {row[0].action.arg for row in twins.buttons} == {f"{c.id}-{i}" for c in (big, small)
                                                            for i in ("dtap-1", "ipv-1")}
    assert [b.action.kind for b in twins.buttons[0]] == ["remind_done", "remind_snooze", "remind_mute"]
    assert other.id not in {int(row[0].action.arg.split("-")[0]) for row in twins.buttons}
    # Never twice.
    again = await dispatcher(book, guide, out).run(at("2026-12-29", "09:05"))
    assert again.sent == 0 and len(out.delivered) == 2


async def test_nothing_in_quiet_hours_and_late_ones_go_once_when_they_end(book: Reminders, guide: Guide) -> None:
    add(book, guide, "2026-11-01")
    out = FakeOutbound()
    # The bot was down on 12-29 at 09:00; it comes back at 22:00 (quiet), then the next morning.
    assert (await dispatcher(book, guide, out).run(at("2026-12-29", "22:00"))).quiet
    assert (await dispatcher(book, guide, out).run(at("2026-12-30", "07:59"))).quiet
    counts = await dispatcher(book, guide, out).run(at("2026-12-30", "08:00"))
    assert counts.sent == 1 and "3天后" not in out.delivered[0][1].text  # days are counted from today
    assert "2天后" in out.delivered[0][1].text


async def test_more_than_two_days_late_is_not_sent(book: Reminders, guide: Guide) -> None:
    child = add(book, guide, "2026-11-01")
    out = FakeOutbound()
    # Down from before 12-29 09:00 until 01-01 09:01: the 'before' (3 days late) is dropped, today's goes.
    counts = await dispatcher(book, guide, out).run(at("2027-01-01", "09:01"))
    assert counts.late >= 2 and counts.sent == 1
    assert ("before", "2026-12-29T09:00:00+08:00") in rows(book, child, "dtap-1", "cancelled")
    assert "今天" in out.delivered[0][1].text


async def test_a_late_before_and_todays_reminder_of_one_item_go_as_one(book: Reminders, guide: Guide) -> None:
    add(book, guide, "2026-11-01")
    # Down since before 12-29 09:00, back at 01-01 09:00, with 5 days' lateness allowed: both the
    # 'before' of 12-29 and today's reminder of DTaP 1 and IPV 1 are pending.
    policy = Policy(max_late=dt.timedelta(days=5))
    out = FakeOutbound()
    counts = await dispatcher(book, guide, out, policy=policy).run(at("2027-01-01", "09:00"))
    assert counts.sent == 1 and len(out.delivered[0][1].buttons) == 2  # DTaP 1 and IPV 1, once each
    assert book.db.execute("select count(*) from reminders where reason = 'superseded'").fetchone()[0] == 2


async def test_429_waits_retry_after_then_sends(book: Reminders, guide: Guide) -> None:
    add(book, guide, "2026-11-01")
    out, sleeps = FakeOutbound(RetryAfter(3), RetryAfter(1)), Sleeps()
    counts = await dispatcher(book, guide, out, sleeps).run(at("2026-12-29"))
    assert sleeps.waited == [3, 1] and counts.sent == 1 and len(out.delivered) == 1 and counts.retried == 2


async def test_5xx_retried_with_backoff_then_later_then_failed(book: Reminders, guide: Guide) -> None:
    add(book, guide, "2026-11-01")
    out, sleeps = FakeOutbound(*[Failed("network: 502")] * 10), Sleeps()
    first = await dispatcher(book, guide, out, sleeps).run(at("2026-12-29"))
    assert sleeps.waited == [0.5, 1.0] and first.retrying == 1 and len(out.attempts) == 3
    assert book.status()["pending"]["before"] > 0 and not book.status()["sending"]
    # Not retried again before its backoff…
    assert (await dispatcher(book, guide, out, sleeps).run(at("2026-12-29", "09:01"))).sent == 0
    assert len(out.attempts) == 3
    # …and given up once Policy.give_up (1 h) has passed since the first try.
    last = await dispatcher(book, guide, out, sleeps).run(at("2026-12-29", "10:30"))
    assert last.failed == 1 and sum(book.status()["failed"].values()) == 2
    assert all("502" in why for *_, why in book.failed())


async def test_a_permanent_error_and_a_crashing_transport_fail_without_leaving_rows_sending(
        book: Reminders, guide: Guide) -> None:
    add(book, guide, "2026-11-01")
    add(book, guide, "2026-11-01", key="test:5151")
    out = FakeOutbound(Failed("bad request: chat not found", permanent=True), RuntimeError("bug"),
                       RuntimeError("bug"), RuntimeError("bug"))
    counts = await dispatcher(book, guide, out).run(at("2026-12-29"))
    assert counts.failed == 1 and counts.retrying == 1 and not book.status()["sending"]


async def test_a_blocked_bot_pauses_the_family_until_resume(book: Reminders, guide: Guide) -> None:
    child = add(book, guide, "2026-11-01")
    out = FakeOutbound(Blocked())
    counts = await dispatcher(book, guide, out).run(at("2026-12-29"))
    family = book.families.by_id(child.family_id)
    assert counts.blocked == 1 and family is not None and family.paused and len(out.attempts) == 1
    assert (await dispatcher(book, guide, out).run(at("2026-12-29", "09:30"))).sent == 0
    book.pause_family(child.family_id, False)
    assert (await dispatcher(book, guide, out).run(at("2026-12-29", "10:00"))).sent == 1


async def test_rows_of_a_killed_process_are_sent_again_once(book: Reminders, guide: Guide) -> None:
    add(book, guide, "2026-11-01")
    now = at("2026-12-29")
    ids = [r.id for r in book.due(now)]
    # A process on this host that no longer exists claimed them, then died mid-send.
    book.claim(ids, f"{process_id().rpartition(':')[0]}:999999999", now, now)
    # One on another host: only its lease tells (10 minutes of real time).
    add(book, guide, "2026-11-01", key="test:5151")
    other = [r.id for r in book.due(now)]
    book.claim(other, "elsewhere:1", now, now)
    out = FakeOutbound()
    counts = await dispatcher(book, guide, out, wall=now + dt.timedelta(minutes=1)).run(now)
    assert counts.sent == 1 and out.delivered[0][0] == "test:4242"
    counts = await dispatcher(book, guide, out, wall=now + dt.timedelta(minutes=11)).run(now)
    assert counts.sent == 1 and out.delivered[1][0] == "test:5151"


async def test_a_live_claim_is_never_taken_back_whatever_moment_is_dispatched(book: Reminders, guide: Guide) -> None:
    # `send-due --at` an hour ago, next to the running bot: this process is alive, so its claims stand,
    # and a row another process took back is not settled by this one.
    add(book, guide, "2026-11-01")
    now = at("2026-12-29")
    ids = [r.id for r in book.due(now)]
    assert len(book.claim(ids, process_id(), now, now)) == len(ids) > 0
    out = FakeOutbound()
    counts = await dispatcher(book, guide, out, wall=now + dt.timedelta(hours=5)).run(now + dt.timedelta(hours=1))
    assert counts.sent == 0 and not out.attempts and sum(book.status()["sending"].values()) == len(ids)
    assert book.finish(ids, "someone-else:1", "sent", now) == 0
    assert book.finish(ids, process_id(), "sent", now) == len(ids)


async def test_two_senders_side_by_side_never_send_twice(store: Store, guide: Guide, tmp_path: Path) -> None:
    book = Reminders(store.db)
    for n in range(30):
        add(book, guide, "2026-11-01", key=f"test:{1000 + n}")
    second = Reminders(Store.open(tmp_path / "z.db").db)  # another connection, as another process would
    out_a, out_b = FakeOutbound(delay=0.002), FakeOutbound(delay=0.002)
    a = dispatcher(book, guide, out_a, claimer="host-a:1")
    b = dispatcher(second, guide, out_b, claimer="host-b:1")
    await asyncio.gather(a.run(at("2026-12-29")), b.run(at("2026-12-29")))
    delivered = [addr for addr, _ in out_a.delivered + out_b.delivered]
    assert sorted(delivered) == sorted(f"test:{1000 + n}" for n in range(30))


async def test_a_family_of_another_transport_is_left_for_its_process(book: Reminders, guide: Guide) -> None:
    add(book, guide, "2026-11-01", key="telegram:4242")
    counts = await dispatcher(book, guide, FakeOutbound()).run(at("2026-12-29"))
    assert counts.sent == 0 and counts.skipped == 1 and sum(book.status()["pending"].values()) > 0


# ---------------------------------------------------------------- the parent's side


def conversation(guide: Guide, store: Store, when: dt.datetime) -> Conversation:
    return Conversation(guide, clock=fixed_clock(when), store=store)


def register(conv: Conversation, session: Session, nickname: str, birth: str, actor: Actor = PARENT) -> None:
    [consent] = conv.handle(Command("child", actor=actor), session)
    if any(a.kind == "child_consent" for a in consent.actions()):
        conv.handle(Press(Action("child_consent", value=1), actor=actor), session)
    else:
        conv.handle(Press(Action("child_add"), actor=actor), session)
    conv.handle(Text(nickname, actor=actor), session)
    conv.handle(Text(birth, actor=actor), session)
    conv.handle(Press(Action("child_sex", "n"), actor=actor), session)
    conv.handle(Press(Action("child_preterm", "n"), actor=actor), session)


def registered(guide: Guide, store: Store, when: dt.datetime) -> tuple[Conversation, Session, Child]:
    """A conversation at `when` in which the parent has registered 豆豆, born 2026-11-01."""
    conv = conversation(guide, store, when)
    session = Session()
    register(conv, session, "豆豆", "2026-11-01")
    family = Families(store.db).get(PARENT.user_key)
    assert family is not None
    [child] = Families(store.db).children(family.id)
    return conv, session, child


def dump(store: Store) -> list[tuple[object, ...]]:
    return [(t, *r) for t in ("families", "children", "records", "reminders", "muted")
            for r in store.db.execute(f"select * from {t}")]


def test_registering_plans_reminders_and_the_timeline_shows_them(guide: Guide, store: Store) -> None:
    conv = conversation(guide, store, at("2026-12-01", "10:00"))
    session = Session()
    register(conv, session, "豆豆", "2026-11-01")
    assert sum(Reminders(store.db).status()["pending"].values()) > 50
    [timeline] = conv.handle(Command("reminders", actor=PARENT), session)
    assert "豆豆" in timeline.text and "乙肝疫苗第2剂" in timeline.text and "到时间了" in timeline.text
    assert "2027年1月1日" in timeline.text  # DTaP 1, upcoming
    kinds = [a.kind for a in timeline.actions()]
    assert "remind_done" in kinds and kinds[-1] == "reminders_pause"


def test_done_today_then_the_real_date_typed(guide: Guide, store: Store) -> None:
    conv, session, child = registered(guide, store, at("2026-12-03", "10:00"))
    [done] = conv.handle(Press(Action("remind_done", f"{child.id}-hepb-2"), actor=PARENT), session)
    assert "已记录" in done.text and "2026年12月3日" in done.text
    assert Families(store.db).records(child.id) == {"hepb-2": dt.date(2026, 12, 3)}
    [fixed] = conv.handle(Text("12月1日", actor=PARENT), session)
    assert "2026年12月1日" in fixed.text and session.awaiting == ""
    assert Families(store.db).records(child.id) == {"hepb-2": dt.date(2026, 12, 1)}
    assert Reminders(store.db).db.execute("select count(*) from reminders where item_id = 'hepb-2' "
                                          "and state = 'pending'").fetchone()[0] == 0
    # A date before birth or in the future is refused; a question afterwards is answered as one.
    conv.handle(Press(Action("remind_done", f"{child.id}-check-1m"), actor=PARENT), session)
    [early] = conv.handle(Text("2026-10-01", actor=PARENT), session)
    assert "出生之前" in early.text
    [future] = conv.handle(Text("2026-12-25", actor=PARENT), session)
    assert "还没到" in future.text
    replies = conv.handle(Text("宝宝湿疹怎么护理", actor=PARENT), session)
    assert "湿疹" in replies[0].text and Families(store.db).records(child.id)["check-1m"] == dt.date(2026, 12, 3)


def test_snooze_mute_and_unmute(guide: Guide, store: Store) -> None:
    conv, session, child = registered(guide, store, at("2026-12-29", "09:30"))
    book = Reminders(store.db)
    [choose] = conv.handle(Press(Action("remind_snooze", f"{child.id}-dtap-1"), actor=PARENT), session)
    assert [a.value for a in choose.actions()] == [1, 3, 7]
    [snoozed] = conv.handle(Press(Action("remind_snooze", f"{child.id}-dtap-1", value=7), actor=PARENT), session)
    assert "2027年1月5日" in snoozed.text
    assert rows(book, child, "dtap-1") == [("snooze", "2027-01-05T09:00:00+08:00"),
                                           ("overdue", "2027-01-08T09:00:00+08:00")]
    [muted] = conv.handle(Press(Action("remind_mute", f"{child.id}-ipv-1"), actor=PARENT), session)
    assert "不再提醒" in muted.text and rows(book, child, "ipv-1") == []
    [timeline] = conv.handle(Command("reminders", actor=PARENT), session)
    assert any(a.kind == "remind_unmute" for a in timeline.actions())
    conv.handle(Press(Action("remind_unmute", f"{child.id}-ipv-1"), actor=PARENT), session)
    assert [k for k, _ in rows(book, child, "ipv-1")] == ["due", "overdue"]


def test_pause_and_resume(guide: Guide, store: Store) -> None:
    conv = conversation(guide, store, at("2026-12-01", "10:00"))
    session = Session()
    [nobody] = conv.handle(Command("pause", actor=PARENT), session)
    assert "/child" in nobody.text or "登记" in nobody.text
    register(conv, session, "豆豆", "2026-11-01")
    [paused] = conv.handle(Command("pause", actor=PARENT), session)
    assert "已暂停" in paused.text and Families(store.db).get(PARENT.user_key).paused  # type: ignore[union-attr]
    [timeline] = conv.handle(Command("reminders", actor=PARENT), session)
    assert "已暂停" in timeline.text and timeline.actions()[-1].value == 0
    conv.handle(Command("resume", actor=PARENT), session)
    assert not Families(store.db).get(PARENT.user_key).paused  # type: ignore[union-attr]


def test_another_familys_reminder_buttons_change_nothing(guide: Guide, store: Store) -> None:
    conv = conversation(guide, store, at("2026-12-01", "10:00"))
    register(conv, Session(), "豆豆", "2026-11-01")
    family = Families(store.db).get(PARENT.user_key)
    assert family is not None
    [child] = Families(store.db).children(family.id)
    session = Session()
    register(conv, session, "阿福", "2026-10-01", actor=OTHER)
    before = dump(store)
    for kind, value in (("remind_done", 0), ("remind_snooze", 3), ("remind_mute", 0), ("remind_unmute", 0)):
        [reply] = conv.handle(Press(Action(kind, f"{child.id}-hepb-2", value=value), actor=OTHER), session)
        assert "过期" in reply.text and "豆豆" not in reply.text, kind
    # An item the plan does not have, and a group chat.
    [reply] = conv.handle(Press(Action("remind_done", f"{child.id}-nope-1"), actor=PARENT), Session())
    assert "过期" in reply.text
    [group] = conv.handle(Command("reminders", actor=Actor("test", "4242", "-100")), Session())
    assert "私聊" in group.text
    assert dump(store) == before


def test_removing_a_child_deletes_its_reminders(guide: Guide, store: Store) -> None:
    conv, session, child = registered(guide, store, at("2026-12-01", "10:00"))
    conv.handle(Press(Action("remind_mute", f"{child.id}-ipv-1"), actor=PARENT), session)
    conv.handle(Press(Action("child_remove", str(child.id), value=1), actor=PARENT), session)
    assert store.db.execute("select count(*) from reminders").fetchone()[0] == 0
    assert store.db.execute("select count(*) from muted").fetchone()[0] == 0


async def test_a_locked_database_when_recording_the_outcome_loses_nothing(
        tmp_path: Path, guide: Guide, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("zjcare_guide.store.BUSY_TIMEOUT_S", 0.05)
    book = Reminders(Store.open(tmp_path / "locked.db").db)
    add(book, guide, "2026-11-01")
    other = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)

    class LockingOutbound(FakeOutbound):
        async def send(self, address: str, replies: Sequence[Reply]) -> SendResult:
            other.execute("begin immediate")  # another process takes the write lock mid-send
            return await super().send(address, replies)

    class Releasing(Sleeps):
        async def __call__(self, seconds: float) -> None:
            await super().__call__(seconds)
            if other.in_transaction:
                other.execute("commit")

    out, sleeps = LockingOutbound(), Releasing()
    counts = await dispatcher(book, guide, out, sleeps).run(at("2026-12-29"))
    assert counts.sent == 1 and sleeps.waited == [1.0]
    assert sum(book.status()["sent"].values()) == 2 and not book.status()["sending"]


async def test_pages_of_due_rows_still_give_one_message_per_family(
        book: Reminders, guide: Guide, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("zjcare_guide.dispatcher.BATCH", 3)
    for n in range(5):  # twins in five families: four due rows each, pages of three
        add(book, guide, "2026-11-01", key=f"test:{n}", nickname="大宝")
        add(book, guide, "2026-11-01", key=f"test:{n}", nickname="小宝")
    add(book, guide, "2026-11-01", key="telegram:9")  # no outbound here: left pending, not a stall
    out = FakeOutbound()
    counts = await dispatcher(book, guide, out).run(at("2026-12-29"))
    assert sorted(a for a, _ in out.delivered) == [f"test:{n}" for n in range(5)]
    assert (counts.sent, counts.rows_sent, counts.skipped) == (5, 20, 1)


def test_a_registered_childs_age_is_known_in_a_new_session(guide: Guide, store: Store) -> None:
    conv = conversation(guide, store, at("2026-12-01", "10:00"))
    register(conv, Session(), "豆豆", "2026-03-01")
    session = Session()  # the bot restarted: the conversation's memory is gone
    conv.handle(Text("宝宝辅食怎么加", actor=PARENT), session)
    assert session.age_months == 9
    register(conv, Session(), "小豆", "2026-11-01")  # two ages: the parent says which
    session = Session()
    conv.handle(Text("宝宝辅食怎么加", actor=PARENT), session)
    assert session.age_months is None


def test_a_birth_date_after_a_recorded_dose_is_refused_and_stale_records_do_not_break_the_plan(
        guide: Guide, store: Store) -> None:
    conv, session, child = registered(guide, store, at("2026-12-03", "10:00"))
    conv.handle(Press(Action("remind_done", f"{child.id}-hepb-1"), actor=PARENT), session)
    conv.handle(Text("2026-11-01", actor=PARENT), session)
    conv.handle(Press(Action("child_edit", f"{child.id}-birth"), actor=PARENT), session)
    before = dump(store)
    [refused] = conv.handle(Text("2026-11-05", actor=PARENT), session)
    assert "已经记录" in refused.text and dump(store) == before
    # A record of an item a new edition of the schedules no longer has is kept but left out of the plan.
    Families(store.db).record(child.id, "old-vaccine-1", dt.date(2026, 11, 2), at("2026-12-03"))
    [timeline] = conv.handle(Command("reminders", actor=PARENT), session)
    assert "豆豆" in timeline.text and "已完成1项" in timeline.text


def test_a_question_after_done_is_answered_and_keeps_the_record(guide: Guide, store: Store) -> None:
    conv, session, child = registered(guide, store, at("2026-12-03", "10:00"))
    conv.handle(Press(Action("remind_done", f"{child.id}-hepb-2"), actor=PARENT), session)
    replies = conv.handle(Text("12月1号打完疫苗可以洗澡吗", actor=PARENT), session)
    assert "已记录" not in replies[0].text and session.awaiting == ""
    assert Families(store.db).records(child.id) == {"hepb-2": dt.date(2026, 12, 3)}


def test_the_discharge_date_moves_the_newborn_visit(guide: Guide, store: Store) -> None:
    conv = conversation(guide, store, at("2026-11-10", "10:00"))
    session = Session()
    register(conv, session, "豆豆", "2026-11-01")
    family = Families(store.db).get(PARENT.user_key)
    assert family is not None
    [child] = Families(store.db).children(family.id)
    [summary] = conv.handle(Press(Action("child_view", str(child.id)), actor=PARENT), session)
    assert any(a.arg == f"{child.id}-discharge" for a in summary.actions())
    [ask] = conv.handle(Press(Action("child_edit", f"{child.id}-discharge"), actor=PARENT), session)
    assert "出院" in ask.text
    [early] = conv.handle(Text("10月30日", actor=PARENT), session)
    assert "不能早于" in early.text
    [updated] = conv.handle(Text("11月8日", actor=PARENT), session)
    assert "已修改" in updated.text
    book = Reminders(store.db)
    # Home on 11-08: the visit is due from then (11-08..11-15), its reminder that day at 09:00 having
    # passed, the overdue one a week later.
    assert rows(book, child, "newborn-visit") == [("overdue", "2026-11-15T09:00:00+08:00")]


async def test_rows_for_items_no_longer_in_the_schedules_are_cancelled_not_sent(
        book: Reminders, guide: Guide) -> None:
    child = add(book, guide, "2026-11-01")
    book.db.execute("update reminders set item_id = 'withdrawn-1' where child_id = ? and item_id = 'ipv-1'",
                    [child.id])
    out = FakeOutbound()
    counts = await dispatcher(book, guide, out).run(at("2026-12-29"))
    assert counts.sent == 1 and len(out.delivered[0][1].buttons) == 1  # DTaP 1 only
    assert book.db.execute("select count(*) from reminders where reason = 'not in the plan'").fetchone()[0] == 1


def test_a_live_vaccines_wait_never_turns_a_missed_bcg_into_a_reminder(book: Reminders, guide: Guide) -> None:
    # MMR 1 recorded at almost 9 months; BCG (to be given before 3 months) was never recorded: the
    # 28-day rule would move it after MMR, past its window — a catch-up for the clinic, not a reminder.
    child = add(book, guide, "2026-03-01", now=at("2026-11-26", "10:00"))
    book.families.record(child.id, "mmr-1", dt.date(2026, 11, 25), at("2026-11-26", "10:00"))
    book.sync_child(child, guide.library.schedules, Policy(), at("2026-11-26", "10:00"))
    assert rows(book, child, "bcg-1") == []
    bcg = next(p for p in plan(guide.library.schedules, child.birth, {"mmr-1": dt.date(2026, 11, 25)},
                               today=dt.date(2026, 11, 26)) if p.id == "bcg-1")
    assert bcg.status == "overdue"


def test_a_preterm_newborns_visit_is_within_three_days_of_discharge(guide: Guide) -> None:
    items = {p.id: p for p in plan(guide.library.schedules, dt.date(2026, 11, 20), {}, today=dt.date(2026, 11, 24),
                                   discharge=dt.date(2026, 11, 23), high_risk=True)}
    assert (items["newborn-visit"].due, items["newborn-visit"].window_end) == (dt.date(2026, 11, 23),
                                                                               dt.date(2026, 11, 26))


def test_done_for_an_item_long_past_asks_the_date(guide: Guide, store: Store) -> None:
    conv, session, child = registered(guide, store, at("2026-12-20", "10:00"))
    [ask] = conv.handle(Press(Action("remind_done", f"{child.id}-bcg-1"), actor=PARENT), session)
    assert "哪一天" in ask.text and Families(store.db).records(child.id) == {}
    [done] = conv.handle(Text("2026-11-02", actor=PARENT), session)
    assert "已记录" in done.text and Families(store.db).records(child.id) == {"bcg-1": dt.date(2026, 11, 2)}
    assert "卡介苗" not in done.text.split("接下来")[-1]  # what comes next is ahead, not behind
    [today] = conv.handle(Press(Action("remind_done", f"{child.id}-hepb-1", value=1), actor=PARENT), session)
    assert Families(store.db).records(child.id)["hepb-1"] == dt.date(2026, 12, 20) and "已记录" in today.text


async def test_a_dose_whose_earlier_dose_is_not_recorded_says_to_ask_first(book: Reminders, guide: Guide) -> None:
    add(book, guide, "2026-11-01")
    out = FakeOutbound()
    await dispatcher(book, guide, out).run(at("2026-12-08"))  # the overdue reminder of HepB 2
    [(_, reply)] = out.delivered
    assert "乙肝疫苗第2剂（如果乙肝疫苗第1剂还没有接种，请先问接种门诊怎么补）" in reply.text


def test_a_child_is_never_stored_without_its_reminders(guide: Guide, store: Store,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    conv = conversation(guide, store, at("2026-12-01", "10:00"))
    session = Session()
    conv.handle(Command("child", actor=PARENT), session)
    conv.handle(Press(Action("child_consent", value=1), actor=PARENT), session)
    conv.handle(Text("豆豆", actor=PARENT), session)
    conv.handle(Text("2026-11-01", actor=PARENT), session)
    conv.handle(Press(Action("child_sex", "n"), actor=PARENT), session)
    before = dump(store)

    def broken(*args: object) -> None:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(conv.planner, "sync", broken)
    [reply] = conv.safe_handle(Press(Action("child_preterm", "n"), actor=PARENT), session)
    assert "豆豆" not in reply.text and dump(store) == before  # an apology, and no child without reminders
