"""Telegram's side of replies: light markup → HTML, splitting at the length limit, and the compact,
versioned callback data behind buttons."""

from __future__ import annotations

import functools
import html
import json
import re

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, KeyboardButton, ReplyKeyboardMarkup

from zjcare_guide.replies import Action, Button, LocationRequest
from zjcare_guide.router import Router

MAX_MESSAGE = 4096
MAX_CALLBACK = 64
CALLBACK_VERSION = "2"
_BOLD = re.compile(r"\*\*(.+?)\*\*")


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
# "2|<code>|<arg>|<page>|<value>", trailing defaults left out: the code and the argument's pattern
# come from the feature that registered the action (zjcare_guide.router), so a new feature's
# buttons need nothing here.

_DATA = re.compile(r"^2\|([A-Za-z]{1,3})(?:\|([^|]*)(?:\|(\d{1,3})(?:\|(-?\d{1,2}))?)?)?$")


def encode_action(action: Action, router: Router) -> str:
    spec = router.action(action.kind)
    if spec is None or not spec.accepts(action):
        raise ValueError(f"no registered action accepts {action!r}")
    parts = [spec.code]
    if action.arg or action.page or action.value:
        parts.append(action.arg)
    if action.page or action.value:
        parts.append(str(action.page))
    if action.value:
        parts.append(str(action.value))
    data = "|".join([CALLBACK_VERSION, *parts])
    if len(data.encode("utf-8")) > MAX_CALLBACK:
        raise ValueError(f"callback data over {MAX_CALLBACK} bytes: {data!r}")
    return data


def decode_action(data: str | None, router: Router) -> Action | None:
    """The action behind a button, or None for anything unknown, stale or forged."""
    if not data or len(data.encode("utf-8")) > MAX_CALLBACK:
        return None
    m = _DATA.match(data)
    if m is None:
        return None
    spec = router.by_code(m.group(1))
    if spec is None:
        return None
    action = Action(spec.kind, m.group(2) or "", int(m.group(3) or 0), int(m.group(4) or 0))
    return action if spec.accepts(action) else None


def keyboard(rows: tuple[tuple[Button, ...], ...], router: Router) -> InlineKeyboardMarkup | None:
    if not rows:
        return None
    return InlineKeyboardMarkup([[InlineKeyboardButton(b.label, callback_data=encode_action(b.action, router))
                                  for b in row] for row in rows if row])


@functools.lru_cache(maxsize=1024)
def keyboard_json(rows: tuple[tuple[Button, ...], ...], router: Router) -> str | None:
    """The keyboard as the JSON the Bot API takes for `reply_markup`, serialised once per distinct
    keyboard: an article's buttons are the same for every parent, and PTB sends a string parameter
    as it is instead of turning the markup into a dict and dumping it on every message."""
    markup = keyboard(rows, router)
    return None if markup is None else json.dumps(markup.to_dict(), ensure_ascii=False, separators=(",", ":"))


def location_keyboard(request: LocationRequest) -> ReplyKeyboardMarkup:
    """The reply keyboard of a location request: share it (private chats), then plain answers."""
    rows = [[KeyboardButton(request.share_label, request_location=True)]]
    if request.other_labels:
        rows.append([KeyboardButton(label) for label in request.other_labels])
    return ReplyKeyboardMarkup(rows, resize_keyboard=True, one_time_keyboard=True)
