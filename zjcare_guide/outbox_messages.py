"""What an outbox row says, composed when it is sent (so a visit moved or cancelled meanwhile is told as
it is now): a visit's notice and reminders with 确认 · 申请改期, the parent's answer for the doctor, a
visit called off because the family deleted its data, a push, and a push's progress report for the
doctor."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from .children import Families
from .clock import TZ
from .doctors import Doctors
from .outbox import VISIT_KINDS, Outbox, OutRow
from .render import Renderer
from .replies import Action, Button, Reply


def when_words(at: dt.datetime) -> str:
    local = at.astimezone(TZ)
    weekday = "一二三四五六日"[local.weekday()]
    return f"{local.month}月{local.day}日（星期{weekday}）{local.hour:02d}:{local.minute:02d}"


class OutboxMessages:
    def __init__(self, outbox: Outbox, renderer: Callable[[], Renderer]) -> None:
        self.outbox = outbox
        self.doctors = Doctors(outbox.db)
        self.families = Families(outbox.db)
        self._renderer = renderer

    def compose(self, row: OutRow, now: dt.datetime) -> Reply | None:
        """The message for the row, or None when there is nothing to say any more (a visit cancelled or
        moved, a doctor removed): the row is then cancelled."""
        r = self._renderer()
        if row.kind == "visit_withdrawn":
            withdrawn = self.outbox.withdrawn_visit(row.ref_id)
            doctor = self.doctors.get(withdrawn[0]) if withdrawn is not None else None
            if withdrawn is None or doctor is None or doctor.removed or withdrawn[1] <= now:
                return None  # nothing to tell once the doctor is gone or the time has passed
            return Reply("notice", r.render("visit", step="withdrawn", doctor=doctor, when=when_words(withdrawn[1]),
                                            place="", note="", state="cancelled", children=[]))
        if row.kind in (*VISIT_KINDS, "visit_answer"):
            visit = self.outbox.visit(row.ref_id)
            doctor = self.doctors.get(visit.doctor_id) if visit is not None else None
            if visit is None or doctor is None or doctor.removed:
                return None
            if row.kind == "visit_answer":
                children = self.families.children(visit.family_id)
                return Reply("notice", r.render("visit", step="answer", doctor=doctor, when=when_words(visit.at),
                                                place=visit.place, state=visit.state, note=visit.note,
                                                children=[c.nickname for c in children]))
            if visit.state in ("reschedule", "cancelled") or visit.at <= now:
                return None  # nothing to tell once the visit is off or over (a notice held by quiet hours)
            buttons = ((Button(r.label("visit_confirm"), Action("visit_answer", str(visit.id), value=1)),
                        Button(r.label("visit_reschedule"), Action("visit_answer", str(visit.id), value=2))),)
            return Reply("notice", r.render("visit", step=row.kind, doctor=doctor, when=when_words(visit.at),
                                            place=visit.place, note=visit.note, state=visit.state, children=[]),
                         buttons if visit.state == "scheduled" else ())
        push = self.outbox.push(row.ref_id)
        doctor = self.doctors.get(push.doctor_id) if push is not None else None
        if push is None or doctor is None:
            return None
        if row.kind == "push":
            return Reply("notice", r.render("push", step="message", doctor=doctor, text=push.text, counts={},
                                            total=push.total, done=False))
        return self.progress(push.id)

    def progress(self, push_id: int) -> Reply | None:
        push = self.outbox.push(push_id)
        if push is None:
            return None
        counts = self.outbox.push_counts(push_id)
        done = counts["pending"] == counts["sending"] == 0
        return Reply("notice", self._renderer().render("push", step="progress", doctor=None, text="", counts=counts,
                                                       total=push.total, done=done))
