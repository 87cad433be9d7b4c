"""One registry from commands and button actions to the feature that handles them.

A feature (guidance, the institution finder, reports…) declares its commands and its button actions
with the pattern each action's argument must match; the conversation dispatches through the router,
and transports ask it how to encode a button and whether a pressed button is one the service could
have sent. A new feature is one module and its templates: neither the console nor the bot changes.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .identity import Actor
from .replies import Action, Location, Reply, Session


@dataclass(frozen=True)
class Turn:
    """One event's context: who, their chat's session, and the time from the transport's clock."""

    actor: Actor
    session: Session
    now: dt.datetime  # timezone-aware, Asia/Shanghai
    # The transport already sent the escalation for this text (Conversation.urgent_first), before
    # waiting on anything: the turn must not send it twice.
    escalated: bool = False
    # Writes the reply does not depend on (an unanswered question for the editors, a 👍/👎): run
    # after the reply is sent, so no parent waits on a database lock for them.
    later: list[Callable[[], None]] = field(default_factory=list)

    @property
    def today(self) -> dt.date:
        return self.now.date()

    def defer(self, write: Callable[[], None]) -> None:
        self.later.append(write)


CommandHandler = Callable[[Turn, str], list[Reply]]
ActionHandler = Callable[[Turn, Action], list[Reply]]


@dataclass(frozen=True)
class CommandSpec:
    """`/name args`; `listed` commands appear in the bot's command menu (label `command_<name>`)."""

    name: str
    handler: CommandHandler
    listed: bool = False
    permission: str = "anyone"  # roles.PERMISSIONS: checked by the conversation before the handler


@dataclass(frozen=True)
class ActionSpec:
    """A button action. `code` is its short name in a transport's callback data; `arg` is the pattern
    the argument must match in full, `pages` how many pages it can have, `values` the allowed values."""

    kind: str
    code: str
    handler: ActionHandler
    arg: str = ""
    pages: int = 1
    values: frozenset[int] = frozenset({0})
    permission: str = "anyone"  # roles.PERMISSIONS: checked by the conversation before the handler
    _arg_re: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z]{1,3}", self.code):
            raise ValueError(f"action code {self.code!r} must be 1–3 letters")
        object.__setattr__(self, "_arg_re", re.compile(self.arg))

    def accepts(self, action: Action) -> bool:
        # Transports separate the parts of a button's data with "|": an argument never holds one.
        return (action.kind == self.kind and "|" not in action.arg and self._arg_re.fullmatch(action.arg) is not None
                and 0 <= action.page < self.pages and action.value in self.values)


class Feature(Protocol):
    """What a feature module gives the router."""

    name: str

    def commands(self) -> Sequence[CommandSpec]: ...

    def actions(self) -> Sequence[ActionSpec]: ...

    def on_text(self, turn: Turn, text: str) -> list[Reply] | None:
        """The text a parent typed while this feature awaited it (`session.awaiting`) or that it
        `claims`; None hands it back to the question answering."""

    def on_location(self, turn: Turn, location: Location) -> list[Reply] | None:
        """A shared location; None when the feature has no use for one."""

    def claims(self, text: str) -> bool:
        """Whether a message typed out of any flow is for this feature ("店口有托育机构吗"); then
        `on_text` answers it. A cheap test: it runs on every message."""

    def start_link(self, turn: Turn, param: str) -> list[Reply] | None:
        """`/start <param>` from a deep link (t.me/<bot>?start=<param>) this feature made; None if not."""

    # True when text typed in this feature's step is worth keeping even if it describes a danger sign
    # (a report of a child hurt at a nursery is escalated *and* filed).
    files_urgent_text: bool
    # False where the typed text is not a parent's account of a child (a doctor's push): not triaged.
    triages_text: bool


class BaseFeature:
    """Defaults for a feature: no commands, no actions, no use for text or locations."""

    name = ""
    files_urgent_text = False
    # False only where the typed text is not a parent's account of a child (a doctor's push).
    triages_text = True

    def commands(self) -> Sequence[CommandSpec]:
        return ()

    def actions(self) -> Sequence[ActionSpec]:
        return ()

    def on_text(self, turn: Turn, text: str) -> list[Reply] | None:
        return None

    def on_location(self, turn: Turn, location: Location) -> list[Reply] | None:
        return None

    def claims(self, text: str) -> bool:
        return False

    def start_link(self, turn: Turn, param: str) -> list[Reply] | None:
        return None


class Router:
    """The registry; built once from the features, in order (the first feature answers text)."""

    def __init__(self, features: Sequence[Feature]) -> None:
        self.features = {f.name: f for f in features}
        if len(self.features) != len(features):
            raise ValueError("two features share a name")
        self._commands: dict[str, tuple[Feature, CommandSpec]] = {}
        self._actions: dict[str, ActionSpec] = {}
        self._codes: dict[str, ActionSpec] = {}
        for feature in features:
            for c in feature.commands():
                if c.name in self._commands:
                    raise ValueError(f"command /{c.name} registered twice")
                self._commands[c.name] = (feature, c)
            for a in feature.actions():
                if a.kind in self._actions or a.code in self._codes:
                    raise ValueError(f"action {a.kind!r} or code {a.code!r} registered twice")
                self._actions[a.kind] = a
                self._codes[a.code] = a

    def command(self, name: str) -> CommandSpec | None:
        found = self._commands.get(name)
        return found[1] if found else None

    def command_names(self) -> list[str]:
        return list(self._commands)

    def listed_commands(self) -> list[str]:
        return [name for name, (_, spec) in self._commands.items() if spec.listed]

    def action(self, kind: str) -> ActionSpec | None:
        return self._actions.get(kind)

    def by_code(self, code: str) -> ActionSpec | None:
        return self._codes.get(code)

    def action_specs(self) -> list[ActionSpec]:
        return list(self._actions.values())

    def accepts(self, action: Action) -> bool:
        """Whether the service could have sent a button with this action (forged or stale ones not)."""
        spec = self._actions.get(action.kind)
        return spec is not None and spec.accepts(action)
