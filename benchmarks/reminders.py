"""Reminders at scale: the dispatcher's due selection over 1,000,000 reminder rows (with the
`reminders_due` index, next to the same call on a copy of the database without it), and sending due
reminders through the real Telegram outbound to a fake Bot API (aiohttp, in a child process) that
answers 429 like Telegram when more than 30 messages arrive in any sliding second.

    python benchmarks/reminders.py [--rows 1000000] [--runs 200] [--families 600] [--skip-select] [--skip-send]

Targets (issue #9): `Reminders.due(now, 500)` over 1,000,000 rows ≤ 20 ms; sending sustains ≥ 28
messages/s with no 429. The selection's database is a real SQLite file made by `Store.open` (all the
migrations), filled with raw `executemany`: rows / 125 families (8,000 at 1,000,000 rows), about 100
rows per child as the planner makes them (`reminders.wanted` over each child's plan, births spread
over 18 months), the past ones sent, cancelled or failed, the future ones pending, and a few hundred
pending ones due now. Sending uses `--families` families (registered, a child added and planned with
`Families` and `Reminders.sync_child` the day before), each with one message due; it runs as shipped,
then with the dispatcher's limiter swapped on the instance for the deeper buckets of WHAT_IF, then with
no limiter anywhere (the code's own capacity).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import math
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiolimiter import AsyncLimiter

from bot.app import build_application
from bot.outbound import TelegramOutbound
from tests.fakes import BOT_USER, sent_message
from zjcare_guide.children import Child, Families
from zjcare_guide.clock import TZ, system_clock
from zjcare_guide.config import Config
from zjcare_guide.content import DEFAULT_CONTENT_DIR
from zjcare_guide.conversation import Conversation
from zjcare_guide.dispatcher import BURST, RATE_PER_SECOND, Content, Dispatcher
from zjcare_guide.guide import Guide, GuideHolder
from zjcare_guide.outbound import SendResult
from zjcare_guide.reminders import Policy, Reminders, ts, wanted
from zjcare_guide.replies import Reply
from zjcare_guide.schedule import ScheduleItem, plan
from zjcare_guide.store import Store

NOW = dt.datetime(2026, 12, 1, 9, 5, tzinfo=TZ)  # five minutes after today's reminders were due
POLICY = Policy()
TOKEN = "123456:BENCH"
LIMIT_PER_SECOND = 30  # what the fake Bot API lets through in any sliding second, like Telegram
ROWS_PER_FAMILY = 125
BIRTH_DAYS = 548  # children born in the last 18 months: most of their reminders are still ahead
DUE_NOW = 300  # pending rows due at NOW, of the past two days (some of them retries)
# For comparison: a limiter one message deep (the first version, AsyncLimiter(1, 1 / 28)) loses every
# late wake-up of the event loop; the shipped one is BURST deep at RATE_PER_SECOND.
WHAT_IF = ((28.0, 1.0),)


def percentile(samples: Sequence[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(len(s) * q))]


# ---------------------------------------------------------------- the fake Bot API (child process)


class FakeTelegram:
    """Answers getMe and sendMessage at /bot{token}/{method}; lets at most `limit` sendMessage through
    in any sliding second and answers the rest 429 with parameters.retry_after, as Telegram does.
    /bench/reset?limit=N starts a new measurement (0: no limit), /bench/stats reports it."""

    def __init__(self) -> None:
        self.limit = LIMIT_PER_SECOND
        self.reset(self.limit)

    def reset(self, limit: int) -> None:
        self.limit = limit
        self.window: deque[float] = deque()  # accepted sendMessage in the last second
        self.accepted: list[float] = []
        self.too_many = 0
        self.other: dict[str, int] = {}

    async def handle(self, request: Any) -> Any:
        from aiohttp import web

        method = request.match_info["method"]
        if request.match_info["token"] != TOKEN:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        if request.content_type == "application/json":
            params = dict(await request.json())
        else:
            params = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        if method == "getMe":
            return web.json_response({"ok": True, "result": BOT_USER})
        if method != "sendMessage":
            self.other[method] = self.other.get(method, 0) + 1
            return web.json_response({"ok": True, "result": True})
        now = time.monotonic()
        while self.window and self.window[0] <= now - 1.0:
            self.window.popleft()
        if self.limit and len(self.window) >= self.limit:
            self.too_many += 1
            retry_after = max(1, math.ceil(self.window[0] + 1.0 - now))
            return web.json_response({"ok": False, "error_code": 429, "parameters": {"retry_after": retry_after},
                                      "description": f"Too Many Requests: retry after {retry_after}"}, status=429)
        self.window.append(now)
        self.accepted.append(now)
        return web.json_response({"ok": True, "result": sent_message("sendMessage", params, len(self.accepted))})

    async def control(self, request: Any) -> Any:
        from aiohttp import web

        if request.match_info["what"] == "reset":
            self.reset(int(request.query.get("limit", LIMIT_PER_SECOND)))
            return web.json_response({"ok": True})
        return web.json_response({"accepted": self.accepted, "too_many": self.too_many, "other": self.other})


def serve_fake() -> None:
    """Child process: serve the fake on 127.0.0.1, print the port, run until terminated."""
    from aiohttp import web

    async def serve() -> None:
        fake = FakeTelegram()
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", fake.handle)
        app.router.add_get("/bench/{what}", fake.control)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print(site._server.sockets[0].getsockname()[1], flush=True)  # type: ignore[union-attr]
        await asyncio.Event().wait()

    asyncio.run(serve())


# ---------------------------------------------------------------- 1. due selection over 1,000,000 rows


def child_plan(schedules: Sequence[ScheduleItem], birth: dt.date) -> list[tuple[str, str, str, str, dt.datetime]]:
    """The reminder rows the planner wants for a child born on `birth` (nothing done, nothing muted)."""
    child = Child(0, 0, "宝宝", birth, "", False, None)
    items = plan(schedules, birth, {}, today=NOW.date())
    return [(w.item_id, w.kind, w.item_due.isoformat(), ts(w.send_at), w.send_at)
            for w in wanted(child, items, set(), POLICY)]


def fill(db: sqlite3.Connection, schedules: Sequence[ScheduleItem], rows: int, seed: int = 9) -> dict[str, int]:
    """Families, children and `rows` reminder rows, inserted with executemany in one transaction."""
    rng = random.Random(seed)
    families = max(1, rows // ROWS_PER_FAMILY)
    first_day = NOW.date() - dt.timedelta(days=BIRTH_DAYS)
    plans = {d: child_plan(schedules, first_day + dt.timedelta(days=d)) for d in range(BIRTH_DAYS)}
    # Children (a second child in some families) until their planned rows reach `rows`.
    children: list[tuple[int, int, int]] = []  # (child id, family id, birth offset)
    total = 0
    while total < rows:
        cid = len(children) + 1
        fid = cid if cid <= families else rng.randint(1, families)
        offset = rng.randrange(BIRTH_DAYS)
        children.append((cid, fid, offset))
        total += len(plans[offset])
    window_start, now_s = ts(NOW - POLICY.max_late), ts(NOW)
    in_window = sum(1 for _, _, o in children for p in plans[o] if window_start <= p[3] <= now_s)
    due_p = min(1.0, DUE_NOW / max(1, in_window))
    created = ts(NOW - dt.timedelta(days=800))
    paused = set(rng.sample(range(1, families + 1), families // 100))  # 1% paused (blocked or /pause)

    def reminder_rows() -> Iterator[tuple[object, ...]]:
        left = rows
        for cid, fid, offset in children:
            for item_id, kind, item_due, send_s, send_at in plans[offset]:
                if left == 0:
                    return
                left -= 1
                if send_s > now_s:  # the future: pending, a few cancelled (muted, done early, replanned)
                    if rng.random() < 0.03:
                        yield (fid, cid, item_id, kind, item_due, send_s, send_s, "cancelled", 0, None, None,
                               rng.choice(["muted", "replanned"]))
                    else:
                        yield (fid, cid, item_id, kind, item_due, send_s, send_s, "pending", 0, None, None, "")
                    continue
                if send_s >= window_start and rng.random() < due_p:  # due now; a fifth are retries
                    retry = rng.random() < 0.2
                    next_s = ts(NOW - dt.timedelta(minutes=rng.randint(1, 30))) if retry else send_s
                    yield (fid, cid, item_id, kind, item_due, send_s, next_s, "pending", int(retry),
                           send_s if retry else None, None, "network: Bad Gateway" if retry else "")
                    continue
                sent_s = ts(send_at + dt.timedelta(seconds=rng.randint(1, 600)))
                r = rng.random()
                if r < 0.87:
                    yield (fid, cid, item_id, kind, item_due, send_s, send_s, "sent", 1, send_s, sent_s, "")
                elif r < 0.985:
                    yield (fid, cid, item_id, kind, item_due, send_s, send_s, "cancelled", 0, None, None,
                           rng.choice(["superseded", "late", "muted", "replanned", "snoozed"]))
                else:
                    yield (fid, cid, item_id, kind, item_due, send_s, send_s, "failed", 3, send_s, None,
                           "network: Bad Gateway")

    with db:
        db.executemany("insert into families (id, key, address, consent_at, paused, created) values (?, ?, ?, ?, ?, ?)",
                       [(f, f"telegram:{10_000 + f}", f"telegram:{10_000 + f}", created, int(f in paused), created)
                        for f in range(1, families + 1)])
        db.executemany("insert into children (id, family_id, nickname, birth, sex, preterm, discharge, created) "
                       "values (?, ?, ?, ?, ?, 0, null, ?)",
                       [(c, f, f"宝宝{c}", (first_day + dt.timedelta(days=o)).isoformat(), rng.choice("fm"), created)
                        for c, f, o in children])
        db.executemany("insert into reminders (family_id, child_id, item_id, kind, item_due, send_at, next_at, "
                       "state, attempts, first_try_at, sent_at, reason) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       reminder_rows())
    return {"families": families, "children": len(children)}


def traced_sql(db: sqlite3.Connection, call: Any) -> str:
    """The SQL text (parameters bound) of the one select `call` makes."""
    seen: list[str] = []
    db.set_trace_callback(seen.append)
    try:
        call()
    finally:
        db.set_trace_callback(None)
    return next(s for s in seen if s.lstrip().lower().startswith("select"))


def query_plan(db: sqlite3.Connection, sql: str) -> list[str]:
    return [str(r[3]) for r in db.execute("explain query plan " + sql)]


def timed(call: Any, runs: int) -> list[float]:
    call()  # warm the page cache and the statement cache
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        out.append((time.perf_counter() - start) * 1000)
    return out


def select_benchmark(tmp: Path, schedules: Sequence[ScheduleItem], rows: int, runs: int) -> None:
    path = tmp / "reminders.db"
    store = Store.open(path)
    start = time.perf_counter()
    made = fill(store.db.conn, schedules, rows)
    filled = time.perf_counter() - start
    db = store.db.conn
    mix = dict(db.execute("select state, count(*) from reminders group by state").fetchall())
    mb = path.stat().st_size / 1e6 + (path.with_name(path.name + "-wal").stat().st_size / 1e6
                                      if path.with_name(path.name + "-wal").exists() else 0)
    print(f"database: {made['families']:,} families, {made['children']:,} children, "
          f"{sum(mix.values()):,} reminder rows ({', '.join(f'{k} {v:,}' for k, v in sorted(mix.items()))}); "
          f"filled in {filled:.1f} s, {mb:.0f} MB")
    book = Reminders(store.db)
    due = book.due(NOW, 500)
    assert due and all(r.state == "pending" for r in due)
    sql = traced_sql(db, lambda: book.due(NOW, 500))
    print("plan of Reminders.due:   " + " | ".join(query_plan(db, sql)))
    ours = timed(lambda: book.due(NOW, 500), runs)
    o50, o99 = statistics.median(ours), percentile(ours, 0.99)
    print(f"Reminders.due(now, 500) → {len(due)} rows due, {runs} runs: p50 {o50:.2f} ms, p99 {o99:.2f} ms "
          f"(target ≤ 20 ms: {'met' if o99 <= 20 else 'NOT met'})")
    if len(due) > 100:  # the dispatcher pages with `after`: the second page of 100 costs the same
        after = (due[99].next_at, due[99].id)
        page = timed(lambda: book.due(NOW, 100, after), runs)
        assert [r.id for r in book.due(NOW, 100, after)] == [r.id for r in due[100:200]]
        page_sql = traced_sql(db, lambda: book.due(NOW, 100, after))
        print(f"second page, due(now, 100, after=the 100th row): p50 {statistics.median(page):.2f} ms, "
              f"p99 {percentile(page, 0.99):.2f} ms; plan: " + " | ".join(query_plan(db, page_sql)))
    tick = timed(lambda: (book.release_stale(NOW, POLICY), book.expire_late(NOW, POLICY), book.due(NOW, 500)),
                 max(5, runs // 4))
    print(f"a dispatcher tick's reads (release_stale + expire_late + due): p50 {statistics.median(tick):.2f} ms")

    db.execute("pragma wal_checkpoint(truncate)")
    bare_path = tmp / "reminders-no-index.db"
    shutil.copyfile(path, bare_path)
    bare = Store.open(bare_path)
    bare.db.conn.execute("drop index reminders_due")
    bare_book = Reminders(bare.db)
    assert [r.id for r in bare_book.due(NOW, 500)] == [r.id for r in due]
    print("plan without the index:  " + " | ".join(query_plan(bare.db.conn, sql)))
    plain = timed(lambda: bare_book.due(NOW, 500), max(5, runs // 10))
    p50 = statistics.median(plain)
    print(f"same call without reminders_due, {len(plain)} runs: p50 {p50:.1f} ms, p99 {percentile(plain, 0.99):.1f} ms "
          f"→ the index is {p50 / o50:.0f}× faster at the median")
    scan_sql = sql.replace("from reminders r ", "from reminders r not indexed ", 1)
    scan = timed(lambda: db.execute(scan_sql).fetchall(), max(5, runs // 10))
    print(f"same select forced to a full table scan (not indexed): p50 {statistics.median(scan):.1f} ms "
          f"→ {statistics.median(scan) / o50:.0f}×")
    start = time.perf_counter()
    book.status()
    took = (time.perf_counter() - start) * 1000
    status_sql = traced_sql(db, book.status)
    print(f"(for reference: `reminders status`, a count by state and kind, takes {took:.0f} ms; plan: "
          + " | ".join(query_plan(db, status_sql)) + ")")


# ---------------------------------------------------------------- 2. sending at Telegram's rate


class TimedOutbound:
    """The Telegram outbound, timing each send (the HTTP round trip through PTB)."""

    transport = "telegram"

    def __init__(self, inner: TelegramOutbound) -> None:
        self.inner = inner
        self.seconds: list[float] = []

    async def send(self, address: str, replies: Sequence[Reply]) -> SendResult:
        start = time.perf_counter()
        result = await self.inner.send(address, replies)
        self.seconds.append(time.perf_counter() - start)
        return result


def sending_families(path: Path, guide: Guide, count: int) -> int:
    """`count` families, each with a child planned the day before so that one message is due at NOW.
    Returns the reminder rows due."""
    store = Store.open(path)
    families = Families(store.db)
    book = Reminders(store.db, families)
    schedules = guide.library.schedules
    planned_at = NOW - dt.timedelta(days=1)
    # Birth days whose plan has something due today at 09:00 (various items, 1–3 in a message).
    today = ts(POLICY.at(NOW.date()))
    births = [b for b in (NOW.date() - dt.timedelta(days=d) for d in range(1, 1100))
              if any(p[3] == today for p in child_plan(schedules, b))]
    for i in range(count):
        chat = f"telegram:{200_000 + i}"
        family = families.consent(chat, chat, planned_at)
        child = families.add_child(family.id, f"宝宝{i}", births[i % len(births)], now=planned_at)
        book.sync_child(child, schedules, POLICY, planned_at)
    return len(book.due(NOW, 1_000_000))


async def fake_request(base: str, what: str, **query: int) -> dict[str, Any]:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(f"{base}/bench/{what}", params=query) as resp:
        return dict(await resp.json())


async def send_run(tmp: Path, name: str, guide: Guide, families: int, base: str, limited: bool,
                   what_if: tuple[float, float] | None = None) -> dict[str, Any]:
    path = tmp / f"{name}.db"
    due_rows = sending_families(path, guide, families)
    await fake_request(base, "reset", limit=LIMIT_PER_SECOND if limited else 0)
    config = Config(token=TOKEN, api_base_url=f"{base}/bot", db_path=path, content_dir=DEFAULT_CONTENT_DIR)
    # As `zjcare-guide reminders send-due` does (bot/cli.py _send_due); PTB's own limiter on when limited.
    app = build_application(config, GuideHolder(guide), None, rate_limit=limited)
    content = Content(guide.library.schedules, guide.renderer)
    async with app:
        router = Conversation(guide, clock=lambda: NOW).router
        outbound = TimedOutbound(TelegramOutbound(app.bot, router))
        dispatcher = Dispatcher(Reminders(Store.open(path).db), {"telegram": outbound}, lambda: content,
                                config.policy, wall=system_clock, rate=RATE_PER_SECOND if limited else 1e6)
        if what_if:  # (rate, depth): a bucket deeper than the dispatcher's one message, maybe a higher rate
            rate, depth = what_if
            dispatcher.limiter = AsyncLimiter(depth, depth / rate)
        start = time.perf_counter()
        counts = await dispatcher.run(NOW)
        elapsed = time.perf_counter() - start
    stats = await fake_request(base, "stats")
    times = stats["accepted"]
    most = max((j - i for i, j in zip(range(len(times)), _window_ends(times), strict=True)), default=0)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return {"due_rows": due_rows, "counts": counts, "elapsed": elapsed, "accepted": len(times),
            "too_many": stats["too_many"], "server_rate": (len(times) - 1) / (times[-1] - times[0]),
            "most_in_a_second": most, "min_gap_ms": min(gaps) * 1000,
            "send_ms": statistics.median(outbound.seconds) * 1000}


def _window_ends(times: Sequence[float]) -> Iterator[int]:
    """For each accepted message, the index just past the last one accepted less than 1 s after it."""
    j = 0
    for t in times:
        while j < len(times) and times[j] < t + 1.0:
            j += 1
        yield j


def send_benchmark(tmp: Path, guide: Guide, families: int) -> None:
    proc = subprocess.Popen([sys.executable, __file__, "--fake-api"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        base = f"http://127.0.0.1:{int(proc.stdout.readline())}"
        r = asyncio.run(send_run(tmp, "send", guide, families, base, limited=True))
        c = r["counts"]
        rate = c.sent / r["elapsed"]
        print(f"sending {c.sent:,} messages ({c.rows_sent:,} of {r['due_rows']:,} due rows; failed {c.failed}, "
              f"to retry {c.retrying}, retried {c.retried}) to a fake Bot API that allows {LIMIT_PER_SECOND}/s "
              f"in any sliding second, dispatcher at {RATE_PER_SECOND:g}/s (bucket {BURST:g}) "
              "plus PTB's AIORateLimiter:")
        print(f"  {rate:.2f} messages/s over the run ({r['elapsed']:.2f} s), {r['server_rate']:.2f}/s between the "
              f"first and last message the fake accepted; at most {r['most_in_a_second']} in any second, closest "
              f"two {r['min_gap_ms']:.1f} ms apart; one send (HTTP round trip through PTB) p50 {r['send_ms']:.1f} ms")
        print(f"  429s answered: {r['too_many']} (targets ≥ 28 messages/s: {'met' if rate >= 28 else 'NOT met'}; "
              f"no 429: {'met' if r['too_many'] == 0 else 'NOT met'})")
        for rate, depth in WHAT_IF:
            w = asyncio.run(send_run(tmp, f"send-{rate}-{depth}", guide, families, base, limited=True,
                                     what_if=(rate, depth)))
            wc = w["counts"]
            print(f"what-if, the dispatcher's limiter as AsyncLimiter({depth:g}, {depth:g} / {rate:g}) (shipped: "
                  f"AsyncLimiter({BURST:g}, {BURST:g} / {RATE_PER_SECOND:g})): "
                  f"{wc.sent / w['elapsed']:.2f} messages/s over the run, "
                  f"{w['server_rate']:.2f}/s first to last, at most {w['most_in_a_second']} in any second, "
                  f"429s: {w['too_many']}")
        u = asyncio.run(send_run(tmp, "send-unlimited", guide, families, base, limited=False))
        uc = u["counts"]
        print(f"headroom, no limiter anywhere (fake without limit, PTB without AIORateLimiter, dispatcher rate 1e6): "
              f"{uc.sent / u['elapsed']:.0f} messages/s ({u['elapsed'] / max(1, uc.sent) * 1000:.1f} ms a message, "
              f"of which the send {u['send_ms']:.1f} ms)")
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000, help="reminder rows for the selection")
    parser.add_argument("--runs", type=int, default=200, help="timed Reminders.due calls")
    parser.add_argument("--families", type=int, default=600, help="families (messages) for the sending test")
    parser.add_argument("--skip-select", action="store_true")
    parser.add_argument("--skip-send", action="store_true")
    parser.add_argument("--fake-api", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fake_api:
        serve_fake()
        return
    guide = Guide.from_dir(DEFAULT_CONTENT_DIR, NOW.date())
    print(f"now = {NOW.isoformat()}; SQLite {sqlite3.sqlite_version}, Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as d:
        if not args.skip_select:
            select_benchmark(Path(d), guide.library.schedules, args.rows, args.runs)
        if not args.skip_send:
            send_benchmark(Path(d), guide, args.families)


if __name__ == "__main__":
    main()
