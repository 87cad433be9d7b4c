"""家庭医生 in the conversation: a parent signs with a doctor through the doctor's invite (a deep link
`/start join_<code>`), seeing first exactly what the doctor will see; `/unlink` ends it. A doctor
registers their account with a one-time code (`/start doc_<code>`), prints an invite (`/invite`, a QR
code), and sees their own families (`/families`) and those with overdue items (`/overdue`).

Every doctor command needs the "doctor" permission (checked by the conversation) and acts only on the
families signed with that doctor; every doctor action is written to the audit log. Family data is
shown in private chats only.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import segno

from .children import Child, age_in_months
from .doctors import DOCTOR_PREFIX, INVITE_PREFIX, Doctor, InviteError, invite_link
from .guide import Guide
from .reminder_flow import ReminderPlanner
from .render import Renderer
from .replies import Action, Button, Reply
from .roles import Authority
from .router import ActionSpec, BaseFeature, CommandSpec, Turn

CODE_ARG = r"[A-Za-z0-9_-]{16,40}"
FAMILIES_PER_PAGE = 8
MAX_PAGES = 200


@dataclass(frozen=True)
class ChildStatus:
    """What a doctor sees of one child: nickname, age, what is next, what is overdue."""

    nickname: str
    age: str
    next_item: str
    next_due: str
    overdue: tuple[str, ...]


class DoctorFlow(BaseFeature):
    name = "doctors"

    def __init__(self, guide: Callable[[], Guide], authority: Authority, planner: ReminderPlanner | None,
                 bot_username: Callable[[], str | None]) -> None:
        self._guide = guide
        self.authority = authority
        self.planner = planner
        self.bot_username = bot_username

    def commands(self) -> Sequence[CommandSpec]:
        return (CommandSpec("unlink", self._unlink),
                CommandSpec("invite", self._invite, permission="doctor"),
                CommandSpec("families", lambda t, a: self._families(t, 0, overdue_only=False), permission="doctor"),
                CommandSpec("overdue", lambda t, a: self._families(t, 0, overdue_only=True), permission="doctor"))

    def actions(self) -> Sequence[ActionSpec]:
        return (ActionSpec("join", "j", self._join_confirm, arg=CODE_ARG),
                ActionSpec("unlink", "ul", lambda t, a: self._unlink(t, "yes"), values=frozenset({1})),
                ActionSpec("families", "df", lambda t, a: self._families(t, a.page, overdue_only=a.value == 1),
                           pages=MAX_PAGES, values=frozenset({0, 1}), permission="doctor"))

    def _r(self) -> Renderer:
        return self._guide().renderer

    def _say(self, step: str, buttons: tuple[tuple[Button, ...], ...] = (), **context: object) -> Reply:
        values: dict[str, object] = {"doctor": None, "children": [], "reason": "", "previous": None, "link": "",
                                     "families": [], "page": 1, "pages": 1, "overdue_only": False, **context}
        return Reply("notice" if not buttons else "menu", self._r().render("doctors", step=step, **values), buttons)

    @staticmethod
    def _private(turn: Turn) -> bool:
        return bool(turn.actor.user_id) and turn.actor.user_id == turn.actor.chat_id

    # ------------------------------------------------------------ deep links

    def deep_link(self, turn: Turn, args: str) -> list[Reply] | None:
        """`/start join_<code>` (a parent opening a doctor's invite) or `/start doc_<code>` (a doctor
        registering their account); None for any other start."""
        if args.startswith(INVITE_PREFIX):
            return self._join_preview(turn, args[len(INVITE_PREFIX):])
        if args.startswith(DOCTOR_PREFIX):
            return self._register(turn, args[len(DOCTOR_PREFIX):])
        return None

    def _register(self, turn: Turn, code: str) -> list[Reply]:
        doctors = self.authority.doctors
        if doctors is None:
            return [self._say("unavailable")]
        if not self._private(turn):
            return [self._say("private_only")]
        try:
            doctor = doctors.claim(code, turn.actor.user_key, turn.now)
        except InviteError as exc:
            return [self._say("bad_code", reason=exc.reason)]
        doctors.audit(turn.actor.user_key, "register", turn.now, doctor_id=doctor.id)
        return [self._say("registered", doctor=doctor)]

    def _join_preview(self, turn: Turn, code: str) -> list[Reply]:
        doctors, families = self.authority.doctors, self.authority.families
        if doctors is None or families is None:
            return [self._say("unavailable")]
        if not self._private(turn):
            return [self._say("private_only")]
        try:
            doctor = doctors.check_invite(code, turn.now)
        except InviteError as exc:
            return [self._say("bad_invite", reason=exc.reason)]
        family = families.get(turn.actor.user_key)
        previous = doctors.doctor_of(family.id) if family is not None else None
        if previous is not None and previous.id == doctor.id:
            return [self._say("already", doctor=doctor)]
        children = self._statuses(family.id, turn.today) if family is not None else []
        r = self._r()
        return [self._say("preview", ((Button(r.label("join_yes"), Action("join", code)),
                                       Button(r.label("join_no"), Action("help"))),),
                          doctor=doctor, children=children, previous=previous)]

    def _join_confirm(self, turn: Turn, action: Action) -> list[Reply]:
        doctors, families = self.authority.doctors, self.authority.families
        if doctors is None or families is None:
            return [self._say("unavailable")]
        if not self._private(turn):
            return [self._say("private_only")]
        try:
            doctor = doctors.check_invite(action.arg, turn.now)  # revoked since the preview: refused
        except InviteError as exc:
            return [self._say("bad_invite", reason=exc.reason)]
        family = families.get(turn.actor.user_key)
        if family is None or family.consent_at is None:
            # The preview said what is stored and who sees it: confirming is the consent.
            family = families.consent(turn.actor.user_key, turn.actor.chat_key, turn.now)
        doctors.link(family.id, doctor.id, turn.now)
        doctors.audit(turn.actor.user_key, "link", turn.now, doctor_id=doctor.id, family_id=family.id)
        return [self._say("joined", doctor=doctor, children=self._statuses(family.id, turn.today))]

    def _unlink(self, turn: Turn, args: str) -> list[Reply]:
        doctors, families = self.authority.doctors, self.authority.families
        if doctors is None or families is None:
            return [self._say("unavailable")]
        family = families.get(turn.actor.user_key) if turn.actor.user_id else None
        doctor = doctors.doctor_of(family.id) if family is not None else None
        if family is None or doctor is None:
            return [self._say("not_linked")]
        if args != "yes":
            r = self._r()
            return [self._say("confirm_unlink", ((Button(r.label("unlink_yes"), Action("unlink", value=1)),
                                                  Button(r.label("unlink_no"), Action("help"))),), doctor=doctor)]
        doctors.unlink(family.id)
        doctors.audit(turn.actor.user_key, "unlink", turn.now, doctor_id=doctor.id, family_id=family.id)
        return [self._say("unlinked", doctor=doctor)]

    # ------------------------------------------------------------ the doctor's side

    def _me(self, turn: Turn) -> Doctor:
        doctor = self.authority.doctor(turn.actor)
        assert doctor is not None  # the conversation checked the "doctor" permission
        return doctor

    def _invite(self, turn: Turn, args: str) -> list[Reply]:
        doctors = self.authority.doctors
        assert doctors is not None
        if not self._private(turn):
            return [self._say("private_only")]
        doctor = self._me(turn)
        username = self.bot_username()
        if not username:
            return [self._say("no_username")]
        code = doctors.invite(doctor.id, turn.now)
        doctors.audit(turn.actor.user_key, "invite", turn.now, doctor_id=doctor.id)
        link = invite_link(username, code)
        return [Reply("photo", self._r().render("doctors", step="invite", doctor=doctor, link=link, children=[],
                                                reason="", previous=None, families=[], page=1, pages=1,
                                                overdue_only=False),
                      photo=qr_png(link))]

    def _families(self, turn: Turn, page: int, *, overdue_only: bool) -> list[Reply]:
        doctors = self.authority.doctors
        assert doctors is not None
        if not self._private(turn):
            return [self._say("private_only")]
        doctor = self._me(turn)
        rows: list[dict[str, object]] = []
        for family_id in doctors.family_ids(doctor.id):
            children = self._statuses(family_id, turn.today)
            if overdue_only and not any(c.overdue for c in children):
                continue
            rows.append({"number": len(rows) + 1, "children": children})
        pages = max(1, -(-len(rows) // FAMILIES_PER_PAGE))
        page = min(page, pages - 1)
        shown = rows[page * FAMILIES_PER_PAGE:(page + 1) * FAMILIES_PER_PAGE]
        doctors.audit(turn.actor.user_key, "overdue" if overdue_only else "families", turn.now, doctor_id=doctor.id,
                      detail=f"page {page + 1}/{pages}, {len(rows)} families")
        r = self._r()
        nav = tuple(Button(r.label(label), Action("families", page=p, value=int(overdue_only)))
                    for label, p in (("prev", page - 1), ("next", page + 1)) if 0 <= p < pages)
        return [self._say("families", (nav,) if nav else (), doctor=doctor, families=shown, page=page + 1,
                          pages=pages, overdue_only=overdue_only)]

    def _statuses(self, family_id: int, today: dt.date) -> list[ChildStatus]:
        families = self.authority.families
        if families is None or self.planner is None:
            return []
        return [self._status(c, today) for c in families.children(family_id)]

    def _status(self, child: Child, today: dt.date) -> ChildStatus:
        assert self.planner is not None
        items = self.planner.plan(child, today)
        upcoming = next((p for p in items if p.status in ("due", "upcoming")), None)
        months = age_in_months(child.birth, today)
        age = f"{(today - child.birth).days}天" if months == 0 else f"{months}个月"
        return ChildStatus(child.nickname, age,
                           _name(upcoming.name, upcoming.dose) if upcoming else "",
                           f"{upcoming.due.month}月{upcoming.due.day}日" if upcoming else "",
                           tuple(_name(p.name, p.dose) for p in items if p.status == "overdue"))


def _name(name: str, dose: int | None) -> str:
    return name + (f"第{dose}剂" if dose else "")


def qr_png(text: str) -> bytes:
    """A QR code of `text` as PNG bytes (segno), large enough to print for a clinic's wall."""
    out = io.BytesIO()
    segno.make(text, error="m").save(out, kind="png", scale=10, border=4)
    return out.getvalue()
