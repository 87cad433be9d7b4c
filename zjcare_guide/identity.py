"""Who is talking, whatever the transport.

An `Actor` names the person and the chat with transport-neutral keys ("telegram:4242", "console:local"),
so the core can tie an operator or, later, a family to a person without knowing Telegram.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    """The person who sent an event and the chat it came from.

    `user_key` and `chat_key` are "<transport>:<id>"; they are kept in the database only where a
    feature needs to recognise the person again (an operator's account), never in logs."""

    transport: str
    user_id: str
    chat_id: str

    @property
    def user_key(self) -> str:
        return f"{self.transport}:{self.user_id}"

    @property
    def chat_key(self) -> str:
        return f"{self.transport}:{self.chat_id}"


def user_key(transport: str, user_id: int | str) -> str:
    """The key an actor of `transport` with `user_id` has (for the CLI that registers operators)."""
    return f"{transport}:{user_id}"


# The person at the terminal of the console `chat`.
CONSOLE = Actor("console", "local", "local")
# An event whose sender a transport could not tell (a channel post): can ask, cannot be recognised.
NOBODY = Actor("none", "", "")
