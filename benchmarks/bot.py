"""Cost of one parent question through `Application.process_update`, next to an echo bot measured in
the same process and run, both with an offline request (no network).

    python benchmarks/bot.py [--updates 2000]

Target (issue #7): ≤ 2.5× the echo cost with the shipped content (issue #3 had asked 1.5×).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from telegram import Update
from telegram.constants import ParseMode
from telegram.ext import ApplicationBuilder, ContextTypes, Defaults, MessageHandler, filters

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.app import build_application
from bot.heap import settle_heap
from bot.telegram_html import keyboard, split_html
from tests.fakes import RecordingRequest, message
from zjcare_guide.clock import system_clock
from zjcare_guide.config import Config
from zjcare_guide.content import DEFAULT_CONTENT_DIR
from zjcare_guide.conversation import Conversation
from zjcare_guide.evaluation import load_golden
from zjcare_guide.guide import Guide, GuideHolder
from zjcare_guide.store import Store

GOLDEN = Path(__file__).resolve().parent.parent / "tests" / "golden" / "questions.yaml"


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None
    await context.bot.send_message(update.effective_message.chat_id, update.effective_message.text or "")


def fixed_reply_handler(text: str, markup: Any) -> Any:
    """A handler that sends one prepared article with its buttons: what PTB costs for our replies
    without any of our own work, to show where the time goes."""
    async def handler(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await context.bot.send_message(update.effective_message.chat_id, text, reply_markup=markup)
    return handler


async def per_update(app: Any, raws: list[dict[str, Any]]) -> float:
    async with app:
        for raw in raws[:50]:  # warm-up
            await app.process_update(Update.de_json(raw, app.bot))
        gc.collect()
        t0 = time.perf_counter()
        for raw in raws:
            await app.process_update(Update.de_json(raw, app.bot))
        return (time.perf_counter() - t0) / len(raws) * 1e6


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--updates", type=int, default=2000)
    args = ap.parse_args()
    golden = load_golden(GOLDEN)
    questions = [str(c["q"]) for c in golden["in_scope"]]
    raws = [message(questions[i % len(questions)]) for i in range(args.updates)]

    echo_app = ApplicationBuilder().token("1:BENCH").request(RecordingRequest(validate=False)).updater(None).build()
    echo_app.add_handler(MessageHandler(filters.TEXT, echo))

    with tempfile.TemporaryDirectory() as tmp:
        config = Config(token="1:BENCH", api_base_url=None, db_path=Path(tmp) / "b.db",
                        content_dir=DEFAULT_CONTENT_DIR)
        holder = GuideHolder(Guide.from_dir(DEFAULT_CONTENT_DIR, dt.date.today()))
        settle_heap()  # as `zjcare-guide run` does once the library is loaded
        # No rate limiter on either side: it deliberately waits (30 messages/s) and would measure
        # Telegram's flood limits, not the work per update.
        ours = build_application(config, holder, Store.open(config.db_path), request=RecordingRequest(validate=False),
                                 rate_limit=False)
        conversation = Conversation(holder.guide, clock=system_clock)
        reply = conversation.respond(holder.guide.decide("宝宝湿疹怎么护理"))[0]
        fixed_app = (ApplicationBuilder().token("1:BENCH").request(RecordingRequest(validate=False))
                     .defaults(Defaults(parse_mode=ParseMode.HTML)).updater(None).build())
        fixed_app.add_handler(MessageHandler(filters.TEXT, fixed_reply_handler(
            split_html(reply.text)[0], keyboard(reply.buttons, conversation.router))))
        # Alternate the apps and keep the best of three rounds each, so background load hits all alike.
        echo_us, fixed_us, ours_us = [], [], []
        for _ in range(3):
            echo_us.append(await per_update(echo_app, raws))
            fixed_us.append(await per_update(fixed_app, raws))
            ours_us.append(await per_update(ours, raws))
    e, f, o = min(echo_us), min(fixed_us), min(ours_us)
    print(f"updates per round: {len(raws)} ({len(questions)} distinct golden questions)")
    print(f"echo bot                   {e:8.1f} µs/update")
    print(f"PTB sending one article    {f:8.1f} µs/update  ({f / e:.2f}× echo: HTML text + 5 buttons, no logic)")
    print(f"zjcare-guide               {o:8.1f} µs/update  (triage, matching, rendering, HTML)")
    print(f"ratio                      {o / e:8.2f}× the echo cost (target ≤ 2.5×)")


if __name__ == "__main__":
    asyncio.run(main())
