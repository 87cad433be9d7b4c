"""Every kind of update a parent (or Telegram) can send: a reply, or deliberately nothing, and never an
error. Through the real PTB Application with the offline RecordingRequest."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from telegram import Update
from telegram.ext import Application, ContextTypes

from bot.app import build_application
from bot.handlers import RecentKeys
from bot.telegram_html import decode_action, split_html
from zjcare_guide.config import Config
from zjcare_guide.content import DEFAULT_CONTENT_DIR
from zjcare_guide.guide import Guide, GuideHolder
from zjcare_guide.institutions import Directory
from zjcare_guide.registry_import import load_demo
from zjcare_guide.store import Store

from .conftest import TODAY
from .fakes import BOT_USER, PARENT, PHOTO, STICKER, VOICE, RecordingRequest, callback, message

SENDS = ("sendMessage", "sendVenue", "sendPhoto")
PHONE = "+86 138 0013 8000"
CHANNEL = {"id": -1009876, "type": "channel", "title": "诸暨育儿频道"}
GROUP = {"id": -100123, "type": "group", "title": "宝妈群"}
PRIVATE = {"id": PARENT["id"], "type": "private", "first_name": "家长"}


class ScriptedRequest(RecordingRequest):
    """RecordingRequest whose answer to some methods is an error Telegram gives (403, a 400…)."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: dict[str, tuple[int, str]] = {}

    async def do_request(self, url: str, method: str, request_data: Any = None, read_timeout: Any = None,
                         write_timeout: Any = None, connect_timeout: Any = None,
                         pool_timeout: Any = None) -> tuple[int, bytes]:
        name = url.rsplit("/", 1)[-1]
        if name in self.errors:
            self.calls.append((name, dict(request_data.parameters) if request_data else {}))
            status, description = self.errors[name]
            return status, json.dumps({"ok": False, "error_code": status, "description": description}).encode()
        return await super().do_request(url, method, request_data, read_timeout, write_timeout, connect_timeout,
                                        pool_timeout)


@dataclass
class Bot:
    app: Application  # type: ignore[type-arg]
    request: ScriptedRequest
    store: Store
    holder: GuideHolder
    errors: list[BaseException | None] = field(default_factory=list)

    async def send(self, raw: dict[str, Any]) -> list[dict[str, Any]]:
        """What the bot sent (messages, venues, photos, in order) in answer to one update."""
        before = len(self.request.calls)
        await self.app.process_update(Update.de_json(raw, self.app.bot))
        assert self.request.rejected == [], self.request.rejected
        return [p for m, p in self.request.calls[before:] if m in SENDS]

    def notice(self, reason: str) -> str:
        """The exact text the bot sends for a bad_input notice."""
        [text] = split_html(self.holder.guide.renderer.render("bad_input", reason=reason))
        return text


@pytest.fixture
async def bot(tmp_path: Path, content_copy: Path) -> AsyncIterator[Bot]:
    request = ScriptedRequest()
    config = Config(token="123456:TEST", api_base_url=None, db_path=tmp_path / "z.db", content_dir=content_copy)
    holder = GuideHolder(Guide.from_dir(content_copy, TODAY))
    store = Store.open(config.db_path)
    app = build_application(config, holder, store, request=request, rate_limit=False)
    state = Bot(app, request, store, holder)

    async def record_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        state.errors.append(context.error)

    app.add_error_handler(record_error)  # besides the bot's own on_error
    async with app:
        yield state
    assert state.errors == []  # no update here may reach the error handlers


def raw_message(chat: dict[str, Any] = PRIVATE, user: dict[str, Any] = PARENT, **content: Any) -> dict[str, Any]:
    """A message update with this content and no text."""
    return message(None, chat_id=chat["id"], user=user, chat=chat, **content)


def database_text(store: Store) -> str:
    """Every row of every table, as text."""
    return "\n".join(str(row) for table in store.db.table_names()
                     for row in store.db.execute(f"select * from [{table}]"))


# ---------------------------------------------------------------- messages with nothing to read

PHOTO_SIZE = {"file_id": "AgAD", "file_unique_id": "ph1", "width": 320, "height": 240}
UNREADABLE = {
    "sticker": {"sticker": STICKER},
    "voice": {"voice": VOICE},
    "dice": {"dice": {"emoji": "🎲", "value": 4}},
    "poll": {"poll": {"id": "5001", "question": "宝宝几点睡？", "total_voter_count": 0, "is_closed": False,
                      "is_anonymous": True, "type": "regular", "allows_multiple_answers": False,
                      "allows_revoting": False, "members_only": False,
                      "options": [{"text": "八点", "voter_count": 0, "persistent_id": "o1"},
                                  {"text": "九点", "voter_count": 0, "persistent_id": "o2"}]}},
    "game": {"game": {"title": "跳一跳", "description": "小游戏", "photo": [PHOTO_SIZE]}},
    "story": {"story": {"chat": {"id": 5555, "type": "private", "first_name": "邻居"}, "id": 7}},
    "audio": {"audio": {"file_id": "CQAD", "file_unique_id": "au1", "duration": 30}},
    "video": {"video": {"file_id": "BAAD", "file_unique_id": "vi1", "width": 640, "height": 480, "duration": 5}},
    "video_note": {"video_note": {"file_id": "DQAD", "file_unique_id": "vn1", "length": 240, "duration": 4}},
    "animation": {"animation": {"file_id": "CgAD", "file_unique_id": "an1", "width": 320, "height": 240,
                                "duration": 2}},
    "photo": {"photo": PHOTO},
    "checklist": {"checklist": {"title": "出门带的东西", "tasks": [{"id": 1, "text": "尿布"}]}},
    "paid_media": {"paid_media": {"star_count": 5, "paid_media": [{"type": "preview"}]}},
}


@pytest.mark.parametrize("kind", list(UNREADABLE))
async def test_unreadable_messages_get_the_ask_for_text_reply(bot: Bot, kind: str) -> None:
    [sent] = await bot.send(raw_message(**UNREADABLE[kind]))
    assert sent["text"] == bot.notice("unsupported") and int(sent["chat_id"]) == PARENT["id"]


@pytest.mark.parametrize("kind", ["dice", "sticker", "poll"])
async def test_unreadable_messages_in_a_group_not_for_the_bot_are_left_alone(bot: Bot, kind: str) -> None:
    assert await bot.send(raw_message(GROUP, **UNREADABLE[kind])) == []


async def test_a_contact_is_answered_kindly_and_never_kept(bot: Bot, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    contact = {"phone_number": PHONE, "first_name": "豆豆妈", "user_id": PARENT["id"]}
    [sent] = await bot.send(raw_message(contact=contact))
    assert sent["text"] == bot.notice("contact") and "电话号码" in sent["text"]
    assert await bot.send(raw_message(GROUP, contact=contact)) == []  # in a group, not addressed
    digits = PHONE.replace(" ", "").lstrip("+")
    stored = database_text(bot.store)
    assert "13800138000" not in stored.replace(" ", "") and digits not in stored and "豆豆妈" not in stored
    assert "13800138000" not in caplog.text.replace(" ", "") and "豆豆妈" not in caplog.text
    chat_data = bot.app.chat_data.get(PARENT["id"], {})
    assert PHONE not in repr(chat_data) and "13800138000" not in repr(chat_data)


# ---------------------------------------------------------------- locations, venues, albums, replies


async def test_a_venue_searches_near_it_like_a_location(bot: Bot) -> None:
    load_demo(Directory(bot.store.db), DEFAULT_CONTENT_DIR, TODAY)
    point = {"latitude": 29.712, "longitude": 120.237}
    venue = {"location": point, "title": "店口镇中心幼儿园", "address": "店口镇"}
    [cards] = await bot.send(raw_message(venue=venue, location=point))
    [same] = await bot.send(raw_message(location=point))
    assert "公里" in cards["text"] and cards["text"] == same["text"]


def album(group_id: str, count: int, caption: str | None = None, chat: dict[str, Any] = PRIVATE,
          user: dict[str, Any] = PARENT) -> list[dict[str, Any]]:
    """An album as Telegram sends it: one message per photo, the caption (if any) on the first."""
    items = []
    for i in range(count):
        extra: dict[str, Any] = {"photo": [{**PHOTO[0], "file_unique_id": f"{group_id}-{i}"}],
                                 "media_group_id": group_id}
        if caption and i == 0:
            extra["caption"] = caption
        items.append(raw_message(chat, user, **extra))
    return items


async def test_an_album_without_caption_gets_one_reply_not_one_per_photo(bot: Bot) -> None:
    sent = [p for update in album("al-1", 4) for p in await bot.send(update)]
    assert [p["text"] for p in sent] == [bot.notice("unsupported")]
    # Another album is another message; a single photo still gets its reply.
    sent = [p for update in album("al-2", 3) for p in await bot.send(update)]
    assert [p["text"] for p in sent] == [bot.notice("unsupported")]
    [single] = await bot.send(raw_message(photo=PHOTO))
    assert single["text"] == bot.notice("unsupported")


async def test_an_album_with_a_caption_gets_the_answer_only(bot: Bot) -> None:
    sent = [p for update in album("al-3", 3, caption="宝宝湿疹怎么护理") for p in await bot.send(update)]
    assert len(sent) == 1 and "湿疹" in sent[0]["text"] and sent[0]["text"] != bot.notice("unsupported")


async def test_the_same_album_id_in_another_chat_is_another_album(bot: Bot) -> None:
    other = {"id": 5151, "type": "private", "first_name": "爸爸"}
    theirs = album("al-4", 2, chat=other, user={"id": 5151, "is_bot": False, "first_name": "爸爸"})
    sent = [p for update in [*album("al-4", 2), *theirs] for p in await bot.send(update)]
    assert sorted(int(p["chat_id"]) for p in sent) == sorted([5151, PARENT["id"]])


def test_the_album_memory_is_bounded() -> None:
    keys = RecentKeys(size=3)
    assert [keys.seen((1, str(i))) for i in range(5)] == [False] * 5
    assert len(keys) == 3
    assert keys.seen((1, "4")) and keys.seen((1, "2")) and not keys.seen((1, "0"))  # the oldest forgotten


async def test_a_reply_to_a_bot_message_from_long_ago_is_a_message_like_any_other(bot: Bot) -> None:
    [plain] = await bot.send(message("宝宝湿疹怎么护理"))
    old = message("宝宝湿疹怎么护理", reply_to_bot=True)
    old["message"]["reply_to_message"].update(date=int(time.time()) - 400 * 86400, message_id=3,
                                              reply_markup={"inline_keyboard": [[{"text": "👍",
                                                                                 "callback_data": "1|x"}]]})
    [answer] = await bot.send(old)
    assert answer["text"] == plain["text"] and "湿疹" in answer["text"]
    # In a group, a reply to the bot is addressed to it, however old the message it replies to.
    in_group = message("宝宝湿疹怎么护理", chat_id=GROUP["id"], reply_to_bot=True)
    in_group["message"]["reply_to_message"]["date"] = int(time.time()) - 400 * 86400
    [answer] = await bot.send(in_group)
    assert "湿疹" in answer["text"] and int(answer["chat_id"]) == GROUP["id"]


# ---------------------------------------------------------------- deliberately ignored


def _edited(chat: dict[str, Any] = PRIVATE, **content: Any) -> dict[str, Any]:
    update = raw_message(chat, **content)
    update["edited_message"] = {**update.pop("message"), "edit_date": int(time.time())}
    return update


def _member_update(key: str, chat: dict[str, Any], user: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    return {"update_id": int(time.time() * 1000) % 10**9, key: {
        "chat": chat, "from": PARENT, "date": int(time.time()),
        "old_chat_member": {"status": old, "user": user},
        "new_chat_member": {"status": new, "user": user, **({"until_date": 0} if new == "kicked" else {})}}}


def _channel_post(key: str) -> dict[str, Any]:
    post = {"message_id": 77, "date": int(time.time()), "chat": CHANNEL, "text": "宝宝抽搐了怎么办"}
    if key == "edited_channel_post":
        post["edit_date"] = int(time.time())
    return {"update_id": int(time.time() * 1000) % 10**9, key: post}


IGNORED = {
    "edited sticker": lambda: _edited(sticker=STICKER),
    "edited photo without caption": lambda: _edited(photo=PHOTO),
    "live location moving": lambda: _edited(location={"latitude": 29.71, "longitude": 120.24, "live_period": 900}),
    "edited dice": lambda: _edited(dice={"emoji": "🎲", "value": 2}),
    "channel post": lambda: _channel_post("channel_post"),
    "edited channel post": lambda: _channel_post("edited_channel_post"),
    "bot blocked (my_chat_member)": lambda: _member_update("my_chat_member", PRIVATE, BOT_USER, "member", "kicked"),
    "bot added to a group": lambda: _member_update("my_chat_member", GROUP, BOT_USER, "left", "member"),
    "someone joined (chat_member)": lambda: _member_update("chat_member", GROUP, PARENT, "left", "member"),
    "new members service message": lambda: raw_message(GROUP, new_chat_members=[PARENT]),
    "pinned message": lambda: raw_message(GROUP, pinned_message={"message_id": 5, "date": 0, "chat": GROUP}),
    "reaction": lambda: {"update_id": 4711, "message_reaction": {
        "chat": PRIVATE, "message_id": 9, "user": PARENT, "date": int(time.time()),
        "old_reaction": [], "new_reaction": [{"type": "emoji", "emoji": "👍"}]}},
}


@pytest.mark.parametrize("name", list(IGNORED))
async def test_updates_that_are_ignored_on_purpose(bot: Bot, name: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    before = len(bot.request.calls)
    assert await bot.send(IGNORED[name]()) == []
    assert bot.request.calls[before:] == []  # not even an answer or a chat action
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


# ---------------------------------------------------------------- 403 and a press too old: one log line


async def test_a_parent_who_blocked_the_bot_is_one_log_line_and_no_apology(
        bot: Bot, caplog: pytest.LogCaptureFixture) -> None:
    bot.request.errors["sendMessage"] = (403, "Forbidden: bot was blocked by the user")
    caplog.set_level(logging.DEBUG, logger="bot")
    before = len(bot.request.calls)
    update = Update.de_json(message("宝宝湿疹怎么护理"), bot.app.bot)
    bot.errors.clear()
    await bot.app.process_update(update)
    attempts = [m for m, _ in bot.request.calls[before:] if m == "sendMessage"]
    assert attempts == ["sendMessage"]  # the answer; no apology after the 403
    records = [r for r in caplog.records if r.name.startswith("bot")]
    [line] = records
    assert line.levelno == logging.INFO and line.exc_info is None and "blocked" in line.getMessage()
    assert "\n" not in caplog.text.strip() and "Traceback" not in caplog.text and "湿疹" not in caplog.text
    assert len(bot.errors) == 1  # the error did reach the handlers: on_error decided it was one line
    bot.errors.clear()


async def test_a_button_press_too_old_to_answer_is_one_log_line_and_still_answered(
        bot: Bot, caplog: pytest.LogCaptureFixture) -> None:
    bot.request.errors["answerCallbackQuery"] = (
        400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
    caplog.set_level(logging.DEBUG, logger="bot")
    [answer] = await bot.send(message("宝宝湿疹怎么护理"))
    markup = answer["reply_markup"]
    data = json.loads(markup) if isinstance(markup, str) else markup
    router = bot.app.bot_data["state"].conversation.router
    thumbs = next(b["callback_data"] for row in data["inline_keyboard"] for b in row
                  if (a := decode_action(b["callback_data"], router)) and a.kind == "feedback" and a.value == 1)
    [thanks] = await bot.send(callback(thumbs))
    assert "谢谢" in thanks["text"]
    assert [m for m, _ in bot.request.calls if m == "answerCallbackQuery"] == ["answerCallbackQuery"]
    [line] = [r for r in caplog.records if r.name.startswith("bot")]
    assert line.exc_info is None and "query is too old" in line.getMessage().lower() and line.levelno == logging.INFO


async def test_other_failures_still_log_a_traceback_and_apologise(bot: Bot, caplog: pytest.LogCaptureFixture) -> None:
    bot.request.fail_next = 1  # a 400 "chat not found": not the parent's doing, worth a traceback
    caplog.set_level(logging.ERROR, logger="bot")
    await bot.app.process_update(Update.de_json(message("宝宝湿疹怎么护理"), bot.app.bot))
    [record] = [r for r in caplog.records if r.name.startswith("bot")]
    assert record.exc_info is not None and "message update" in record.getMessage()
    assert "抱歉" in bot.request.sent()[-1]["text"]
    assert len(bot.errors) == 1
    bot.errors.clear()
