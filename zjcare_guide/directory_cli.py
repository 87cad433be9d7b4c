"""`zjcare-guide institutions|operators|reports`: the registry import and export, searches as a parent
would see them, institution operators and parents' reports, for the health bureau's staff."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import sys
from pathlib import Path
from typing import Any

import click

from .cli import _today, config_from_env, content_option, existing_store, main, open_directory, open_store
from .identity import user_key
from .institutions import DEFAULT_RADIUS_KM, FORMS, LISTED, Directory, Filters, Hit
from .registry_import import ImportFileError, export_file, import_file, one_line, write_rows
from .reports import EXPORT_HEADERS, list_reports
from .store import Store
from .towns import in_zhuji

db_option = click.option("--db", type=click.Path(dir_okay=False), help="Database (default: $ZJCARE_DB).")
today_option = click.option("--today", help="Judge how fresh places figures are as of this day (YYYY-MM-DD).")


def _store(db: str | None) -> Store:
    return open_store(db or str(config_from_env().db_path))


@main.group()
def institutions() -> None:
    """The directory of registered (备案) childcare institutions."""


@institutions.command("import")
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@click.option("--dry-run", is_flag=True, help="Validate and count the changes; write nothing.")
@click.option("--coords", type=click.Choice(["wgs84", "gcj02"]), default="wgs84", show_default=True,
              help="gcj02: coordinates copied from 高德/腾讯 maps, converted to WGS-84.")
@db_option
@today_option
def institutions_import(file: str, dry_run: bool, coords: str, db: str | None, today: str | None) -> None:
    """Import the registry from CSV (UTF-8, UTF-8 with BOM or GBK/GB18030) or XLSX with Chinese headers.

    Every row is validated first; any problem is printed as `line N: column: problem` and nothing is
    written (exit 1). Otherwise institutions are upserted by 备案编号 in one transaction.

    Example: zjcare-guide institutions import registry.xlsx --dry-run
    """
    day = _today(today)
    target = Path(db) if db else config_from_env().db_path
    # A dry run writes nothing, not even a new empty database where none was.
    store = open_store(":memory:") if dry_run and not target.exists() else _store(db)
    directory = Directory(store.db)
    with contextlib.ExitStack() as stack:
        bars: list[Any] = []  # a progress bar, opened once the file turns out to be large

        def progress(rows: int, total: int) -> None:
            if not bars and total >= 2000:
                bars.append(stack.enter_context(click.progressbar(
                    length=total, label="checking rows", file=sys.stderr)))
            for bar in bars:
                bar.update(rows)

        try:
            result = import_file(directory, Path(file), day, coords=coords, dry_run=dry_run, progress=progress)
        except ImportFileError as exc:
            raise click.ClickException(str(exc)) from None
    for p in result.problems:
        click.echo(str(p))
    if result.ignored_columns:
        click.echo(one_line(f"ignored column(s): {'、'.join(result.ignored_columns)}"), err=True)
    if not result.ok:
        click.echo(f"{len(result.problems)} problem(s) in {result.rows} row(s); nothing was imported", err=True)
        raise SystemExit(1)
    verb = "would import" if dry_run else "imported"
    demo = f", {result.demo_removed} demo institution(s) removed" if result.demo_removed else ""
    click.echo(f"{verb} {result.rows} row(s) ({result.encoding}): {result.inserted} new, {result.updated} "
               f"updated, {result.unchanged} unchanged{demo}")


@institutions.command("export")
@click.argument("file", type=click.Path(dir_okay=False))
@db_option
def institutions_export(file: str, db: str | None) -> None:
    """Write every institution (all states) in the import's columns: XLSX for .xlsx, else CSV in UTF-8
    with BOM. Importing the export changes nothing.

    Example: zjcare-guide institutions export institutions.xlsx
    """
    store = existing_store(db)
    try:
        n = export_file(Directory(store.db), Path(file))
    except OSError as exc:
        raise click.ClickException(f"cannot write {file}: {exc.strerror or exc}") from None
    click.echo(f"wrote {n} institution(s) to {file}")


def _hit_json(hit: Hit, today: dt.date) -> dict[str, Any]:
    i = hit.institution
    out: dict[str, Any] = {"id": i.filing_no, "name": i.name, "town": i.town.name}
    if hit.distance_km is not None:
        out["distance_km"] = round(hit.distance_km, 1)
    out.update({"places_available": i.places_known(today), "places_updated":
                i.places_updated.isoformat() if i.places_updated else None, "capacity": i.capacity,
                "inclusive": i.inclusive, "forms": list(i.forms), "age_months": [i.age_min, i.age_max],
                "kind": i.kind, "phone": i.phone, "address": i.address, "latitude": i.latitude,
                "longitude": i.longitude})
    return out


def _print_hits(hits: list[Hit], today: dt.date, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([_hit_json(h, today) for h in hits], ensure_ascii=False, indent=2))
        return
    if not hits:
        click.echo("no registered institution matches")
        return
    for h in hits:
        i = h.institution
        places = i.places_known(today)
        where = f"{h.distance_km:5.1f} km  " if h.distance_km is not None else ""
        click.echo(f"{where}{i.name}  [{i.filing_no}]  {i.town.name}  {'普惠  ' if i.inclusive else ''}"
                   f"{i.age_min}-{i.age_max}个月  {'、'.join(i.forms)}  "
                   f"{'空位待确认' if places is None else f'空余托位 {places}'}  {i.phone}")


@institutions.command("near")
@click.option("--lat", type=float, required=True, help="Latitude, WGS-84 degrees.")
@click.option("--lon", type=float, required=True, help="Longitude, WGS-84 degrees.")
@click.option("--radius-km", type=click.FloatRange(0.1, 100), default=DEFAULT_RADIUS_KM, show_default=True)
@click.option("--age-months", type=click.IntRange(0, 72), help="Only institutions taking a child of this age.")
@click.option("--form", type=click.Choice(FORMS), help="Only this service form.")
@click.option("--inclusive", is_flag=True, help="普惠 institutions only.")
@click.option("--with-places", is_flag=True, help="Only confirmed available places (updated within 30 days).")
@click.option("--limit", type=click.IntRange(1, 100), default=5, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON items, nearest first.")
@db_option
@content_option
@today_option
def institutions_near(lat: float, lon: float, radius_km: float, age_months: int | None, form: str | None,
                      inclusive: bool, with_places: bool, limit: int, as_json: bool, db: str | None,
                      content: str | None, today: str | None) -> None:
    """Registered institutions nearest to a point, within a radius, as a parent would see them.

    JSON items: id (备案编号), name, town, distance_km, places_available (null when unconfirmed for
    30 days), inclusive, forms, age_months [min, max], phone, address…

    Example: zjcare-guide institutions near --lat 29.71 --lon 120.24 --age-months 18 --json
    """
    if not (math.isfinite(lat) and math.isfinite(lon)) or not in_zhuji(lat, lon):
        raise click.BadParameter("the point is outside Zhuji (29.30–30.05 °N, 119.85–120.60 °E)",
                                 param_hint="--lat/--lon")
    day = _today(today)
    directory = open_directory(_store(db), content, day)
    filters = Filters(age_months=age_months, form=form, inclusive=inclusive, with_places=with_places)
    _print_hits(directory.nearest(lat, lon, day, filters=filters, radius_km=radius_km, limit=limit), day, as_json)


@institutions.command("search")
@click.argument("text")
@click.option("--limit", type=click.IntRange(1, 200), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON items, best first.")
@db_option
@content_option
@today_option
def institutions_search(text: str, limit: int, as_json: bool, db: str | None, content: str | None,
                        today: str | None) -> None:
    """Registered institutions by name, or in a town (店口, 店口镇 or diankou).

    Example: zjcare-guide institutions search 店口 --json
    """
    from .cli import from_terminal

    day = _today(today)
    directory = open_directory(_store(db), content, day)
    query = from_terminal(text).strip()
    if not query:
        raise click.BadParameter("give a town or a name to search for", param_hint="TEXT")
    _print_hits(directory.search(query, day, limit=limit), day, as_json)


@main.group()
def operators() -> None:
    """Institution staff who may update their available places in the bot (/places N)."""


@operators.command("add")
@click.option("--telegram-id", type=click.IntRange(1), required=True, help="The operator's Telegram user id.")
@click.option("--institution", required=True, help="The institution's 备案编号.")
@db_option
def operators_add(telegram_id: int, institution: str, db: str | None) -> None:
    """Let a Telegram user update one institution's places (replaces their earlier institution).

    Example: zjcare-guide operators add --telegram-id 123456789 --institution DEMO-001
    """
    day = _today(None)
    directory = open_directory(_store(db), None, day)
    try:
        inst = directory.add_operator(user_key("telegram", telegram_id), institution, day)
    except KeyError:
        raise click.ClickException(f"no institution with 备案编号 {institution}") from None
    click.echo(f"telegram user {telegram_id} can now update the places of {inst.name} [{inst.filing_no}]")
    if inst.status != LISTED:
        click.echo(f"note: its state is {inst.status}, so parents do not see it in searches", err=True)


@operators.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON rows: user, institution, added.")
@db_option
def operators_list(as_json: bool, db: str | None) -> None:
    """Every operator and their institution.

    Example: zjcare-guide operators list
    """
    rows = Directory(existing_store(db).db).operators()
    if as_json:
        click.echo(json.dumps([{"user": u, "institution": f, "added": a} for u, f, a in rows], ensure_ascii=False))
        return
    for u, f, a in rows:
        click.echo(f"{u}  {f}  since {a}")
    if not rows:
        click.echo("no operators registered")


@operators.command("remove")
@click.option("--telegram-id", type=click.IntRange(1), required=True)
@db_option
def operators_remove(telegram_id: int, db: str | None) -> None:
    """Withdraw a Telegram user's right to update places.

    Example: zjcare-guide operators remove --telegram-id 123456789
    """
    if not Directory(existing_store(db).db).remove_operator(user_key("telegram", telegram_id)):
        raise click.ClickException(f"telegram user {telegram_id} is not an operator")
    click.echo(f"telegram user {telegram_id} is no longer an operator")


@main.group()
def reports() -> None:
    """Parents' reports about institutions and unfiled operators (/report in the bot)."""


@reports.command("list")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]), help="Only reports from this day on.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON rows: ref, day, time, filing_no, institution…")
@db_option
def reports_list(since: dt.datetime | None, as_json: bool, db: str | None) -> None:
    """The reports, oldest first, with their reference numbers.

    Example: zjcare-guide reports list --since 2026-11-01
    """
    items = list_reports(existing_store(db).db, since.date() if since else None)
    if as_json:
        click.echo(json.dumps([dict(zip(("ref", "day", "time", "filing_no", "institution", "town", "text",
                                         "status"), r.as_row(), strict=True)) for r in items],
                              ensure_ascii=False, indent=2))
        return
    for r in items:
        about = f"{r.institution} [{r.filing_no}]" if r.filing_no else f"未备案 · {r.town}"
        click.echo(f"{r.ref}  {r.day} {r.time}  {r.status_name}  {about}\n    {r.text}")
    if not items:
        click.echo("no reports")


@reports.command("export")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]), help="Only reports from this day on.")
@db_option
def reports_export(file: str, since: dt.datetime | None, db: str | None) -> None:
    """Write the reports to CSV (UTF-8 with BOM) or XLSX, by the file's extension.

    Example: zjcare-guide reports export reports.xlsx
    """
    items = list_reports(existing_store(db).db, since.date() if since else None)
    path = Path(file)
    try:
        write_rows(path, [list(EXPORT_HEADERS), *(r.as_row() for r in items)], sheet_name="举报")
    except OSError as exc:
        raise click.ClickException(f"cannot write {file}: {exc.strerror or exc}") from None
    click.echo(f"wrote {len(items)} report(s) to {file}")
