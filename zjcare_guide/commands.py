"""Reading a command out of a message, the same way for every transport.

"/help", "/age 8", "/help@zjcare_bot" and, in a group, "@zjcare_bot /help" are commands; "/start@other_bot"
is for another bot; anything else is text. Telegram's own rules for a command name apply everywhere
(1–32 of A-Z a-z 0-9 _), so the console and the bot agree on what a command is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .replies import Command

_COMMAND = re.compile(r"^/([A-Za-z0-9_]{1,32})(?:@([A-Za-z0-9_]{1,64}))?(?![A-Za-z0-9_])(.*)$", re.S)
_LEADING_MENTION = re.compile(r"^@([A-Za-z0-9_]{1,64})\s+(?=/)")


@dataclass(frozen=True)
class ForOtherBot:
    """A command addressed to another bot ("/start@other_bot"): no reply."""

    name: str


def parse_command(text: str, bot_username: str | None = None) -> Command | ForOtherBot | None:
    """The command in `text`, or None when it is plain text.

    A leading mention of this bot ("@bot /help") is dropped first; a command naming another bot
    gives `ForOtherBot`. Names are lower-cased; the arguments are the rest, stripped.
    """
    t = text.strip()
    mention = _LEADING_MENTION.match(t)
    if mention:
        if bot_username is None or mention.group(1).lower() != bot_username.lower():
            return None  # "@someone /help" speaks to someone else
        t = t[mention.end():]
    m = _COMMAND.match(t)
    if m is None:
        return None
    name, target, args = m.group(1).lower(), m.group(2), m.group(3).strip()
    if target and (bot_username is None or target.lower() != bot_username.lower()):
        return ForOtherBot(name) if bot_username is not None else Command(name, args)
    return Command(name, args)
