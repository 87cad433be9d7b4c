"""Fakes at the Telegram edge: an offline BaseRequest and Update builders."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

from telegram.request import BaseRequest, RequestData

from .telegram_rules import send_message_problems, send_venue_problems

BOT_USER = {"id": 777000111, "is_bot": True, "first_name": "诸暨育儿指导", "username": "zjcare_test_bot",
            "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": False}
PARENT = {"id": 4242, "is_bot": False, "first_name": "家长", "language_code": "zh-hans"}
ADMIN = {"id": 9001, "is_bot": False, "first_name": "编辑"}
_ids = itertools.count(1000)


class RecordingRequest(BaseRequest):
    """Answers every Bot API call offline like Telegram would, and records it.

    A call Telegram would reject (bad HTML, over-long text, oversized callback data) is recorded in
    `rejected` and answered with a 400, as the real API does."""

    def __init__(self, validate: bool = True) -> None:
        # Benchmarks switch validation off: it measures the fake, not the bot.
        self.validate = validate
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.rejected: list[tuple[str, list[str]]] = []
        # Answer the next N sendMessage calls with a server error, to exercise error handling.
        self.fail_next = 0
        # Answer the next N sendMessage calls with 429 Too Many Requests (retry_after 1 s).
        self.throttle_next = 0

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    @property
    def read_timeout(self) -> float | None:
        return 5.0

    def sent(self, method: str = "sendMessage") -> list[dict[str, Any]]:
        return [p for m, p in self.calls if m == method]

    async def do_request(self, url: str, method: str, request_data: RequestData | None = None,
                         read_timeout: Any = None, write_timeout: Any = None, connect_timeout: Any = None,
                         pool_timeout: Any = None) -> tuple[int, bytes]:
        name = url.rsplit("/", 1)[-1]
        params = dict(request_data.parameters) if request_data else {}
        if request_data is not None and request_data.multipart_data:
            # An uploaded file (sendPhoto, sendDocument): (file name, bytes, MIME type) by field name.
            params.update(request_data.multipart_data)
        self.calls.append((name, params))
        if name == "getMe":
            return self._ok(BOT_USER)
        if name == "sendMessage" and self.throttle_next > 0:
            self.throttle_next -= 1
            return 429, json.dumps({"ok": False, "error_code": 429, "parameters": {"retry_after": 1},
                                    "description": "Too Many Requests: retry after 1"}).encode()
        if name == "sendMessage" and self.fail_next > 0:
            self.fail_next -= 1
            return 400, json.dumps({"ok": False, "error_code": 400,
                                    "description": "Bad Request: chat not found"}).encode()
        if name in ("sendMessage", "sendVenue"):
            check = send_message_problems if name == "sendMessage" else send_venue_problems
            problems = check(params) if self.validate else []
            if problems:
                self.rejected.append((name, problems))
                return 400, json.dumps({"ok": False, "error_code": 400,
                                        "description": "Bad Request: " + "; ".join(problems)}).encode()
            return self._ok(sent_message(name, params, next(_ids)))
        if name == "sendDocument":
            return self._ok(sent_message(name, params, next(_ids)))
        if name == "sendPhoto":
            caption = str(params.get("caption") or "")
            if len(caption) > 1024:
                self.rejected.append((name, ["caption over 1024 characters"]))
                return 400, json.dumps({"ok": False, "error_code": 400, "description": "Bad Request: caption"}).encode()
            return self._ok(sent_message(name, params, next(_ids)))
        if name == "getUpdates":
            return self._ok([])
        return self._ok(True)

    @staticmethod
    def _ok(result: Any) -> tuple[int, bytes]:
        return 200, json.dumps({"ok": True, "result": result}).encode()


def sent_message(method: str, params: dict[str, Any], message_id: int) -> dict[str, Any]:
    """The Message Telegram returns for a sendMessage or sendVenue it accepted."""
    chat_id = int(params["chat_id"])
    out: dict[str, Any] = {"message_id": message_id, "date": int(time.time()),
                           "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group"}}
    if method == "sendPhoto":
        out["photo"] = [{"file_id": "qr", "file_unique_id": "qr", "width": 330, "height": 330}]
        out["caption"] = str(params.get("caption") or "")
    elif method == "sendDocument":
        out["document"] = {"file_id": "doc", "file_unique_id": "doc", "file_name": "data.json"}
        out["caption"] = str(params.get("caption") or "")
    elif method == "sendVenue":
        out["venue"] = {"location": {"latitude": float(params["latitude"]), "longitude": float(params["longitude"])},
                        "title": params["title"], "address": params["address"]}
    else:
        out["text"] = params["text"]
    return out


# ---------------------------------------------------------------- updates as Telegram sends them

_update_ids = itertools.count(1)


def _chat(chat_id: int) -> dict[str, Any]:
    if chat_id > 0:
        return {"id": chat_id, "type": "private", "first_name": "家长"}
    return {"id": chat_id, "type": "group", "title": "宝妈群"}


def message(text: str | None = None, *, chat_id: int = PARENT["id"], user: dict[str, Any] = PARENT,
            reply_to_bot: bool = False, **extra: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {"message_id": next(_ids), "date": int(time.time()), "chat": _chat(chat_id),
                           "from": user, **extra}
    if text is not None:
        msg["text"] = text
        if text.startswith("/"):
            msg["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    if reply_to_bot:
        msg["reply_to_message"] = {"message_id": 1, "date": int(time.time()), "chat": _chat(chat_id),
                                   "from": BOT_USER, "text": "之前的回复"}
    return {"update_id": next(_update_ids), "message": msg}


def edited(text: str, chat_id: int = PARENT["id"]) -> dict[str, Any]:
    upd = message(text, chat_id=chat_id)
    upd["edited_message"] = upd.pop("message")
    upd["edited_message"]["edit_date"] = int(time.time())
    return upd


def callback(data: str, *, chat_id: int = PARENT["id"], user: dict[str, Any] = PARENT) -> dict[str, Any]:
    return {"update_id": next(_update_ids), "callback_query": {
        "id": str(next(_ids)), "from": user, "chat_instance": "ci", "data": data,
        "message": {"message_id": next(_ids), "date": int(time.time()), "chat": _chat(chat_id),
                    "from": BOT_USER, "text": "之前的回复"}}}


STICKER = {"file_id": "CAAC", "file_unique_id": "u1", "type": "regular", "width": 512, "height": 512,
           "is_animated": False, "is_video": False}
PHOTO = [{"file_id": "AgAC", "file_unique_id": "u2", "width": 90, "height": 90}]
VOICE = {"file_id": "AwAC", "file_unique_id": "u3", "duration": 3}
DOCUMENT = {"file_id": "BQAC", "file_unique_id": "u4", "file_name": "体检单.pdf"}


def location(latitude: float, longitude: float, *, chat_id: int = PARENT["id"],
             user: dict[str, Any] = PARENT) -> dict[str, Any]:
    """A shared location, as Telegram sends it after the 📍 keyboard button."""
    return message(None, chat_id=chat_id, user=user, location={"latitude": latitude, "longitude": longitude})
