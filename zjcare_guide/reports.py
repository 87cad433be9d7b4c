"""Parents' reports about childcare (畅通投诉举报渠道): a problem with a listed institution, or an
unfiled operator, stored with a reference number for the health bureau's staff.

The reporter's transport key is kept only so the parent can see and delete their own reports; the
bureau's list and export do not show it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlite_utils.db import Database

from .finder import SHOWN, same_label, town_rows
from .guide import Guide
from .institutions import Directory
from .render import Renderer
from .replies import Action, Button, Reply
from .router import ActionSpec, BaseFeature, CommandSpec, Turn
from .text import han_count, sanitize
from .towns import BY_CODE, find_town

MIN_REPORT = 5
MAX_REPORT = 1000
EXPORT_HEADERS = ("编号", "日期", "时间", "备案编号", "机构名称", "所属镇街", "内容", "状态")
STATUS_NAMES = {"new": "待处理"}


@dataclass(frozen=True)
class Report:
    ref: str  # JB20261201-0003: day and that day's sequence
    day: dt.date
    created_at: str  # ISO time with offset, Asia/Shanghai
    filing_no: str  # "" for an unfiled operator
    institution: str
    town_code: str
    text: str
    status: str

    @property
    def town(self) -> str:
        return BY_CODE[self.town_code].name if self.town_code in BY_CODE else ""

    @property
    def time(self) -> str:
        """HH:MM, Asia/Shanghai."""
        return self.created_at[11:16]

    @property
    def status_name(self) -> str:
        return STATUS_NAMES.get(self.status, self.status)

    def as_row(self) -> list[str]:
        return [self.ref, self.day.isoformat(), self.time, self.filing_no, self.institution, self.town,
                self.text, self.status_name]


def file_report(db: Database, now: dt.datetime, text: str, reporter: str, *, filing_no: str = "",
                institution: str = "", town_code: str = "") -> Report:
    """Store a report and give it the day's next reference number, in one transaction. A number is
    never given twice, even after its report was deleted (store migration 007)."""
    day = now.date()
    with db.atomic():
        n = db.execute("insert into report_refs (day, last) values (?, 1) "
                       "on conflict (day) do update set last = last + 1 returning last",
                       [day.isoformat()]).fetchall()[0][0]  # fetchall: the statement is finished before commit
        ref = f"JB{day:%Y%m%d}-{n:04d}"
        created = now.isoformat(timespec="seconds")
        db.table("reports").insert({"ref": ref, "day": day.isoformat(), "created_at": created,
                                    "filing_no": filing_no, "institution": institution, "town_code": town_code,
                                    "text": text, "reporter": reporter, "status": "new"})
    return Report(ref, day, created, filing_no, institution, town_code, text, "new")


def list_reports(db: Database, since: dt.date | None = None) -> list[Report]:
    """Reports, oldest first, from `since` on."""
    rows = db.execute("select ref, day, created_at, filing_no, institution, town_code, text, status from reports "
                      "where day >= ? order by id", [(since or dt.date.min).isoformat()]).fetchall()
    return [Report(r[0], dt.date.fromisoformat(r[1]), r[2], r[3] or "", r[4] or "", r[5] or "", r[6], r[7])
            for r in rows]


class Reports(BaseFeature):
    """/report in the conversation: pick an institution from the last results, or an unfiled operator's
    town, then describe the problem."""

    name = "reports"
    files_urgent_text = True  # a child hurt at a nursery: escalated, and the report still filed

    def __init__(self, guide: Callable[[], Guide], directory: Directory | None) -> None:
        self._guide = guide
        self.directory = directory

    def commands(self) -> Sequence[CommandSpec]:
        return (CommandSpec("report", self._start, listed=True),)

    def actions(self) -> Sequence[ActionSpec]:
        return (ActionSpec("report", "r", lambda t, a: self._start(t, "")),
                ActionSpec("report_inst", "rp", self._institution, arg=r"\d{1,9}"),
                ActionSpec("report_unfiled", "ru", self._unfiled),
                ActionSpec("report_town", "rt", self._town, arg=r"\d{3}"))

    def _r(self) -> Renderer:
        return self._guide().renderer

    def _start(self, turn: Turn, args: str) -> list[Reply]:
        if self.directory is None:
            return [Reply("notice", self._r().render("finder_notice", reason="unavailable"))]
        r = self._r()
        shown = turn.session.state.get(SHOWN)
        ids = [n for n in shown if isinstance(n, int)] if isinstance(shown, list) else []
        institutions = [i for i in (self.directory.get(n) for n in ids) if i is not None and i.status == "备案"]
        rows: list[tuple[Button, ...]] = [(Button(f"{r.label('report_prefix')}{i.name}"[:60],
                                                  Action("report_inst", str(i.id))),) for i in institutions]
        if not institutions:
            rows.append((Button(r.label("menu_institutions"), Action("find")),))
        rows.append((Button(r.label("report_unfiled"), Action("report_unfiled")),))
        return [Reply("menu", r.render("report", step="start", listed=bool(institutions)), tuple(rows))]

    def _institution(self, turn: Turn, action: Action) -> list[Reply]:
        inst = self.directory.get(int(action.arg)) if self.directory is not None else None
        if inst is None:
            return [Reply("notice", self._r().render("expired"))]
        turn.session.state[self.name] = ("institution", inst.id)
        turn.session.awaiting = self.name
        return [Reply("notice", self._r().render("report", step="describe", institution=inst.name))]

    def _unfiled(self, turn: Turn, action: Action) -> list[Reply]:
        # The town can be tapped or typed (店口, diankou).
        turn.session.state[self.name] = ("choose_town", "")
        turn.session.awaiting = self.name
        return [self._town_list("town")]

    def _town_list(self, step: str) -> Reply:
        return Reply("menu", self._r().render("report", step=step), town_rows("report_town"))

    def _town(self, turn: Turn, action: Action) -> list[Reply]:
        if self.directory is None or action.arg not in BY_CODE:
            return [Reply("notice", self._r().render("expired"))]
        return self._describe_unfiled(turn, action.arg)

    def _describe_unfiled(self, turn: Turn, town_code: str) -> list[Reply]:
        turn.session.state[self.name] = ("town", town_code)
        turn.session.awaiting = self.name
        return [Reply("notice", self._r().render("report", step="describe_unfiled",
                                                 town=BY_CODE[town_code].name))]

    def on_text(self, turn: Turn, text: str) -> list[Reply] | None:
        target = turn.session.state.get(self.name)
        if self.directory is None or not isinstance(target, tuple):
            return None
        r = self._r()
        text = sanitize(text).strip()
        if same_label(text, r.label("cancel")):
            turn.session.awaiting = ""
            return [Reply("notice", r.render("cancelled"))]
        kind, value = target
        if kind == "choose_town":
            town = find_town(text)
            if town is not None:
                return self._describe_unfiled(turn, town.code)
            if han_count(text) > 10 or "?" in text or "？" in text:
                return None  # a question, not a town: the guidance answers it and the report ends
            return [self._town_list("town_again")]
        if not MIN_REPORT <= len(text) <= MAX_REPORT:
            # The parent stays in the step: a too-short or too-long description is asked for again.
            return [Reply("notice", r.render("report", step="length", min=MIN_REPORT, max=MAX_REPORT))]
        # Kept so the parent can see and delete their own reports; "" when the transport cannot tell who.
        reporter = turn.actor.user_key if turn.actor.user_id else ""
        if kind == "institution":
            inst = self.directory.get(int(value))
            if inst is None:
                turn.session.awaiting = ""
                return [Reply("notice", r.render("expired"))]
            report = file_report(self.directory.db, turn.now, text, reporter, filing_no=inst.filing_no,
                                 institution=inst.name, town_code=inst.town_code)
        else:
            report = file_report(self.directory.db, turn.now, text, reporter, town_code=str(value))
        turn.session.awaiting = ""
        del turn.session.state[self.name]
        return [Reply("notice", r.render("report", step="filed", ref=report.ref))]
