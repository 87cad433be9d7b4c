"""The outbound port: how the core sends a message nobody just asked for (a reminder).

Each transport implements `Outbound.send(address, replies)` and says what happened in the core's
terms; the dispatcher knows nothing else about Telegram, the console or a test double.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from .render import to_plain
from .replies import Reply


@dataclass(frozen=True)
class Sent:
    """Every reply was delivered; `message_id` names the last message, for later edits."""

    message_id: str = ""


@dataclass(frozen=True)
class RetryAfter:
    """Rate-limited (Telegram's 429): try again after `seconds`."""

    seconds: float


@dataclass(frozen=True)
class Blocked:
    """The recipient blocked the bot or left (Telegram's 403): stop sending to them."""


@dataclass(frozen=True)
class Failed:
    """Not delivered. `permanent` errors (a malformed message, an unknown chat) are not retried;
    the others (5xx, network) are, with backoff, for a bounded time."""

    reason: str
    permanent: bool = False


SendResult = Sent | RetryAfter | Blocked | Failed


class Outbound(Protocol):
    """A transport's sender. `address` is a family's chat key ("telegram:4242")."""

    transport: str

    async def send(self, address: str, replies: Sequence[Reply]) -> SendResult: ...

    async def edit(self, address: str, message_id: str, reply: Reply) -> SendResult:
        """Replace the text (and buttons) of a message sent earlier: a push's progress, in place."""
        ...


class ConsoleOutbound:
    """Prints reminders (the console transport, and `send-due` without a bot token)."""

    transport = "console"

    def __init__(self, write: Callable[[str], None] = print) -> None:
        self._write = write
        self._count = 0

    async def send(self, address: str, replies: Sequence[Reply]) -> SendResult:
        for reply in replies:
            self._write(f"→ {address}\n{to_plain(reply.text)}")
            for row in reply.buttons:
                self._write("   " + " · ".join(f"[{b.label}]" for b in row))
        self._count += 1
        return Sent(str(self._count))

    async def edit(self, address: str, message_id: str, reply: Reply) -> SendResult:
        self._write(f"→ {address}（更新第{message_id}条）\n{to_plain(reply.text)}")
        return Sent(message_id)
