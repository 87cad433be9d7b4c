"""The `zjcare-guide` entry point: the core's commands plus `run`, which needs Telegram.

Kept in bot/ so that `zjcare_guide` itself never imports telegram.
"""

from __future__ import annotations

import logging
import os
from urllib.parse import urlparse

import click
from telegram import Update
from telegram.error import InvalidToken, NetworkError

from zjcare_guide.cli import config_from_env, load_guide, main, open_directory, open_store
from zjcare_guide.clock import system_clock
from zjcare_guide.config import ConfigError
from zjcare_guide.guide import GuideHolder

from .app import build_application
from .heap import settle_heap


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
    # httpx logs every request URL at INFO, and the URL contains the bot token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
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


__all__ = ["main"]
