"""Telegram Bot API faults end to end: `zjcare-guide run` and `zjcare-guide reminders send-due` as
subprocesses against the fake Bot API on 127.0.0.1, which answers some calls with bursts of 429
(retry_after), 500 and 502, drops connections (before the call is processed: nothing delivered; or
after: delivered, its answer lost) and answers slowly (within PTB's read timeout, or past it: delivered,
the answer lost too).

1. Answering: 30 parents at a time ask 4 questions each (one a danger sign), one after the other as a
   parent waits for the answer, while the faults are injected; per scenario every answer arrives, none
   twice except after a processed-then-dropped call, no apology, and the bot still answers afterwards.
2. A reminder batch and a doctor's push, sent by one `send-due` run with the same fault mix, then a
   second run for what was left pending: sent / retried / duplicated / lost exactly against the
   database rows and what the fake received.
3. A 1,000-reminder batch killed with SIGKILL at 20 random points and restarted each time: every
   reminder delivered, each row sent, a message delivered twice only where its row was `sending`
   (in flight) at a kill and the fake had it already.

Each test prints its figures (and the seed: ZJCARE_FAULT_SEED=<seed> repeats its random choices; the
timing of a kill is the machine's). Reproduce: `.venv/bin/pytest -q -s tests/test_faults_e2e.py`."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.telegram_html import split_html
from zjcare_guide.children import Families
from zjcare_guide.clock import TZ, system_clock
from zjcare_guide.content import DEFAULT_CONTENT_DIR
from zjcare_guide.conversation import Conversation
from zjcare_guide.doctors import Doctors
from zjcare_guide.guide import Guide
from zjcare_guide.identity import Actor
from zjcare_guide.outbox import Outbox
from zjcare_guide.replies import Session, Text
from zjcare_guide.store import Store

from .conftest import command
from .fake_bot_api import (
    BAD_GATEWAY,
    DELIVERED_THEN_DROPPED,
    DROPPED,
    SERVER_ERROR,
    FakeBotApi,
    Scripted,
    Slow,
    too_many_requests,
)
from .fakes import message
from .test_doctors_e2e import report
from .test_reminders_e2e import environment, query, register_families, send_due, send_due_args

SEED = int(os.environ.get("ZJCARE_FAULT_SEED", "20261201"))
READ_TIMEOUT = 5.0  # PTB's default: an answer slower than this is lost to the bot (TimedOut)
TOO_MANY = too_many_requests(1)
SLOW = Slow(1.5)  # slow, answered within the read timeout: the call goes through
TOO_SLOW = Slow(READ_TIMEOUT + 1.5)  # delivered, the answer comes after the bot gave up on it


def through(pattern: Sequence[Scripted]) -> list[Scripted | None]:
    """A message's calls: the pattern's, then the one that goes through (None, unless the pattern ends
    with a slow one that does)."""
    return [*pattern] if pattern and pattern[-1] == SLOW else [*pattern, None]


def failed(outcome: str) -> bool:
    """A call the sender saw fail and tries again (429s aside: the rate limiter waits those out)."""
    return outcome in ("500", "502", "dropped", "delivered-dropped") or processed_then_lost(outcome)


def processed_then_lost(outcome: str) -> bool:
    """Delivered, but the sender never learnt it: its retry delivers the message a second time."""
    return outcome == "delivered-dropped" or (outcome.startswith("slow ") and float(outcome[5:]) > READ_TIMEOUT)


def rate_limiter_give_ups(outcomes: Iterable[tuple[int, str]]) -> int:
    """PTB's AIORateLimiter(max_retries=3) raises RetryAfter on the 4th 429 in a row of one call: in a
    serial sender's stream of calls to a chat, every 4 consecutive 429s are one give-up."""
    runs: Counter[int] = Counter()
    give_ups = 0
    for chat, outcome in outcomes:
        if outcome == "429":
            runs[chat] += 1
            if runs[chat] == 4:
                give_ups, runs[chat] = give_ups + 1, 0
        else:
            runs[chat] = 0
    return give_ups


def kinds(outcomes: Iterable[str]) -> str:
    """'500×3 502×1 …' of the faults among outcomes."""
    tally = Counter("slow>timeout" if processed_then_lost(o) and o != "delivered-dropped" else
                    "slow" if o.startswith("slow") else o for o in outcomes if o != "ok")
    return " ".join(f"{k}×{n}" for k, n in sorted(tally.items())) or "none"


async def until(condition: Callable[[], bool], timeout: float) -> bool:
    """Wait (polling) until `condition()` holds or `timeout` seconds passed; whether it held."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def start_bot(env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    """`zjcare-guide run`, its log to a file (a pipe nobody reads would fill and stall the bot)."""
    with log.open("wb") as err:
        return await asyncio.create_subprocess_exec(*command(), "run", env=env, stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=err)


# ---------------------------------------------------------------- 1. answering under faults

QUESTIONS = ("宝宝湿疹怎么护理", "宝宝抽搐了叫不醒", "6个月宝宝发烧38.5度怎么办", "辅食什么时候加")
CHATS_PER_SCENARIO = 30


@dataclass(frozen=True)
class Scenario:
    name: str
    # For each answer message, one of these is drawn: the calls that fail before it goes through.
    patterns: tuple[tuple[Scripted, ...], ...]
    # 429 bursts: (after this many answers of the scenario are delivered, seconds every call gets a 429).
    bursts: tuple[tuple[int, float], ...] = ()


PLAIN = ((),) * 6  # most messages go through at once
SCENARIOS = (
    # A burst window of 2 s gives a call up to 2 429s (retried after 1.1 s); two windows close together
    # and a scripted 429 can give it 4, and 4 scripted 429s always do: AIORateLimiter(max_retries=3)
    # then gives up, and send_to_chat waits retry_after and tries again.
    Scenario("429 bursts", (*PLAIN, (TOO_MANY,), (TOO_MANY,) * 4), bursts=((10, 2.0), (80, 2.0))),
    Scenario("500/502", (*PLAIN, (SERVER_ERROR,), (BAD_GATEWAY,), (SERVER_ERROR, BAD_GATEWAY),
                         (BAD_GATEWAY, SERVER_ERROR))),
    Scenario("dropped connections", (*PLAIN, (DROPPED,), (DELIVERED_THEN_DROPPED,), (DROPPED, DELIVERED_THEN_DROPPED),
                                     (DELIVERED_THEN_DROPPED, DROPPED))),
    Scenario("slow responses", (*PLAIN, (SLOW,), (SLOW,), (TOO_SLOW,))),
    Scenario("all at once", (*PLAIN, (TOO_MANY,), (SERVER_ERROR,), (BAD_GATEWAY, DELIVERED_THEN_DROPPED), (DROPPED,),
                             (DELIVERED_THEN_DROPPED,), (SLOW,), (TOO_SLOW,)), bursts=((40, 2.0),)),
)


def script_for(rng: random.Random, scenario: Scenario, messages: int) -> list[Scripted | None]:
    """One chat's script: for each of its messages a pattern drawn from the scenario, then the call that
    goes through. At most one slow pattern (past the read timeout, or 4 429s) per chat, to keep
    the test's time down."""
    script: list[Scripted | None] = []
    costly = False
    for _ in range(messages):
        pattern = rng.choice(scenario.patterns)
        if TOO_SLOW in pattern or pattern.count(TOO_MANY) >= 4:
            pattern, costly = (() if costly else pattern), True
        script += through(pattern)
    return script


def expected_answers(db: Path) -> list[list[str]]:
    """What the bot says to QUESTIONS asked in a row by a new parent: the texts of its messages, per
    question (the conversation itself, in process, on its own database)."""
    guide = Guide.from_dir(DEFAULT_CONTENT_DIR, system_clock().date())
    conversation = Conversation(guide, clock=system_clock, store=Store.open(db), bot_username="zjcare_test_bot")
    session = Session()
    out = []
    for question in QUESTIONS:
        replies = conversation.safe_handle(Text(question, actor=Actor("telegram", "1", "1")), session)
        assert all(r.photo is None and r.venue is None for r in replies)
        out.append([chunk for r in replies for chunk in split_html(r.text)])
    return out


def parent(chat: int) -> dict[str, Any]:
    return {"id": chat, "is_bot": False, "first_name": "家长", "language_code": "zh-hans"}


def texts_to(api: FakeBotApi, chat: int) -> Counter[str]:
    return Counter(str(p.get("text")) for p in api.sent_to(chat))


async def ask(api: FakeBotApi, chat: int, questions: Sequence[str], answers: Sequence[Sequence[str]],
              patience: float) -> None:
    """A parent asks questions one after the other, each once the answer to the one before arrived (or
    `patience` seconds passed without it)."""
    awaited: Counter[str] = Counter()

    def answered() -> bool:
        return not awaited - texts_to(api, chat)

    for question, texts in zip(questions, answers, strict=True):
        api.push(message(question, chat_id=chat, user=parent(chat)))
        awaited.update(texts)
        await until(answered, patience)


@dataclass
class Figures:
    expected: int = 0
    delivered: int = 0  # expected messages that arrived (at least once)
    duplicated: int = 0  # arrivals beyond the first of an expected message
    lost: int = 0
    unexpected: int = 0  # anything else (an apology after a failed handler)
    retries: int = 0  # calls send_to_chat made again: after a failed call, or a give-up of the rate limiter
    failed_calls: int = 0  # 5xx, dropped connections, timeouts
    give_ups: int = 0  # 4 429s in a row for one call: AIORateLimiter(max_retries=3) gave up
    waits: int = 0  # 429s, waited out by the rate limiter
    processed_then_lost: int = 0  # calls delivered whose answer was lost (dropped after, or too slow)
    faults: str = ""


def answer_figures(api: FakeBotApi, chats: Sequence[int], answers: Sequence[Sequence[str]]) -> Figures:
    want = Counter(text for texts in answers for text in texts)
    f = Figures()
    for chat in chats:
        got = texts_to(api, chat)
        f.expected += want.total()
        f.delivered += sum(min(n, got[t]) for t, n in want.items())
        f.duplicated += sum(max(0, got[t] - n) for t, n in want.items())
        f.unexpected += sum(n for t, n in got.items() if t not in want)
    f.lost = f.expected - f.delivered
    calls = [(c, o) for c, o in api.outcomes if c in set(chats)]
    outcomes = [o for _, o in calls]
    f.failed_calls = sum(failed(o) for o in outcomes)
    f.give_ups = rate_limiter_give_ups(calls)  # a chat's calls are made one at a time (BotState.chat_lock)
    f.retries = f.failed_calls + f.give_ups
    f.waits = outcomes.count("429")
    f.processed_then_lost = sum(processed_then_lost(o) for o in outcomes)
    f.faults = kinds(outcomes)
    return f


async def test_answering_through_429_bursts_5xx_dropped_connections_and_slow_answers(
        api: FakeBotApi, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    print(f"\nseed {SEED}")
    env = environment(api, tmp_path)
    log = tmp_path / "bot.log"
    answers = expected_answers(tmp_path / "expected.db")
    per_chat = sum(len(texts) for texts in answers)
    assert len(answers[1]) >= 2 and "120" in answers[1][0]  # the danger sign: the 🚨 message, then the article

    proc = await start_bot(env, log)
    try:
        # Without faults first: the bot says what the conversation says (the expectation is right).
        control = 70_000
        await ask(api, control, QUESTIONS, answers, patience=30)
        assert texts_to(api, control) == Counter(t for texts in answers for t in texts)

        results: list[tuple[Scenario, Figures, bool]] = []
        for n, scenario in enumerate(SCENARIOS):
            chats = [71_000 + 100 * n + i for i in range(CHATS_PER_SCENARIO)]
            for chat in chats:
                api.fail(*script_for(rng, scenario, per_chat), chat_id=chat)
            before = len(api.sent)
            for after, seconds in scenario.bursts:
                api.throttle(seconds, after=before + after)
            started = time.monotonic()
            await asyncio.gather(*(ask(api, chat, QUESTIONS, answers, patience=20) for chat in chats))
            # Every scripted answer consumed: no call of the scenario is still to come (asserted below,
            # after the figures of every scenario are printed).
            settled = await until(lambda: not any(api.chat_faults.values()), 10)
            api.chat_faults.clear()
            elapsed = time.monotonic() - started
            figures = answer_figures(api, chats, answers)
            results.append((scenario, figures, settled))
            print(f"answering, {scenario.name}: {len(chats)} chats × {len(QUESTIONS)} questions; answers expected "
                  f"{figures.expected}, delivered {figures.delivered}, duplicated {figures.duplicated}, lost "
                  f"{figures.lost}, other messages {figures.unexpected}; retries {figures.retries} "
                  f"({figures.failed_calls} failed calls, {figures.give_ups} give-ups of the rate limiter), "
                  f"429s {figures.waits}; "
                  f"processed-then-dropped {figures.processed_then_lost}; faults "
                  f"{figures.faults}; {elapsed:.1f} s")

        assert proc.returncode is None  # still running
        final = 79_999
        await ask(api, final, QUESTIONS[1:2], answers[1:2], patience=30)
        assert texts_to(api, final) == Counter(answers[1])
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), timeout=30)
    logged = log.read_text(encoding="utf-8", errors="replace")
    assert proc.returncode == 0, logged[-2000:]

    for scenario, f, settled in results:
        assert settled, f"{scenario.name}: calls the script expected were never made"
        assert (f.lost, f.unexpected) == (0, 0), (scenario.name, f)
        assert f.delivered == f.expected == CHATS_PER_SCENARIO * per_chat
        # A message goes twice only when the fake delivered it and its answer was lost: then exactly.
        assert f.duplicated == f.processed_then_lost, (scenario.name, f)
        assert f.retries > 0 or f.waits > 0, scenario.name  # the scenario did inject faults
    assert results[0][1].give_ups > 0 and results[2][1].processed_then_lost > 0
    assert results[3][1].processed_then_lost > 0
    # Each retry is the bot's own (send_to_chat's), logged in one line; so is each of the rate limiter's
    # give-ups (bot.logs drops the traceback PTB logs with it); no handler failed; nothing was refused.
    assert logged.count("trying again") == sum(f.retries for _, f, _ in results), logged[-3000:]
    give_ups = sum(f.give_ups for _, f, _ in results)
    assert logged.count("Rate limit hit after maximum of 3 retries") == give_ups
    assert "Traceback" not in logged, logged[logged.find("Traceback") - 300:][:3000]
    assert "handler failed" not in logged, logged[-3000:]
    assert api.rejected == []


# ---------------------------------------------------------------- 2. a reminder batch and a push under faults

AT = dt.datetime(2026, 12, 3, 9, 0, tzinfo=TZ)  # when register_families' reminders are due
DOCTOR_CHAT = 8800
PUSH_TEXT = "本周六上午8点到11点，店口镇卫生院为0～6岁儿童免费体检，请带好《母子健康手册》。"
# The calls that fail before a family's message goes through, and what the dispatcher (3 tries a run,
# 0.5 s then 1 s apart; send_to_chat does not retry for it) does with it. Each is given to one family of
# each batch; the others get their message at once. The dispatcher sends one message at a time, so each
# slow case adds its seconds to the run: the two slowest are given once, one to each batch.
BATCH_PATTERNS: tuple[tuple[Scripted, ...], ...] = (
    (BAD_GATEWAY, SERVER_ERROR),  # retried twice
    (SERVER_ERROR, BAD_GATEWAY, SERVER_ERROR),  # 3 failures: left pending for the next run
    (DROPPED,),  # not delivered: retried
    (DELIVERED_THEN_DROPPED,),  # delivered, retried: delivered twice
    (DELIVERED_THEN_DROPPED, BAD_GATEWAY, DROPPED),  # delivered, then left pending: twice, by the next run
    (SLOW,),  # slow, within the read timeout: once
)
REMINDERS_ALSO = ((TOO_SLOW,),)  # past the read timeout: retried, delivered twice
PUSH_ALSO = ((TOO_MANY,) * 4,)  # the rate limiter gives up at the 4th 429: the dispatcher waits, retries


def setup_batch(db: Path, guide: Guide, reminded: Sequence[int], pushed: Sequence[int]) -> int:
    """Families with a reminder due at AT (`reminded`), and families signed with a doctor who pushed a
    message to them all at AT (`pushed`); returns the push's id."""
    assert register_families(db, guide, reminded) == AT.isoformat()
    store = Store.open(db)
    families, doctors, outbox = Families(store.db), Doctors(store.db), Outbox(store.db)
    with store.db.atomic():
        doctor = doctors.add("王医生", "店口镇卫生院", AT, f"telegram:{DOCTOR_CHAT}")
        targets = []
        for n, chat in enumerate(pushed):
            family = families.consent(f"telegram:{chat}", f"telegram:{chat}", AT)
            families.add_child(family.id, f"宝{n}", AT.date() - dt.timedelta(days=400 + n), now=AT)
            doctors.link(family.id, doctor.id, AT)
            targets.append((family.id, family.address))
    push = outbox.add_push(doctor.id, PUSH_TEXT, "全部签约家庭", targets, f"telegram:{DOCTOR_CHAT}", AT)
    store.db.conn.close()
    return push.id


def chat_states(db: Path, sql: str) -> dict[str, set[int]]:
    """Chats by the state of their rows (`sql` selects address, state)."""
    out: dict[str, set[int]] = {}
    for address, state in query(db, sql):
        out.setdefault(state, set()).add(int(address.partition(":")[2]))
    return out


REMINDER_STATES = ("select f.address, r.state from reminders r join families f on f.id = r.family_id "
                   f"where r.send_at <= '{AT.isoformat()}'")
PUSH_STATES = "select address, state from outbox where kind = 'push'"


def left_pending(outcomes: Sequence[tuple[int, str]], chats: Iterable[int]) -> set[int]:
    """Chats whose last call in a run failed: the dispatcher's third failure, the message left pending."""
    last = {c: o for c, o in outcomes}
    return {c for c in chats if c in last and failed(last[c])}


def batch_figures(name: str, chats: Sequence[int], api: FakeBotApi, states: dict[str, set[int]],
                  pending_after_first: set[int]) -> dict[str, int]:
    """What one batch's families got, from the fake and the database, printed on one line."""
    delivered = Counter(int(p["chat_id"]) for p in api.sent if int(p["chat_id"]) in set(chats))
    calls = [(c, o) for c, o in api.outcomes if c in set(chats)]
    outcomes = [o for _, o in calls]
    f = {"sent": len(states.get("sent", ())), "failed calls": sum(failed(o) for o in outcomes),
         "rate limiter give-ups": rate_limiter_give_ups(calls), "429s": outcomes.count("429"),
         "left for the 2nd run": len(pending_after_first), "duplicated": sum(n - 1 for n in delivered.values()),
         "processed then lost": sum(processed_then_lost(o) for o in outcomes),
         "lost": len(set(chats) - set(delivered)), "pending": len(states.get("pending", ())),
         "failed": len(states.get("failed", ()))}
    # Every failed call and every give-up of the rate limiter is a message sent again (in the run, or by
    # the next one for what was left pending).
    f["retried"] = f["failed calls"] + f["rate limiter give-ups"]
    print(f"{name}: {len(chats)} families; rows sent {f['sent']}, retried {f['retried']} ({f['failed calls']} failed "
          f"calls, {f['rate limiter give-ups']} give-ups of the rate limiter; {f['left for the 2nd run']} left for "
          f"the 2nd run), 429s waited out {f['429s']}, duplicated {f['duplicated']} (processed then dropped "
          f"{f['processed then lost']}), lost {f['lost']}; rows pending {f['pending']}, failed {f['failed']}; faults "
          f"{kinds(outcomes)}")
    return f


async def test_a_reminder_batch_and_a_push_through_the_same_faults(api: FakeBotApi, tmp_path: Path,
                                                                   guide: Guide) -> None:
    rng = random.Random(SEED)
    print(f"\nseed {SEED}")
    env = environment(api, tmp_path)
    db = tmp_path / "bot.db"
    reminded = list(range(40_000, 40_060))
    pushed = list(range(41_000, 41_060))
    push_id = setup_batch(db, guide, reminded, pushed)
    for chats, also in ((reminded, REMINDERS_ALSO), (pushed, PUSH_ALSO)):
        patterns = BATCH_PATTERNS + also
        for chat, pattern in zip(rng.sample(chats, len(patterns)), patterns, strict=True):
            api.fail(*through(pattern), chat_id=chat)
    # A 1.5-second burst of 429s in each batch (the reminders go first, then the push).
    api.throttle(1.5, after=30)
    api.throttle(1.5, after=len(reminded) + 30)
    started = time.monotonic()
    first = await send_due(env, AT.isoformat())
    first_calls = list(api.outcomes)
    elapsed_first = time.monotonic() - started
    after_first = {"reminders": chat_states(db, REMINDER_STATES), "push": chat_states(db, PUSH_STATES)}
    later = (AT + dt.timedelta(minutes=20)).isoformat()
    second = await send_due(env, later)
    elapsed = time.monotonic() - started

    # After the first run: exactly the families whose third try failed are pending, the rest sent.
    pending = {name: left_pending(first_calls, chats) for name, chats in (("reminders", reminded), ("push", pushed))}
    for name, chats in (("reminders", reminded), ("push", pushed)):
        assert after_first[name] == {"sent": set(chats) - pending[name], "pending": pending[name]}, name
    assert first["retrying"] == len(pending["reminders"]) + len(pending["push"]) == 4
    # Each failure was retried in the run, or was a family's third (then left pending); each give-up of
    # the rate limiter (4 429s in a row) was waited out and retried by the dispatcher.
    for counts, calls in ((first, first_calls), (second, api.outcomes[len(first_calls):])):
        assert counts["retried"] == sum(failed(o) for _, o in calls) + rate_limiter_give_ups(calls) - counts["retrying"]
        assert (counts["failed"], counts["blocked"], counts["late"], counts["skipped"]) == (0, 0, 0, 0)
    assert rate_limiter_give_ups(first_calls) == 1  # the push's (TOO_MANY,) * 4
    # 60 + 60 families and the doctor's progress message, each settled once.
    assert first["sent"] + second["sent"] == len(reminded) + len(pushed) + 1
    assert (second["sent"], second["retrying"], second["retried"]) == (4, 0, 0)

    print(f"reminder batch and push, one send-due run then one 20 minutes later ({elapsed_first:.1f} s, "
          f"{elapsed:.1f} s in all); counts {first} then {second}")
    final = {"reminders": chat_states(db, REMINDER_STATES), "push": chat_states(db, PUSH_STATES)}
    for name, chats in (("reminders", reminded), ("push", pushed)):
        f = batch_figures(name, chats, api, final[name], pending[name])
        assert final[name] == {"sent": set(chats)}  # every row sent, none pending or failed
        assert (f["sent"], f["lost"], f["pending"], f["failed"]) == (len(chats), 0, 0, 0)
        # The two delivered-then-dropped calls (and the reminders' too slow one), exactly.
        assert f["duplicated"] == f["processed then lost"] == (3 if name == "reminders" else 2)
        delivered = Counter(int(p["chat_id"]) for p in api.sent if int(p["chat_id"]) in set(chats))
        assert {c for c, n in delivered.items() if n > 1} == {
            c for c, o in api.outcomes if c in set(chats) and processed_then_lost(o)}
    assert query(db, "select count(*) from reminders where send_at <= ? and state = 'sent'", AT.isoformat()) == [(60,)]

    # The doctor's report: its last edit says what the database and the fake say.
    [progress] = api.sent_to(DOCTOR_CHAT)
    last = api.edits_of(DOCTOR_CHAT)[-1]["text"]
    assert "发送完成" in last and report(last) == {"total": 60, "已发送": 60, "失败": 0, "家长已屏蔽机器人": 0}
    assert report(progress["text"])["待发送"] == 60
    assert query(db, "select state, count(*) from outbox where ref_id = ? group by state", push_id) == [("sent", 61)]
    assert api.rejected == [] and not any(api.chat_faults.values())


# ---------------------------------------------------------------- 3. killed 20 times in a 1,000-reminder batch

KILLS = 20


async def test_a_thousand_reminders_killed_twenty_times(api: FakeBotApi, tmp_path: Path, guide: Guide) -> None:
    rng = random.Random(SEED)
    env = environment(api, tmp_path)
    db = tmp_path / "bot.db"
    chats = list(range(100_000, 101_000))
    at = register_families(db, guide, chats)
    assert query(db, "select count(*), count(distinct family_id) from reminders where send_at <= ?", at) == [
        (1000, 1000)]
    api.delay = 0.01  # the answer comes 10 ms after the delivery: a kill can fall in between
    # Where in the batch each run is killed: when the fake has delivered this many messages in all (the
    # message just delivered is then in flight, or a moment later), or at a random time after the start.
    points = sorted(rng.sample(range(1, 990), KILLS))
    plans = [(rng.choice(("in flight", "in flight", "just after a delivery", "at a random time")),
              rng.uniform(0.0, 0.05), rng.uniform(0.2, 3.0)) for _ in range(KILLS)]

    sending_at_kill: list[set[int]] = []  # the families whose rows a kill left `sending`
    delivered_at_start: list[Counter[int]] = []  # what the fake had delivered when each run began

    def delivered() -> Counter[int]:
        return Counter(int(p["chat_id"]) for p in api.sent)

    started = time.monotonic()
    for point, (mode, after, at_time) in zip(points, plans, strict=True):
        delivered_at_start.append(delivered())
        proc = await asyncio.create_subprocess_exec(*send_due_args(at), env=env, stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.DEVNULL)
        target = max(point, len(api.sent) + 1)
        killed = asyncio.Event()

        def kill(_: dict[str, Any], proc: asyncio.subprocess.Process = proc, mode: str = mode,
                 target: int = target, after: float = after, killed: asyncio.Event = killed) -> None:
            if len(api.sent) < target or killed.is_set():
                return
            killed.set()
            if mode == "in flight":  # delivered, its answer not yet sent
                proc.kill()
            else:
                asyncio.get_running_loop().call_later(after, proc.kill)

        if mode == "at a random time":
            await asyncio.sleep(at_time)
            proc.kill()
        else:
            api.on_delivered = kill
            await asyncio.wait_for(killed.wait(), timeout=60)
        await proc.wait()  # reaped: its pid is gone, so the next run takes its claims back at once
        api.on_delivered = None
        assert proc.returncode == -signal.SIGKILL, f"{mode}: the batch ended before the kill"
        await asyncio.sleep(0.2)  # a request the fake had already read is answered (to nobody) first
        sending_at_kill.append({int(a.partition(":")[2]) for (a,) in query(
            db, "select distinct f.address from reminders r join families f on f.id = r.family_id "
                "where r.state = 'sending'")})
        # The dispatcher claims one family at a time: a kill leaves at most one family's rows `sending`.
        assert len(sending_at_kill[-1]) <= 1

    delivered_at_start.append(delivered())
    [(sent_before,)] = query(db, "select count(*) from reminders where state = 'sent' and send_at <= ?", at)
    last = await send_due(env, at)
    elapsed = time.monotonic() - started
    final = delivered()

    # Which kills cost a second delivery: the family was `sending` at the kill and its message had reached
    # the fake in that run (the next run sent it again).
    repeated: Counter[int] = Counter()
    for k, families in enumerate(sending_at_kill):
        for chat in families:
            if delivered_at_start[k + 1][chat] > delivered_at_start[k][chat]:
                repeated[chat] += 1
    twice = Counter({chat: n - 1 for chat, n in final.items() if n > 1})
    in_flight = sum(len(s) for s in sending_at_kill)
    modes = Counter(mode for mode, _, _ in plans)
    [(rows_sent,)] = query(db, "select count(*) from reminders where state = 'sent' and send_at <= ?", at)
    kinds_of_kill = ", ".join(f"{m} ×{n}" for m, n in sorted(modes.items()))
    print(f"\nseed {SEED}: 1000 reminders, {KILLS} SIGKILLs ({kinds_of_kill}) "
          f"at deliveries {points}, then a last run; {len(final)} families delivered, {len(api.sent)} messages; "
          f"rows sent {rows_sent}; rows `sending` at a kill {in_flight}; duplicated {twice.total()} (exactly the "
          f"{repeated.total()} in flight at a kill and already delivered); lost {len(set(chats) - set(final))}; "
          f"the last run sent {last['sent']}; {elapsed:.1f} s")

    assert set(final) == set(chats)  # every reminder delivered at least once
    assert query(db, "select state, count(*) from reminders where send_at <= ? group by state", at) == [("sent", 1000)]
    assert twice == repeated  # exactly the messages in flight at a kill went twice, nothing else
    assert twice.total() <= in_flight <= KILLS
    assert len(api.sent) == 1000 + twice.total()
    assert last["sent"] == last["rows_sent"] == 1000 - sent_before
    assert (last["failed"], last["retrying"], last["blocked"]) == (0, 0, 0)
    assert api.rejected == []
