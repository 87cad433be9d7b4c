"""End to end: `zjcare-guide run` as a subprocess against the fake Bot API server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
from pathlib import Path

import aiohttp
import pytest

from .conftest import TOKEN, command
from .fake_bot_api import FakeBotApi
from .fakes import ADMIN, STICKER, callback, location, message


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start_bot(api: FakeBotApi, tmp_path: Path, *args: str, token: str = TOKEN,
                    **extra_env: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "TELEGRAM_BOT_TOKEN": token, "TELEGRAM_API_BASE_URL": api.base_url,
           "ZJCARE_DB": str(tmp_path / "bot.db"), "HOME": str(tmp_path), **extra_env}
    env.pop("ZJCARE_CONTENT_DIR", None)
    return await asyncio.create_subprocess_exec(*command(), "run", *args, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)


async def stop_bot(proc: asyncio.subprocess.Process) -> str:
    """SIGTERM, as systemd would; returns what the bot logged."""
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    return err.decode()


def keyboard_data(sent: dict) -> list[str]:  # type: ignore[type-arg]
    markup = sent.get("reply_markup") or {}
    return [b["callback_data"] for row in markup.get("inline_keyboard", []) for b in row]


async def test_scripted_conversation_then_sigterm(api: FakeBotApi, tmp_path: Path) -> None:
    proc = await start_bot(api, tmp_path)
    try:
        api.push(message("/start"))
        sent = await api.wait_sent(1, timeout=30)
        assert "120" in sent[0]["text"] and len(keyboard_data(sent[0])) == 5

        api.push(message("宝宝湿疹怎么护理"))
        sent = await api.wait_sent(2)
        answer = sent[1]
        assert "湿疹" in answer["text"] and "<b>" in answer["text"]
        data = keyboard_data(answer)
        related = next(d for d in data if d.startswith("2|a|"))
        thumbs_up = next(d for d in data if d.startswith("2|f|") and d.endswith("|0|1"))

        api.push(callback(related))
        sent = await api.wait_sent(3)
        assert sent[2]["text"]

        api.push(callback(thumbs_up))
        sent = await api.wait_sent(4)
        assert "谢谢" in sent[3]["text"]

        api.push(message("宝宝抽搐了，叫不醒"))
        sent = await api.wait_sent(6)
        assert "🚨" in sent[4]["text"] and "120" in sent[4]["text"]

        api.push(message(None, sticker=STICKER))
        sent = await api.wait_sent(7)
        assert "文字" in sent[6]["text"]

        api.push(callback("2|a|<script>"))
        sent = await api.wait_sent(8)
        assert "已过期" in sent[7]["text"]
    finally:
        log = await stop_bot(proc)
    assert proc.returncode == 0, log[-2000:]
    assert api.rejected == []
    assert len(api.called("setMyCommands")) == 1
    assert len(api.called("answerCallbackQuery")) == 3
    assert TOKEN not in log  # the token never reaches the log
    with sqlite3.connect(tmp_path / "bot.db") as db:
        [(value, question)] = db.execute("select value, question from feedback").fetchall()
    assert value == 1 and question == "宝宝湿疹怎么护理"  # the 👍 of the answer keeps the question asked


async def test_webhook_mode_serves_updates_posted_to_it(api: FakeBotApi, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook-path"
    proc = await start_bot(api, tmp_path, "--webhook-url", url, "--listen", "127.0.0.1", "--port", str(port),
                           ZJCARE_WEBHOOK_SECRET="s3cret")
    try:
        for _ in range(200):
            if api.called("setWebhook"):
                break
            await asyncio.sleep(0.05)
        [hook] = api.called("setWebhook")
        assert hook["url"] == url and hook["secret_token"] == "s3cret"
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                try:
                    async with http.post(url, json=message("宝宝湿疹怎么护理"),
                                         headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret"}) as resp:
                        assert resp.status == 200
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            async with http.post(url, json=message("伪造"), headers={"X-Telegram-Bot-Api-Secret-Token": "x"}) as r:
                assert r.status == 403
        sent = await api.wait_sent(1)
        assert "湿疹" in sent[0]["text"]
    finally:
        log = await stop_bot(proc)
    assert proc.returncode == 0, log[-2000:]
    assert len(api.sent) == 1 and api.rejected == []


async def test_rejected_token_is_a_one_line_error(api: FakeBotApi, tmp_path: Path) -> None:
    proc = await start_bot(api, tmp_path, token="999:WRONG")
    _out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 1
    text = err.decode()
    assert "rejected TELEGRAM_BOT_TOKEN" in text and "Traceback" not in text


async def test_missing_token_is_a_one_line_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TELEGRAM_BOT_TOKEN"}
    proc = await asyncio.create_subprocess_exec(*command(), "run", env={**env, "HOME": str(tmp_path)},
                                                stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 1
    assert err.decode().strip().count("\n") == 0 and "TELEGRAM_BOT_TOKEN is not set" in err.decode()


async def test_institution_search_end_to_end(api: FakeBotApi, tmp_path: Path) -> None:
    """Location shared → cards; 📍 → sendVenue; next page; an operator's /places; a report."""
    db = tmp_path / "bot.db"
    env = {**os.environ, "ZJCARE_DB": str(db), "HOME": str(tmp_path)}
    # The operator is registered before the bot starts, as an administrator would.
    near = await asyncio.create_subprocess_exec(*command(), "institutions", "near", "--lat", "29.71", "--lon",
                                                "120.24", env=env, stdout=asyncio.subprocess.PIPE)
    await near.communicate()
    add = await asyncio.create_subprocess_exec(*command(), "operators", "add", "--telegram-id", str(ADMIN["id"]),
                                               "--institution", "DEMO-002", env=env, stdout=asyncio.subprocess.PIPE)
    await add.communicate()
    assert add.returncode == 0
    proc = await start_bot(api, tmp_path)
    try:
        api.push(message("/find"))
        sent = await api.wait_sent(1, timeout=30)
        assert sent[0]["reply_markup"]["keyboard"][0][0]["request_location"] is True

        api.push(location(29.712, 120.237))
        sent = await api.wait_sent(2)
        cards = sent[1]
        assert "公里" in cards["text"]
        data = keyboard_data(cards)
        api.push(callback(data[0]))  # 📍 of the nearest
        sent = await api.wait_sent(3)
        assert "title" in sent[2] and float(sent[2]["latitude"]) == pytest.approx(29.71, abs=0.05)

        next_page = next(b["callback_data"] for row in cards["reply_markup"]["inline_keyboard"] for b in row
                         if "下一页" in b["text"])
        api.push(callback(next_page))
        sent = await api.wait_sent(4)
        assert "6. " in sent[3]["text"]

        api.push(message("/places 2", user=ADMIN, chat_id=ADMIN["id"]))
        sent = await api.wait_sent(5)
        assert "2 个空余托位" in sent[4]["text"]

        api.push(message("/report"))
        sent = await api.wait_sent(6)
        pick = next(b["callback_data"] for row in sent[5]["reply_markup"]["inline_keyboard"] for b in row
                    if b["text"].startswith("举报："))
        api.push(callback(pick))
        await api.wait_sent(7)
        api.push(message("老师对孩子大声呵斥，家长群里有视频"))
        sent = await api.wait_sent(8)
        assert "JB" in sent[7]["text"]
    finally:
        log = await stop_bot(proc)
    assert proc.returncode == 0, log[-2000:]
    assert api.rejected == []
    assert "29.712" not in log and "120.237" not in log  # the parent's location is never logged
    with sqlite3.connect(db) as conn:
        assert conn.execute("select places from institutions where filing_no = 'DEMO-002'").fetchone() == (2,)
        assert conn.execute("select count(*) from reports").fetchone() == (1,)
