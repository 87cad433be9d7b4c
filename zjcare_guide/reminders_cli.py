"""`zjcare-guide reminders status` here; `reminders send-due`, which needs the Telegram bot, is added to
the same group by bot/cli.py."""

from __future__ import annotations

import datetime as dt
import json

import click

from .cli import existing_store, main
from .clock import TZ, system_clock
from .outbox import Outbox
from .reminders import STATES, Reminders


def parse_at(value: str | None) -> dt.datetime:
    """--at: an ISO date-time (Asia/Shanghai when no offset is given), or now."""
    if not value:
        return system_clock()
    try:
        moment = dt.datetime.fromisoformat(value.strip().replace(" ", "T"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date-time such as 2026-12-27T09:00",
                                 param_hint="--at") from None
    return moment.replace(tzinfo=TZ) if moment.tzinfo is None else moment.astimezone(TZ)


@main.group()
def reminders() -> None:
    """Reminders of vaccinations, health checks and newborn visits: send what is due, see their state."""


@reminders.command("status")
@click.option("--db", type=click.Path(dir_okay=False), help="Database file (default: $ZJCARE_DB).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: counts by state and kind, and the latest failures.")
def reminders_status(db: str | None, as_json: bool) -> None:
    """How many reminders are pending, being sent, sent, failed or cancelled, and why the latest ones
    failed. Shows no names or birth dates.

    Example: zjcare-guide reminders status
    """
    store = existing_store(db)
    book = Reminders(store.db)
    counts, doctors = book.status(), Outbox(store.db).status()
    failed = book.failed()
    if as_json:
        click.echo(json.dumps({"states": counts, "doctors_messages": doctors, "failed": [
            {"id": i, "item": item, "send_at": at, "reason": why} for i, item, at, why in failed]},
            ensure_ascii=False, indent=2))
        return
    for title, table in (("reminders", counts), ("doctors' messages (visits, pushes)", doctors)):
        click.echo(f"{title}:")
        for state in STATES:
            by_kind = table.get(state, {})
            detail = ", ".join(f"{k} {n}" for k, n in sorted(by_kind.items()))
            click.echo(f"  {state:<10} {sum(by_kind.values()):>8}" + (f"  ({detail})" if detail else ""))
    if failed:
        click.echo("\nlatest failures:")
        for i, item, at, why in failed:
            click.echo(f"  #{i} {item} due {at}: {why}")
