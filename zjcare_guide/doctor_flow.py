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
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import segno

from .children import Child, age_in_months, age_words
from .dates import DateError, normalise, parse_appointment
from .delivery import Policy
from .doctors import DOCTOR_PREFIX, INVITE_PREFIX, Doctor, InviteError, invite_link
from .guide import Guide
from .outbox import Outbox
from .outbox_messages import when_words
from .reminder_flow import ReminderPlanner
from .render import Renderer
from .replies import Action, Button, Reply
from .roles import Authority
from .router import ActionSpec, BaseFeature, CommandSpec, Turn
from .text import sanitize

CODE_ARG = r"[A-Za-z0-9_-]{16,40}"
FAMILIES_PER_PAGE = 8
MAX_PAGES = 200
NEWBORN_DAYS = 28
MAX_PUSH = 1000  # characters in a doctor's push


@dataclass(frozen=True)
class ChildStatus:
    """What a doctor sees of one child: nickname, age, what is next, what is overdue."""

    nickname: str
    age: str
    next_item: str
    next_due: str
    overdue: tuple[str, ...]
    months: int = 0
    newborn: bool = False  # under 28 days: the home visit is due


@dataclass
class DoctorDraft:
    """A doctor's /visit or /push in progress, and its step."""

    step: str  # visit_time | visit_place | visit_note | visit_ready | push_ages | push_text | push_ready
    family_id: int | None = None
    at: dt.datetime | None = None
    place: str = ""
    note: str = ""
    audience: str = ""
    ages: tuple[int, int] | None = None
    text: str = ""


class DoctorFlow(BaseFeature):
    name = "doctors"
    # What a doctor types here is their own composition (a push about febrile convulsions, a visit note),
    # not a parent describing a child: it is not read for danger signs.
    triages_text = False

    def __init__(self, guide: Callable[[], Guide], authority: Authority, planner: ReminderPlanner | None,
                 bot_username: Callable[[], str | None], outbox: Outbox | None = None,
                 policy: Policy | None = None) -> None:
        self._guide = guide
        self.authority = authority
        self.planner = planner
        self.bot_username = bot_username
        self.outbox = outbox
        self.policy = policy or Policy()

    def commands(self) -> Sequence[CommandSpec]:
        # Typed arguments are ignored: only the confirmation button unlinks.
        return (CommandSpec("unlink", lambda t, a: self._unlink(t, confirmed=False)),
                CommandSpec("invite", self._invite, permission="doctor"),
                CommandSpec("families", lambda t, a: self._families(t, 0, overdue_only=False), permission="doctor"),
                CommandSpec("overdue", lambda t, a: self._families(t, 0, overdue_only=True), permission="doctor"),
                CommandSpec("visit", lambda t, a: self._visit_start(t, 0), permission="doctor"),
                CommandSpec("push", lambda t, a: self._push_start(t), permission="doctor"))

    def actions(self) -> Sequence[ActionSpec]:
        return (ActionSpec("join", "j", self._join_confirm, arg=CODE_ARG),
                ActionSpec("unlink", "ul", lambda t, a: self._unlink(t, confirmed=True), values=frozenset({1})),
                ActionSpec("join_no", "jn", lambda t, a: [self._say("not_joined")]),
                ActionSpec("families", "df", lambda t, a: self._families(t, a.page, overdue_only=a.value == 1),
                           pages=MAX_PAGES, values=frozenset({0, 1}), permission="doctor"),
                ActionSpec("visit_pick", "vp", lambda t, a: self._visit_start(t, a.page), pages=MAX_PAGES,
                           permission="doctor"),
                ActionSpec("visit_family", "vf", self._visit_family, arg=r"\d{1,9}", permission="doctor"),
                ActionSpec("visit_place", "vh", self._visit_home, permission="doctor"),
                ActionSpec("visit_note", "vn", lambda t, a: self._visit_text(t, ""), permission="doctor"),
                ActionSpec("visit_save", "vs", self._visit_save, permission="doctor"),
                ActionSpec("visit_answer", "va", self._visit_answer, arg=r"\d{1,9}", values=frozenset({1, 2})),
                ActionSpec("push_audience", "pa", self._push_audience, arg="all|overdue|age", permission="doctor"),
                ActionSpec("push_send", "pg", self._push_send, permission="doctor"),
                ActionSpec("doctor_cancel", "dc", self._cancel, permission="doctor"))

    def _cancel(self, turn: Turn, action: Action) -> list[Reply]:
        """取消 under a visit or push preview: the draft is dropped, nothing is sent."""
        turn.session.state.pop(self.name, None)
        turn.session.awaiting = ""
        return [self._say("doctor_cancelled")]

    def _r(self) -> Renderer:
        return self._guide().renderer

    def _say(self, step: str, buttons: tuple[tuple[Button, ...], ...] = (), **context: object) -> Reply:
        values: dict[str, object] = {"doctor": None, "children": [], "reason": "", "previous": None, "link": "",
                                     "families": [], "page": 1, "pages": 1, "overdue_only": False, "when": "",
                                     "place": "", "note": "", "state": "", "text": "", "count": 0, "left": 0,
                                     "audience": "", **context}
        return Reply("notice" if not buttons else "menu", self._r().render("doctors", step=step, **values), buttons)

    @staticmethod
    def _private(turn: Turn) -> bool:
        return bool(turn.actor.user_id) and turn.actor.user_id == turn.actor.chat_id

    # ------------------------------------------------------------ deep links

    def start_link(self, turn: Turn, args: str) -> list[Reply] | None:
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

    def _invited(self, turn: Turn, code: str) -> Doctor | list[Reply]:
        """The doctor of a live invite, or the reply refusing it (checked at the preview and again at
        the confirmation: an invite revoked in between is refused)."""
        if self.authority.doctors is None or self.authority.families is None:
            return [self._say("unavailable")]
        if not self._private(turn):
            return [self._say("private_only")]
        try:
            return self.authority.doctors.check_invite(code, turn.now)
        except InviteError as exc:
            return [self._say("bad_invite", reason=exc.reason)]

    def _join_preview(self, turn: Turn, code: str) -> list[Reply]:
        doctor = self._invited(turn, code)
        if isinstance(doctor, list):
            return doctor
        doctors, families = self.authority.doctors, self.authority.families
        assert doctors is not None and families is not None
        family = families.get(turn.actor.user_key)
        previous = doctors.doctor_of(family.id) if family is not None else None
        if previous is not None and previous.id == doctor.id:
            return [self._say("already", doctor=doctor)]
        children = self._statuses(family.id, turn.today) if family is not None else []
        r = self._r()
        return [self._say("preview", ((Button(r.label("join_yes"), Action("join", code)),
                                       Button(r.label("join_no"), Action("join_no"))),),
                          doctor=doctor, children=children, previous=previous)]

    def _join_confirm(self, turn: Turn, action: Action) -> list[Reply]:
        doctor = self._invited(turn, action.arg)
        if isinstance(doctor, list):
            return doctor
        doctors, families = self.authority.doctors, self.authority.families
        assert doctors is not None and families is not None
        with doctors.db.atomic():  # consent, link and audit: all of them or none
            family = families.get(turn.actor.user_key)
            if family is None or family.consent_at is None:
                # The preview said what is stored and who sees it: confirming is the consent.
                family = families.consent(turn.actor.user_key, turn.actor.chat_key, turn.now)
            previous = doctors.link(family.id, doctor.id, turn.now)
            if previous is not None:
                doctors.audit(turn.actor.user_key, "unlink", turn.now, doctor_id=previous, family_id=family.id,
                              detail="signed with another doctor")
            doctors.audit(turn.actor.user_key, "link", turn.now, doctor_id=doctor.id, family_id=family.id)
        return [self._say("joined", doctor=doctor, children=self._statuses(family.id, turn.today))]

    def _unlink(self, turn: Turn, *, confirmed: bool) -> list[Reply]:
        doctors, families = self.authority.doctors, self.authority.families
        if doctors is None or families is None:
            return [self._say("unavailable")]
        family = families.get(turn.actor.user_key) if turn.actor.user_id else None
        doctor = doctors.doctor_of(family.id) if family is not None else None
        if family is None or doctor is None:
            return [self._say("not_linked")]
        if not confirmed:
            r = self._r()
            return [self._say("confirm_unlink", ((Button(r.label("unlink_yes"), Action("unlink", value=1)),
                                                  Button(r.label("unlink_no"), Action("join_no"))),), doctor=doctor)]
        doctors.unlink(family.id, turn.now)
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

    def on_text(self, turn: Turn, text: str) -> list[Reply] | None:
        draft = self._draft(turn)
        if draft is None or self.authority.doctor(turn.actor) is None:
            return None
        text = sanitize(text)  # what is kept goes into the database and back to the doctor: no lone surrogates
        if draft.step.startswith("visit_"):
            return self._visit_text(turn, text)
        if draft.step in ("push_ages", "push_text"):
            return self._push_text(turn, draft, text)
        return None

    def _statuses(self, family_id: int, today: dt.date) -> list[ChildStatus]:
        families = self.authority.families
        if families is None or self.planner is None:
            return []
        return [self._status(c, today) for c in families.children(family_id)]

    def _status(self, child: Child, today: dt.date) -> ChildStatus:
        assert self.planner is not None
        items = self.planner.plan(child, today)
        upcoming = next((p for p in items if p.status in ("due", "upcoming")), None)
        return ChildStatus(child.nickname, age_words(child.birth, today), upcoming.label if upcoming else "",
                           f"{upcoming.due.month}月{upcoming.due.day}日" if upcoming else "",
                           tuple(p.label for p in items if p.status == "overdue"),
                           age_in_months(child.birth, today), (today - child.birth).days <= NEWBORN_DAYS)


    # ------------------------------------------------------------ /visit: family → time → place → note → save

    def _draft(self, turn: Turn) -> DoctorDraft | None:
        draft = turn.session.state.get(self.name)
        return draft if isinstance(draft, DoctorDraft) else None

    def _visit_start(self, turn: Turn, page: int) -> list[Reply]:
        doctors = self.authority.doctors
        assert doctors is not None
        if not self._private(turn):
            return [self._say("private_only")]
        doctor = self._me(turn)
        entries = []
        for family_id in doctors.family_ids(doctor.id):
            children = self._statuses(family_id, turn.today)
            newborn = any(c.newborn for c in children)
            entries.append((not newborn, family_id, children, newborn))
        entries.sort(key=lambda e: (e[0], e[1]))  # families with a newborn first: their home visit is due
        if not entries:
            return [self._say("families", doctor=doctor, families=[], page=1, pages=1)]
        pages = max(1, -(-len(entries) // FAMILIES_PER_PAGE))
        page = min(page, pages - 1)
        r = self._r()
        rows: list[tuple[Button, ...]] = []
        for n, (_, family_id, children, newborn) in enumerate(
                entries[page * FAMILIES_PER_PAGE:(page + 1) * FAMILIES_PER_PAGE], start=page * FAMILIES_PER_PAGE + 1):
            names = "、".join(f"{c.nickname}（{c.age}）" for c in children) or r.label("no_children")
            label = f"{'🍼 ' if newborn else ''}{n}. {names}"[:60]
            rows.append((Button(label, Action("visit_family", str(family_id))),))
        nav = tuple(Button(r.label(label), Action("visit_pick", page=p))
                    for label, p in (("prev", page - 1), ("next", page + 1)) if 0 <= p < pages)
        if nav:
            rows.append(nav)
        return [self._say("visit_pick", tuple(rows), page=page + 1, pages=pages)]

    def _visit_family(self, turn: Turn, action: Action) -> list[Reply]:
        family_id = int(action.arg)
        if not self.authority.allowed(turn.actor, "doctor", family_id):
            return [self._say("not_yours")]  # another doctor's family, or a forged id: nothing changes
        turn.session.state[self.name] = DoctorDraft("visit_time", family_id=family_id)
        turn.session.awaiting = self.name
        return [self._say("visit_time")]

    def _visit_home(self, turn: Turn, action: Action) -> list[Reply]:
        draft = self._draft(turn)
        if draft is None or draft.step != "visit_place":
            return [Reply("notice", self._r().render("expired"))]
        return self._visit_text(turn, self._r().label("visit_home"))

    def _visit_text(self, turn: Turn, text: str) -> list[Reply]:
        draft = self._draft(turn)
        if draft is None or not draft.step.startswith("visit_"):
            return [Reply("notice", self._r().render("expired"))]
        r = self._r()
        if draft.step == "visit_time":
            try:
                draft.at = parse_appointment(text, turn.now)
            except DateError as exc:
                return [self._say("visit_time", reason=exc.reason)]
            draft.step = "visit_place"
            return [self._say("visit_place", ((Button(r.label("visit_home"), Action("visit_place")),),))]
        if draft.step == "visit_place":
            place = " ".join(text.split())[:60]
            if not place:
                return [self._say("visit_place", ((Button(r.label("visit_home"), Action("visit_place")),),))]
            draft.place, draft.step = place, "visit_note"
            return [self._say("visit_note", ((Button(r.label("visit_no_note"), Action("visit_note")),),))]
        if draft.step == "visit_note":
            draft.note, draft.step = " ".join(text.split())[:200], "visit_ready"
            turn.session.awaiting = ""
            return [self._say("visit_preview", ((Button(r.label("visit_save"), Action("visit_save")),
                                                 Button(r.label("cancel"), Action("doctor_cancel"))),),
                              when=when_words(draft.at) if draft.at else "", place=draft.place, note=draft.note,
                              children=self._statuses(draft.family_id or 0, turn.today))]
        return [self._say("use_buttons")]

    def _visit_save(self, turn: Turn, action: Action) -> list[Reply]:
        draft = self._draft(turn)
        families = self.authority.families
        if draft is None or draft.step != "visit_ready" or draft.at is None or draft.family_id is None \
                or self.outbox is None or families is None:
            return [Reply("notice", self._r().render("expired"))]
        if not self.authority.allowed(turn.actor, "doctor", draft.family_id):
            return [self._say("not_yours")]  # unsigned since the flow began
        family = families.by_id(draft.family_id)
        if family is None:
            return [self._say("not_yours")]
        doctor = self._me(turn)
        visit = self.outbox.add_visit(doctor.id, family.id, family.address, draft.at, draft.place, draft.note,
                                      turn.now, self.policy)
        assert self.authority.doctors is not None
        self.authority.doctors.audit(turn.actor.user_key, "visit", turn.now, doctor_id=doctor.id,
                                     family_id=family.id, detail=f"visit {visit.id} at {visit.at.isoformat()}")
        turn.session.state.pop(self.name, None)
        return [self._say("visit_saved", when=when_words(visit.at), place=visit.place)]

    def _visit_answer(self, turn: Turn, action: Action) -> list[Reply]:
        """The parent's 确认 (1) or 申请改期 (2) under a visit notice or reminder."""
        families = self.authority.families
        visit = self.outbox.visit(int(action.arg)) if self.outbox is not None else None
        family = families.get(turn.actor.user_key) if families is not None and turn.actor.user_id else None
        if visit is None or family is None or visit.family_id != family.id or self.outbox is None \
                or visit.state == "cancelled" or visit.at <= turn.now:
            return [Reply("notice", self._r().render("expired"))]
        doctor = self.authority.doctors.get(visit.doctor_id) if self.authority.doctors is not None else None
        state = "confirmed" if action.value == 1 else "reschedule"
        self.outbox.answer_visit(visit, state, doctor.user_key if doctor and not doctor.removed else None, turn.now)
        if self.authority.doctors is not None:
            self.authority.doctors.audit(turn.actor.user_key, f"visit_{state}", turn.now, doctor_id=visit.doctor_id,
                                         family_id=family.id, detail=f"visit {visit.id}")
        return [self._say("visit_answered", state=state, when=when_words(visit.at), place=visit.place,
                          doctor=doctor)]

    # ------------------------------------------------------------ /push: audience → (ages) → text → send

    def _push_start(self, turn: Turn) -> list[Reply]:
        if not self._private(turn):
            return [self._say("private_only")]
        r = self._r()
        return [self._say("push_audience", ((Button(r.label("push_all"), Action("push_audience", "all")),),
                                            (Button(r.label("push_overdue"), Action("push_audience", "overdue")),),
                                            (Button(r.label("push_age"), Action("push_audience", "age")),)))]

    def _push_audience(self, turn: Turn, action: Action) -> list[Reply]:
        turn.session.state[self.name] = DoctorDraft("push_ages" if action.arg == "age" else "push_text",
                                                    audience=action.arg)
        turn.session.awaiting = self.name
        return [self._say("push_ages" if action.arg == "age" else "push_text")]

    def _push_text(self, turn: Turn, draft: DoctorDraft, text: str) -> list[Reply]:
        r = self._r()
        if draft.step == "push_ages":
            m = re.fullmatch(r"\s*(\d{1,2})\s*[-~～到至]\s*(\d{1,2})\s*(?:个?月)?\s*", normalise(text))
            if m is None or int(m.group(1)) > int(m.group(2)) or int(m.group(2)) > 72:
                return [self._say("push_ages", reason="format")]
            draft.ages, draft.step = (int(m.group(1)), int(m.group(2))), "push_text"
            return [self._say("push_text")]
        body = text.strip()
        if not body or len(body) > MAX_PUSH:
            return [self._say("push_text", reason="empty" if not body else "long", count=len(body))]
        draft.text, draft.step = body, "push_ready"
        turn.session.awaiting = ""
        targets = self._targets(turn, draft)
        doctor = self._me(turn)
        left = self._left(doctor.id, turn.now)
        buttons = ((Button(r.label("push_send", count=len(targets)), Action("push_send")),
                    Button(r.label("cancel"), Action("doctor_cancel"))),) if targets and len(targets) <= left else ()
        return [self._say("push_preview", buttons, doctor=doctor, text=body, count=len(targets), left=left,
                          audience=_audience_words(draft))]

    def _left(self, doctor_id: int, now: dt.datetime) -> int:
        """Push messages the doctor may still send today: the limit less those delivered and those queued."""
        if self.outbox is None:
            return 0
        return self.policy.push_daily_limit - self.outbox.delivered_today(doctor_id, now) \
            - self.outbox.queued(doctor_id)

    def _targets(self, turn: Turn, draft: DoctorDraft) -> list[tuple[int, str]]:
        """The families the push goes to: the doctor's own, not paused, matching the audience."""
        doctors, families = self.authority.doctors, self.authority.families
        assert doctors is not None and families is not None
        out = []
        for family_id in doctors.family_ids(self._me(turn).id):
            family = families.by_id(family_id)
            if family is None or family.paused:
                continue
            if draft.audience != "all":
                children = self._statuses(family_id, turn.today)
                if draft.audience == "overdue" and not any(c.overdue for c in children):
                    continue
                if draft.audience == "age" and draft.ages is not None and not any(
                        draft.ages[0] <= c.months <= draft.ages[1] for c in children):
                    continue
            out.append((family.id, family.address))
        return out

    def _push_send(self, turn: Turn, action: Action) -> list[Reply]:
        draft = self._draft(turn)
        if draft is None or draft.step != "push_ready" or self.outbox is None:
            return [Reply("notice", self._r().render("expired"))]
        doctor = self._me(turn)
        targets = self._targets(turn, draft)  # again: a family may have unlinked since the preview
        left = self._left(doctor.id, turn.now)
        if len(targets) > left:
            return [self._say("push_limit", left=max(left, 0), count=len(targets))]
        if not targets:
            return [self._say("push_preview", doctor=doctor, text=draft.text, count=0, left=left,
                              audience=_audience_words(draft))]
        push = self.outbox.add_push(doctor.id, draft.text, _audience_words(draft), targets, turn.actor.chat_key,
                                    turn.now)
        assert self.authority.doctors is not None
        self.authority.doctors.audit(turn.actor.user_key, "push", turn.now, doctor_id=doctor.id,
                                     detail=f"push {push.id} to {push.total} families ({push.audience})")
        turn.session.state.pop(self.name, None)
        return [self._say("push_started", count=push.total)]


def _audience_words(draft: DoctorDraft) -> str:
    if draft.audience == "overdue":
        return "有逾期项目的家庭"
    if draft.audience == "age" and draft.ages is not None:
        return f"有{draft.ages[0]}～{draft.ages[1]}月龄孩子的家庭"
    return "全部签约家庭"


def qr_png(text: str) -> bytes:
    """A QR code of `text` as PNG bytes (segno), large enough to print for a clinic's wall."""
    out = io.BytesIO()
    segno.make(text, error="m").save(out, kind="png", scale=10, border=4)
    return out.getvalue()
