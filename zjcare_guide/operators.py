"""Institution operators in the conversation: `/places N` (or a button under `/places`) updates the
available places of the one institution an administrator registered them for (`zjcare-guide operators
add`). Whoever is not that operator is refused, whatever the button or command says."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence

from .guide import Guide
from .institutions import Directory
from .replies import Action, Button, Reply
from .router import ActionSpec, BaseFeature, CommandSpec, Turn


class Operators(BaseFeature):
    name = "operators"

    def __init__(self, guide: Callable[[], Guide], directory: Directory | None) -> None:
        self._guide = guide
        self.directory = directory

    def commands(self) -> Sequence[CommandSpec]:
        return (CommandSpec("places", self._places, permission="operator"),)

    def actions(self) -> Sequence[ActionSpec]:
        # The buttons under /places: one tap for the commonest updates (a place taken, freed, none).
        return (ActionSpec("places_set", "ps", lambda t, a: self._places(t, a.arg), arg=r"[0-9]{1,6}",
                           permission="operator"),)

    def _places(self, turn: Turn, args: str) -> list[Reply]:
        r = self._guide().renderer
        if self.directory is None:
            return [Reply("notice", r.render("finder_notice", reason="unavailable"))]
        inst = self.directory.operated_by(turn.actor.user_key)
        if inst is None:
            return [Reply("notice", r.render("places", step="refused"))]
        # Full-width digits (an IME's "１２") are read as digits; other scripts' digits (᭐) are not a count.
        args = unicodedata.normalize("NFKC", args).strip()
        if not args:
            now = inst.places or 0
            choices = sorted({n for n in (now - 1, now + 1, 0) if 0 <= n <= inst.capacity and n != inst.places})
            buttons = tuple(Button(r.label("places_button", places=n), Action("places_set", str(n))) for n in choices)
            return [Reply("menu", r.render("places", step="show", institution=inst, today=turn.today), (buttons,))]
        if not re.fullmatch(r"[0-9]{1,6}", args):
            return [Reply("notice", r.render("places", step="bad", institution=inst))]
        places = int(args)
        if places > inst.capacity:
            return [Reply("notice", r.render("places", step="over", institution=inst, places=places))]
        updated = self.directory.set_places(inst.filing_no, places, turn.actor.user_key, turn.now)
        return [Reply("notice", r.render("places", step="done", institution=updated, today=turn.today))]
