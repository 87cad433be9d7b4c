"""Transport-neutral events in and replies out of the conversation."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Action:
    """What a button does. Transports encode it (the bot in ≤ 64-byte callback data)."""

    kind: str  # article | topic | topics | feedback | help | menu
    arg: str = ""
    page: int = 0
    value: int = 0


@dataclass(frozen=True)
class Button:
    label: str
    action: Action


@dataclass(frozen=True)
class ArticleRef:
    id: str
    title: str
    topic: str
    score: float | None


@dataclass(frozen=True)
class Reply:
    """One message to the parent: light-markup text and rows of buttons."""

    kind: str  # answer | choices | urgent | greeting | fallback | article | menu | notice
    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()
    articles: tuple[ArticleRef, ...] = ()

    def actions(self) -> list[Action]:
        return [b.action for row in self.buttons for b in row]


# ---------------------------------------------------------------- events


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Command:
    name: str
    args: str = ""


@dataclass(frozen=True)
class Press:
    action: Action


@dataclass(frozen=True)
class Unsupported:
    """A sticker, photo, voice note, file… anything the service cannot read."""

    what: str


Event = Text | Command | Press | Unsupported


@dataclass
class Session:
    """Per-chat state a transport keeps between events. Holds no name or birth date."""

    age_months: float | None = None
    # On a console there are no buttons to tap: a number presses one of the last reply's buttons.
    # Elsewhere a parent's "8" is a message like any other.
    numbered_buttons: bool = False
    options: list[Action] = field(default_factory=list)
    # The last question and the article it got, so a 👍/👎 can be stored with the question asked.
    last_question: str | None = None
    last_article: str | None = None
    last_choices: list[str] = field(default_factory=list)
    # The runners-up to the last question, best first: offered after a 👎 on its answer.
    last_others: list[str] = field(default_factory=list)
    rated: set[str] = field(default_factory=set)
