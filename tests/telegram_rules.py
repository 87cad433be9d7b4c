"""What the real Bot API would reject: used by the offline request and the fake server alike."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from typing import Any

ALLOWED_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a",
                "tg-emoji", "code", "pre", "blockquote"}
_ENTITY = re.compile(r"&(?!(?:lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);)")


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            self.errors.append(f"unsupported tag <{tag}>")
        if tag == "span" and ("class", "tg-spoiler") not in attrs:
            self.errors.append("span without class tg-spoiler")
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unbalanced </{tag}>")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def html_problems(text: str) -> tuple[list[str], str]:
    """Problems Telegram's HTML parser reports, and the visible text."""
    errors = []
    if _ENTITY.search(text):
        errors.append("unescaped &")
    stripped = re.sub(r"</?[a-zA-Z][a-zA-Z0-9-]*(?:\s[^<>]*)?>", "", text)
    if "<" in stripped or ">" in stripped:
        errors.append("unescaped < or >")
    checker = _Checker()
    checker.feed(text)
    checker.close()
    errors += checker.errors
    if checker.stack:
        errors.append(f"unclosed tags {checker.stack}")
    return errors, "".join(checker.text)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def send_message_problems(params: dict[str, Any]) -> list[str]:
    """Why Telegram would answer 400 to this sendMessage, if it would."""
    problems: list[str] = []
    text = str(params.get("text") or "")
    if params.get("parse_mode") == "HTML":
        errors, visible = html_problems(text)
        problems += errors
    else:
        visible = text
    if not visible.strip():
        problems.append("message text is empty")
    if utf16_len(visible) > 4096:
        problems.append(f"message is too long ({utf16_len(visible)})")
    markup = params.get("reply_markup")
    if isinstance(markup, str):
        markup = json.loads(markup)
    for row in (markup or {}).get("inline_keyboard", []):
        for button in row:
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode("utf-8")) <= 64:
                problems.append(f"callback_data must be 1-64 bytes: {data!r}")
            if not str(button.get("text", "")).strip():
                problems.append("button text is empty")
    for row in (markup or {}).get("keyboard", []):
        for button in row:
            if not str(button.get("text", "")).strip():
                problems.append("keyboard button text is empty")
    return problems


def send_venue_problems(params: dict[str, Any]) -> list[str]:
    """Why Telegram would answer 400 to this sendVenue, if it would."""
    problems: list[str] = []
    try:
        lat, lon = float(params["latitude"]), float(params["longitude"])
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            problems.append("latitude/longitude out of range")
    except (KeyError, TypeError, ValueError):
        problems.append("latitude and longitude are required numbers")
    for key in ("title", "address"):
        if not str(params.get(key) or "").strip():
            problems.append(f"{key} is required")
    return problems
