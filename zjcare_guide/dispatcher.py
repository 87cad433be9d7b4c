"""Send the reminders that are due: one message per family, through the transport's outbound port.

Used by the bot's periodic job and by `zjcare-guide reminders send-due`; both claim rows before sending
(reminders.Reminders.claim), so running them side by side never sends a reminder twice. Rate-limited
below Telegram's 30 messages per second; a 429 waits the seconds asked; 5xx and network errors are
retried with backoff, then left for the next run until Policy.give_up, then `failed`; a 403 pauses the
family. Every database call runs in a worker thread: the bot's event loop never waits on a lock.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import sqlite3
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from aiolimiter import AsyncLimiter

from .children import Child
from .clock import TZ, Clock
from .delivery import Deliveries
from .outbound import Blocked, Failed, Outbound, RetryAfter, SendResult, Sent
from .outbox import Outbox, OutRow
from .outbox_messages import OutboxMessages
from .reminders import KINDS, Counts, Policy, Reminders, Row, process_id
from .render import Renderer
from .replies import Action, Button, Reply
from .schedule import ScheduleItem

log = logging.getLogger(__name__)
T = TypeVar("T")
# A message that keeps failing is tried this many times in one run (0.5 s, 1 s, 2 s apart) before it
# is left for the next run; a 429 is waited out however often it comes, until Policy.give_up.
TRIES_PER_RUN = 3
# Telegram allows about 30 messages a second to different chats. The bucket holds a little more than
# one message so that the event loop's wake-up lateness (~1 ms a message) is made up instead of lost
# (with a depth of 1, a 28/s limiter measured 27.2/s); at most ⌊BURST + RATE⌋ go in any one second.
RATE_PER_SECOND = 28.5
BURST = 1.4
BATCH = 500
PROGRESS_EVERY = 25  # a push's progress message is edited after this many families
SETTLE_TRIES = 30  # × the 5 s busy timeout and 1 s: minutes of another process's lock before giving up


@dataclass(frozen=True)
class Content:
    """What a message is made of: the schedules (names, reminder templates) and the renderer."""

    schedules: Sequence[ScheduleItem]
    renderer: Renderer


def compose(rows: Sequence[Row], children: Mapping[int, Child], content: Content, today: dt.date,
            records: Mapping[int, Mapping[str, dt.date]] | None = None) -> Reply:
    """One family's reminder message: the items grouped by child and template, then one row of
    ✅ 已完成 · ⏰ 推迟 · 🔕 buttons per item. A dose whose earlier dose is not recorded (`records`,
    child id → item id → date) says to ask the clinic first if that one was not given."""
    items = {i.id: i for i in content.schedules}
    r = content.renderer
    parts: list[str] = []
    groups: dict[tuple[int, str, dt.date], list[ScheduleItem]] = defaultdict(list)
    for row in rows:
        item = items.get(row.item_id)
        if item is not None and row.child_id in children:
            groups[(row.child_id, item.schedule.reminder, row.item_due)].append(item)
    for (child_id, template, due), group in groups.items():
        done = (records or {}).get(child_id, {})
        parts.append(r.render(template, nickname=children[child_id].nickname, days_left=(due - today).days,
                              due=f"{due.month}月{due.day}日",
                              items=[{"name": i.name, "dose": i.dose, "kind": i.kind,
                                      "missing": [items[a.item].label for a in i.after
                                                  if a.item in items and a.item not in done]}
                                     for i in group]))
    buttons: list[tuple[Button, ...]] = []
    for row in rows:
        item = items.get(row.item_id)
        child = children.get(row.child_id)
        if item is None or child is None:
            continue
        arg = f"{row.child_id}-{row.item_id}"
        name = item.label
        who = f"{child.nickname}·" if len({c for c in (x.child_id for x in rows)}) > 1 else ""
        buttons.append((Button(r.label("remind_done", item=f"{who}{name}"), Action("remind_done", arg)),
                        Button(r.label("remind_snooze"), Action("remind_snooze", arg)),
                        Button(r.label("remind_mute"), Action("remind_mute", arg))))
    text = r.render("reminder", parts=parts)
    return Reply("reminder", text, tuple(buttons))


def _supersede(rows: Sequence[Row]) -> tuple[list[Row], list[Row]]:
    """Of several rows for the same item (a late 'before' and today's 'due'), send only the latest."""
    order = {k: i for i, k in enumerate(KINDS)}
    best: dict[tuple[int, str], Row] = {}
    for row in rows:
        key = (row.child_id, row.item_id)
        if key not in best or (row.send_at, order[row.kind]) > (best[key].send_at, order[best[key].kind]):
            best[key] = row
    keep = [r for r in rows if best[(r.child_id, r.item_id)] is r]
    return keep, [r for r in rows if best[(r.child_id, r.item_id)] is not r]


@dataclass
class _OutboxRun:
    """One outbox pass's memory: rows settled per push since its progress was shown, each push's doctor,
    and each doctor's pushes delivered today (read once, then counted)."""

    touched: dict[int, int] = field(default_factory=dict)
    doctor_of: dict[int, int | None] = field(default_factory=dict)
    delivered: dict[int, int] = field(default_factory=dict)


class Dispatcher:
    """Sends due reminders. `outbounds` by transport ("telegram", "console"); a family whose transport
    has none here is left pending for a process that has one."""

    def __init__(self, reminders: Reminders, outbounds: Mapping[str, Outbound], content: Callable[[], Content],
                 policy: Policy, *, wall: Clock, rate: float = RATE_PER_SECOND,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, claimer: str | None = None,
                 in_thread: bool = True) -> None:
        self.reminders = reminders
        # Visits and doctors' pushes: the same state machine, in the same database.
        self.outbox = Outbox(reminders.db)
        self.messages = OutboxMessages(self.outbox, lambda: self.content().renderer)
        self.wall = wall  # the real time, for claims and their lease (`run` may be given another moment)
        self.outbounds = dict(outbounds)
        self.content = content
        self.policy = policy
        self.limiter = AsyncLimiter(BURST, BURST / rate)
        self.sleep = sleep
        self.claimer = claimer or process_id()
        self.in_thread = in_thread
        self._lock = asyncio.Lock()

    async def _db(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        if self.in_thread:
            return await asyncio.to_thread(fn, *args, **kwargs)
        return fn(*args, **kwargs)

    async def _settle(self, fn: Callable[..., object], *args: object, **kwargs: object) -> None:
        """Write the outcome of a send. Another process may hold the database lock for longer than the
        busy timeout: the outcome is kept and written again rather than lost (a row left `sending`
        would be sent a second time once its lease ran out)."""
        for attempt in range(SETTLE_TRIES):
            try:
                await self._db(fn, *args, **kwargs)
                return
            except sqlite3.OperationalError:
                if attempt == SETTLE_TRIES - 1:
                    raise
                log.warning("database busy while recording a reminder's outcome; trying again")
                await self.sleep(1.0)

    async def run(self, now: dt.datetime) -> Counts:
        """Send everything due at `now` (timezone-aware), once. Overlapping calls in one process wait
        for each other; another process is kept apart by the claims."""
        async with self._lock:
            return await self._run(now)

    async def _run(self, now: dt.datetime) -> Counts:
        counts = Counts()
        if self.policy.quiet(now):
            counts.quiet = True
            return counts
        await self._db(self.reminders.release_stale, self.wall(), self.policy)
        counts.late = await self._db(self.reminders.expire_late, now, self.policy)
        handled: set[int] = set()  # families sent to (or left) in this run
        after: tuple[str, int] | None = None
        while True:
            rows = await self._db(self.reminders.due, now, BATCH, after)
            if not rows:
                await self._run_outbox(now, counts)
                return counts
            after = (rows[-1].next_at, rows[-1].id)
            for family_id in dict.fromkeys(r.family_id for r in rows):
                if family_id not in handled:
                    handled.add(family_id)
                    await self._family(family_id, now, counts)

    async def _family(self, family_id: int, now: dt.datetime, counts: Counts) -> None:
        families = self.reminders.families
        family = await self._db(families.by_id, family_id)
        outbound = self.outbounds.get(family.address.partition(":")[0]) if family is not None else None
        if family is None or outbound is None:
            counts.skipped += 1
            return
        # Every row of the family due now, not only those on this page: one message per family.
        rows = await self._db(self.reminders.due_for_family, family_id, now)
        claimed = await self._db(self.reminders.claim, [r.id for r in rows], self.claimer, now, self.wall())
        if not claimed:
            return
        keep, dropped = _supersede(claimed)
        await self._settle(self.reminders.finish, [r.id for r in dropped], self.claimer, "cancelled", now,
                           reason="superseded")
        children = {c.id: c for c in await self._db(families.children, family_id)}
        content = self.content()
        known = {i.id for i in content.schedules}
        # An item a new edition of the schedules dropped, or a child removed meanwhile: nothing to say.
        stale = [r for r in keep if r.item_id not in known or r.child_id not in children]
        if stale:
            await self._settle(self.reminders.finish, [r.id for r in stale], self.claimer, "cancelled", now,
                               reason="not in the plan")
            keep = [r for r in keep if r not in stale]
        if not keep:
            return
        ids = [r.id for r in keep]
        records = {c: await self._db(families.records, c) for c in {r.child_id for r in keep}}
        try:
            reply = compose(keep, children, content, now.astimezone(TZ).date(), records)
        except Exception as exc:  # a template broken by an edit must not leave the rows `sending`
            log.exception("could not compose a reminder message")
            await self._give_up(self.reminders, ids, now, f"compose: {type(exc).__name__}", counts)
            return
        first_try = min((r.first_try_at or now) for r in keep)
        await self.deliver(self.reminders, outbound, family.address, reply, ids, first_try,
                           max(r.attempts for r in keep), now, counts, family_id=family_id)

    async def deliver(self, table: Deliveries, outbound: Outbound, address: str, reply: Reply, ids: list[int],
                      first_try: dt.datetime, tries: int, now: dt.datetime, counts: Counts, *,
                      family_id: int | None = None) -> SendResult:
        """Send one message for claimed rows of `table` and settle them: sent; a 429 waited out; 5xx and
        network errors retried, then left pending with backoff, then failed after Policy.give_up; a 403
        pauses the family. Returns the last result (a Sent carries the message's id, for edits)."""
        failures = 0
        slept = 0.0  # real seconds waited on this message in this run (429s and backoff)
        while True:
            async with self.limiter:
                try:
                    result = await outbound.send(address, [reply])
                except Exception as exc:  # a transport bug must not leave rows in `sending`
                    log.exception("outbound send raised")
                    result = Failed(type(exc).__name__)
            if isinstance(result, Sent):
                await self._settle(table.finish, ids, self.claimer, "sent", now)
                counts.sent += 1
                counts.rows_sent += len(ids)
                return result
            if isinstance(result, Blocked):
                # The parent blocked the bot: pause the family (they /resume), keep the rows pending.
                if family_id is not None:
                    await self._settle(table.pause_family, family_id, True)
                await self._settle(table.finish, ids, self.claimer, "pending", now, reason="blocked")
                counts.blocked += 1
                return result
            waited = max(now - first_try, dt.timedelta(0)) + dt.timedelta(seconds=slept)
            if isinstance(result, RetryAfter):
                if waited + dt.timedelta(seconds=result.seconds) > self.policy.give_up:
                    await self._give_up(table, ids, now, "rate limited", counts)
                    return result
                counts.retried += 1
                slept += result.seconds
                await self.sleep(result.seconds)
                continue
            assert isinstance(result, Failed)
            failures += 1
            if result.permanent or waited >= self.policy.give_up:
                await self._give_up(table, ids, now, result.reason, counts)
                return result
            if failures >= TRIES_PER_RUN:
                # Later runs wait longer: 4, 8, 16… minutes by the rows' attempts so far.
                retry_at = now + min(dt.timedelta(minutes=2) * 2 ** min(tries, 6), self.policy.give_up)
                await self._settle(table.finish, ids, self.claimer, "pending", now,
                                   reason=result.reason, retry_at=retry_at)
                counts.retrying += 1
                return result
            counts.retried += 1
            slept += 0.5 * 2 ** (failures - 1)
            await self.sleep(0.5 * 2 ** (failures - 1))

    async def _run_outbox(self, now: dt.datetime, counts: Counts) -> None:
        """Visits, answers and pushes due now, one message per row; a push's progress message is edited
        in place as its rows are delivered, and once more with the final report."""
        outbox = self.outbox
        await self._db(outbox.release_stale, self.wall(), self.policy)
        counts.late += await self._db(outbox.expire_late, now, self.policy)
        run = _OutboxRun()
        touched = run.touched
        after: tuple[str, int] | None = None
        while True:
            rows = await self._db(outbox.due, now, BATCH, after)
            if not rows:
                break
            after = (rows[-1].next_at, rows[-1].id)
            for row in rows:
                await self._out_row(row, now, counts, run)
                if row.kind == "push" and touched.get(row.ref_id, 0) >= PROGRESS_EVERY:
                    await self._show_progress(row.ref_id)
                    touched[row.ref_id] = 0
        for push_id, unseen in touched.items():
            if unseen:  # rows settled since the last edit (Telegram refuses an edit that changes nothing)
                await self._show_progress(push_id)

    async def _out_row(self, row: OutRow, now: dt.datetime, counts: Counts, run: _OutboxRun) -> None:
        outbox = self.outbox
        outbound = self.outbounds.get(row.address.partition(":")[0])
        if outbound is None:
            counts.skipped += 1
            return
        if not await self._db(outbox.claim_ids, [row.id], self.claimer, now, self.wall()):
            return
        doctor_id: int | None = None
        if row.kind == "push":
            run.touched[row.ref_id] = run.touched.get(row.ref_id, 0) + 1
            if row.ref_id not in run.doctor_of:  # read once per push and run, not once per family
                push = await self._db(outbox.push, row.ref_id)
                run.doctor_of[row.ref_id] = push.doctor_id if push is not None else None
            doctor_id = run.doctor_of[row.ref_id]
            if doctor_id is not None and doctor_id not in run.delivered:
                run.delivered[doctor_id] = await self._db(outbox.delivered_today, doctor_id, now)
            if doctor_id is not None and run.delivered[doctor_id] >= self.policy.push_daily_limit:
                await self._settle(outbox.finish, [row.id], self.claimer, "cancelled", now, reason="daily limit")
                return
        try:
            reply = await self._db(self.messages.compose, row, now)
        except Exception as exc:  # a template broken by an edit must not leave the row `sending`
            log.exception("could not compose an outbox message")
            await self._give_up(outbox, [row.id], now, f"compose: {type(exc).__name__}", counts)
            return
        if reply is None:
            await self._settle(outbox.finish, [row.id], self.claimer, "cancelled", now, reason="nothing to say")
            return
        result = await self.deliver(outbox, outbound, row.address, reply, [row.id], row.first_try_at or now,
                                    row.attempts + 1, now, counts, family_id=row.family_id)
        if doctor_id is not None and isinstance(result, Sent):
            run.delivered[doctor_id] += 1
        if row.kind == "push_progress" and isinstance(result, Sent) and result.message_id:
            await self._settle(outbox.set_progress_message, row.ref_id, result.message_id)

    async def _show_progress(self, push_id: int) -> None:
        push = await self._db(self.outbox.push, push_id)
        outbound = self.outbounds.get(push.progress_address.partition(":")[0]) if push is not None else None
        if push is None or outbound is None or not push.progress_message:
            return
        reply = await self._db(self.messages.progress, push_id)
        if reply is None:
            return
        async with self.limiter:
            try:
                await outbound.edit(push.progress_address, push.progress_message, reply)
            except Exception:  # the report is a courtesy: a failed edit loses no message to a family
                log.exception("could not update a push's progress message")

    async def _give_up(self, table: Deliveries, ids: list[int], now: dt.datetime, reason: str,
                       counts: Counts) -> None:
        await self._settle(table.finish, ids, self.claimer, "failed", now, reason=reason[:200])
        counts.failed += 1
        log.warning("gave up on a reminder message (%d items): %s", len(ids), reason[:200])
