"""End to end: `zjcare-guide run` as a subprocess against the fake Bot API server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from .fake_bot_api import FakeBotApi
from .fakes import STICKER, callback, message

TOKEN = "123456:E2E-TEST"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def command() -> list[str]:
    script = Path(sys.executable).parent / "zjcare-guide"
    return [str(script)] if script.exists() else [sys.executable, "-m", "bot.cli"]


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    server = FakeBotApi(TOKEN)
    await server.start()
    yield server
    await server.stop()


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
