"""The `zjcare-guide` entry point: the core's commands plus `run`, which needs Telegram.

Kept in bot/ so that `zjcare_guide` itself never imports telegram.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
from urllib.parse import urlparse

import click
from telegram import Update
from telegram.error import InvalidToken, NetworkError

from zjcare_guide.cli import (
    config_from_env,
    content_option,
    existing_store,
    load_guide,
    main,
    open_directory,
    open_store,
)
from zjcare_guide.clock import system_clock
from zjcare_guide.config import Config, ConfigError
from zjcare_guide.conversation import Conversation
from zjcare_guide.dispatcher import Content, Dispatcher
from zjcare_guide.guide import Guide, GuideHolder
from zjcare_guide.outbound import ConsoleOutbound, Outbound
from zjcare_guide.reminders import Counts, Reminders
from zjcare_guide.reminders_cli import parse_at, reminders

from .app import build_application
from .heap import settle_heap
from .logs import quiet_libraries
from .outbound import TelegramOutbound


def _no_invalid_token_traceback(record: logging.LogRecord) -> bool:
    """A rejected token is reported as one line below; PTB's own traceback of it only confuses."""
    return not (record.exc_info and isinstance(record.exc_info[1], InvalidToken))


@main.command()
@click.option("--webhook-url", help="Serve a webhook at this public HTTPS URL instead of long polling.")
@click.option("--listen", default="127.0.0.1", show_default=True, help="Webhook server address.")
@click.option("--port", type=click.IntRange(1, 65535), default=8443, show_default=True, help="Webhook server port.")
def run(webhook_url: str | None, listen: str, port: int) -> None:
    """Run the Telegram bot (long polling, or a webhook with --webhook-url).

    Needs TELEGRAM_BOT_TOKEN; optional TELEGRAM_API_BASE_URL, ZJCARE_DB, ZJCARE_CONTENT_DIR,
    ZJCARE_ADMIN_IDS, ZJCARE_WEBHOOK_SECRET. SIGTERM or Ctrl-C stops it cleanly.

    Example: TELEGRAM_BOT_TOKEN=123456:ABC zjcare-guide run
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_libraries()  # httpx logs URLs (the token), PTB's DEBUG every reply's text
    for handler in logging.getLogger().handlers:
        handler.addFilter(_no_invalid_token_traceback)
    config = config_from_env()
    try:
        config.require_token()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    holder = GuideHolder(load_guide(str(config.content_dir)))
    settle_heap()
    store = open_store(str(config.db_path))
    open_directory(store, str(config.content_dir), system_clock().date())  # the demo institutions, once
    app = build_application(config, holder, store)
    where = config.api_base_url or "the Telegram Bot API"
    try:
        if webhook_url:
            url_path = urlparse(webhook_url).path.lstrip("/")
            app.run_webhook(listen=listen, port=port, url_path=url_path, webhook_url=webhook_url,
                            secret_token=os.environ.get("ZJCARE_WEBHOOK_SECRET") or None,
                            allowed_updates=Update.ALL_TYPES)
        else:
            app.run_polling(allowed_updates=Update.ALL_TYPES)
    except InvalidToken:
        raise click.ClickException(f"{where} rejected TELEGRAM_BOT_TOKEN: check the token from @BotFather") from None
    except NetworkError as exc:
        raise click.ClickException(f"cannot reach {where}: {exc}") from None


@reminders.command("send-due")
@click.option("--at", "at", metavar="DATETIME",
              help="Send what is due at this moment (e.g. 2026-12-27T09:00, Asia/Shanghai); default: now.")
@click.option("--db", type=click.Path(dir_okay=False), help="Database file (default: $ZJCARE_DB).")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@content_option
def send_due(at: str | None, db: str | None, as_json: bool, content: str | None) -> None:
    """Send, once, every reminder due at that moment, then print the counts (sent, failed, blocked…).

    Through the Telegram bot configured by TELEGRAM_BOT_TOKEN (and TELEGRAM_API_BASE_URL); families who
    registered on the console `chat` get theirs printed. Without a token, Telegram families' reminders
    stay pending. Safe next to a running bot, from cron, and after an outage: a reminder is claimed
    before it is sent, so none goes twice; one more than ZJCARE_REMINDER_MAX_LATE_DAYS (2) days late is
    not sent. Nothing is sent in quiet hours (ZJCARE_QUIET_HOURS, 21:00-08:00).

    Example: zjcare-guide reminders send-due --at 2026-12-27T09:00
    """
    config = config_from_env()
    moment = parse_at(at)
    guide = load_guide(content, moment.date().isoformat())
    store = existing_store(db) if db else open_store(str(config.db_path))  # a mistyped --db is an error
    book = Reminders(store.db)
    counts = asyncio.run(_send_due(config, guide, book, moment))
    if as_json:
        click.echo(json.dumps(counts.as_dict()))
        return
    if counts.quiet:
        click.echo(f"quiet hours at {moment.isoformat(timespec='minutes')}: nothing sent")
        return
    click.echo(f"sent {counts.sent} message(s) ({counts.rows_sent} items), failed {counts.failed}, "
               f"blocked {counts.blocked}, to retry {counts.retrying}, too late to send {counts.late}")
    if counts.skipped:
        click.echo(f"{counts.skipped} family message(s) left pending: TELEGRAM_BOT_TOKEN is not set", err=True)


async def _send_due(config: Config, guide: Guide, book: Reminders, moment: dt.datetime) -> Counts:
    outbounds: dict[str, Outbound] = {"console": ConsoleOutbound(click.echo)}
    content = Content(guide.library.schedules, guide.renderer)
    if not config.token:
        return await Dispatcher(book, outbounds, lambda: content, config.policy, wall=system_clock).run(moment)
    # The same Application as `run` (its rate limiter, base URL and Defaults), without polling.
    app = build_application(config, GuideHolder(guide), None)
    where = config.api_base_url or "the Telegram Bot API"
    try:
        async with app:
            router = Conversation(guide, clock=lambda: moment).router
            outbounds["telegram"] = TelegramOutbound(app.bot, router)
            return await Dispatcher(book, outbounds, lambda: content, config.policy, wall=system_clock).run(moment)
    except InvalidToken:
        raise click.ClickException(f"{where} rejected TELEGRAM_BOT_TOKEN: check the token from @BotFather") from None
    except NetworkError as exc:
        raise click.ClickException(f"cannot reach {where}: {exc}") from None


__all__ = ["main"]
