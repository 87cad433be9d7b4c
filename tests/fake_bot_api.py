"""A fake Telegram Bot API server on 127.0.0.1 (aiohttp), with real long-poll getUpdates.

It answers the calls the bot makes, records every sendMessage, and rejects — with the 400 the real
API gives — anything Telegram would reject (see telegram_rules)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from typing import Any

from aiohttp import web

from .fakes import BOT_USER, sent_message
from .telegram_rules import send_message_problems, send_venue_problems


class FakeBotApi:
    def __init__(self, token: str) -> None:
        self.token = token
        self.updates: list[dict[str, Any]] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.sent: list[dict[str, Any]] = []
        self.rejected: list[tuple[str, list[str]]] = []
        self._new = asyncio.Event()
        self._message_ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def push(self, update: dict[str, Any]) -> None:
        self.updates.append(update)
        self._new.set()

    async def wait_sent(self, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        """Wait until at least `count` messages have been sent in total."""
        deadline = time.monotonic() + timeout
        while len(self.sent) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"bot sent {len(self.sent)} messages, expected {count}: {self.sent[-3:]}")
            await asyncio.sleep(0.05)
        return self.sent

    def called(self, method: str) -> list[dict[str, Any]]:
        return [p for m, p in self.calls if m == method]

    async def _params(self, request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            return dict(await request.json())
        form = await request.post()
        out: dict[str, Any] = {}
        for key, value in form.items():
            text = value if isinstance(value, str) else ""
            try:
                out[key] = json.loads(text) if text[:1] in "[{" else text
            except json.JSONDecodeError:
                out[key] = text
        return out

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        params = await self._params(request)
        self.calls.append((method, params))
        if method == "getMe":
            return self._ok(BOT_USER)
        if method in ("deleteWebhook", "setWebhook", "setMyCommands", "answerCallbackQuery", "close"):
            return self._ok(True)
        if method == "getUpdates":
            return self._ok(await self._get_updates(params))
        if method in ("sendMessage", "sendVenue"):
            problems = (send_message_problems if method == "sendMessage" else send_venue_problems)(params)
            if problems:
                self.rejected.append((method, problems))
                return web.json_response({"ok": False, "error_code": 400,
                                          "description": "Bad Request: " + "; ".join(problems)}, status=400)
            self.sent.append(params)
            return self._ok(sent_message(method, params, next(self._message_ids)))
        self.rejected.append((method, ["method not supported by the fake"]))
        return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        timeout = float(params.get("timeout") or 0)
        # Updates below the offset are confirmed: Telegram forgets them.
        self.updates = [u for u in self.updates if u["update_id"] >= offset]
        if not self.updates and timeout > 0:
            self._new.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait(), timeout)
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        return list(self.updates)

    @staticmethod
    def _ok(result: Any) -> web.Response:
        return web.json_response({"ok": True, "result": result})
