"""Reminders end to end: `zjcare-guide run` and `zjcare-guide reminders send-due` as subprocesses against
the fake Bot API server on 127.0.0.1, counting every message it delivers.

A child registered through the bot gets exactly one reminder when it is due, never a second; its ✅ is
recorded by the bot. Telegram's 429, 5xx and 403 cost no family a message and give none two. A send-due
killed mid-batch and run again delivers every family's message, at most one of them twice (the one in
flight at the kill)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import signal
import sqlite3
import time
from collections import Counter
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from zjcare_guide.children import Families
from zjcare_guide.clock import TZ
from zjcare_guide.guide import Guide
from zjcare_guide.reminders import Policy, Reminders
from zjcare_guide.store import Store

from .conftest import TOKEN, command
from .fake_bot_api import BAD_GATEWAY, SERVER_ERROR, FakeBotApi, too_many_requests
from .fakes import PARENT, callback, message

PARENT_ID = int(str(PARENT["id"]))
# Families registered through the product's Python API (tests 2 and 3): all born the same day, so
# their first reminder (the one-month check, 3 days ahead) is due at the same moment.
SETUP_AT = dt.datetime(2026, 12, 1, 10, 0, tzinfo=TZ)
BIRTH = dt.date(2026, 11, 8)



def environment(api: FakeBotApi, tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_BASE_URL": api.base_url,
           "ZJCARE_DB": str(tmp_path / "bot.db"), "HOME": str(tmp_path)}
    for name in ("ZJCARE_CONTENT_DIR", "ZJCARE_QUIET_HOURS", "ZJCARE_REMINDER_MAX_LATE_DAYS"):
        env.pop(name, None)
    return env


async def start_bot(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(*command(), "run", env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)


async def stop_bot(proc: asyncio.subprocess.Process) -> str:
    """SIGTERM, as systemd would; returns what the bot logged."""
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0, err.decode()[-2000:]
    return err.decode()


def send_due_args(at: str) -> list[str]:
    return [*command(), "reminders", "send-due", "--at", at, "--json"]


async def send_due(env: dict[str, str], at: str) -> dict[str, Any]:
    """Run `zjcare-guide reminders send-due --at AT --json` to the end; its counts."""
    proc = await asyncio.create_subprocess_exec(*send_due_args(at), env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()[-2000:]
    # Whatever Telegram answered was handled: a failure or a rate limiter's give-up is one line, never
    # a traceback in cron's mail.
    assert "Traceback" not in err.decode(), err.decode()[-3000:]
    counts: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return counts


def counts_of(sent: int = 0, failed: int = 0, blocked: int = 0, retrying: int = 0, rows_sent: int = 0, late: int = 0,
              retried: int = 0, skipped: int = 0) -> dict[str, Any]:
    return {"sent": sent, "failed": failed, "blocked": blocked, "retrying": retrying, "rows_sent": rows_sent,
            "late": late, "retried": retried, "skipped": skipped, "quiet": False}


def query(db: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql, params).fetchall()


def buttons(sent: dict[str, Any]) -> list[list[tuple[str, str]]]:
    """The inline keyboard of a sent message: rows of (label, callback data)."""
    markup = sent.get("reply_markup") or {}
    return [[(b["text"], b["callback_data"]) for b in row] for row in markup.get("inline_keyboard", [])]


def press(sent: dict[str, Any], label: str) -> str:
    """The callback data of the button whose label starts with `label`."""
    return next(data for row in buttons(sent) for text, data in row if text.startswith(label))


def register_families(db: Path, guide: Guide, chats: Sequence[int], twins: Collection[int] = ()) -> str:
    """Families that consented, each with a child (twins for `twins`) born on BIRTH, their reminders
    planned at SETUP_AT, as the bot would; returns when the first of them are due (as stored)."""
    store = Store.open(db)
    families = Families(store.db)
    book = Reminders(store.db, families)
    with store.db.atomic():
        for chat in chats:
            family = families.consent(f"telegram:{chat}", f"telegram:{chat}", SETUP_AT)
            for nickname in ("大宝", "小宝") if chat in twins else ("豆豆",):
                child = families.add_child(family.id, nickname, BIRTH, now=SETUP_AT)
                book.sync_child(child, guide.library.schedules, Policy(), SETUP_AT)
    store.db.conn.close()
    [(first,)] = query(db, "select min(send_at) from reminders where state = 'pending'")
    return str(first)


def due_rows(db: Path, at: str) -> dict[int, int]:
    """Rows due at `at`, by chat."""
    return {int(address.partition(":")[2]): n for address, n in query(
        db, "select f.address, count(*) from reminders r join families f on f.id = r.family_id "
            "where r.send_at <= ? group by f.address", at)}


def states(db: Path, at: str) -> dict[str, int]:
    """The rows due at `at`, by state."""
    return dict(query(db, "select state, count(*) from reminders where send_at <= ? group by state", at))


# ---------------------------------------------------------------- 1. registered in the bot, reminded once


async def test_child_registered_in_the_bot_is_reminded_once_and_its_done_is_recorded(
        api: FakeBotApi, tmp_path: Path) -> None:
    env = environment(api, tmp_path)
    db = tmp_path / "bot.db"
    today = dt.datetime.now(TZ).date()
    birth = today - dt.timedelta(days=23)  # the one-month check and HepB 2 are a few days ahead

    proc = await start_bot(env)
    try:
        api.push(message("/child"))
        sent = await api.wait_sent(1, timeout=30)
        assert "同意保存吗" in sent[0]["text"]
        api.push(callback(press(sent[0], "同意")))
        sent = await api.wait_sent(2)
        assert "小名" in sent[1]["text"]
        api.push(message("豆豆"))
        sent = await api.wait_sent(3)
        assert "豆豆的出生日期" in sent[2]["text"]
        api.push(message(birth.isoformat()))
        sent = await api.wait_sent(4)
        assert "女孩还是男孩" in sent[3]["text"]
        api.push(callback(press(sent[3], "女孩")))
        sent = await api.wait_sent(5)
        assert "早产" in sent[4]["text"]
        api.push(callback(press(sent[4], "不是")))
        sent = await api.wait_sent(6)
        summary = sent[5]["text"]
        assert "已登记<b>豆豆</b>，23天。" in summary and "接下来" in summary
    finally:
        await stop_bot(proc)
    assert len(api.sent) == 6 and api.rejected == []

    [(child_id, stored_birth)] = query(db, "select id, birth from children")
    assert stored_birth == birth.isoformat()
    pending = query(db, "select send_at, item_id from reminders where child_id = ? and state = 'pending' "
                        "order by send_at, id", child_id)
    assert pending and not query(db, "select 1 from reminders where state != 'pending'")
    at = str(pending[0][0])
    moment = dt.datetime.fromisoformat(at)
    assert moment.time() == dt.time(9, 0) and moment.date() > today
    items = [item for send_at, item in pending if send_at == at]

    counts = await send_due(env, at)
    assert counts == counts_of(sent=1, rows_sent=len(items))
    [reminder] = api.sent[6:]
    assert int(reminder["chat_id"]) == PARENT_ID and "豆豆" in reminder["text"]
    rows = buttons(reminder)
    assert all([label[0] for label, _ in row] == ["✅", "⏰", "🔕"] for row in rows)
    assert sorted([data for _, data in row] for row in rows) == sorted(
        [f"2|nd|{child_id}-{item}", f"2|nz|{child_id}-{item}", f"2|nm|{child_id}-{item}"] for item in items)
    assert states(db, at) == {"sent": len(items)}

    # The same run again: nothing more goes out.
    assert await send_due(env, at) == counts_of()
    assert len(api.sent) == 7 and api.rejected == []

    # The parent presses ✅ under the reminder, the bot running again.
    done = press(reminder, "✅")
    done_item = done.partition("-")[2]
    proc = await start_bot(env)
    try:
        api.push(callback(done))
        sent = await api.wait_sent(8, timeout=30)
        assert sent[7]["text"].startswith("已记录：豆豆的") and int(sent[7]["chat_id"]) == PARENT_ID
    finally:
        await stop_bot(proc)
    assert len(api.sent) == 8 and api.rejected == []
    assert query(db, "select child_id, item_id, done_on from records") == [(child_id, done_item, today.isoformat())]


# ---------------------------------------------------------------- 2. Telegram's errors


async def test_rate_limits_server_errors_and_a_blocked_family(api: FakeBotApi, tmp_path: Path, guide: Guide) -> None:
    env = environment(api, tmp_path)
    db = tmp_path / "bot.db"
    twins, flaky, down, blocked = 5001, 5002, 5003, 5004
    plain = [5005, 5006, 5007]
    at = register_families(db, guide, [twins, flaky, down, blocked, *plain], twins={twins})
    rows = due_rows(db, at)
    assert rows == {twins: 2, flaky: 1, down: 1, blocked: 1, **dict.fromkeys(plain, 1)}

    api.fail(too_many_requests(1), SERVER_ERROR, BAD_GATEWAY, chat_id=twins)  # delivered on the 4th call
    api.fail(BAD_GATEWAY, chat_id=flaky)  # on the 2nd
    api.fail(SERVER_ERROR, BAD_GATEWAY, SERVER_ERROR, chat_id=down)  # 3 failures: left for the next run
    api.blocked.add(blocked)
    started = time.monotonic()
    counts = await send_due(env, at)
    # PTB's rate limiter waits out the 429 itself; each 5xx is one retry of the dispatcher's.
    assert counts == counts_of(sent=5, blocked=1, retrying=1, rows_sent=6, retried=2 + 1 + 2)
    assert time.monotonic() - started > 1 + 0.5 + 1  # retry_after 1 s, then 0.5 s and 1 s of backoff

    delivered = Counter(int(p["chat_id"]) for p in api.sent)
    assert delivered == dict.fromkeys([twins, flaky, *plain], 1)
    assert Counter(api.faulted) == {(twins, 429): 1, (twins, 500): 1, (twins, 502): 1, (flaky, 502): 1,
                                    (down, 500): 2, (down, 502): 1, (blocked, 403): 1}
    assert len(buttons(api.sent_to(twins)[0])) == 2  # both twins in one message
    assert states(db, at) == {"sent": 6, "pending": 2}
    assert query(db, "select address, paused from families where paused = 1") == [(f"telegram:{blocked}", 1)]
    [(reason, next_at)] = query(db, "select r.reason, r.next_at from reminders r join families f "
                                    "on f.id = r.family_id where f.address = ? and r.send_at <= ?",
                                f"telegram:{down}", at)
    assert reason.startswith("network") and next_at > at
    assert query(db, "select reason from reminders r join families f on f.id = r.family_id "
                     "where f.address = ? and r.send_at <= ?", f"telegram:{blocked}", at) == [("blocked",)]

    # Twenty minutes later the family whose messages failed gets theirs; the paused family nothing.
    later = (dt.datetime.fromisoformat(at) + dt.timedelta(minutes=20)).isoformat()
    assert await send_due(env, later) == counts_of(sent=1, rows_sent=1)
    delivered = Counter(int(p["chat_id"]) for p in api.sent)
    assert delivered == dict.fromkeys([twins, flaky, down, *plain], 1)
    assert states(db, at) == {"sent": 7, "pending": 1}
    assert api.rejected == []


# ---------------------------------------------------------------- 3. killed mid-batch


async def test_send_due_killed_mid_batch_then_run_again(api: FakeBotApi, tmp_path: Path, guide: Guide) -> None:
    env = environment(api, tmp_path)
    db = tmp_path / "bot.db"
    chats = list(range(10_000, 10_200))
    at = register_families(db, guide, chats)
    assert due_rows(db, at) == dict.fromkeys(chats, 1)
    api.delay = 0.03  # each message is delivered at once, its answer comes 30 ms later
    api.rate_limit = 30  # Telegram's limit to different chats

    proc = await asyncio.create_subprocess_exec(*send_due_args(at), env=env, stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.DEVNULL)
    try:
        await api.wait_sent(50, timeout=40)
    finally:
        proc.kill()
        await proc.wait()  # reaped: its pid is dead, so its claims are released at once
    assert proc.returncode == -signal.SIGKILL
    first = Counter(int(p["chat_id"]) for p in api.sent)
    assert 50 <= len(api.sent) < len(chats) and set(first.values()) == {1}
    after_kill = states(db, at)
    in_flight = {int(a.partition(":")[2]) for (a,) in query(
        db, "select distinct f.address from reminders r join families f on f.id = r.family_id "
            "where r.state = 'sending'")}
    assert len(in_flight) <= 1 and after_kill.get("sending", 0) == len(in_flight)
    recorded = after_kill["sent"]

    counts = await send_due(env, at)
    assert counts["sent"] == len(chats) - recorded and counts["rows_sent"] == counts["sent"]
    assert (counts["failed"], counts["blocked"], counts["retrying"], counts["late"]) == (0, 0, 0, 0)

    delivered = Counter(int(p["chat_id"]) for p in api.sent)
    twice = {chat for chat, n in delivered.items() if n > 1}
    assert set(delivered) == set(chats) and set(delivered.values()) <= {1, 2}
    assert twice <= in_flight  # only the message in flight at the kill can go twice
    assert len(api.sent) == len(chats) + len(twice)
    assert states(db, at) == {"sent": len(chats)}
    assert api.rejected == []
