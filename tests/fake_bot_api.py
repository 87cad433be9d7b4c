"""A fake Telegram Bot API server on 127.0.0.1 (aiohttp), with real long-poll getUpdates.

It answers the calls the bot makes, records every sendMessage, sendVenue and sendPhoto (`sent`; a photo
is uploaded as multipart/form-data, its file recorded as an `UploadedFile`) and every editMessageText
(`edits`), and rejects — with the 400 the real API gives — anything Telegram would reject (see
telegram_rules; an edit of a message the chat does not have, of a message without text, or one that
changes nothing: "message is not modified").

Faults, for the dispatcher's tests: scripted error answers to the next sendMessage (and sendPhoto) calls
(`fail`, any chat or one chat), chats that blocked the bot (`blocked`, always 403) or that Telegram does
not know (`not_found`, always 400 "chat not found"), a limit of messages per rolling second above which
it answers 429 (`rate_limit`; edits count and are limited too), and a slow answer (`delay`: the message
is delivered at once, the answer comes `delay` seconds later, as when a response is slow or lost).
Edits get the blocked, not-found and rate-limit answers, never the scripted ones.

Scripted answers may also be a dropped connection (`Drop`: the socket closed with no HTTP answer at all,
before the call was processed — nothing delivered — or after it: delivered, its answer lost), a slow
answer to that one call (`Slow`), or None (answered normally: a gap in a script). A burst of 429s
(`throttle`) answers every sendMessage, sendPhoto and edit with a 429 for some seconds, from now or from
the moment the n-th message is delivered. `outcomes` lists every sendMessage and sendPhoto call in order
with what it got; `on_delivered`, when set, is called the moment a message is delivered, before its
answer (a test kills a process there: the message is then in flight)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_request import FileField

from .fakes import BOT_USER, sent_message
from .telegram_rules import html_problems, send_message_problems, send_venue_problems, utf16_len


@dataclass(frozen=True)
class Fault:
    """An error answer Telegram gives to a sendMessage, instead of delivering it."""

    status: int
    description: str
    retry_after: int | None = None

    def response(self) -> web.Response:
        body: dict[str, Any] = {"ok": False, "error_code": self.status, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return web.json_response(body, status=self.status)


@dataclass(frozen=True)
class Drop:
    """The connection closed without any HTTP answer: before the call was processed (nothing delivered),
    or — `delivered` — after it (the message delivered, its answer lost)."""

    delivered: bool = False


@dataclass(frozen=True)
class Slow:
    """The message delivered at once, its answer `seconds` later (past the client's read timeout the
    answer is lost: delivered, and the client sees a timeout)."""

    seconds: float


Scripted = Fault | Drop | Slow
DROPPED = Drop(delivered=False)
DELIVERED_THEN_DROPPED = Drop(delivered=True)


def outcome(answer: Scripted | None) -> str:
    """How `outcomes` names what a call got."""
    if isinstance(answer, Fault):
        return str(answer.status)
    if isinstance(answer, Drop):
        return "delivered-dropped" if answer.delivered else "dropped"
    if isinstance(answer, Slow):
        return f"slow {answer.seconds:g}"
    return "ok"


def too_many_requests(retry_after: int = 1) -> Fault:
    return Fault(429, f"Too Many Requests: retry after {retry_after}", retry_after)


SERVER_ERROR = Fault(500, "Internal Server Error")
BAD_GATEWAY = Fault(502, "Bad Gateway")
BLOCKED = Fault(403, "Forbidden: bot was blocked by the user")
CHAT_NOT_FOUND = Fault(400, "Bad Request: chat not found")
NOT_MODIFIED = ("message is not modified: specified new message content and reply markup are exactly the "
                "same as a content and reply markup of the current message")
MAX_PHOTO_BYTES = 10 * 1024 * 1024  # Telegram's limit for a photo uploaded with sendPhoto
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")


@dataclass(frozen=True)
class UploadedFile:
    """A file field of a multipart/form-data call (sendPhoto's `photo`)."""

    filename: str
    content_type: str
    data: bytes


def send_photo_problems(params: dict[str, Any]) -> list[str]:
    """Why Telegram would answer 400 to this sendPhoto, if it would."""
    problems: list[str] = []
    photo = params.get("photo")
    if isinstance(photo, UploadedFile):
        if not photo.data.startswith(_IMAGE_MAGIC) and not (photo.data[:4] == b"RIFF" and photo.data[8:12] == b"WEBP"):
            problems.append("IMAGE_PROCESS_FAILED")
        if len(photo.data) > MAX_PHOTO_BYTES:
            problems.append(f"photo is too big ({len(photo.data)} bytes)")
    elif not isinstance(photo, str) or not photo.strip():
        problems.append("there is no photo in the request")
    caption = str(params.get("caption") or "")
    if params.get("parse_mode") == "HTML":
        errors, visible = html_problems(caption)
        problems += errors
    else:
        visible = caption
    if utf16_len(visible) > 1024:
        problems.append(f"message caption is too long ({utf16_len(visible)})")
    # The keyboard's rules are sendMessage's (its text is checked above as the caption).
    problems += send_message_problems({"text": "-", "reply_markup": params.get("reply_markup")})
    return problems


def _chat(params: dict[str, Any]) -> int:
    try:
        return int(params.get("chat_id", 0))
    except (TypeError, ValueError):
        return 0


def _markup(value: Any) -> Any:
    """A reply_markup as sent (a JSON string in form data, an object in JSON), for comparison."""
    if isinstance(value, str):
        with contextlib.suppress(json.JSONDecodeError):
            return json.loads(value)
    return value or None


class FakeBotApi:
    def __init__(self, token: str) -> None:
        self.token = token
        self.updates: list[dict[str, Any]] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.sent: list[dict[str, Any]] = []  # sendMessage, sendVenue and sendPhoto calls delivered
        self.sent_ids: list[int] = []  # the message id Telegram gave each of `sent`
        self.edits: list[dict[str, Any]] = []  # editMessageText calls accepted (chat_id, message_id int)
        self.rejected: list[tuple[str, list[str]]] = []
        # What each chat holds, by (chat id, message id): its method and current text and keyboard.
        self.messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._new = asyncio.Event()
        self._message_ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0
        # Fault injection (sendMessage only); nothing of it is active unless a test sets it.
        # Answers to the next sendMessage calls, to any chat (None: answered normally).
        self.faults: deque[Scripted | None] = deque()
        self.chat_faults: dict[int, deque[Scripted | None]] = {}  # the same, to one chat
        self.blocked: set[int] = set()  # chats that blocked the bot: every sendMessage to them is a 403
        self.not_found: set[int] = set()  # chats Telegram does not know: every sendMessage is a 400
        self.rate_limit: int | None = None  # messages delivered per rolling second, above it a 429
        self.delay = 0.0  # seconds between delivering a message and answering the call
        self.faulted: list[tuple[int, int]] = []  # (chat id, status) of every error answered by the above
        self.dropped: list[tuple[int, bool]] = []  # (chat id, delivered) of every connection dropped
        self.slowed: list[tuple[int, float]] = []  # (chat id, seconds) of every scripted slow answer
        self.outcomes: list[tuple[int, str]] = []  # every sendMessage and sendPhoto call: (chat id, outcome)
        self.on_delivered: Callable[[dict[str, Any]], None] | None = None
        self._throttled_until = 0.0
        self._bursts: list[tuple[int, float, int]] = []  # (after this many sent, for seconds, retry_after)
        self._retry_after = 1
        self._delivered_at: deque[float] = deque()
        self._closing = False

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
        # Long polls still open (a bot that was stopped or killed) end now, not at their timeout.
        self._closing = True
        self._new.set()
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

    def fail(self, *faults: Scripted | None, chat_id: int | None = None) -> None:
        """Answer the next sendMessage calls (to `chat_id`, or to any chat) with these errors, in order
        (None: that call is answered normally)."""
        if chat_id is None:
            self.faults.extend(faults)
        else:
            self.chat_faults.setdefault(chat_id, deque()).extend(faults)

    def throttle(self, seconds: float, retry_after: int = 1, after: int | None = None) -> None:
        """A burst of 429s: every sendMessage, sendPhoto and edit is answered 429 (`retry_after`) for
        `seconds`, from now or from the moment `after` messages in all have been delivered."""
        if after is None or len(self.sent) >= after:
            self._throttled_until = time.monotonic() + seconds
            self._retry_after = retry_after
        else:
            self._bursts = sorted([*self._bursts, (after, seconds, retry_after)])

    def sent_to(self, chat_id: int) -> list[dict[str, Any]]:
        """The messages delivered to one chat."""
        return [p for p in self.sent if int(p["chat_id"]) == chat_id]

    def edits_of(self, chat_id: int, message_id: int | None = None) -> list[dict[str, Any]]:
        """The edits accepted in one chat (of one message), in order."""
        return [p for p in self.edits if p["chat_id"] == chat_id and message_id in (None, p["message_id"])]

    def _fault(self, params: dict[str, Any], scripted: bool = True) -> Scripted | None:
        """What this sendMessage (sendPhoto; edit, not `scripted`) gets instead of a plain delivery, if anything."""
        try:
            chat_id = int(params.get("chat_id", 0))
        except (TypeError, ValueError):
            return None
        if chat_id in self.blocked:
            return BLOCKED
        if chat_id in self.not_found:
            return CHAT_NOT_FOUND
        if time.monotonic() < self._throttled_until:
            return too_many_requests(self._retry_after)
        if scripted and (queue := self.chat_faults.get(chat_id)):
            if (answer := queue.popleft()) is not None:
                return answer
        elif scripted and self.faults and (answer := self.faults.popleft()) is not None:
            return answer
        if self.rate_limit is not None:
            now = time.monotonic()
            while self._delivered_at and self._delivered_at[0] <= now - 1.0:
                self._delivered_at.popleft()
            if len(self._delivered_at) >= self.rate_limit:
                return too_many_requests(1)
        return None

    async def _params(self, request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            return dict(await request.json())
        form = await request.post()  # urlencoded or multipart/form-data (a file upload)
        out: dict[str, Any] = {}
        for key, value in form.items():
            if isinstance(value, FileField):
                out[key] = UploadedFile(value.filename, value.content_type, value.file.read())
                continue
            text = value if isinstance(value, str) else bytes(value).decode("utf-8", "replace")
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
        fault: Scripted | None = None
        if method in ("sendMessage", "sendPhoto", "editMessageText"):
            fault = self._fault(params, scripted=method != "editMessageText")
            chat = _chat(params)
            if method != "editMessageText":
                self.outcomes.append((chat, outcome(fault)))
            if isinstance(fault, Fault):
                self.faulted.append((chat, fault.status))
                return fault.response()
            if isinstance(fault, Drop) and not fault.delivered:
                self.dropped.append((chat, False))
                return self._drop(request)
        if method == "editMessageText":
            return self._edit(params)
        if method in ("sendMessage", "sendVenue", "sendPhoto"):
            check = {"sendMessage": send_message_problems, "sendVenue": send_venue_problems,
                     "sendPhoto": send_photo_problems}[method]
            if problems := check(params):
                return self._reject(method, problems)
            self.sent.append(params)
            answer = sent_message(method, params, next(self._message_ids))
            self.sent_ids.append(answer["message_id"])
            self.messages[(answer["chat"]["id"], answer["message_id"])] = {
                "method": method, "text": params.get("text"), "parse_mode": params.get("parse_mode"),
                "reply_markup": _markup(params.get("reply_markup"))}
            if method != "sendVenue" and self.rate_limit is not None:
                self._delivered_at.append(time.monotonic())
            while self._bursts and len(self.sent) >= self._bursts[0][0]:
                _, seconds, retry_after = self._bursts.pop(0)
                self.throttle(seconds, retry_after)
            if self.on_delivered is not None:
                self.on_delivered(params)
            if isinstance(fault, Drop):
                self.dropped.append((_chat(params), True))
                return self._drop(request)
            if isinstance(fault, Slow):
                self.slowed.append((_chat(params), fault.seconds))
            pause = fault.seconds if isinstance(fault, Slow) else self.delay if method != "sendVenue" else 0.0
            if pause:
                await asyncio.sleep(pause)
            return self._ok(answer)
        self.rejected.append((method, ["method not supported by the fake"]))
        return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)

    @staticmethod
    def _drop(request: web.Request) -> web.Response:
        """Close the connection at once: the client gets no HTTP answer (the response is never written)."""
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)

    def _reject(self, method: str, problems: list[str]) -> web.Response:
        self.rejected.append((method, problems))
        return web.json_response({"ok": False, "error_code": 400, "description": "Bad Request: " + "; ".join(problems)},
                                 status=400)

    def _edit(self, params: dict[str, Any]) -> web.Response:
        """editMessageText of a message the bot sent to a chat (inline messages are not supported)."""
        try:
            key = (int(params["chat_id"]), int(params["message_id"]))
        except (KeyError, TypeError, ValueError):
            return self._reject("editMessageText", ["message to edit not found"])
        current = self.messages.get(key)
        if current is None:
            return self._reject("editMessageText", ["message to edit not found"])
        if current["method"] != "sendMessage":
            return self._reject("editMessageText", ["there is no text in the message to edit"])
        if problems := send_message_problems(params):
            return self._reject("editMessageText", problems)
        new = {"method": "sendMessage", "text": params.get("text"), "parse_mode": params.get("parse_mode"),
               "reply_markup": _markup(params.get("reply_markup"))}
        if new == current:
            return self._reject("editMessageText", [NOT_MODIFIED])
        self.messages[key] = new
        self.edits.append({**params, "chat_id": key[0], "message_id": key[1]})
        if self.rate_limit is not None:
            self._delivered_at.append(time.monotonic())
        answer = sent_message("sendMessage", params, key[1])
        answer["edit_date"] = int(time.time())
        return self._ok(answer)

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        timeout = float(params.get("timeout") or 0)
        # Updates below the offset are confirmed: Telegram forgets them.
        self.updates = [u for u in self.updates if u["update_id"] >= offset]
        if not self.updates and timeout > 0 and not self._closing:
            self._new.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait(), timeout)
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        return list(self.updates)

    @staticmethod
    def _ok(result: Any) -> web.Response:
        return web.json_response({"ok": True, "result": result})
