"""Transport-neutral events in and replies out of the conversation."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .identity import NOBODY, Actor


@dataclass(frozen=True)
class Action:
    """What a button does. Transports encode it (the bot in ≤ 64-byte callback data)."""

    kind: str  # registered by a feature with the router (router.ActionSpec)
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
class Venue:
    """A place to show on a map (Telegram's sendVenue); WGS-84 degrees."""

    title: str
    address: str
    latitude: float
    longitude: float


@dataclass(frozen=True)
class Document:
    """A file sent with the message (Telegram's sendDocument): a parent's data as JSON."""

    filename: str
    data: bytes
    mime_type: str = "application/json"


@dataclass(frozen=True)
class LocationRequest:
    """Ask for the parent's location: a keyboard whose first button shares it (where the transport
    can), then plain answers such as 取消 that come back as text."""

    share_label: str
    other_labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Reply:
    """One message to the parent: light-markup text and rows of buttons, or a venue, or a request
    for the location (text plus its keyboard; Telegram cannot put inline buttons on it too)."""

    kind: str  # answer | choices | urgent | greeting | fallback | article | menu | notice | results | venue
    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()
    articles: tuple[ArticleRef, ...] = ()
    venue: Venue | None = None
    ask_location: LocationRequest | None = None
    photo: bytes | None = None  # a PNG (a doctor's invite QR code); `text` is its caption
    document: Document | None = None  # a file; `text` is its caption

    def __post_init__(self) -> None:
        if self.ask_location is not None and self.buttons:
            raise ValueError("a location request carries its own keyboard, not inline buttons")
        if (self.photo is not None or self.document is not None) and len(self.text) > 1024:
            raise ValueError("a photo's or a file's caption is at most 1024 characters")

    def actions(self) -> list[Action]:
        return [b.action for row in self.buttons for b in row]


# ---------------------------------------------------------------- events


# Every event carries who sent it (`actor`, keyword-only, NOBODY when a transport cannot tell).


@dataclass(frozen=True)
class Text:
    text: str
    actor: Actor = field(default=NOBODY, kw_only=True)


@dataclass(frozen=True)
class Command:
    name: str
    args: str = ""
    actor: Actor = field(default=NOBODY, kw_only=True)


@dataclass(frozen=True)
class Press:
    action: Action
    actor: Actor = field(default=NOBODY, kw_only=True)


@dataclass(frozen=True)
class Location:
    """A shared location, WGS-84 degrees as the transport received them (not yet checked)."""

    latitude: float
    longitude: float
    actor: Actor = field(default=NOBODY, kw_only=True)

    @property
    def valid(self) -> bool:
        return (math.isfinite(self.latitude) and math.isfinite(self.longitude)
                and -90 <= self.latitude <= 90 and -180 <= self.longitude <= 180)


@dataclass(frozen=True)
class Unsupported:
    """A sticker, photo, voice note, file… anything the service cannot read."""

    what: str
    actor: Actor = field(default=NOBODY, kw_only=True)


Event = Text | Command | Press | Location | Unsupported


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
    # The feature a free-text answer is expected by ("" when none): the town for a search, the text
    # of a report. Triage still reads that text first.
    awaiting: str = ""
    # Each feature's own conversation state, by feature name (a search's origin and filters, for
    # paging): in memory only, never written to the database or logs.
    state: dict[str, object] = field(default_factory=dict)
