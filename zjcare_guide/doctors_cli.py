"""`zjcare-guide doctors …` and `zjcare-guide audit`: the health bureau's administrators register family
doctors, print their invites, and read what doctors did."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import click

from .cli import existing_store, main
from .clock import TZ, system_clock
from .directory_cli import _store, db_option
from .doctor_flow import qr_png
from .doctors import DOCTOR_PREFIX, INVITE_PREFIX, Doctors, invite_link
from .identity import user_key


def _username() -> str | None:
    name = (os.environ.get("ZJCARE_BOT_USERNAME") or "").strip().lstrip("@")
    return name or None


@main.group()
def doctors() -> None:
    """Family doctors (家庭医生): register, list, remove, print an invite."""


@doctors.command("add")
@click.option("--name", required=True, help="The doctor's name as families see it, e.g. 王医生.")
@click.option("--clinic", required=True, help="The clinic or health centre, e.g. 店口镇卫生院.")
@click.option("--telegram-id", type=int, help="The doctor's Telegram user id, when known.")
@db_option
def doctors_add(name: str, clinic: str, telegram_id: int | None, db: str | None) -> None:
    """Register a family doctor and print their id. Without --telegram-id it also prints a one-time
    registration code (valid 7 days): the doctor sends `/start doc_<code>` to the bot, or opens the
    printed link, to tie their Telegram account.

    Example: zjcare-guide doctors add --name 王医生 --clinic 店口镇卫生院
    """
    book = Doctors(_store(db).db)
    now = system_clock()
    try:
        doctor = book.add(name, clinic, now, user_key("telegram", telegram_id) if telegram_id else None)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    book.audit("cli", "doctor_added", now, doctor_id=doctor.id)
    click.echo(f"doctor {doctor.id}: {doctor.name} ({doctor.clinic})")
    if telegram_id is None:
        code = book.registration_code(doctor.id, now)
        start = f"{DOCTOR_PREFIX}{code}"
        username = _username()
        click.echo(f"registration (one time, 7 days): the doctor sends /start {start} to the bot"
                   + (f", or opens https://t.me/{username}?start={start}" if username else ""))


@doctors.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON rows: id, name, clinic, account, families, removed.")
@db_option
def doctors_list(as_json: bool, db: str | None) -> None:
    """Every doctor, with the number of families signed with them.

    Example: zjcare-guide doctors list
    """
    book = Doctors(existing_store(db).db)
    rows = [{"id": d.id, "name": d.name, "clinic": d.clinic, "account": d.user_key,
             "families": book.families_count(d.id), "removed": d.removed} for d in book.all()]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False))
        return
    if not rows:
        click.echo("no doctors yet: zjcare-guide doctors add --name … --clinic …")
    for r in rows:
        state = "removed" if r["removed"] else (r["account"] or "account not registered yet")
        click.echo(f"{r['id']:>4}  {r['name']}  {r['clinic']}  families {r['families']}  [{state}]")


@doctors.command("remove")
@click.argument("doctor_id", type=int)
@db_option
def doctors_remove(doctor_id: int, db: str | None) -> None:
    """Remove a doctor: their account stops working, their invites are revoked and their families are
    unsigned (each can sign with another doctor). The audit log keeps what they did.

    Example: zjcare-guide doctors remove 3
    """
    book = Doctors(existing_store(db).db)
    now = system_clock()
    if not book.remove(doctor_id, now):
        raise click.ClickException(f"no active doctor with id {doctor_id}")
    book.audit("cli", "doctor_removed", now, doctor_id=doctor_id)
    click.echo(f"doctor {doctor_id} removed")


@doctors.command("invite")
@click.argument("doctor_id", type=int)
@click.option("--png", "png", type=click.Path(dir_okay=False), help="Write the QR code of the link to this PNG file.")
@click.option("--days", type=click.IntRange(1, 3650), help="The invite expires after this many days (default: never).")
@db_option
def doctors_invite(doctor_id: int, png: str | None, days: int | None, db: str | None) -> None:
    """A new invite for parents to sign with the doctor: prints the deep link and, with --png, writes
    its QR code to print for the clinic. Needs the bot's username in ZJCARE_BOT_USERNAME.

    Example: ZJCARE_BOT_USERNAME=zjcare_bot zjcare-guide doctors invite 1 --png /tmp/invite.png
    """
    username = _username()
    if username is None:
        raise click.ClickException("set ZJCARE_BOT_USERNAME to the bot's @username (the link is t.me/<username>)")
    if png and not (Path(png).parent.is_dir() and os.access(Path(png).parent, os.W_OK)):
        raise click.ClickException(f"cannot write {png}: no such folder, or not writable (nothing was created)")
    book = Doctors(existing_store(db).db)
    doctor = book.get(doctor_id)
    if doctor is None or doctor.removed:
        raise click.ClickException(f"no active doctor with id {doctor_id}")
    now = system_clock()
    link = invite_link(username, book.invite(doctor.id, now, days))
    book.audit("cli", "invite", now, doctor_id=doctor.id, detail=f"expires in {days} days" if days else "")
    click.echo(link)
    if png:
        try:
            Path(png).write_bytes(qr_png(link))
        except OSError as exc:
            book.revoke(doctor.id, link.rsplit(INVITE_PREFIX, 1)[-1], now)  # no live code nobody has seen
            raise click.ClickException(f"cannot write {png}: {exc.strerror} (the invite was revoked)") from None
        click.echo(f"QR code written to {png}")


@doctors.command("revoke")
@click.argument("link_or_code")
@db_option
def doctors_revoke(link_or_code: str, db: str | None) -> None:
    """Revoke an invite (a printed QR code that went astray): parents who open it are told it is void;
    families already signed stay signed.

    Example: zjcare-guide doctors revoke https://t.me/zjcare_bot?start=join_YeHY-XrftsryFsZhchAd
    """
    code = link_or_code.rsplit("start=", 1)[-1].removeprefix(INVITE_PREFIX).strip()
    book = Doctors(existing_store(db).db)
    now = system_clock()
    doctor_id = book.revoke(None, code, now)
    if doctor_id is None:
        raise click.ClickException("no live invite with that code")
    book.audit("cli", "invite_revoked", now, doctor_id=doctor_id)
    click.echo("invite revoked")


@main.command()
@click.option("--doctor", "doctor_id", type=int, help="Only this doctor's actions.")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]), help="From this day (YYYY-MM-DD).")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON rows: at, doctor_id, actor, action, family_id, detail.")
@db_option
def audit(doctor_id: int | None, since: dt.datetime | None, as_json: bool, db: str | None) -> None:
    """What doctors (and families signing with them) did: who, what, when, which family.

    Example: zjcare-guide audit --doctor 1 --since 2026-12-01
    """
    rows = Doctors(existing_store(db).db).audit_log(doctor_id, since.replace(tzinfo=TZ) if since else None)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False))
        return
    for r in rows:
        family = f" family {r['family_id']}" if r["family_id"] is not None else ""
        click.echo(f"{r['at']}  doctor {r['doctor_id']}  {r['action']}{family}  {r['actor']}  {r['detail']}")
