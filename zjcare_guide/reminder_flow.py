"""接种体检提醒 in the conversation: the timeline (/reminders), /pause and /resume, and the buttons under
a reminder — ✅ 已完成 (today, or a date the parent then types), ⏰ 推迟 1/3/7 days, 🔕 不再提醒此项.

Every change re-plans the child's reminders at once (reminders.Reminders.sync_child): a dose recorded
late moves the next doses by their minimum intervals, and their reminders with them.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .children import BirthDateError, Child, Families, Family, parse_birth_date
from .dates import day_words
from .guide import Guide
from .reminders import SNOOZE_DAYS, Policy, Reminders
from .render import Renderer
from .replies import Action, Button, Reply
from .router import ActionSpec, BaseFeature, CommandSpec, Turn
from .schedule import PlanItem, stored_plan

ITEM_ARG = r"\d{1,9}-[a-z0-9-]{1,24}"
UPCOMING_PER_CHILD = 4
_QUESTION = re.compile(r"[?？吗呢]|怎么|能不能|可不可以|可以.{0,6}[吗么]|要不要|是不是")


@dataclass(frozen=True)
class DoneDate:
    """Waiting for the date an item was really done (after ✅ recorded it as today)."""

    child_id: int
    item_id: str


class ReminderPlanner:
    """Keeps a child's reminder rows in step with its plan; shared by 我的孩子 and the reminders."""

    def __init__(self, guide: Callable[[], Guide], reminders: Reminders, policy: Policy) -> None:
        self._guide = guide
        self.reminders = reminders
        self.policy = policy

    def sync(self, child: Child, now: dt.datetime) -> None:
        self.reminders.sync_child(child, self._guide().library.schedules, self.policy, now)

    def plan(self, child: Child, today: dt.date) -> list[PlanItem]:
        return stored_plan(self._guide().library.schedules, child.birth, self.reminders.families.records(child.id),
                           today=today, discharge=child.discharge, high_risk=child.preterm)


class ReminderFlow(BaseFeature):
    name = "reminders"

    def __init__(self, guide: Callable[[], Guide], families: Families | None,
                 planner: ReminderPlanner | None) -> None:
        self._guide = guide
        self.families = families
        self.planner = planner

    def commands(self) -> Sequence[CommandSpec]:
        return (CommandSpec("reminders", lambda t, a: self._timeline(t), listed=True),
                CommandSpec("pause", lambda t, a: self._pause(t, True), listed=True),
                CommandSpec("resume", lambda t, a: self._pause(t, False), listed=True))

    def actions(self) -> Sequence[ActionSpec]:
        return (ActionSpec("reminders", "n", lambda t, a: self._timeline(t)),
                ActionSpec("reminders_pause", "np", lambda t, a: self._pause(t, a.value == 1),
                           values=frozenset({0, 1})),
                ActionSpec("remind_done", "nd", self._done, arg=ITEM_ARG, values=frozenset({0, 1})),
                ActionSpec("remind_snooze", "nz", self._snooze, arg=ITEM_ARG,
                           values=frozenset({0, *SNOOZE_DAYS})),
                ActionSpec("remind_mute", "nm", self._mute, arg=ITEM_ARG),
                ActionSpec("remind_unmute", "nu", self._unmute, arg=ITEM_ARG))

    def _r(self) -> Renderer:
        return self._guide().renderer

    def _say(self, step: str, buttons: tuple[tuple[Button, ...], ...] = (), **context: object) -> Reply:
        values: dict[str, object] = {"children": [], "paused": False, "item": "", "nickname": "", "day": "",
                                     "reason": "", "next": [], "typed": False, **context}
        return Reply("notice" if not buttons else "menu", self._r().render("reminders", step=step, **values),
                     buttons)

    def _family(self, turn: Turn) -> Family | None:
        if self.families is None or not turn.actor.user_id:
            return None
        family = self.families.get(turn.actor.user_key)
        return family if family is not None and family.consent_at is not None else None

    def _expired(self) -> list[Reply]:
        return [Reply("notice", self._r().render("expired"))]

    # ------------------------------------------------------------ timeline, pause

    def _timeline(self, turn: Turn) -> list[Reply]:
        if self.families is None or self.planner is None:
            return [self._say("unavailable")]
        if turn.actor.user_id != turn.actor.chat_id:
            return [self._say("private_only")]
        family = self._family(turn)
        children = self.families.children(family.id) if family is not None else []
        if family is None or not children:
            return [self._say("no_children", ((Button(self._r().label("menu_child"), Action("child")),),))]
        r = self._r()
        out: list[dict[str, object]] = []
        rows: list[tuple[Button, ...]] = []
        for child in children:
            items = self.planner.plan(child, turn.today)
            muted = self.planner.reminders.muted(child.id)
            out.append({"nickname": child.nickname,
                        "now": [_words(p, muted) for p in items if p.status in ("due", "overdue")],
                        "upcoming": [_words(p, muted) for p in items if p.status == "upcoming"][:UPCOMING_PER_CHILD],
                        "later": max(0, sum(p.status == "upcoming" for p in items) - UPCOMING_PER_CHILD),
                        "done": sum(p.status == "done" for p in items)})
            # What is due or overdue can be recorded from here too (a late registration's birth doses).
            rows.extend((Button(r.label("remind_done", item=f"{child.nickname}·{p.label}"),
                                Action("remind_done", f"{child.id}-{p.id}")),)
                        for p in items if p.status in ("due", "overdue"))
            # A muted item can be reminded of again.
            rows.extend((Button(f"{r.label('unmute')}：{child.nickname}·{p.label}",
                                Action("remind_unmute", f"{child.id}-{p.id}")),)
                        for p in items if p.id in muted and p.status not in ("done", "not_given"))
        rows.append((Button(r.label("reminders_resume" if family.paused else "reminders_pause"),
                            Action("reminders_pause", value=0 if family.paused else 1)),))
        return [self._say("timeline", tuple(rows), children=out, paused=family.paused)]

    def _pause(self, turn: Turn, paused: bool) -> list[Reply]:
        if self.families is None or self.planner is None:
            return [self._say("unavailable")]
        family = self._family(turn)
        if family is None:
            return [self._say("no_children", ((Button(self._r().label("menu_child"), Action("child")),),))]
        self.planner.reminders.pause_family(family.id, paused)
        return [self._say("paused" if paused else "resumed")]

    # ------------------------------------------------------------ the buttons under a reminder

    def _item(self, turn: Turn, arg: str) -> tuple[Family, Child, PlanItem] | None:
        """The family's own child and the item of its plan; None for another family's child or an
        item the plan does not have (a forged or stale button)."""
        child_id, _, item_id = arg.partition("-")
        family = self._family(turn)
        if family is None or self.families is None or self.planner is None:
            return None
        child = self.families.child(family.id, int(child_id))
        if child is None:
            return None
        item = next((p for p in self.planner.plan(child, turn.today) if p.id == item_id), None)
        return (family, child, item) if item is not None else None

    def _done(self, turn: Turn, action: Action) -> list[Reply]:
        found = self._item(turn, action.arg)
        if found is None or self.families is None:
            return self._expired()
        _, child, item = found
        if item.status == "overdue" and action.value == 0:
            # Long past its time (a birth dose of a child registered late): today is unlikely to be the
            # day it was done, and a wrong date moves later doses. Ask; "today" is one tap.
            turn.session.state[self.name] = DoneDate(child.id, item.id)
            turn.session.awaiting = self.name
            r = self._r()
            return [self._say("ask_date", ((Button(r.label("done_today"), Action("remind_done", action.arg,
                                                                                   value=1)),),),
                              nickname=child.nickname, item=item.label)]
        return self._record(turn, child, item, turn.today, typed=False)

    def _record(self, turn: Turn, child: Child, item: PlanItem, day: dt.date, *, typed: bool) -> list[Reply]:
        assert self.families is not None and self.planner is not None
        with self.families.db.atomic():  # the record and the re-planned reminders together
            self.families.record(child.id, item.id, day, turn.now)
            self.planner.sync(child, turn.now)
        nxt = [p for p in self.planner.plan(child, turn.today) if p.status in ("upcoming", "due")][:2]
        if typed:
            turn.session.awaiting = ""
            turn.session.state.pop(self.name, None)
        else:
            # The parent may say when it was really done; the next message with a date corrects it.
            turn.session.state[self.name] = DoneDate(child.id, item.id)
            turn.session.awaiting = self.name
        return [self._say("done", nickname=child.nickname, item=item.label, day=day_words(day), typed=typed,
                          next=[_words(p, set()) for p in nxt])]

    def on_text(self, turn: Turn, text: str) -> list[Reply] | None:
        waiting = turn.session.state.get(self.name)
        if not isinstance(waiting, DoneDate) or self.families is None:
            return None
        if _QUESTION.search(text):
            # "3月1号可以打疫苗吗" is a question that names a date, not the date it was done.
            turn.session.state.pop(self.name, None)
            return None
        try:
            day = parse_birth_date(text, turn.today)
        except BirthDateError as exc:
            if exc.reason == "format":
                # Not a date: the parent moved on to something else (a question); the record stands.
                turn.session.state.pop(self.name, None)
                return None
            return [self._say("bad_date", reason=exc.reason)]
        found = self._item(turn, f"{waiting.child_id}-{waiting.item_id}")
        if found is None:
            turn.session.state.pop(self.name, None)
            return self._expired()
        _, child, item = found
        if day < child.birth:
            return [self._say("bad_date", reason="before_birth", nickname=child.nickname)]
        return self._record(turn, child, item, day, typed=True)

    def _snooze(self, turn: Turn, action: Action) -> list[Reply]:
        found = self._item(turn, action.arg)
        if found is None or self.planner is None:
            return self._expired()
        _, child, item = found
        if action.value == 0:
            r = self._r()
            return [self._say("snooze_choose", (tuple(Button(r.label("snooze_days", days=d),
                                                             Action("remind_snooze", action.arg, value=d))
                                                      for d in SNOOZE_DAYS),),
                              nickname=child.nickname, item=item.label)]
        at = self.planner.reminders.snooze(child, item.id, item.due, action.value, self.planner.policy, turn.now)
        return [self._say("snoozed", nickname=child.nickname, item=item.label, day=day_words(at.date()))]

    def _mute(self, turn: Turn, action: Action) -> list[Reply]:
        found = self._item(turn, action.arg)
        if found is None or self.planner is None:
            return self._expired()
        _, child, item = found
        self.planner.reminders.mute(child, item.id, turn.now)
        return [self._say("muted", ((Button(self._r().label("unmute"), Action("remind_unmute", action.arg)),),),
                          nickname=child.nickname, item=item.label)]

    def _unmute(self, turn: Turn, action: Action) -> list[Reply]:
        found = self._item(turn, action.arg)
        if found is None or self.planner is None:
            return self._expired()
        _, child, item = found
        with self.planner.reminders.db.atomic():
            self.planner.reminders.unmute(child, item.id)
            self.planner.sync(child, turn.now)
        return [self._say("unmuted", nickname=child.nickname, item=item.label)]


def _words(p: PlanItem, muted: set[str]) -> dict[str, object]:
    return {"name": p.label, "due": day_words(p.due), "status": p.status, "muted": p.id in muted,
            "window_end": day_words(p.window_end) if p.window_end else ""}
