"""Logging for the bot's processes: nothing personal, nothing secret.

Our own modules log update types, counts and error types, never a name, nickname, birth date, message
text or location. Two libraries would: httpx logs every request URL at INFO (the URL holds the bot
token), and PTB logs every Bot API call's parameters at DEBUG (the text of every reply, which names
children). They are held at WARNING and INFO whatever the level asked for.
"""

from __future__ import annotations

import logging


def quiet_libraries() -> None:
    """Hold httpx at WARNING and python-telegram-bot at INFO (see the module's docstring)."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
    for name in ("telegram", "telegram.ext", "telegram.ext.ExtBot", "telegram.Bot"):
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.INFO or logger.level < logging.INFO:
            logger.setLevel(logging.INFO)
