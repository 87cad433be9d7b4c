"""Logging for the bot's processes: nothing personal, nothing secret.

Our own modules log update types, counts and error types, never a name, nickname, birth date, message
text or location. Two libraries would: httpx logs every request URL at INFO (the URL holds the bot
token), and PTB logs every Bot API call's parameters at DEBUG (the text of every reply, which names
children). They are held at WARNING and INFO whatever the level asked for.

PTB's rate limiter logs a traceback when it gives up on a call after its retries, then raises to the
caller, who waits and tries again (bot.handlers.send_to_chat) or counts the failure (the reminder
dispatcher): one line says it, the traceback says nothing more.
"""

from __future__ import annotations

import logging


class _WithoutTraceback(logging.Filter):
    """Keeps a record's message, drops its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info, record.exc_text = None, None
        return True


RATE_LIMITER = "telegram.ext.AIORateLimiter"


def quiet_libraries() -> None:
    """Hold httpx at WARNING and python-telegram-bot at INFO, and make the rate limiter's give-up one
    line (see the module's docstring)."""
    limiter = logging.getLogger(RATE_LIMITER)
    if not any(isinstance(f, _WithoutTraceback) for f in limiter.filters):
        limiter.addFilter(_WithoutTraceback())
    logging.getLogger("httpx").setLevel(logging.WARNING)
    for name in ("telegram", "telegram.ext", "telegram.ext.ExtBot", "telegram.Bot"):
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.INFO or logger.level < logging.INFO:
            logger.setLevel(logging.INFO)
