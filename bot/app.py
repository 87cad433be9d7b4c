"""Build the python-telegram-bot Application around the core conversation."""

from __future__ import annotations

import logging

from telegram import BotCommand, LinkPreviewOptions, Message
from telegram.constants import ParseMode
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackContext,
    CallbackQueryHandler,
    Defaults,
    MessageHandler,
    filters,
)
from telegram.request import BaseRequest

from zjcare_guide.clock import TZ, Clock, system_clock
from zjcare_guide.config import Config
from zjcare_guide.conversation import Conversation
from zjcare_guide.dispatcher import Content, Dispatcher
from zjcare_guide.guide import GuideHolder
from zjcare_guide.store import Store

from . import handlers
from .handlers import BotState
from .outbound import TelegramOutbound

log = logging.getLogger(__name__)
REMINDER_INTERVAL_S = 60.0  # reminders go at 09:00: a minute's granularity is plenty
# What a parent can send that has nothing to read (without a caption): one short reply asking for text.
UNSUPPORTED = (filters.Sticker.ALL | filters.PHOTO | filters.VOICE | filters.AUDIO | filters.VIDEO
               | filters.VIDEO_NOTE | filters.Document.ALL | filters.ANIMATION | filters.Dice.ALL | filters.POLL
               | filters.GAME | filters.STORY | filters.PAID_MEDIA | filters.LIVE_PHOTO | filters.CHECKLIST)


class _InAlbum(filters.MessageFilter):
    """A message that is one of an album's photos or videos (Telegram sends each as a message)."""

    __slots__ = ()

    def filter(self, message: Message) -> bool:
        return message.media_group_id is not None


IN_ALBUM = _InAlbum(name="IN_ALBUM")


def file_base_url(base_url: str) -> str:
    """A self-hosted Bot API serves files under /file/bot next to /bot."""
    return base_url[: -len("/bot")] + "/file/bot" if base_url.endswith("/bot") else base_url


def build_application(config: Config, holder: GuideHolder, store: Store | None, *,
                      request: BaseRequest | None = None, updates_request: BaseRequest | None = None,
                      rate_limit: bool = True, clock: Clock = system_clock,
                      reminder_interval: float = REMINDER_INTERVAL_S) -> Application:  # type: ignore[type-arg]
    """The bot; `request`/`updates_request` replace the HTTP layer in offline tests and benchmarks.

    With a store, a JobQueue job sends due reminders every `reminder_interval` seconds (the first
    run right after start: reminders due while the bot was down go out then, late but once)."""
    builder = (
        ApplicationBuilder()
        .token(config.require_token())
        .defaults(Defaults(parse_mode=ParseMode.HTML, tzinfo=TZ,
                           link_preview_options=LinkPreviewOptions(is_disabled=True)))
        .post_init(_post_init)
        # Updates are handled concurrently, each chat's in order (handlers.BotState.chat_lock).
        .concurrent_updates(True)
    )
    if rate_limit:
        # Retries a 429 after the retry_after Telegram asks for, instead of losing the message.
        builder = builder.rate_limiter(AIORateLimiter(max_retries=3))  # type: ignore[arg-type]
    if config.api_base_url:
        builder = builder.base_url(config.api_base_url).base_file_url(file_base_url(config.api_base_url))
    if request is not None:
        builder = builder.request(request).get_updates_request(updates_request or request)
    app = builder.build()
    conversation = Conversation(lambda: holder.guide, clock=clock, store=store, policy=config.policy,
                                admins=config.admins, bot_username=config.bot_username,
                                retention_months=config.retention_months)
    app.bot_data["state"] = BotState(conversation, holder)
    if store is not None and conversation.planner is not None and app.job_queue is not None:
        outbound = TelegramOutbound(app.bot, conversation.router)
        dispatcher = Dispatcher(conversation.planner.reminders, {"telegram": outbound},
                                lambda: Content(holder.guide.library.schedules, holder.guide.renderer), config.policy,
                                wall=clock)
        app.bot_data["dispatcher"] = dispatcher

        async def send_due(context: CallbackContext) -> None:  # type: ignore[type-arg]
            counts = await dispatcher.run(clock())
            if counts.sent or counts.failed or counts.blocked or counts.late:
                log.info("reminders: %s", counts.as_dict())

        app.job_queue.run_repeating(send_due, interval=reminder_interval, first=1.0, name="reminders")
    add_handlers(app)
    return app


def add_handlers(app: Application) -> None:  # type: ignore[type-arg]
    """Every update a parent can send gets a reply, or is ignored on purpose (listed at the end).

    Handlers in one group: the first that matches takes the update."""
    # An album arrives as one message per photo: all but the first without a caption stop here, so
    # the album gets one reply (a caption is always read, wherever it is).
    app.add_handler(MessageHandler(filters.UpdateType.MESSAGE & IN_ALBUM, handlers.skip_album_rest), group=-1)
    app.add_handler(CallbackQueryHandler(handlers.on_callback))
    # Text and captions, new or edited, in one handler: triage must see every word a parent sends.
    # A reply to one of the bot's messages, however old, is a message like any other.
    app.add_handler(MessageHandler(filters.UpdateType.MESSAGES & (filters.TEXT | filters.CAPTION),
                                   handlers.on_message))
    # A shared location or venue searches institutions near it; a live location's later edits are ignored.
    app.add_handler(MessageHandler(filters.UpdateType.MESSAGE & filters.LOCATION, handlers.on_location))
    # A shared contact: the bot never needs a phone number and keeps none.
    app.add_handler(MessageHandler(filters.UpdateType.MESSAGE & filters.CONTACT, handlers.on_contact))
    # What is left has nothing to read.
    app.add_handler(MessageHandler(filters.UpdateType.MESSAGE & UNSUPPORTED, handlers.on_unsupported))
    # Deliberately ignored (no handler, no reply, no error):
    # - edits of anything but text and captions (a live location moving, a photo replaced): the
    #   parent already had the reply to the message, and a reply to each edit would be noise;
    # - service messages (members joining or leaving, pinned messages, title changes, gifts, boosts…)
    #   and what the bot never asks for (shared users or chats, web app data, passport data, payments,
    #   invoices, inline queries): nobody asked the bot anything;
    # - channel posts and their edits: the bot answers people, not channels;
    # - my_chat_member and chat_member (the bot or someone added, removed, blocked), join requests,
    #   reactions, boosts, polls' and business updates: nothing to answer; a parent who blocked the
    #   bot is noticed when a reminder gets 403 (bot.outbound).
    app.add_error_handler(handlers.on_error)


async def _post_init(app: Application) -> None:  # type: ignore[type-arg]
    """Register the Chinese command menu once the bot is known to Telegram."""
    state = app.bot_data["state"]
    assert isinstance(state, BotState)
    renderer = state.holder.guide.renderer
    if state.conversation.bot_username is None:
        state.conversation.bot_username = app.bot.username  # from getMe: invite links name the bot
    commands = state.conversation.router.listed_commands()
    await app.bot.set_my_commands([BotCommand(c, renderer.label(f"command_{c}")) for c in commands])


