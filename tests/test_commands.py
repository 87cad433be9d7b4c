"""One command parser for every transport."""

from __future__ import annotations

import pytest

from zjcare_guide.commands import ForOtherBot, parse_command
from zjcare_guide.replies import Command

BOT = "zjcare_test_bot"


@pytest.mark.parametrize(("text", "expected"), [
    ("/help", Command("help")),
    ("/HELP", Command("help")),
    ("/age 8", Command("age", "8")),
    (f"/help@{BOT}", Command("help")),
    (f"/age@{BOT} 8", Command("age", "8")),
    (f"@{BOT} /help", Command("help")),
    (f"@{BOT.upper()}   /age 8", Command("age", "8")),
    ("/start@other_bot", ForOtherBot("start")),
    ("@someone /help", None),
    ("宝宝 /help", None),
    ("/ 宝宝", None),
    ("/帮助", None),
    ("宝宝发烧怎么办", None),
])
def test_commands_as_telegram_writes_them(text: str, expected: object) -> None:
    assert parse_command(text, BOT) == expected


def test_the_console_has_no_bot_name() -> None:
    assert parse_command("/age 8") == Command("age", "8")
    assert parse_command("/help@anything") == Command("help")
