"""我的孩子 in the conversation: consent, then add (named steps), list, view, edit and remove children.

The steps are named states kept in the chat's session, like PTB's ConversationHandler states, so any
transport drives them; /cancel leaves them. Nothing is stored before the parent's consent, and a child
is stored only once the nickname and a valid birth date are known.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .children import (
    BirthDateError,
    Child,
    Families,
    Family,
    age_in_months,
    age_words,
    clean_nickname,
    parse_birth_date,
)
from .dates import DateError, day_words, parse_date
from .guide import Guide
from .reminder_flow import ReminderPlanner
from .render import Renderer
from .replies import Action, Button, Reply
from .router import ActionSpec, BaseFeature, CommandSpec, Turn
from .schedule import PlanItem, stored_plan

# The named steps of adding or editing a child.
NICKNAME, BIRTH, SEX, PRETERM, EDIT_NICKNAME, EDIT_BIRTH, EDIT_DISCHARGE = (
    "nickname", "birth", "sex", "preterm", "edit_nickname", "edit_birth", "edit_discharge")
# The newborn home visit is due within 7 days of coming home: until the visit is done, in the first
# weeks, the parent can give the discharge date (otherwise it is planned at day 3–7 from birth).
DISCHARGE_ASKED_DAYS = 42
UPCOMING_SHOWN = 3


@dataclass
class Draft:
    """The child being added or edited, and the step the flow is at."""

    step: str
    nickname: str = ""
    birth: dt.date | None = None
    sex: str = ""
    child_id: int | None = None


class ChildFlow(BaseFeature):
    name = "children"

    def __init__(self, guide: Callable[[], Guide], families: Families | None,
                 planner: ReminderPlanner | None = None) -> None:
        self._guide = guide
        self.families = families
        self.planner = planner  # re-plans the child's reminders after every change

    def commands(self) -> Sequence[CommandSpec]:
        return (CommandSpec("child", lambda t, a: self._start(t), listed=True),)

    def actions(self) -> Sequence[ActionSpec]:
        return (ActionSpec("child", "c", lambda t, a: self._start(t)),
                ActionSpec("child_consent", "cc", self._consent, values=frozenset({1, -1})),
                ActionSpec("child_add", "ca", lambda t, a: self._add(t)),
                ActionSpec("child_sex", "cs", self._sex, arg="[fmn]"),
                ActionSpec("child_preterm", "cp", self._preterm, arg="[yn]"),
                ActionSpec("child_view", "cv", self._view, arg=r"\d{1,9}"),
                ActionSpec("child_edit", "ce", self._edit, arg=r"\d{1,9}-(nickname|birth|discharge)"),
                ActionSpec("child_remove", "cr", self._remove, arg=r"\d{1,9}", values=frozenset({0, 1})))

    def _r(self) -> Renderer:
        return self._guide().renderer

    def _say(self, step: str, buttons: tuple[tuple[Button, ...], ...] = (), **context: object) -> Reply:
        # Every variable the template may use, so each step renders whatever the others need.
        values: dict[str, object] = {"children": [], "again": False, "reason": "", "nickname": "", "age": "",
                                     "upcoming": [], "missed": [], "added": False, "updated": False,
                                     "preterm": False, "cases": [], **context}
        return Reply("notice" if not buttons else "menu", self._r().render("child", step=step, **values), buttons)

    # ------------------------------------------------------------ entry, consent, list

    def _family(self, turn: Turn) -> Family | None:
        return self.families.get(turn.actor.user_key) if self.families is not None else None

    def _start(self, turn: Turn) -> list[Reply]:
        if self.families is None:
            return [self._say("unavailable")]
        if not turn.actor.user_id or turn.actor.user_id != turn.actor.chat_id:
            return [self._say("private_only")]  # a child's data is never handled in a group
        family = self._family(turn)
        if family is None or family.consent_at is None:
            r = self._r()
            return [self._say("consent", ((Button(r.label("consent_yes"), Action("child_consent", value=1)),
                                           Button(r.label("consent_no"), Action("child_consent", value=-1))),))]
        return [self._list(turn, family)]

    def _consent(self, turn: Turn, action: Action) -> list[Reply]:
        if self.families is None or not turn.actor.user_id:
            return [self._say("unavailable")]
        if action.value < 0:
            return [self._say("declined")]
        family = self.families.consent(turn.actor.user_key, turn.actor.chat_key, turn.now)
        children = self.families.children(family.id)
        return self._add(turn) if not children else [self._list(turn, family)]

    def _list(self, turn: Turn, family: Family) -> Reply:
        assert self.families is not None
        r = self._r()
        children = self.families.children(family.id)
        rows: list[tuple[Button, ...]] = [(Button(f"{c.nickname}（{age_words(c.birth, turn.today)}）",
                                                  Action("child_view", str(c.id))),) for c in children]
        rows.append((Button(r.label("child_add"), Action("child_add")),))
        return self._say("list", tuple(rows), children=[(c.nickname, age_words(c.birth, turn.today))
                                                        for c in children])

    # ------------------------------------------------------------ adding: nickname → birth → sex → preterm

    def _add(self, turn: Turn) -> list[Reply]:
        family = self._family(turn)
        if family is None or family.consent_at is None:
            return self._start(turn)
        turn.session.state[self.name] = Draft(NICKNAME)
        turn.session.awaiting = self.name
        return [self._say("ask_nickname")]

    def on_text(self, turn: Turn, text: str) -> list[Reply] | None:
        draft = turn.session.state.get(self.name)
        family = self._family(turn)
        if not isinstance(draft, Draft) or self.families is None or family is None:
            return None
        text = text.strip()
        if draft.step in (NICKNAME, EDIT_NICKNAME):
            try:
                nickname = clean_nickname(text)
            except ValueError:
                return [self._say("ask_nickname", again=True)]
            if draft.step == EDIT_NICKNAME and draft.child_id is not None:
                return self._updated(turn, family, draft.child_id, nickname=nickname)
            draft.nickname, draft.step = nickname, BIRTH
            return [self._say("ask_birth", nickname=nickname)]
        if draft.step in (BIRTH, EDIT_BIRTH):
            try:
                birth = parse_birth_date(text, turn.today)
            except BirthDateError as exc:
                # Nothing is saved: the same step asks again, saying why.
                return [self._say("bad_birth", reason=exc.reason)]
            if draft.step == EDIT_BIRTH and draft.child_id is not None:
                if any(day < birth for day in self.families.records(draft.child_id).values()):
                    # A dose recorded before the new birth date: one of the two is wrong; nothing is changed.
                    return [self._say("bad_birth", reason="records")]
                return self._updated(turn, family, draft.child_id, birth=birth)
            draft.birth, draft.step = birth, SEX
            r = self._r()
            return [self._say("ask_sex", ((Button(r.label("sex_f"), Action("child_sex", "f")),
                                           Button(r.label("sex_m"), Action("child_sex", "m")),
                                           Button(r.label("sex_skip"), Action("child_sex", "n"))),))]
        if draft.step == EDIT_DISCHARGE and draft.child_id is not None:
            return self._discharge(turn, family, draft.child_id, text)
        return [self._say("use_buttons")]

    def _discharge(self, turn: Turn, family: Family, child_id: int, text: str) -> list[Reply]:
        assert self.families is not None
        child = self.families.child(family.id, child_id)
        if child is None:
            return [Reply("notice", self._r().render("expired"))]
        try:
            day = parse_date(text, turn.today)
        except DateError as exc:
            return [self._say("bad_discharge", reason=exc.reason, nickname=child.nickname)]
        if day > turn.today:
            return [self._say("bad_discharge", reason="future", nickname=child.nickname)]
        if day < child.birth:
            return [self._say("bad_discharge", reason="before_birth", nickname=child.nickname)]
        return self._updated(turn, family, child_id, discharge=day)

    def _sex(self, turn: Turn, action: Action) -> list[Reply]:
        draft = turn.session.state.get(self.name)
        if not isinstance(draft, Draft) or draft.step != SEX:
            return [Reply("notice", self._r().render("expired"))]
        draft.sex, draft.step = ("" if action.arg == "n" else action.arg), PRETERM
        r = self._r()
        return [self._say("ask_preterm", ((Button(r.label("preterm_yes"), Action("child_preterm", "y")),
                                           Button(r.label("preterm_no"), Action("child_preterm", "n"))),))]

    def _preterm(self, turn: Turn, action: Action) -> list[Reply]:
        draft = turn.session.state.get(self.name)
        family = self._family(turn)
        if not isinstance(draft, Draft) or draft.step != PRETERM or draft.birth is None or family is None \
                or self.families is None:
            return [Reply("notice", self._r().render("expired"))]
        # The child and its reminders in one transaction: a failure leaves neither half written.
        with self.families.db.atomic():
            child = self.families.add_child(family.id, draft.nickname, draft.birth, draft.sex, action.arg == "y",
                                            now=turn.now)
            if self.planner is not None:
                self.planner.sync(child, turn.now)
        del turn.session.state[self.name]
        turn.session.awaiting = ""
        return [self._summary(turn, child, added=True)]

    # ------------------------------------------------------------ view, edit, remove

    def _view(self, turn: Turn, action: Action) -> list[Reply]:
        child = self._own_child(turn, int(action.arg))
        if child is None:
            return [Reply("notice", self._r().render("expired"))]
        return [self._summary(turn, child, added=False)]

    def _edit(self, turn: Turn, action: Action) -> list[Reply]:
        child_id, _, what = action.arg.partition("-")
        child = self._own_child(turn, int(child_id))
        if child is None:
            return [Reply("notice", self._r().render("expired"))]
        step = {"nickname": EDIT_NICKNAME, "birth": EDIT_BIRTH, "discharge": EDIT_DISCHARGE}[what]
        turn.session.state[self.name] = Draft(step, child_id=child.id)
        turn.session.awaiting = self.name
        ask = {"nickname": "ask_nickname", "birth": "ask_birth", "discharge": "ask_discharge"}[what]
        return [self._say(ask, nickname=child.nickname)]

    def _remove(self, turn: Turn, action: Action) -> list[Reply]:
        child = self._own_child(turn, int(action.arg))
        family = self._family(turn)
        if child is None or family is None or self.families is None:
            return [Reply("notice", self._r().render("expired"))]
        if action.value == 0:  # ask first: removing deletes the child's records too
            r = self._r()
            return [self._say("confirm_remove", ((Button(r.label("remove_yes"), Action("child_remove", action.arg,
                                                                                        value=1)),
                                                  Button(r.label("remove_no"), Action("child")),),),
                              nickname=child.nickname)]
        self.families.remove_child(family.id, child.id)
        return [self._say("removed", nickname=child.nickname), self._list(turn, family)]

    def _updated(self, turn: Turn, family: Family, child_id: int, **fields: object) -> list[Reply]:
        """Change a child and re-plan its reminders in one transaction."""
        assert self.families is not None
        turn.session.awaiting = ""
        turn.session.state.pop(self.name, None)
        with self.families.db.atomic():
            child = self.families.update_child(family.id, child_id, **fields)
            if child is not None and self.planner is not None:
                self.planner.sync(child, turn.now)
        if child is None:
            return [Reply("notice", self._r().render("expired"))]
        return [self._summary(turn, child, added=False, updated=True)]

    def _own_child(self, turn: Turn, child_id: int) -> Child | None:
        """Only the family's own children: a forged id of another family's child is not found."""
        family = self._family(turn)
        if family is None or self.families is None:
            return None
        return self.families.child(family.id, child_id)

    def _summary(self, turn: Turn, child: Child, *, added: bool, updated: bool = False) -> Reply:
        assert self.families is not None
        months = age_in_months(child.birth, turn.today)
        if months <= 72:
            turn.session.age_months = months  # the known age feeds matching and the finder unasked
        items = stored_plan(self._guide().library.schedules, child.birth, self.families.records(child.id),
                            today=turn.today, discharge=child.discharge, high_risk=child.preterm)
        upcoming = [p for p in items if p.status in ("upcoming", "due")][:UPCOMING_SHOWN]
        # Items whose time passed before the child was registered are listed once, at registration
        # ("ask the clinic about a catch-up"); afterwards the timeline (/reminders) shows them.
        missed = [p for p in items if p.status == "overdue"] if added else []
        r = self._r()
        rows: tuple[tuple[Button, ...], ...] = (
            (Button(r.label("edit_nickname"), Action("child_edit", f"{child.id}-nickname")),
             Button(r.label("edit_birth"), Action("child_edit", f"{child.id}-birth"))),
            (Button(r.label("remove_child"), Action("child_remove", str(child.id))),
             Button(r.label("child_list"), Action("child"))))
        visit = next((p for p in items if p.kind == "visit"), None)
        if visit is not None and visit.status != "done" and (turn.today - child.birth).days <= DISCHARGE_ASKED_DAYS:
            rows = ((Button(r.label("set_discharge"), Action("child_edit", f"{child.id}-discharge")),), *rows)
        return self._say("summary", rows, nickname=child.nickname, age=age_words(child.birth, turn.today),
                         upcoming=[_item_words(p) for p in upcoming], missed=[_item_words(p) for p in missed],
                         added=added, updated=updated, preterm=child.preterm,
                         # What the tables do not settle (low birth weight, the old DTaP schedule…): said
                         # once, at registration, with the clinic to ask.
                         cases=[c for s in dict.fromkeys(i.schedule for i in self._guide().library.schedules)
                                for c in s.cases] if added else [])


def _item_words(p: PlanItem) -> dict[str, str]:
    return {"name": p.label, "due": day_words(p.due)}
