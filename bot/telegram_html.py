"""Telegram's side of replies: light markup → HTML, splitting at the length limit, and the compact,
versioned callback data behind buttons."""

from __future__ import annotations

import functools
import html
import json
import re

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from zjcare_guide.replies import Action, Button

MAX_MESSAGE = 4096
MAX_CALLBACK = 64
CALLBACK_VERSION = "1"
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_ID = r"[a-z0-9]+(?:-[a-z0-9]+)*"
_PATTERNS = {
    "a": re.compile(rf"^a\|({_ID})$"),
    "t": re.compile(rf"^t\|({_ID})\|(\d{{1,3}})$"),
    "T": re.compile(r"^T$"),
    "f": re.compile(rf"^f\|({_ID})\|([+-])$"),
    "h": re.compile(r"^h$"),
    "m": re.compile(r"^m\|([a-z]{1,16})$"),
}


def tg_len(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def markup_to_html(markup: str) -> str:
    """Escape everything, then turn **bold** into <b> and '- ' list lines into bullets."""
    out = []
    for line in markup.split("\n"):
        escaped = html.escape(line, quote=False)
        escaped = _BOLD.sub(r"<b>\1</b>", escaped)
        if escaped.startswith("- "):
            escaped = "• " + escaped[2:]
        out.append(escaped)
    return "\n".join(out)


def _hard_split(line: str, limit: int) -> list[str]:
    """HTML pieces of one over-long line; a line this long is prose, so bold is dropped to keep tags
    balanced."""
    chunks, current, size = [], "", 0
    for ch in line.replace("**", ""):
        piece = markup_to_html(ch)
        n = tg_len(piece)
        if size + n > limit:
            chunks.append(current)
            current, size = "", 0
        current, size = current + piece, size + n
    return [*chunks, current] if current else chunks


@functools.lru_cache(maxsize=1024)  # article texts repeat across parents: convert each once
def split_html(markup: str, limit: int = MAX_MESSAGE) -> tuple[str, ...]:
    """HTML messages of at most `limit`, cut between paragraphs (then lines) so no tag is cut."""
    whole = markup_to_html(markup)
    if tg_len(whole) <= limit:
        return (whole,) if whole.strip() else ()
    pieces: list[str] = []  # HTML of paragraphs, or of lines of a paragraph too long on its own
    for para in markup.split("\n\n"):
        html_para = markup_to_html(para)
        if tg_len(html_para) <= limit:
            pieces.append(html_para)
            continue
        for line in para.split("\n"):
            html_line = markup_to_html(line)
            pieces.extend([html_line] if tg_len(html_line) <= limit else _hard_split(line, limit))
    messages: list[str] = []
    current, size = "", 0
    for piece in pieces:
        n = tg_len(piece)
        if current and size + 2 + n > limit:
            messages.append(current)
            current, size = "", 0
        current, size = (f"{current}\n\n{piece}", size + 2 + n) if current else (piece, n)
    if current.strip():
        messages.append(current)
    return tuple(m for m in messages if m.strip())


# ---------------------------------------------------------------- callback data


def encode_action(action: Action) -> str:
    if action.kind == "article":
        body = f"a|{action.arg}"
    elif action.kind == "topic":
        body = f"t|{action.arg}|{action.page}"
    elif action.kind == "topics":
        body = "T"
    elif action.kind == "feedback":
        body = f"f|{action.arg}|{'+' if action.value > 0 else '-'}"
    elif action.kind == "help":
        body = "h"
    elif action.kind == "menu":
        body = f"m|{action.arg}"
    else:
        raise ValueError(f"no callback encoding for {action.kind!r}")
    data = f"{CALLBACK_VERSION}|{body}"
    if len(data.encode("utf-8")) > MAX_CALLBACK:
        raise ValueError(f"callback data over {MAX_CALLBACK} bytes: {data!r}")
    return data


def decode_action(data: str | None) -> Action | None:
    """The action behind a button, or None for anything unknown, stale or forged."""
    if not data or len(data.encode("utf-8")) > MAX_CALLBACK:
        return None
    version, _, body = data.partition("|")
    if version != CALLBACK_VERSION or not body:
        return None
    pattern = _PATTERNS.get(body[0])
    m = pattern.match(body) if pattern else None
    if m is None:
        return None
    kind = body[0]
    if kind == "a":
        return Action("article", m.group(1))
    if kind == "t":
        return Action("topic", m.group(1), int(m.group(2)))
    if kind == "T":
        return Action("topics")
    if kind == "f":
        return Action("feedback", m.group(1), value=1 if m.group(2) == "+" else -1)
    if kind == "h":
        return Action("help")
    return Action("menu", m.group(1))


def keyboard(rows: tuple[tuple[Button, ...], ...]) -> InlineKeyboardMarkup | None:
    if not rows:
        return None
    return InlineKeyboardMarkup([[InlineKeyboardButton(b.label, callback_data=encode_action(b.action))
                                  for b in row] for row in rows if row])


@functools.lru_cache(maxsize=1024)
def keyboard_json(rows: tuple[tuple[Button, ...], ...]) -> str | None:
    """The keyboard as the JSON the Bot API takes for `reply_markup`, serialised once per distinct
    keyboard: an article's buttons are the same for every parent, and PTB sends a string parameter
    as it is instead of turning the markup into a dict and dumping it on every message."""
    markup = keyboard(rows)
    return None if markup is None else json.dumps(markup.to_dict(), ensure_ascii=False, separators=(",", ":"))
