"""A doctor's push end to end: `zjcare-guide run` takes the doctor's /push (audience, text, preview,
send) against the fake Bot API on 127.0.0.1, then `zjcare-guide reminders send-due` delivers it to 500
families at Telegram's rate, through injected 429s, 5xx errors, families that blocked the bot and chats
Telegram does not know.

Every family the fake could deliver to gets the push exactly once; the doctor gets one progress message,
edited in place, whose final report (已发送 / 失败 / 家长已屏蔽机器人) counts exactly what the fake
delivered and refused; the database says the same. /invite's QR code goes out as an uploaded photo."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from telegram import Bot, Message
from telegram.error import BadRequest

from zjcare_guide.children import Families
from zjcare_guide.clock import TZ
from zjcare_guide.doctors import Doctors
from zjcare_guide.reminders import Policy
from zjcare_guide.store import Store

from .conftest import TOKEN, command
from .fake_bot_api import BAD_GATEWAY, NOT_MODIFIED, SERVER_ERROR, FakeBotApi, Fault, UploadedFile, too_many_requests
from .fakes import callback, message
from .test_reminders_e2e import environment, press, query, start_bot, stop_bot

DOCTOR_ID = 8800
DOCTOR = {"id": DOCTOR_ID, "is_bot": False, "first_name": "王医生", "language_code": "zh-hans"}
CHATS = list(range(30_000, 30_500))  # one family each
BLOCKED = {30_011, 30_123, 30_250, 30_377, 30_499}  # blocked the bot: 403
NOT_FOUND = {30_042, 30_300}  # Telegram does not know the chat: 400, permanent
# Answered with these errors first, then delivered: 5xx retried by the dispatcher (twice at most, so
# within one run), 429s waited out by PTB's rate limiter.
FLAKY: dict[int, tuple[Fault, ...]] = {
    30_005: (SERVER_ERROR,), 30_099: (BAD_GATEWAY, SERVER_ERROR), 30_200: (SERVER_ERROR, BAD_GATEWAY),
    30_420: (BAD_GATEWAY,), 30_060: (too_many_requests(1),), 30_333: (too_many_requests(1), too_many_requests(1)),
}
TEXT = "本周六上午8点到11点，店口镇卫生院为0～6岁儿童免费体检，请带好《母子健康手册》。"


def register(db: Path, now: dt.datetime) -> int:
    """The doctor (their Telegram account known) and 500 consenting families, each with one child under 6
    and signed with the doctor, through the product's Python API. No reminders are planned: only the
    push goes out."""
    store = Store.open(db)
    families = Families(store.db)
    doctors = Doctors(store.db)
    with store.db.atomic():
        doctor = doctors.add("王医生", "店口镇卫生院", now, f"telegram:{DOCTOR_ID}")
        for n, chat in enumerate(CHATS):
            family = families.consent(f"telegram:{chat}", f"telegram:{chat}", now)
            families.add_child(family.id, f"宝{n}", now.date() - dt.timedelta(days=20 + 4 * n), now=now)
            doctors.link(family.id, doctor.id, now)
    store.db.conn.close()
    return doctor.id


def delivery_moment(now: dt.datetime) -> dt.datetime:
    """When send-due delivers the push: now, or — now being in quiet hours (21:00-08:00) — 10:00 of the
    day they end. The rows were created now, so they are due then (next_at <= at) and hours, not the
    2 days of Policy.max_late, late."""
    policy = Policy()
    if not policy.quiet(now):
        return now
    day = now.date() if now.time() < policy.quiet_end else now.date() + dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(10, 0), TZ)


async def send_due(env: dict[str, str], at: dt.datetime) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        *command(), "reminders", "send-due", "--at", at.isoformat(timespec="seconds"), "--json", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0, err.decode()[-2000:]
    counts: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return counts


def report(text: str) -> dict[str, int]:
    """The numbers of a progress message."""
    found = {label: re.search(rf"{label}：(\d+)", text) for label in ("已发送", "失败", "家长已屏蔽机器人", "待发送")}
    total = re.search(r"共(\d+)个家庭", text)
    assert total is not None, text
    return {"total": int(total.group(1)), **{k: int(m.group(1)) for k, m in found.items() if m}}


async def test_a_push_to_500_families_with_rate_limits_and_failures(api: FakeBotApi, tmp_path: Path) -> None:
    env = environment(api, tmp_path)
    db = tmp_path / "bot.db"
    doctor_id = register(db, dt.datetime.now(TZ))

    def doctor_says(text: str) -> None:
        api.push(message(text, chat_id=DOCTOR_ID, user=DOCTOR))

    def doctor_presses(data: str) -> None:
        api.push(callback(data, chat_id=DOCTOR_ID, user=DOCTOR))

    proc = await start_bot(env)
    try:
        # /invite: the QR code, uploaded as a PNG, its caption the invite link.
        doctor_says("/invite")
        sent = await api.wait_sent(1, timeout=30)
        photo = sent[0]["photo"]
        assert isinstance(photo, UploadedFile) and photo.data.startswith(b"\x89PNG")
        assert "https://t.me/zjcare_test_bot?start=join_" in sent[0]["caption"]

        doctor_says("/push")
        sent = await api.wait_sent(2)
        assert "发给哪些家庭" in sent[1]["text"]
        everyone = press(sent[1], "全部签约家庭")
        assert everyone.split("|")[1:3] == ["pa", "all"]
        doctor_presses(everyone)
        sent = await api.wait_sent(3)
        assert "请输入要发送的消息" in sent[2]["text"]
        doctor_says(TEXT)
        sent = await api.wait_sent(4)
        preview = sent[3]["text"]
        assert "全部签约家庭，共500个家庭" in preview and "今天还能发送1000条" in preview
        assert "王医生（店口镇卫生院）" in preview and "《母子健康手册》" in preview
        go = press(sent[3], "✅ 确认发送（500个家庭）")
        assert go.split("|")[1] == "pg"
        doctor_presses(go)
        sent = await api.wait_sent(5)
        assert "已开始发送给500个家庭" in sent[4]["text"]
    finally:
        # Before the bot's next reminder tick (60 s): send-due below delivers the push.
        await stop_bot(proc)
    assert all(int(p["chat_id"]) == DOCTOR_ID for p in api.sent) and len(api.sent) == 5 and api.rejected == []
    assert query(db, "select kind, state, count(*) from outbox group by kind, state order by kind") == [
        ("push", "pending", 500), ("push_progress", "pending", 1)]
    [(push_id, total, progress_address)] = query(db, "select id, total, progress_address from pushes")
    assert (total, progress_address) == (500, f"telegram:{DOCTOR_ID}")
    assert query(db, "select count(*) from reminders") == [(0,)]

    # Telegram's side of the delivery.
    api.rate_limit = 30  # messages per rolling second
    api.blocked |= BLOCKED
    api.not_found |= NOT_FOUND
    for chat, faults in FLAKY.items():
        api.fail(*faults, chat_id=chat)
    before = len(api.sent)
    started = time.monotonic()
    counts = await send_due(env, delivery_moment(dt.datetime.now(TZ)))
    elapsed = time.monotonic() - started

    delivered = [(p, i) for p, i in zip(api.sent[before:], api.sent_ids[before:], strict=True)]
    to_doctor = [(p, i) for p, i in delivered if int(p["chat_id"]) == DOCTOR_ID]
    to_families = [p for p, _ in delivered if int(p["chat_id"]) != DOCTOR_ID]
    reached = set(CHATS) - BLOCKED - NOT_FOUND

    # Each family the fake could reach got the push once; the others nothing; nobody anything twice.
    assert Counter(int(p["chat_id"]) for p in to_families) == dict.fromkeys(reached, 1)
    assert all(TEXT in p["text"] and "王医生（店口镇卫生院）" in p["text"] for p in to_families)
    # What the fake refused: each blocked and unknown chat once (no retry), the 5xx as injected; the
    # injected 429s at least (a 429 of the rolling-second limit too, should the bot have gone faster).
    refused = Counter(api.faulted)
    assert {k: n for k, n in refused.items() if k[1] != 429} == {
        **{(c, 403): 1 for c in BLOCKED}, **{(c, 400): 1 for c in NOT_FOUND},
        **Counter((c, f.status) for c, faults in FLAKY.items() for f in faults if f.status != 429)}
    injected_429 = Counter(c for c, faults in FLAKY.items() for f in faults if f.status == 429)
    seen_429 = Counter(c for c, status in api.faulted if status == 429)
    assert all(seen_429[c] >= n for c, n in injected_429.items())
    extra_429 = seen_429.total() - injected_429.total()
    # The bot keeps below Telegram's 30 a second (its limiter allows 29 in any second; network jitter
    # could, rarely, make the fake count a 30th): the fake's own limit is (almost) never hit. No timing
    # is asserted (shared machines); the time is printed below.
    assert extra_429 <= 2

    # The progress message: sent once, first, then edited in place; its last edit is the final report.
    [(progress, progress_id)] = to_doctor
    assert delivered[0] == (progress, progress_id)
    assert report(progress["text"]) == {"total": 500, "已发送": 0, "失败": 0, "家长已屏蔽机器人": 0, "待发送": 500}
    edits = api.edits
    assert edits and all((e["chat_id"], e["message_id"]) == (DOCTOR_ID, progress_id) for e in edits)
    # Edited every 25 families (each time all of them settled), the 20th edit being the final report.
    shown = [report(e["text"]) for e in edits]
    assert len(edits) == 500 // 25
    for n, numbers in enumerate(shown, start=1):
        assert numbers["已发送"] + numbers["失败"] + numbers["家长已屏蔽机器人"] == 25 * n
        assert numbers.get("待发送", 0) == 500 - 25 * n
    assert all(a["已发送"] <= b["已发送"] for a, b in itertools.pairwise(shown))
    final = edits[-1]["text"]
    assert "发送完成" in final and "待发送" not in final
    refused_chats = {status: {c for c, s in api.faulted if s == status} for status in (400, 403)}
    assert report(final) == {"total": 500, "已发送": len(to_families), "失败": len(refused_chats[400]),
                             "家长已屏蔽机器人": len(refused_chats[403])}
    assert report(final) == {"total": 500, "已发送": 493, "失败": 2, "家长已屏蔽机器人": 5}

    # The dispatcher's counts (messages: the pushes and the progress message) and the database agree.
    assert counts == {"sent": 494, "failed": 2, "blocked": 5, "retrying": 0, "rows_sent": 494, "late": 0,
                      "retried": 6, "skipped": 0, "quiet": False}  # retried: the 5xx (429s are PTB's)
    assert query(db, "select kind, state, reason, count(*) from outbox group by kind, state, reason "
                     "order by kind, state") == [
        ("push", "failed", "bad request: Chat not found", 2), ("push", "pending", "blocked", 5),
        ("push", "sent", "", 493), ("push_progress", "sent", "", 1)]
    assert {int(a.partition(":")[2]) for (a,) in query(db, "select address from families where paused = 1")} == BLOCKED
    assert {int(a.partition(":")[2]) for (a,) in query(
        db, "select address from outbox where state = 'failed'")} == NOT_FOUND
    assert query(db, "select progress_message from pushes where id = ?", push_id) == [(str(progress_id),)]
    assert query(db, "select action, detail from audit where doctor_id = ? and action = 'push'", doctor_id) == [
        ("push", f"push {push_id} to 500 families (全部签约家庭)")]
    # With a multiple of 25 families the last in-loop edit is already the final report: no closing edit
    # repeats it (Telegram would answer 400 "message is not modified"). Nothing at all is refused.
    not_modified = [r for r in api.rejected if r == ("editMessageText", [NOT_MODIFIED])]
    assert api.rejected == [], api.rejected

    # Run again: nothing more goes out, the report is not touched.
    sent_before, edits_before = len(api.sent), len(api.edits)
    again = await send_due(env, delivery_moment(dt.datetime.now(TZ)))
    assert (again["sent"], again["failed"], again["blocked"]) == (0, 0, 0)
    assert (len(api.sent), len(api.edits)) == (sent_before, edits_before)
    print(f"\n500 families: {len(to_families)} delivered, {len(NOT_FOUND)} not found, {len(BLOCKED)} blocked; "
          f"{len(edits)} edits, {len(not_modified)} not modified; {extra_429} 429s of the rate limit; "
          f"send-due {elapsed:.1f} s")


# ---------------------------------------------------------------- the fake's edits and photos, as Telegram answers


async def test_the_fake_checks_edits_and_photos_like_telegram(api: FakeBotApi) -> None:
    bot = Bot(TOKEN, base_url=api.base_url)
    async with bot:
        text = await bot.send_message(DOCTOR_ID, "<b>正在发送</b>", parse_mode="HTML")
        photo = await bot.send_photo(DOCTOR_ID, photo=b"\x89PNG\r\n\x1a\n" + bytes(64), caption="二维码")
        edited = await bot.edit_message_text("<b>发送完成</b>", chat_id=DOCTOR_ID, message_id=text.message_id,
                                             parse_mode="HTML")
        assert isinstance(edited, Message) and edited.text == "<b>发送完成</b>"
        refused = [("发送完成", text.message_id, "<b>发送完成</b>"),  # the same again: not modified
                   ("no text", photo.message_id, "新的"),
                   ("not found", 999_999, "新的"),
                   ("bad HTML", text.message_id, "<b>未闭合")]
        for _, message_id, new in refused:
            with pytest.raises(BadRequest):
                await bot.edit_message_text(new, chat_id=DOCTOR_ID, message_id=message_id, parse_mode="HTML")
        for upload, caption in ((b"not an image", "二维码"), (b"\xff\xd8\xff" + bytes(64), "长" * 1025)):
            with pytest.raises(BadRequest):
                await bot.send_photo(DOCTOR_ID, photo=upload, caption=caption)
        api.not_found.add(DOCTOR_ID + 1)
        with pytest.raises(BadRequest, match=r"[Cc]hat not found"):
            await bot.send_message(DOCTOR_ID + 1, "你好")
    assert [(e["chat_id"], e["message_id"], e["text"]) for e in api.edits] == [
        (DOCTOR_ID, text.message_id, "<b>发送完成</b>")]
    assert [p.get("caption") for p in api.sent] == [None, "二维码"]
    assert isinstance(api.sent[1]["photo"], UploadedFile)
    assert [problems[0].split(":")[0] for _, problems in api.rejected] == [
        "message is not modified", "there is no text in the message to edit", "message to edit not found",
        "unclosed tags ['b']", "IMAGE_PROCESS_FAILED", "message caption is too long (1025)"]
    assert api.faulted == [(DOCTOR_ID + 1, 400)]
