"""个人信息 in the conversation: /privacy (what is stored, why, how long, who sees it), /mydata (all
of it, as a message and a JSON file) and /forget (delete all of it, after a confirmation).

Only in a private chat: a family's data is never shown or deleted in a group.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from typing import Any

from sqlite_utils.db import Database

from . import personal_data
from .children import age_words
from .guide import Guide
from .render import Renderer
from .replies import Action, Button, Document, Reply, Session
from .router import ActionSpec, BaseFeature, CommandSpec, Turn

_PENDING = "forget_pending"  # session state: /forget was shown and awaits its confirmation


class Privacy(BaseFeature):
    name = "privacy"

    def __init__(self, guide: Callable[[], Guide], db: Database | None, retention_months: int) -> None:
        self._guide = guide
        self.db = db
        self.retention_months = retention_months

    def commands(self) -> Sequence[CommandSpec]:
        return (CommandSpec("privacy", self._privacy, listed=True),
                CommandSpec("mydata", self._mydata, listed=True),
                CommandSpec("forget", self._forget, listed=True))

    def actions(self) -> Sequence[ActionSpec]:
        return (ActionSpec("forget", "fg", self._confirm, values=frozenset({0, 1})),)

    def _r(self) -> Renderer:
        return self._guide().renderer

    def _say(self, step: str, buttons: tuple[tuple[Button, ...], ...] = (), **context: object) -> Reply:
        return Reply("notice", self._r().render("privacy", step=step, **context), buttons)

    @staticmethod
    def _private(turn: Turn) -> bool:
        return bool(turn.actor.user_id) and turn.actor.user_id == turn.actor.chat_id

    def _privacy(self, turn: Turn, args: str) -> list[Reply]:
        return [self._say("policy", months=self.retention_months)]

    def _stored(self, turn: Turn) -> dict[str, Any] | Reply:
        """Everything stored about the account (personal_data.export), or the reply that says why
        there is nothing to show: no database, not a private chat, nothing stored."""
        if self.db is None:
            return self._say("unavailable")
        if not self._private(turn):
            return self._say("private_only")
        data = personal_data.export(self.db, turn.actor.user_key, turn.now)
        return self._say("nothing", months=self.retention_months) if data is None else data

    def _mydata(self, turn: Turn, args: str) -> list[Reply]:
        data = self._stored(turn)
        if isinstance(data, Reply):
            return [data]
        children = [{"nickname": c["nickname"], "birth": c["birth"], "sex": c["sex"], "preterm": c["preterm"],
                     "discharge": c["discharge"], "age": age_words(dt.date.fromisoformat(c["birth"]), turn.today),
                     "records": len(c["records"]), "muted": len(c["muted"]),
                     "pending": sum(r["state"] == "pending" for r in c["reminders"])} for c in data["children"]]
        text = self._r().render("privacy", step="mydata", data=data, children=children,
                                months=self.retention_months)
        payload = json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8")
        file = Document(f"zjcare-mydata-{turn.today:%Y%m%d}.json", payload)
        return [Reply("notice", text), Reply("notice", self._r().label("mydata_file"), document=file)]

    def _forget(self, turn: Turn, args: str) -> list[Reply]:
        data = self._stored(turn)
        if isinstance(data, Reply):
            turn.session.state.pop(_PENDING, None)
            return [data]
        turn.session.state[_PENDING] = True
        r = self._r()
        buttons = ((Button(r.label("forget_yes"), Action("forget", value=1)),
                    Button(r.label("forget_no"), Action("forget", value=0))),)
        return [self._say("confirm", buttons, data=data,
                          children=[c["nickname"] for c in data["children"]])]

    def _confirm(self, turn: Turn, action: Action) -> list[Reply]:
        # Only after this chat's own /forget: a forged or stale button deletes nothing.
        if self.db is None or not self._private(turn) or not turn.session.state.pop(_PENDING, False):
            return [Reply("notice", self._r().render("expired"))]
        if action.value != 1:
            return [self._say("kept")]
        done = personal_data.forget(self.db, turn.actor.user_key, turn.now)
        _clear(turn.session)
        return [self._say("forgotten", deleted=done.total, called_off=done.visits_called_off)]


def _clear(session: Session) -> None:
    """What the chat's memory held about the family goes too (its age, last question, flows)."""
    fresh = Session(numbered_buttons=session.numbered_buttons)
    for name in vars(fresh):
        setattr(session, name, getattr(fresh, name))
