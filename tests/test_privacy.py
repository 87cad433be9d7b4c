"""个人信息 (PIPL): /privacy, /mydata (message and JSON), /forget (every table scanned afterwards), the
retention purge and last activity — with a real SQLite database and a fixed clock."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from zjcare_guide.children import Families
from zjcare_guide.cli import main
from zjcare_guide.clock import TZ, fixed_clock
from zjcare_guide.conversation import Conversation
from zjcare_guide.doctors import Doctors
from zjcare_guide.guide import Guide
from zjcare_guide.identity import Actor
from zjcare_guide.outbox import Outbox
from zjcare_guide.personal_data import forget
from zjcare_guide.reminders import Policy, Reminders
from zjcare_guide.replies import Action, Command, Press, Reply, Session, Text
from zjcare_guide.reports import file_report
from zjcare_guide.store import Store

from .test_reminders import register

NOW = dt.datetime(2026, 12, 1, 10, 0, tzinfo=TZ)
PARENT = Actor("test", "424242", "424242")
OTHER = Actor("test", "515151", "515151")
DOCTOR = Actor("test", "700171", "700171")
GROUP = Actor("test", "424242", "-100999")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "z.db")


@pytest.fixture
def conv(guide: Guide, store: Store) -> Conversation:
    return Conversation(guide, clock=fixed_clock(NOW), store=store, bot_username="zjcare_test_bot",
                        retention_months=18)


def say(conv: Conversation, actor: Actor, name: str, session: Session | None = None) -> list[Reply]:
    return conv.handle(Command(name, actor=actor), session or Session())


def everything(store: Store) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, by table (the R*Tree's shadow tables included)."""
    tables = [r[0] for r in store.db.execute("select name from sqlite_master where type = 'table'")]
    out = {}
    for table in tables:
        cur = store.db.execute(f"select * from [{table}]")
        names = [d[0] for d in cur.description]
        out[table] = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    return out


def a_family_with_everything(conv: Conversation, store: Store, actor: Actor, nicknames: tuple[str, str],
                             report: str) -> int:
    """Two children (one item recorded, one muted), signed with the doctor, a visit answered, a
    report filed, the doctor's list viewed: every table that can hold a family's data has a row."""
    session = Session()
    register(conv, session, nicknames[0], "2026-03-01", actor)
    register(conv, session, nicknames[1], "2026-03-01", actor)
    families = Families(store.db)
    family = families.get(actor.user_key)
    assert family is not None
    first, second = families.children(family.id)
    families.record(first.id, "hepb-1", dt.date(2026, 3, 1), NOW)
    store.db.execute("insert into muted (child_id, item_id, at) values (?, 'bcg-1', ?)", [second.id, NOW.isoformat()])
    book = Doctors(store.db)
    doctor = book.by_user(DOCTOR.user_key)
    assert doctor is not None
    code = book.invite(doctor.id, NOW)
    [preview] = conv.handle(Command("start", f"join_{code}", actor=actor), session)
    conv.handle(Press(next(a for a in preview.actions() if a.kind == "join"), actor=actor), session)
    outbox = Outbox(store.db)
    visit = outbox.add_visit(doctor.id, family.id, family.address, NOW + dt.timedelta(days=2), "家中", "带上手册",
                             NOW, Policy())
    conv.handle(Press(Action("visit_answer", str(visit.id), value=1), actor=actor), session)
    file_report(store.db, NOW, report, actor.user_key, town_code="330681101")
    say(conv, DOCTOR, "families")
    return family.id


@pytest.fixture
def two_families(conv: Conversation, store: Store) -> tuple[int, int]:
    Doctors(store.db).add("王医生", "店口镇卫生院", NOW, DOCTOR.user_key)
    mine = a_family_with_everything(conv, store, PARENT, ("小团圆", "小月亮"), "这家托育园的厨房很脏")
    other = a_family_with_everything(conv, store, OTHER, ("阿福", "阿宝"), "另一家的举报内容")
    return mine, other


def test_privacy_says_what_why_how_long_and_who(conv: Conversation) -> None:
    [reply] = say(conv, Actor("test", "1", "1"), "privacy")
    for words in ("小名和出生日期", "为什么", "谁能看到", "签约的家庭医生", "18个月", "/mydata", "/forget"):
        assert words in reply.text


def test_mydata_and_forget_are_for_private_chats_and_a_stranger_has_nothing(
        conv: Conversation, store: Store, two_families: tuple[int, int]) -> None:
    before = everything(store)
    for name in ("mydata", "forget"):
        [reply] = say(conv, GROUP, name)
        assert "私聊" in reply.text and "小团圆" not in reply.text
        [reply] = say(conv, Actor("test", "999", "999"), name)
        assert "没有保存您的任何个人信息" in reply.text
    assert everything(store) == before


def test_mydata_shows_everything_as_a_message_and_a_json_file(
        conv: Conversation, store: Store, two_families: tuple[int, int]) -> None:
    message, file = say(conv, PARENT, "mydata")
    for words in ("小团圆", "小月亮", "2026-03-01", "王医生", "上门访视", "查看签约家庭列表", "您的举报"):
        assert words in message.text
    assert "阿福" not in message.text
    assert file.document is not None and file.document.filename.endswith(".json")
    data = json.loads(file.document.data)
    assert [c["nickname"] for c in data["children"]] == ["小团圆", "小月亮"]
    assert data["children"][0]["records"][0]["item_id"] == "hepb-1" and data["children"][1]["muted"] == ["bcg-1"]
    assert data["children"][0]["reminders"] and data["doctor"]["name"] == "王医生"
    assert data["visits"][0]["state"] == "confirmed" and data["queued_messages"]
    assert [r["text"] for r in data["reports"]] == ["这家托育园的厨房很脏"]
    assert {"link", "visit_confirmed", "families"} <= {a["action"] for a in data["doctor_actions"]}
    assert "阿福" not in file.document.data.decode()


def test_mydata_keeps_a_doctors_views_while_signed_after_unlinking_and_shows_their_messages(
        guide: Guide, store: Store, two_families: tuple[int, int]) -> None:
    """The doctor viewed the family list while the family was signed (the fixture, at NOW); after the
    family unlinks, that view is still theirs to see, and the doctor's views after are not."""
    mine, other = two_families
    doctor = Doctors(store.db).by_user(DOCTOR.user_key)
    assert doctor is not None
    Outbox(store.db).add_push(doctor.id, "本周六上午卫生院有免费体检，请带上接种证", "全部签约家庭",
                              [(mine, PARENT.chat_key), (other, OTHER.chat_key)], DOCTOR.chat_key, NOW)

    def at(moment: dt.datetime) -> Conversation:
        return Conversation(guide, clock=fixed_clock(moment), store=store, bot_username="zjcare_test_bot")

    session = Session()
    [confirm] = at(NOW + dt.timedelta(days=1)).handle(Command("unlink", actor=PARENT), session)
    at(NOW + dt.timedelta(days=1)).handle(Press(next(a for a in confirm.actions() if a.kind == "unlink"),
                                                actor=PARENT), session)
    say(at(NOW + dt.timedelta(days=2)), DOCTOR, "families")  # no longer shows this family
    message, file = say(at(NOW + dt.timedelta(days=3)), PARENT, "mydata")
    data = json.loads(file.document.data) if file.document else {}
    views = [a["at"] for a in data["doctor_actions"] if a["action"] == "families"]
    while_signed = store.db.execute("select count(*) from audit where action = 'families' and at = ?",
                                    [NOW.isoformat()]).fetchone()[0]
    assert while_signed == 2 and views == [NOW.isoformat()] * while_signed  # the fixture's two, not the later one
    assert [a["action"] for a in data["doctor_actions"]].count("unlink") == 1
    assert [m["text"] for m in data["doctor_messages"]] == ["本周六上午卫生院有免费体检，请带上接种证"]
    assert "家庭医生发给您的消息" in message.text and "本周六上午卫生院有免费体检" in message.text


def test_forget_deletes_everything_that_names_the_family_and_nothing_else(
        conv: Conversation, store: Store, two_families: tuple[int, int]) -> None:
    mine, other = two_families
    families = Families(store.db)
    child_ids = {c.id for c in families.children(mine)}
    others_before = {t: [r for r in rows if _names(r, OTHER, ("阿福", "阿宝"), {other},
                                                   {c.id for c in families.children(other)})]
                     for t, rows in everything(store).items()}
    audit_before = store.db.execute("select count(*) from audit").fetchone()[0]
    session = Session(age_months=9)
    [confirm] = say(conv, PARENT, "forget", session)
    assert "小团圆" in confirm.text and "王医生" in confirm.text and "不能恢复" in confirm.text
    [done] = conv.handle(Press(next(a for a in confirm.actions() if a.value == 1), actor=PARENT), session)
    assert "已删除" in done.text and session.age_months is None
    after = everything(store)
    left = {t: [r for r in rows if _names(r, PARENT, ("小团圆", "小月亮", "这家托育园的厨房很脏"), {mine}, child_ids)]
            for t, rows in after.items()}
    assert {t: rows for t, rows in left.items() if rows} == {}
    # The audit log keeps its rows, the family replaced by a tombstone, plus one for the visit still to
    # come that the doctor is told is off (its time, under the tombstone); the other family is untouched.
    assert store.db.execute("select count(*) from audit").fetchone()[0] == audit_before + 1
    assert store.db.execute("select action, family_id, detail from audit where action = 'visit_withdrawn'").fetchall() \
        == [("visit_withdrawn", None, (NOW + dt.timedelta(days=2)).isoformat())]
    assert store.db.execute("select count(*) from audit where tombstone like 'forgotten-%'").fetchone()[0] >= 2
    assert {t: [r for r in rows if _names(r, OTHER, ("阿福", "阿宝"), {other},
                                          {c.id for c in families.children(other)})]
            for t, rows in after.items()} == others_before
    [again] = say(conv, PARENT, "mydata")
    assert "没有保存您的任何个人信息" in again.text


def _names(row: dict[str, Any], actor: Actor, words: tuple[str, ...], family_ids: set[int],
           child_ids: set[int]) -> bool:
    """Whether a row names the family: its account or chat, a nickname or its report text anywhere,
    or its family or children's ids in the columns that hold them."""
    for column, value in row.items():
        if isinstance(value, str) and (actor.user_id in value or any(w in value for w in words)):
            return True
        if (column == "family_id" and value in family_ids) or (column == "child_id" and value in child_ids):
            return True
        if column == "id" and "nickname" in row and value in child_ids:
            return True
    return False


def test_forget_asks_first_and_a_forged_or_declined_confirmation_deletes_nothing(
        conv: Conversation, store: Store, two_families: tuple[int, int]) -> None:
    before = everything(store)
    [forged] = conv.handle(Press(Action("forget", value=1), actor=PARENT), Session())
    assert "过期" in forged.text
    session = Session()
    [confirm] = say(conv, PARENT, "forget", session)
    [kept] = conv.handle(Press(next(a for a in confirm.actions() if a.value == 0), actor=PARENT), session)
    assert "什么也没有删除" in kept.text
    # Another account pressing the button of this parent's confirmation deletes nothing of either.
    session = Session()
    [confirm] = say(conv, PARENT, "forget", session)
    [other] = conv.handle(Press(next(a for a in confirm.actions() if a.value == 1), actor=OTHER), Session())
    assert "过期" in other.text
    assert everything(store) == before


def test_activity_is_recorded_once_a_day_and_the_purge_deletes_only_inactive_families(
        guide: Guide, store: Store, two_families: tuple[int, int], tmp_path: Path) -> None:
    mine, other = two_families
    later = NOW + dt.timedelta(days=400)
    conv = Conversation(guide, clock=fixed_clock(later), store=store)
    conv.handle(Text("宝宝几个月加辅食", actor=OTHER), Session())
    seen = dict(store.db.execute("select id, last_seen from families").fetchall())
    assert seen == {mine: NOW.date().isoformat(), other: later.date().isoformat()}
    db = str(tmp_path / "z.db")
    runner = CliRunner()
    dry = runner.invoke(main, ["db", "purge", "--months", "12", "--today", "2028-01-10", "--dry-run", "--db", db])
    assert dry.exit_code == 0 and dry.output.startswith("1 family(ies)")
    assert len(store.db.execute("select id from families").fetchall()) == 2
    done = runner.invoke(main, ["db", "purge", "--months", "12", "--today", "2028-01-10", "--db", db])
    # The inactive family's report went with it; the active family's older report stays, unlinked.
    assert done.exit_code == 0 and "deleted 1 family(ies)" in done.output and "1 older report(s)" in done.output
    assert store.db.execute("select text, reporter from reports").fetchall() == [("另一家的举报内容", "")]
    assert [r[0] for r in store.db.execute("select id from families")] == [other]
    assert Families(store.db).children(other) and not Families(store.db).children(mine)
    bad = runner.invoke(main, ["db", "purge", "--months", "0", "--db", db])
    assert bad.exit_code != 0 and "Traceback" not in bad.output


def test_a_family_that_only_receives_reminders_is_still_served_and_not_purged(
        store: Store, two_families: tuple[int, int], tmp_path: Path) -> None:
    """Delivered reminders and doctor's messages count as activity (the plan runs to 6 years; a family
    may only read them); failed ones (the bot blocked) do not."""
    mine, other = two_families

    def deliver(deliveries: Reminders | Outbox, family_id: int, state: str, at: dt.datetime) -> None:
        rows = [r.id for r in deliveries.due(at + dt.timedelta(days=3000), limit=10_000) if r.family_id == family_id]
        assert deliveries.claim_ids(rows[:1], "test", at, at)
        assert deliveries.finish(rows[:1], "test", state, at) == 1

    deliver(Reminders(store.db), mine, "sent", dt.datetime(2027, 6, 1, 9, tzinfo=TZ))
    deliver(Outbox(store.db), other, "sent", dt.datetime(2027, 2, 1, 9, tzinfo=TZ))
    deliver(Reminders(store.db), other, "failed", dt.datetime(2027, 6, 1, 9, tzinfo=TZ))
    db, runner = str(tmp_path / "z.db"), CliRunner()

    def purge(today: str, *dry: str) -> str:
        result = runner.invoke(main, ["db", "purge", "--months", "12", "--today", today, *dry, "--db", db])
        assert result.exit_code == 0, result.output
        return result.output

    # Neither has written since 2026-12-01; each had something delivered within the 12 months.
    assert purge("2028-01-15", "--dry-run").startswith("0 family(ies)")
    # By 2028-03-01 the doctor's message is older than 12 months and the later reminder failed.
    assert "deleted 1 family(ies)" in purge("2028-03-01")
    assert [r[0] for r in store.db.execute("select id from families")] == [mine]
    # Twelve months after the last delivered reminder, the period has run for this family too.
    assert purge("2028-06-01", "--dry-run").startswith("0 family(ies)")
    assert purge("2028-06-02", "--dry-run").startswith("1 family(ies)")


def test_a_deleted_reports_reference_number_is_never_given_again(store: Store) -> None:
    """/forget and the purge delete reports: the next report of that day gets a new number, not the
    deleted one's (the bureau may already have it on file) nor one still in use."""
    first = file_report(store.db, NOW, "第一条举报内容", PARENT.user_key)
    second = file_report(store.db, NOW, "第二条举报内容", OTHER.user_key)
    assert (first.ref, second.ref) == ("JB20261201-0001", "JB20261201-0002")
    forget(store.db, PARENT.user_key, NOW)
    third = file_report(store.db, NOW, "第三条举报内容", OTHER.user_key)
    forget(store.db, OTHER.user_key, NOW)
    fourth = file_report(store.db, NOW + dt.timedelta(minutes=5), "第四条举报内容", OTHER.user_key)
    assert (third.ref, fourth.ref) == ("JB20261201-0003", "JB20261201-0004")
    assert file_report(store.db, NOW + dt.timedelta(days=1), "次日的举报", "").ref == "JB20261202-0001"
