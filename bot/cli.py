"""The `zjcare-guide` entry point: the core's commands plus `run`, which needs Telegram.

Kept in bot/ so that `zjcare_guide` itself never imports telegram. Only `run` and `reminders send-due`
(with a token) import python-telegram-bot and the rest of bot/, inside the command: `ask`, `chat`,
`content …` and every other command start without loading it.

Every way `run` can fail to start is one line on stderr and exit status 1: what can be checked
without Telegram (the token's shape, the webhook URL, ZJCARE_WEBHOOK_SECRET, the --listen address and
port, the database) is checked before anything is contacted.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import json
import logging
import os
import re
import secrets
import socket
import sys
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import click

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

from .heap import settle_heap
from .logs import quiet_libraries

if TYPE_CHECKING:
    from telegram.error import TelegramError

log = logging.getLogger("bot")

# What Telegram accepts as a webhook's secret_token (setWebhook): 1-256 of these characters.
WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")
# The only ports Telegram's own Bot API delivers webhooks to (a self-hosted one has no such limit).
TELEGRAM_WEBHOOK_PORTS = (443, 80, 88, 8443)
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


# ---------------------------------------------------------------- checks that need no Telegram


def webhook_path(url: str, self_hosted: bool) -> str:
    """The path PTB's webhook server serves, from --webhook-url, once the URL is one Telegram will call.

    Telegram's own Bot API calls only https:// URLs on ports 443, 80, 88 and 8443; a self-hosted Bot
    API (TELEGRAM_API_BASE_URL) may call http:// on any port. The URL is not repeated in the error: a
    webhook path sometimes holds a secret."""
    parts = urlsplit(url.strip())
    try:
        port = parts.port
    except ValueError:
        raise click.ClickException("--webhook-url has an invalid port number") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise click.ClickException("--webhook-url must be a full URL with a host name, "
                                   "e.g. https://bot.example.org/telegram")
    if not self_hosted and parts.scheme != "https":
        raise click.ClickException("--webhook-url must start with https://: Telegram's Bot API calls webhooks over "
                                   "HTTPS only (http:// needs a self-hosted Bot API in TELEGRAM_API_BASE_URL)")
    if not self_hosted and port is not None and port not in TELEGRAM_WEBHOOK_PORTS:
        raise click.ClickException(f"--webhook-url has port {port}: Telegram's Bot API calls webhooks on ports "
                                   "443, 80, 88 and 8443 only (--port, where the bot listens, may differ)")
    return parts.path.lstrip("/")


def webhook_secret(value: str | None) -> str:
    """ZJCARE_WEBHOOK_SECRET as Telegram accepts it, or a random one for this run when it is not set.

    Telegram sends it back in the X-Telegram-Bot-Api-Secret-Token header and PTB's webhook server
    refuses (403) any request without it: nobody who learns the URL can post forged updates. The
    value itself never appears in a message."""
    if not value:
        return secrets.token_urlsafe(32)  # 43 characters of A-Z a-z 0-9 _ -
    if len(value) > 256:
        raise click.ClickException("ZJCARE_WEBHOOK_SECRET is longer than the 256 characters Telegram accepts")
    if not WEBHOOK_SECRET.fullmatch(value):
        raise click.ClickException("ZJCARE_WEBHOOK_SECRET has characters Telegram refuses: use only A-Z, a-z, 0-9, "
                                   "_ and - (1 to 256 of them)")
    return value


def listen_problem(exc: OSError, listen: str, port: int) -> str:
    """An error binding the webhook server's socket, as one line for the operator."""
    if isinstance(exc, socket.gaierror):
        return f"cannot listen on --listen {listen}: no such address on this machine (the name does not resolve)"
    if exc.errno == errno.EADDRINUSE:
        return f"cannot listen on {listen} port {port}: the port is already in use (choose another --port)"
    if exc.errno == errno.EACCES:
        return f"cannot listen on {listen} port {port}: permission denied (ports below 1024 need privileges)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on --listen {listen}: not an address of this machine"
    return f"cannot listen on {listen} port {port}: {exc.strerror or exc}"


def check_listen(listen: str, port: int) -> None:
    """Bind (and release) the webhook server's sockets as PTB will, so that a bad --listen or a port in
    use is reported before Telegram is told to call the webhook."""
    from tornado.netutil import bind_sockets  # PTB's webhook server binds with it

    try:
        sockets = bind_sockets(port, address=listen)
    except OSError as exc:  # socket.gaierror too
        raise click.ClickException(listen_problem(exc, listen, port)) from None
    for sock in sockets:
        sock.close()


def api_name(config: Config) -> str:
    """The Bot API as named in errors: its base URL without any user:password, never the token."""
    if not config.api_base_url:
        return "the Telegram Bot API"
    parts = urlsplit(config.api_base_url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    try:
        if parts.port is not None:
            netloc += f":{parts.port}"
    except ValueError:
        pass
    return f"the Bot API at {urlunsplit((parts.scheme, netloc, parts.path, '', ''))}"


# ---------------------------------------------------------------- the log


class Masker:
    """Replaces the bot token (and its secret part) and the webhook secret in text with ***."""

    def __init__(self, token: str | None, *others: str | None) -> None:
        found: set[str] = set()
        if token:
            found.add(token)
            _, _, part = token.partition(":")
            if len(part) >= 4:  # a real token's secret part is 35 characters
                found.add(part)
        found.update(s for s in others if s)
        self.secrets = sorted(found, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


class MaskingFormatter(logging.Formatter):
    def __init__(self, mask: Masker) -> None:
        super().__init__(LOG_FORMAT)
        self.mask = mask

    def format(self, record: logging.LogRecord) -> str:
        return self.mask(super().format(record))


class StartupLog(logging.StreamHandler):  # type: ignore[type-arg]
    """The bot's log on stderr, masked, and held back until the bot has started.

    A start that fails ends with one line saying why instead: PTB logs the same failure with a long
    traceback (and a rejected token in clear, in InvalidToken's message), which only buries it."""

    MAX_HELD = 1000

    def __init__(self, mask: Masker) -> None:
        super().__init__(sys.stderr)
        self.setFormatter(MaskingFormatter(mask))
        self.held: list[logging.LogRecord] | None = []

    def emit(self, record: logging.LogRecord) -> None:
        if self.held is None:
            super().emit(record)
        elif len(self.held) < self.MAX_HELD:
            self.held.append(record)

    def pass_on(self) -> None:
        """The bot runs (or failed unexpectedly): write what was held, then log as it comes."""
        held, self.held = self.held or [], None
        for record in held:
            super().emit(record)


def network_error_in_one_line(record: logging.LogRecord) -> bool:
    """PTB logs some network failures with a full traceback (e.g. the last getUpdates at shutdown while
    Telegram is unreachable): the error's one line says all there is to say."""
    error = record.exc_info[1] if record.exc_info else None
    if error is not None and record.name.startswith("telegram"):
        from telegram.error import BadRequest, NetworkError

        if isinstance(error, NetworkError) and not isinstance(error, BadRequest):
            record.msg, record.args = f"{record.getMessage()} ({error.message})", ()
            record.exc_info, record.exc_text = None, None
    return True


def start_logging(mask: Masker) -> StartupLog:
    handler = StartupLog(mask)
    handler.addFilter(network_error_in_one_line)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    quiet_libraries()  # httpx logs URLs (the token), PTB's DEBUG every reply's text
    # APScheduler logs each run of the reminder job (every minute) at INFO; the job logs what it sent.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    return handler


def telegram_failure(exc: TelegramError, where: str, mask: Masker) -> click.ClickException:
    """PTB's error at start-up as one line for the operator (Telegram's description, masked)."""
    from telegram.error import EndPointNotFound, InvalidToken, NetworkError, TimedOut

    message = mask(exc.message)
    if isinstance(exc, InvalidToken):
        return click.ClickException(f"{where} rejected TELEGRAM_BOT_TOKEN: check the token from @BotFather")
    if isinstance(exc, EndPointNotFound):
        return click.ClickException(f"{where} answered 404 Not Found: is TELEGRAM_API_BASE_URL a Bot API server?")
    if isinstance(exc, TimedOut):
        return click.ClickException(f"cannot reach {where}: no answer in time")
    if isinstance(exc, NetworkError) and type(exc) is NetworkError:  # not a BadRequest (a subclass)
        return click.ClickException(f"cannot reach {where}: {message}")
    return click.ClickException(f"{where} refused to start the bot: {message}")


# ---------------------------------------------------------------- run


@main.command()
@click.option("--webhook-url", help="Serve a webhook at this public HTTPS URL instead of long polling.")
@click.option("--listen", default="127.0.0.1", show_default=True, help="Webhook server address.")
@click.option("--port", type=click.IntRange(1, 65535), default=8443, show_default=True, help="Webhook server port.")
def run(webhook_url: str | None, listen: str, port: int) -> None:
    """Run the Telegram bot (long polling, or a webhook with --webhook-url).

    Needs TELEGRAM_BOT_TOKEN; optional TELEGRAM_API_BASE_URL, ZJCARE_DB, ZJCARE_CONTENT_DIR,
    ZJCARE_ADMIN_IDS, ZJCARE_WEBHOOK_SECRET (without it, a random secret for each start). A problem
    at start-up is one line and exit status 1. SIGTERM or Ctrl-C stops it cleanly.

    Example: TELEGRAM_BOT_TOKEN=123456:ABC zjcare-guide run
    """
    config = config_from_env()
    try:
        token = config.require_token()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    secret: str | None = None
    url_path = ""
    if webhook_url:
        url_path = webhook_path(webhook_url, self_hosted=config.api_base_url is not None)
        secret = webhook_secret(os.environ.get("ZJCARE_WEBHOOK_SECRET"))
        check_listen(listen, port)
    mask = Masker(token, secret)
    startup = start_logging(mask)
    store = open_store(str(config.db_path))  # an unwritable database fails here, before Telegram
    holder = GuideHolder(load_guide(str(config.content_dir)))
    settle_heap()
    open_directory(store, str(config.content_dir), system_clock().date())  # the demo institutions, once

    from telegram import Update
    from telegram.error import TelegramError
    from telegram.ext import CallbackContext

    from .app import build_application

    app = build_application(config, holder, store)
    where = api_name(config)

    async def started(context: CallbackContext) -> None:  # type: ignore[type-arg]
        # Jobs run once the Application has started: after getMe, the commands, and the updater's start.
        startup.pass_on()
        log.info("bot @%s ready (%s)", context.bot.username, "webhook" if webhook_url else "long polling")

    assert app.job_queue is not None
    app.job_queue.run_once(started, 0, name="started")
    try:
        if webhook_url:
            app.run_webhook(listen=listen, port=port, url_path=url_path, webhook_url=webhook_url,
                            secret_token=secret, allowed_updates=Update.ALL_TYPES)
        else:
            app.run_polling(allowed_updates=Update.ALL_TYPES)
    except TelegramError as exc:
        raise telegram_failure(exc, where, mask) from None
    except OSError as exc:
        if not webhook_url:
            startup.pass_on()
            raise
        # The port was free a moment ago (check_listen): taken since.
        raise click.ClickException(listen_problem(exc, listen, port)) from None
    except Exception:  # a bug: the held log and the traceback both matter
        startup.pass_on()
        raise


# ---------------------------------------------------------------- reminders send-due


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
    from telegram.error import TelegramError

    from .app import build_application
    from .outbound import TelegramOutbound

    quiet_libraries()  # as in `run`: no URL (the token) nor reply text in cron's mail, no rate limiter traceback
    # The same Application as `run` (its rate limiter, base URL and Defaults), without polling.
    app = build_application(config, GuideHolder(guide), None)
    try:
        async with app:
            router = Conversation(guide, clock=lambda: moment).router
            outbounds["telegram"] = TelegramOutbound(app.bot, router)
            return await Dispatcher(book, outbounds, lambda: content, config.policy, wall=system_clock).run(moment)
    except TelegramError as exc:
        raise telegram_failure(exc, api_name(config), Masker(config.token)) from None


__all__ = ["main"]

if __name__ == "__main__":  # pragma: no cover
    main()
