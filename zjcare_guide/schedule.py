"""A child's plan of vaccinations, health checks and the newborn visit, from the birth date and the
schedules in `content/schedules/` — pure: dates in, plan out; it schedules and reads the clock never.

Ages are calendar months and days from birth (31 January + 1 month = the end of February, dateutil's
relativedelta). A dose is due at its recommended age, or later when a minimum interval from a dose
actually given (or planned) says so: catch-up follows the real dates, never a fixed calendar.
Facts: ../shared/reference/immunization.md and child-health-checks.md.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dateutil.relativedelta import relativedelta

from .model import Problem
from .yamlfile import child, items, line, line_of, load_yaml

KINDS = ("vaccine", "checkup", "visit")
# An item not done a week after it fell due is overdue (one overdue reminder then, issue 9).
OVERDUE_AFTER_DAYS = 7
_AGE_UNITS = ("years", "months", "days")


@dataclass(frozen=True)
class Age:
    """A calendar age: years, months and days from birth."""

    years: int = 0
    months: int = 0
    days: int = 0

    def after(self, day: dt.date) -> dt.date:
        result: dt.date = day + relativedelta(years=self.years, months=self.months, days=self.days)
        return result

    def __str__(self) -> str:
        months = self.years * 12 + self.months
        if not months:
            return f"{self.days}天" if self.days else "出生时"
        if months % 12 == 0 and months >= 24:
            return f"{months // 12}岁"
        return f"{months}月龄"


@dataclass(frozen=True)
class Interval:
    """At least `age` after item `item` was given."""

    item: str
    age: Age


@dataclass(frozen=True)
class ScheduleItem:
    id: str
    kind: str  # vaccine | checkup | visit
    name: str
    dose: int | None  # the dose number of a vaccine; None for checks and visits
    age: Age  # earliest recommended age
    complete_by: Age | None  # to be completed before this age (the window ends the day before)
    window: Age | None  # or: the window ends at this age (a visit within 7 days)
    window_high_risk: Age | None  # the shorter window for a high-risk (preterm) newborn
    until: Age | None  # from this age on the item is no longer given
    after: tuple[Interval, ...]
    live: bool  # an injectable live vaccine
    from_discharge: bool  # counted from the discharge date when the parent gives one
    includes: tuple[str, ...]
    note: str
    schedule: Schedule

    @property
    def label(self) -> str:
        """The name parents see: 乙肝疫苗第2剂, 满月健康检查."""
        return dose_label(self.name, self.dose)


@dataclass(frozen=True)
class Schedule:
    """One schedule file: its edition, the date it took effect, its source and items."""

    path: Path
    edition: str
    effective: dt.date
    source: str
    kind: str
    reminder: str
    live_interval_days: int
    cases: tuple[str, ...]


@dataclass(frozen=True)
class PlanItem:
    """One item of a child's plan. `due` is when it can be given (recommended age, pushed by minimum
    intervals); `window_end` the last day of its window where the schedule has one."""

    id: str
    kind: str
    name: str
    dose: int | None
    due: dt.date
    window_end: dt.date | None
    done_on: dt.date | None
    status: str  # done | upcoming | due | overdue | not_given (past its age limit: ask the clinic)
    note: str
    source: str

    @property
    def label(self) -> str:
        return dose_label(self.name, self.dose)

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "name": self.name, "dose": self.dose, "due": self.due.isoformat(),
                "window_end": self.window_end.isoformat() if self.window_end else None,
                "done_on": self.done_on.isoformat() if self.done_on else None, "status": self.status,
                "note": self.note, "source": self.source}


def dose_label(name: str, dose: int | None) -> str:
    return name + (f"第{dose}剂" if dose else "")


def plan(schedule_items: Iterable[ScheduleItem], birth: dt.date, done: Mapping[str, dt.date] | None = None, *,
         today: dt.date, discharge: dt.date | None = None, high_risk: bool = False) -> list[PlanItem]:
    """The plan of one child, in due order.

    `done` maps item ids to the dates they were given or done; `discharge` is the day the newborn came
    home (the visit is then due from it); `high_risk` (born preterm) shortens the newborn visit's window
    to 3 days (child-health-checks.md: "high-risk newborns within 3 days").

    An item whose due date falls after the end of its window (a live vaccine's 28-day wait pushing BCG
    past 3 months, say) is a catch-up for the clinic to settle: it shows as overdue, never as due.
    Raises ValueError for a birth date after `today`, a done date before birth or after `today`, or an
    unknown item id."""
    done = dict(done or {})
    if birth > today:
        raise ValueError("the birth date is in the future")
    listed = list(schedule_items)
    known = {i.id for i in listed}
    for item_id, day in done.items():
        if item_id not in known:
            raise ValueError(f"unknown item {item_id!r}")
        if not birth <= day <= today:
            raise ValueError(f"{item_id}: {day.isoformat()} is not between the birth date and today")
    planned: dict[str, dt.date] = {}
    out: list[PlanItem] = []
    for item in listed:
        start = discharge if item.from_discharge and discharge is not None else birth
        due = item.age.after(start) if not (item.from_discharge and discharge is not None) else discharge
        assert due is not None
        for interval in item.after:
            before = done.get(interval.item) or planned.get(interval.item)
            if before is not None:
                due = max(due, interval.age.after(before))
        if item.live and item.id not in done:
            due = _after_live_doses(item, due, listed, done, today)
        planned[item.id] = done.get(item.id, due)
        window_end = None
        if item.complete_by is not None:
            window_end = item.complete_by.after(birth) - dt.timedelta(days=1)
        elif item.window is not None:
            window = item.window_high_risk if high_risk and item.window_high_risk is not None else item.window
            window_end = window.after(start)
            due = min(due, window_end)
        status = _status(item, due, done.get(item.id), birth, today)
        if status in ("due", "upcoming") and window_end is not None and due > window_end:
            status = "overdue"
        out.append(PlanItem(item.id, item.kind, item.name, item.dose, due, window_end, done.get(item.id),
                            status, item.note, item.schedule.source))
    return sorted(out, key=lambda p: (p.due, p.kind != "visit", p.id))


def stored_plan(schedule_items: Sequence[ScheduleItem], birth: dt.date, records: Mapping[str, dt.date], *,
                today: dt.date, discharge: dt.date | None = None, high_risk: bool = False) -> list[PlanItem]:
    """`plan` for a registered child: records the schedules no longer have (an item renamed in a new
    edition) or outside birth..today are left out instead of failing the whole plan — they stay stored."""
    known = {i.id for i in schedule_items}
    kept = {k: v for k, v in records.items() if k in known and birth <= v <= today}
    return plan(schedule_items, birth, kept, today=today, discharge=discharge if discharge and discharge >= birth
                else None, high_risk=high_risk)


def _after_live_doses(item: ScheduleItem, due: dt.date, listed: list[ScheduleItem],
                      done: Mapping[str, dt.date], today: dt.date) -> dt.date:
    """Two injectable live vaccines not given on the same day are at least 28 days apart (说明). One
    already given means this one waits 28 days from it — unless both can still go on the same day."""
    gap = dt.timedelta(days=item.schedule.live_interval_days)
    for other in listed:
        given = done.get(other.id)
        if other.live and other.id != item.id and given is not None and due < given + gap \
                and not due <= given == today:
            due = given + gap
    return due


def _status(item: ScheduleItem, due: dt.date, done_on: dt.date | None, birth: dt.date, today: dt.date) -> str:
    if done_on is not None:
        return "done"
    if item.until is not None and today >= item.until.after(birth):
        return "not_given"
    if due > today:
        return "upcoming"
    if today >= due + dt.timedelta(days=OVERDUE_AFTER_DAYS):
        return "overdue"
    return "due"


# ---------------------------------------------------------------- loading and checking


def load_schedules(directory: Path, templates: set[str], problems: list[Problem]) -> list[ScheduleItem]:
    """Every item of `content/schedules/*.yaml`, checked: `path:line: problem` for each mistake.

    `templates`: the template names that exist (each schedule names its reminder template)."""
    out: list[ScheduleItem] = []
    ids: dict[str, Path] = {}
    paths = sorted(directory.glob("*.yaml")) if directory.is_dir() else []
    if not paths:
        problems.append(Problem(directory, 1, "no schedule files (schedules/*.yaml)"))
    for path in paths:
        data, node = load_yaml(path, problems)
        if data is None:
            continue
        if not isinstance(data, dict):
            problems.append(Problem(path, 1, "a schedule is a mapping with edition, effective, source, items"))
            continue
        schedule = _schedule(path, data, node, templates, problems)
        if schedule is None:
            continue
        for item_node, raw in zip(items(child(node, "items")), data.get("items") or [], strict=False):
            item = _item(path, raw, item_node, schedule, problems)
            if item is None:
                continue
            if item.id in ids:
                problems.append(Problem(path, line(item_node),
                                        f"item id {item.id!r} is also in {ids[item.id].name}"))
                continue
            for interval in item.after:
                if interval.item not in ids and interval.item not in {o.id for o in out}:
                    problems.append(Problem(path, line(item_node), f"{item.id}: 'after' names "
                                            f"{interval.item!r}, which is not an earlier item"))
            ids[item.id] = path
            out.append(item)
    return out


def _schedule(path: Path, data: dict[str, Any], node: Any, templates: set[str],
              problems: list[Problem]) -> Schedule | None:
    bad = len(problems)
    for key in ("edition", "source"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            problems.append(Problem(path, line_of(node, key), f"'{key}' is required: the schedule names its {key}"))
    effective = data.get("effective")
    if not isinstance(effective, dt.date):
        problems.append(Problem(path, line_of(node, "effective"),
                                "'effective' is the date it took effect (YYYY-MM-DD)"))
    kind = data.get("kind")
    if kind not in KINDS:
        problems.append(Problem(path, line_of(node, "kind"), f"'kind' is one of {', '.join(KINDS)}"))
    reminder = data.get("reminder")
    if not isinstance(reminder, str) or reminder not in templates:
        problems.append(Problem(path, line_of(node, "reminder"),
                                f"'reminder' names a template in templates/ (got {reminder!r})"))
    interval = data.get("live_interval_days", 28)
    if not isinstance(interval, int) or interval < 0:
        problems.append(Problem(path, line_of(node, "live_interval_days"),
                                "'live_interval_days' is a whole number"))
    cases = data.get("cases") or []
    if not isinstance(cases, list) or not all(isinstance(c, str) and c.strip() for c in cases):
        problems.append(Problem(path, line_of(node, "cases"), "'cases' is a list of sentences"))
    if not isinstance(data.get("items"), list) or not data["items"]:
        problems.append(Problem(path, line_of(node, "items"), "'items' is a non-empty list"))
    if len(problems) > bad or not isinstance(effective, dt.date) or not isinstance(kind, str) \
            or not isinstance(reminder, str):
        return None
    return Schedule(path, data["edition"].strip(), effective, data["source"].strip(), kind, reminder, interval,
                    tuple(c.strip() for c in cases))


def _age(value: Any) -> Age | None:
    if not isinstance(value, dict) or not value or set(value) - set(_AGE_UNITS):
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value.values()):
        return None
    return Age(**value)


def _item(path: Path, raw: Any, node: Any, schedule: Schedule, problems: list[Problem]) -> ScheduleItem | None:
    at = line(node)
    if not isinstance(raw, dict):
        problems.append(Problem(path, at, "an item is a mapping with id, name and age"))
        return None
    bad = len(problems)
    item_id = raw.get("id")
    if not isinstance(item_id, str) or not item_id.replace("-", "").isalnum() or item_id != item_id.lower():
        problems.append(Problem(path, at, f"item id {item_id!r}: lower-case letters, digits and hyphens"))
        item_id = "?"
    kind = raw.get("kind", schedule.kind)
    if kind not in KINDS:
        problems.append(Problem(path, at, f"{item_id}: kind is one of {', '.join(KINDS)}"))
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(Problem(path, at, f"{item_id}: 'name' is required"))
    dose = raw.get("dose")
    if kind == "vaccine" and (not isinstance(dose, int) or isinstance(dose, bool) or dose < 1):
        problems.append(Problem(path, at, f"{item_id}: a vaccine item has its dose number"))
    ages: dict[str, Age | None] = {}
    for key in ("age", "complete_by", "window", "window_high_risk", "until"):
        if key in raw:
            ages[key] = _age(raw[key])
            if ages[key] is None:
                problems.append(Problem(path, at,
                                        f"{item_id}: '{key}' is an age such as {{months: 6}} or {{days: 28}}"))
    if "age" not in raw:
        problems.append(Problem(path, at, f"{item_id}: 'age' is required"))
    after: list[Interval] = []
    for entry in raw.get("after") or []:
        age = _age({k: v for k, v in entry.items() if k != "item"}) if isinstance(entry, dict) else None
        if age is None or not isinstance(entry.get("item"), str):
            problems.append(Problem(path, at, f"{item_id}: 'after' entries are {{item: ID, days|months|years: N}}"))
            continue
        after.append(Interval(entry["item"], age))
    age, complete_by, window = ages.get("age"), ages.get("complete_by"), ages.get("window")
    if age is not None and complete_by is not None and complete_by.after(dt.date(2000, 1, 1)) <= age.after(
            dt.date(2000, 1, 1)):
        problems.append(Problem(path, at, f"{item_id}: complete_by must be after the recommended age"))
    if len(problems) > bad or age is None or not isinstance(name, str):
        return None
    includes = raw.get("includes") or []
    return ScheduleItem(
        id=item_id, kind=kind, name=name.strip(), dose=dose if kind == "vaccine" else None, age=age,
        complete_by=complete_by, window=window, window_high_risk=ages.get("window_high_risk"),
        until=ages.get("until"), after=tuple(after),
        live=bool(raw.get("live", False)), from_discharge=bool(raw.get("from_discharge", False)),
        includes=tuple(str(i) for i in includes), note=str(raw.get("note") or "").strip(), schedule=schedule)
