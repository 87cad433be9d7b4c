"""Telegram updates → conversation events, conversation replies → Bot API calls.

Nothing here decides what to say: that is `zjcare_guide.conversation`, shared with the console chat.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import cast

from telegram import (
    Bot,
    Chat,
    InlineKeyboardMarkup,
    InputFile,
    MaybeInaccessibleMessage,
    Message,
    ReplyKeyboardMarkup,
    Update,
)
from telegram.constants import ChatType
from telegram.error import BadRequest, Conflict, Forbidden, NetworkError, RetryAfter
from telegram.ext import ApplicationHandlerStop, ContextTypes

from zjcare_guide.clock import system_clock
from zjcare_guide.commands import ForOtherBot, parse_command
from zjcare_guide.conversation import Conversation, reload_content, run_later
from zjcare_guide.guide import GuideHolder
from zjcare_guide.identity import NOBODY, Actor
from zjcare_guide.replies import Command, Event, Location, Press, Reply, Session, Text, Unsupported
from zjcare_guide.router import Router

from .heap import settle_heap
from .telegram_html import decode_action, keyboard_json, location_keyboard, markup_to_html, split_html

ReplyMarkup = InlineKeyboardMarkup | ReplyKeyboardMarkup

log = logging.getLogger(__name__)


@dataclass
class BotState:
    """What the handlers share, kept in `application.bot_data`."""

    conversation: Conversation
    holder: GuideHolder
    # One lock per chat: updates run concurrently (one parent never waits for another's database
    # write), but a chat's own messages are still answered in order.
    locks: weakref.WeakValueDictionary[int, asyncio.Lock] = field(default_factory=weakref.WeakValueDictionary)
    # And one per chat for sending, held only while calling Telegram: a danger sign's reply, sent
    # before the chat's lock (it needs no database), still never goes out while another reply to the
    # same chat is half sent. Its calls and their retries stay one at a time, in order.
    send_locks: weakref.WeakValueDictionary[int, asyncio.Lock] = field(default_factory=weakref.WeakValueDictionary)

    def chat_lock(self, chat_id: int) -> asyncio.Lock:
        """The lock a chat's updates are handled under, one after the other."""
        return _lock_for(self.locks, chat_id)

    def send_lock(self, chat_id: int) -> asyncio.Lock:
        """The lock replies to a chat are sent under (send_replies takes it)."""
        return _lock_for(self.send_locks, chat_id)


def _lock_for(locks: weakref.WeakValueDictionary[int, asyncio.Lock], chat_id: int) -> asyncio.Lock:
    # Weak values: a chat nobody is writing to holds no lock in memory.
    lock = locks.get(chat_id)
    if lock is None:
        lock = locks[chat_id] = asyncio.Lock()
    return lock


def actor(update: Update) -> Actor:
    """Who sent the update, as the core names people: "telegram:<user id>" in "telegram:<chat id>"."""
    user, chat = update.effective_user, update.effective_chat
    if user is None:
        return NOBODY
    return Actor("telegram", str(user.id), str(chat.id if chat else user.id))


def _state(context: ContextTypes.DEFAULT_TYPE) -> BotState:
    state = context.bot_data["state"]
    assert isinstance(state, BotState)
    return state


def _session(context: ContextTypes.DEFAULT_TYPE) -> Session:
    # In memory only, per chat: the age a parent gave and the last question, never written to disk.
    data = context.chat_data
    if data is None:
        return Session()
    session = data.get("session")
    if not isinstance(session, Session):
        session = data["session"] = Session()
    return session


async def send_replies(chat_id: int, replies: list[Reply], context: ContextTypes.DEFAULT_TYPE,
                       thread_id: int | None = None, private: bool = True) -> None:
    """Send replies in order, under the chat's send lock; `thread_id` keeps them in the forum topic the
    parent wrote in."""
    state = _state(context)
    async with state.send_lock(chat_id):
        await send_to_chat(context.bot, state.conversation.router, chat_id, replies, thread_id, private)


async def send_to_chat(bot: Bot, router: Router, chat_id: int, replies: list[Reply], thread_id: int | None = None,
                       private: bool = True, *, retries: int = 2) -> int | None:
    """Send replies to a chat, in order (also used for reminders nobody just asked for). Telegram
    shares a location from a keyboard button in private chats only: in a group the request is text
    (the parent types a town). Returns the id of the last message sent.

    A call that fails on the way — a 5xx, a dropped connection, a timeout: PTB's NetworkError, not its
    BadRequest — is made again up to `retries` times, 0.5 s then 1 s later, so that an answer (a danger
    sign's) is not lost to a passing fault; only that call, not the messages already sent. A 400 or 403
    is never retried. A 429 is waited out by the rate limiter (AIORateLimiter), up to its max_retries;
    one still rate limited after those is waited out here too (retry_after), within the same `retries`.
    When Telegram delivered the message but its answer was lost, the retry delivers it twice: better
    than not at all. The reminder dispatcher passes retries=0: it retries, backs off and counts on its own."""
    async def call(send: Callable[[], Awaitable[Message]]) -> Message:
        for attempt in range(retries + 1):
            try:
                return await send()
            except BadRequest:  # a NetworkError in PTB, but Telegram's final word
                raise
            except RetryAfter as exc:  # Telegram still says wait, after the rate limiter's own retries
                if attempt >= retries:
                    raise
                wait = exc.retry_after
                seconds = wait.total_seconds() if isinstance(wait, dt.timedelta) else float(wait)
                log.warning("still rate limited after the rate limiter's retries; trying again in %.0f s", seconds)
                await asyncio.sleep(seconds)
            except NetworkError as exc:
                if attempt >= retries:
                    raise
                log.warning("sending to a chat failed (%s); trying again", type(exc).__name__)
                await asyncio.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")

    last: int | None = None
    for reply in replies:
        if reply.photo is not None:
            photo = await call(partial(
                bot.send_photo, chat_id, photo=reply.photo, caption=markup_to_html(reply.text),
                message_thread_id=thread_id,
                reply_markup=cast(InlineKeyboardMarkup | None, keyboard_json(reply.buttons, router))))
            last = photo.message_id
            continue
        if reply.document is not None:
            doc = await call(partial(
                bot.send_document, chat_id,
                document=InputFile(reply.document.data, filename=reply.document.filename),
                caption=markup_to_html(reply.text), message_thread_id=thread_id))
            last = doc.message_id
            continue
        if reply.venue is not None:
            v = reply.venue
            venue = await call(partial(
                bot.send_venue, chat_id, latitude=v.latitude, longitude=v.longitude, title=v.title[:256],
                address=v.address[:256] or v.title[:256], message_thread_id=thread_id))
            last = venue.message_id
            continue
        chunks = split_html(reply.text)
        markup: ReplyMarkup | None
        if reply.ask_location is not None:
            markup = location_keyboard(reply.ask_location) if private else None
        else:
            # Pre-serialised JSON is what the Bot API receives either way (telegram_html.keyboard_json).
            markup = cast(InlineKeyboardMarkup | None, keyboard_json(reply.buttons, router))
        for i, chunk in enumerate(chunks):
            is_last = i == len(chunks) - 1
            sent = await call(partial(bot.send_message, chat_id, chunk, reply_markup=markup if is_last else None,
                                      message_thread_id=thread_id))
            last = sent.message_id
    return last


def _thread(message: MaybeInaccessibleMessage | None) -> int | None:
    """The forum topic a message belongs to, if any."""
    if isinstance(message, Message) and message.is_topic_message:
        return message.message_thread_id
    return None


def _addressed(message: Message, bot_username: str | None, bot_id: int) -> tuple[bool, str]:
    """In a group, whether the message speaks to the bot, and its text (or caption) without the mention."""
    text = message.text or message.caption or ""
    if message.chat.type == ChatType.PRIVATE:
        return True, text
    if message.reply_to_message and message.reply_to_message.from_user \
            and message.reply_to_message.from_user.id == bot_id:
        return True, text
    if bot_username and f"@{bot_username}".lower() in text.lower():
        return True, re.sub(rf"@{re.escape(bot_username)}\b", "", text, flags=re.I).strip()
    return False, text


async def _handle(update: Update, context: ContextTypes.DEFAULT_TYPE, event: Event) -> None:
    chat = update.effective_chat
    if chat is None:
        return
    state, session = _state(context), _session(context)
    thread, private = _thread(update.effective_message), chat.type == ChatType.PRIVATE
    # A danger sign is answered before anything that could wait: this chat's earlier message still
    # being handled, or a database write held up by another process. It needs no database; it waits
    # only for a reply to this chat already being sent (send_replies), never for a write.
    urgent = state.conversation.urgent_first(event, session)
    if urgent:
        await send_replies(chat.id, urgent, context, thread, private=private)
    later: list[Callable[[], None]] = []
    async with state.chat_lock(chat.id):
        # The conversation may read or write the database: in a worker thread (each with its own
        # SQLite connection), so a write waiting on a lock never stalls the event loop.
        replies = await asyncio.to_thread(state.conversation.safe_handle, event, session,
                                          escalated=bool(urgent), later=later)
        if replies:
            await send_replies(chat.id, replies, context, thread, private=private)
    if later:
        # Writes the reply did not need (the editors' unanswered questions, 👍/👎, last activity),
        # after the reply and outside the chat's lock: no reply waits on them.
        await asyncio.to_thread(run_later, later)


def _spoken_to(update: Update, context: ContextTypes.DEFAULT_TYPE) -> tuple[Message, str] | None:
    """The message and its text when it is for the bot (always in private, addressed in groups)."""
    message = update.effective_message
    if message is None:
        return None
    addressed, text = _addressed(message, context.bot.username, context.bot.id)
    return (message, text) if addressed else None


async def on_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Text and captions, new or edited: a command, or a question the conversation answers.

    A photo's caption is read like any question (triage first), and an edited message is answered
    again as the new question: a parent who corrects "发烧" to "抽搐" must not be told to resend."""
    spoken = _spoken_to(update, context)
    if spoken is None:
        return
    _, text = spoken
    parsed = parse_command(text, context.bot.username)
    if isinstance(parsed, ForOtherBot):
        return  # "/start@other_bot" in a group is for someone else
    if isinstance(parsed, Command):
        if parsed.name == "reload":
            await on_reload(update, context)
            return
        await _handle(update, context, Command(parsed.name, parsed.args, actor=actor(update)))
        return
    await _handle(update, context, Text(text, actor=actor(update)))


async def on_reload(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/reload (administrators): the content is read and checked in a worker thread, off the event
    loop; a library with problems never replaces the one serving, and the administrator is told why."""
    state = _state(context)
    chat = update.effective_chat
    if chat is None:
        return
    if not state.conversation.authority.allowed(actor(update), "admin"):
        reply = Reply("notice", state.holder.guide.renderer.render("admin_only"))
    else:
        reply = await asyncio.to_thread(reload_content, state.holder, system_clock().date())
        settle_heap()
        log.info("content reload requested by an administrator")
    await send_replies(chat.id, [reply], context, _thread(update.effective_message))


async def on_callback(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    if query is None:
        return
    # Always answer, or the parent's button keeps spinning. A press older than Telegram keeps
    # queries for ("query is too old") cannot be answered any more: one line in the log, no
    # traceback, and the reply below still goes out.
    try:
        await query.answer()
    except BadRequest as exc:
        log.info("could not answer a callback query: %s", exc.message)
    state = _state(context)
    action = decode_action(query.data, state.conversation.router)
    chat = update.effective_chat
    if chat is None:
        return
    if action is None:
        replies = [Reply("notice", state.holder.guide.renderer.render("expired"))]
        await send_replies(chat.id, replies, context, _thread(query.message))
        return
    await _handle(update, context, Press(action, actor=actor(update)))


async def on_location(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A shared location (or venue): a search for institutions near it. The point goes to the core and
    stays in the chat's memory for paging; it is never logged."""
    spoken = _spoken_to(update, context)
    if spoken is None:
        return
    message, _ = spoken
    if message.location is None:
        return
    loc = message.location
    await _handle(update, context, Location(loc.latitude, loc.longitude, actor=actor(update)))


UNREADABLE = ("sticker", "photo", "voice", "audio", "video", "video_note", "document", "animation", "dice", "poll",
              "game", "story", "paid_media", "live_photo", "checklist")


async def on_unsupported(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A message with nothing to read (a sticker, a voice note, a photo without caption, a dice, a
    poll…): a short reply asking for the question in text."""
    spoken = _spoken_to(update, context)
    if spoken is None:
        return
    message, _ = spoken
    kind = next((k for k in UNREADABLE if getattr(message, k, None)), "other")
    await _handle(update, context, Unsupported(kind, actor=actor(update)))


async def on_contact(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A shared contact: the bot needs no phone number. The contact is not passed to the core, stored
    or logged; the parent is told so kindly."""
    spoken = _spoken_to(update, context)
    chat = update.effective_chat
    if spoken is None or chat is None:
        return
    state = _state(context)
    reply = Reply("notice", state.holder.guide.renderer.render("bad_input", reason="contact"))
    async with state.chat_lock(chat.id):
        await send_replies(chat.id, [reply], context, _thread(spoken[0]), private=chat.type == ChatType.PRIVATE)


class RecentKeys:
    """The last `size` keys seen, oldest forgotten first: bounded memory for de-duplication."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._keys: OrderedDict[tuple[int, str], None] = OrderedDict()

    def seen(self, key: tuple[int, str]) -> bool:
        """Whether `key` was seen before; remembers it either way."""
        if key in self._keys:
            self._keys.move_to_end(key)
            return True
        self._keys[key] = None
        if len(self._keys) > self.size:
            self._keys.popitem(last=False)
        return False

    def __len__(self) -> int:
        return len(self._keys)


async def skip_album_rest(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Telegram sends an album as one message per photo or video, with one media_group_id. The first
    the bot sees goes on to the handlers (a reply, or its caption answered); the others stop here,
    unless they carry a caption of their own, which is always read (triage must see every word).

    Runs before the other handlers (group -1) and without awaiting anything, so the check and the
    note are one step even with updates handled concurrently."""
    message = update.message
    chat = update.effective_chat
    if message is None or chat is None or message.media_group_id is None:
        return
    albums = context.bot_data.get("albums")
    if not isinstance(albums, RecentKeys):
        albums = context.bot_data["albums"] = RecentKeys()
    if albums.seen((chat.id, message.media_group_id)) and not message.caption:
        raise ApplicationHandlerStop


def _quiet_failure(update: object, error: BaseException | None) -> str | None:
    """A failure that is not the bot's fault and needs no traceback: one line for the log."""
    if update is None and isinstance(error, NetworkError | Conflict) and not isinstance(error, BadRequest):
        # run_polling hands each failed getUpdates here (Telegram unreachable, another instance
        # polling); PTB retries, with a growing pause, for as long as it lasts.
        return f"getting updates failed, retrying: {error.message}"
    if isinstance(error, Forbidden):
        return "the chat blocked the bot (or removed it) before it could answer"
    if isinstance(error, BadRequest) and "query is too old" in error.message.lower():
        return "a button press was too old to answer"
    return None


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log with context but no personal data, and still give the parent a short apology.

    A 403 (the parent blocked the bot), a button press too old to answer and a failed getUpdates
    (Telegram unreachable while polling) are one line each, without a traceback and without an
    apology (it could not be delivered, or there is nobody to apologise to)."""
    chat: Chat | None = update.effective_chat if isinstance(update, Update) else None
    kind = "unknown"
    if isinstance(update, Update):
        kind = next((k for k in ("message", "edited_message", "callback_query", "my_chat_member")
                     if getattr(update, k, None) is not None), "other")
    quiet = _quiet_failure(update, context.error)
    if quiet is not None and update is None:
        log.warning("%s", quiet)
        return
    if quiet is not None:
        log.info("%s (a %s update in a %s chat)", quiet, kind, chat.type if chat else "-")
        return
    log.error("handler failed on a %s update in a %s chat: %r", kind, chat.type if chat else "-",
              context.error, exc_info=context.error)
    if chat is None:
        return
    try:
        renderer = _state(context).holder.guide.renderer
        message = update.effective_message if isinstance(update, Update) else None
        await send_replies(chat.id, [Reply("notice", renderer.render("error"))], context, _thread(message))
    except Exception:  # the apology itself failed (network, blocked): nothing more to do
        log.warning("could not send the apology after a handler error")
