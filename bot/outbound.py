"""The Telegram side of the outbound port: send a reminder with PTB and say what happened in the
core's terms (zjcare_guide.outbound). 429 → RetryAfter, 403 → Blocked, 400 → a permanent failure,
5xx and network errors → a failure worth retrying."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

from telegram import Bot
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError

from zjcare_guide import outbound
from zjcare_guide.replies import Reply
from zjcare_guide.router import Router

from .handlers import send_to_chat
from .telegram_html import markup_to_html

log = logging.getLogger(__name__)


class TelegramOutbound:
    transport = "telegram"

    def __init__(self, bot: Bot, router: Router) -> None:
        self.bot = bot
        self.router = router

    async def send(self, address: str, replies: Sequence[Reply]) -> outbound.SendResult:
        transport, _, chat = address.partition(":")
        if transport != self.transport or not chat.lstrip("-").isdigit():
            return outbound.Failed(f"not a Telegram chat: {transport}", permanent=True)
        try:
            # The dispatcher retries and counts on its own: no retries inside this call.
            message_id = await send_to_chat(self.bot, self.router, int(chat), list(replies), retries=0)
        except TelegramError as exc:
            return _failure(exc)
        return outbound.Sent(str(message_id or ""))

    async def edit(self, address: str, message_id: str, reply: Reply) -> outbound.SendResult:
        transport, _, chat = address.partition(":")
        if transport != self.transport or not chat.lstrip("-").isdigit() or not message_id.isdigit():
            return outbound.Failed("not a Telegram message", permanent=True)
        try:
            await self.bot.edit_message_text(markup_to_html(reply.text)[:4096], chat_id=int(chat),
                                             message_id=int(message_id))
        except TelegramError as exc:  # a 400 such as "message is not modified" is not retried
            return _failure(exc)
        return outbound.Sent(message_id)


def _failure(exc: TelegramError) -> outbound.SendResult:
    """PTB's error in the port's terms: 429 → RetryAfter, 403 → Blocked, 400 → a permanent failure,
    5xx and network errors → a failure worth retrying."""
    if isinstance(exc, RetryAfter):
        wait = exc.retry_after
        return outbound.RetryAfter(wait.total_seconds() if isinstance(wait, dt.timedelta) else float(wait))
    if isinstance(exc, Forbidden):
        log.info("a chat has blocked the bot: that family is paused")
        return outbound.Blocked()
    if isinstance(exc, BadRequest):
        return outbound.Failed(f"bad request: {exc.message}", permanent=True)
    if isinstance(exc, NetworkError):  # 5xx, timeouts and dropped connections
        return outbound.Failed(f"network: {exc.message}")
    return outbound.Failed(f"telegram: {exc.message}")
