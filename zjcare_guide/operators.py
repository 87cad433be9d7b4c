"""Institution operators in the conversation: `/places N` updates the available places of the one
institution an administrator registered them for (`zjcare-guide operators add`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from .guide import Guide
from .institutions import Directory
from .replies import Reply
from .router import BaseFeature, CommandSpec, Turn


class Operators(BaseFeature):
    name = "operators"

    def __init__(self, guide: Callable[[], Guide], directory: Directory | None) -> None:
        self._guide = guide
        self.directory = directory

    def commands(self) -> Sequence[CommandSpec]:
        return (CommandSpec("places", self._places),)

    def _places(self, turn: Turn, args: str) -> list[Reply]:
        r = self._guide().renderer
        if self.directory is None:
            return [Reply("notice", r.render("finder_notice", reason="unavailable"))]
        inst = self.directory.operated_by(turn.actor.user_key)
        if inst is None:
            return [Reply("notice", r.render("places", step="refused"))]
        args = args.strip()
        if not args:
            return [Reply("notice", r.render("places", step="show", institution=inst, today=turn.today))]
        if not re.fullmatch(r"\d{1,6}", args):
            return [Reply("notice", r.render("places", step="bad", institution=inst))]
        places = int(args)
        if places > inst.capacity:
            return [Reply("notice", r.render("places", step="over", institution=inst, places=places))]
        updated = self.directory.set_places(inst.filing_no, places, turn.actor.user_key, turn.now)
        return [Reply("notice", r.render("places", step="done", institution=updated, today=turn.today))]
