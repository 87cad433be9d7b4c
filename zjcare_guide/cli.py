"""The `zjcare-guide` command line: what the bot would say, and the editors' tools."""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Any

import click

from .clock import Clock, fixed_clock, system_clock
from .commands import parse_command
from .config import Config, ConfigError
from .content import DEFAULT_CONTENT_DIR, ContentError, check_content
from .conversation import Conversation
from .evaluation import evaluate, leave_one_out, load_golden
from .guide import Guide
from .identity import CONSOLE
from .institutions import Directory
from .model import Problem
from .registry_import import ImportFileError, check_demo, load_demo
from .render import Renderer, to_plain
from .replies import Command, Event, Location, Reply, Session, Text
from .schedule import load_schedules, plan
from .store import Store

DEFAULT_GOLDEN = Path(__file__).resolve().parent.parent / "tests" / "golden" / "questions.yaml"


def _today(value: str | None) -> dt.date:
    if value:
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param_hint="--today") from None
    return system_clock().date()


def clock_for(today: str | None) -> Clock:
    """The system clock, or one stopped on --today (for reproducible output)."""
    return fixed_clock(_today(today)) if today else system_clock


def from_terminal(text: str) -> str:
    """A command-line argument or console line as real text.

    Python hands over bytes that are not valid in the locale's encoding as lone surrogates; a
    Windows or older Linux terminal in Zhuji may well send GBK. Mostly-UTF-8 text keeps what
    decodes with U+FFFD for the rest; text that is not UTF-8 at all is read as GB18030. No
    surrogate reaches the core either way."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that did not come from undecodable bytes
        return text.encode("utf-8", "replace").decode("utf-8")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    mended = raw.decode("utf-8", "replace")
    broken = mended.count("\ufffd")
    if sum(1 for ch in mended if ord(ch) > 127) - broken >= broken:
        return mended  # mostly UTF-8 with a few broken bytes: keep the good part
    try:
        return raw.decode("gb18030")
    except UnicodeDecodeError:
        return mended


def _content_dir(value: str | None) -> Path:
    return Path(value or os.environ.get("ZJCARE_CONTENT_DIR") or DEFAULT_CONTENT_DIR)


def config_from_env() -> Config:
    try:
        return Config.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def open_store(path: str | None) -> Store:
    target = Path(path) if path else config_from_env().db_path
    try:
        return Store.open(target)
    except Exception as exc:  # sqlite3 errors, permissions: one line for the operator
        raise click.ClickException(f"cannot open the database {target}: {exc}") from None


def existing_store(path: str | None) -> Store:
    """A database that must exist already (reading it, or naming it with --db): a mistyped path is an
    error, not a new empty database."""
    target = Path(path) if path else config_from_env().db_path
    if not target.is_file():
        raise click.ClickException(f"no database at {target}: give the bot's database with --db or $ZJCARE_DB")
    return open_store(str(target))


def load_guide(content: str | None, today: str | None = None) -> Guide:
    root = _content_dir(content)
    try:
        return Guide.from_dir(root, _today(today))
    except ContentError as exc:
        for p in exc.problems[:20]:
            click.echo(str(p), err=True)
        raise click.ClickException(
            f"the content in {root} has {len(exc.problems)} problem(s); run 'zjcare-guide content check'"
        ) from None


content_option = click.option("--content", "content", type=click.Path(file_okay=False),
                              help="Content directory (default: $ZJCARE_CONTENT_DIR or the shipped content/).")


def open_directory(store: Store, content: str | None, today: dt.date) -> Directory:
    """The institution directory, with the demo institutions loaded on first start."""
    directory = Directory(store.db)
    try:
        load_demo(directory, _content_dir(content), today)
    except ImportFileError as exc:
        raise click.ClickException(f"the demo institutions could not be loaded: {exc}") from None
    return directory


_LOC = re.compile(r"^/loc(?:ation)?(?:\s+(.*))?$", re.I | re.S)


def console_event(line: str) -> Event:
    """A console line as the event a transport would send: `/loc 29.71 120.24` shares a location
    (latitude, longitude; a comma between them is fine), `/name args` is a command, the rest text."""
    m = _LOC.match(line)
    if m:
        parts = re.split(r"[\s,，]+", (m.group(1) or "").strip())
        try:
            lat, lon = (float(p) for p in parts) if len(parts) == 2 else (math.nan, math.nan)
        except ValueError:
            lat = lon = math.nan
        return Location(lat, lon, actor=CONSOLE)
    command = parse_command(line)
    if isinstance(command, Command):
        return Command(command.name, command.args, actor=CONSOLE)
    return Text(line, actor=CONSOLE)


def print_replies(replies: list[Reply], numbered: bool = True) -> None:
    """Plain-text form of what a parent is sent: the text, then the buttons numbered."""
    n = 0
    for i, reply in enumerate(replies):
        if i:
            click.echo("\n" + "—" * 20 + "\n")
        if reply.venue is not None:
            v = reply.venue
            click.echo(f"📍 {v.title}\n   {v.address}\n   {v.latitude:.6f}, {v.longitude:.6f}")
            continue
        if reply.photo is not None:
            click.echo(f"[二维码图片，{len(reply.photo)} 字节；在 Telegram 中作为图片发送]")
        click.echo(to_plain(reply.text))
        if reply.document is not None:
            click.echo(f"[文件 {reply.document.filename}，{len(reply.document.data)} 字节；在 Telegram 中作为文件发送]")
            click.echo(reply.document.data.decode("utf-8", "replace"))
        if reply.ask_location is not None:
            others = " / ".join(reply.ask_location.other_labels)
            click.echo(f"\n  [{reply.ask_location.share_label}：输入 /loc 纬度 经度，如 /loc 29.71 120.24]")
            if others:
                click.echo(f"  [或输入：{others}]")
        labels = [b.label for row in reply.buttons for b in row]
        if labels and numbered:
            click.echo("")
            for label in labels:
                n += 1
                click.echo(f"  [{n}] {label}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="zjcare-guide")
def main() -> None:
    """诸暨科学育儿指导 — parenting guidance for families of children under 3 in Zhuji."""


@main.command()
@click.argument("question")
@click.option("--age-months", type=click.IntRange(0, 72), help="The child's age in months, if known.")
@click.option("--json", "as_json", is_flag=True, help="Print kind, articles and text as JSON.")
@content_option
def ask(question: str, age_months: int | None, as_json: bool, content: str | None) -> None:
    """Print exactly what a parent would be sent for QUESTION.

    With --json: kind, articles, text, and for an escalation the danger signs found (sign, tier,
    by_model). Example: zjcare-guide ask "8个月宝宝辅食怎么加" --age-months 8 --json
    """
    conv = Conversation(load_guide(content), clock=system_clock)
    outcome, replies = conv.ask(from_terminal(question), age_months)
    if as_json:
        refs = [r for reply in replies[:1] for r in reply.articles]
        payload: dict[str, Any] = {
            # A message that is no question (empty, far too long) gets the fallback kind.
            "kind": outcome.kind if outcome else "fallback",
            "articles": [{"id": r.id, "title": r.title, "topic": r.topic, "score": r.score} for r in refs],
            "text": "\n\n".join(to_plain(r.text) for r in replies),
        }
        if outcome is not None and outcome.kind == "urgent" and outcome.triage is not None:
            # Which danger signs, at which tier, and whether only the learned model saw them.
            payload["findings"] = [{"sign": f.sign_id, "tier": f.tier, "by_model": f.by_model}
                                   for f in outcome.triage.findings]
        click.echo(json.dumps(payload, ensure_ascii=False, indent=2))
    else:
        print_replies(replies)


@main.command()
@click.option("--age-months", type=click.IntRange(0, 72), help="Start with the child's age in months.")
@content_option
def chat(age_months: int | None, content: str | None) -> None:
    """Talk to the guide on the console, offline, no token needed.

    Type a question; a number presses a button of the last reply; /topics, /age N, /find, /child,
    /reminders, /pause, /resume, /unlink, /privacy, /mydata, /forget, /report, /places N (operators),
    /invite, /families, /overdue, /visit, /push (doctors), /cancel, /help, /quit; share a location
    with /loc LATITUDE LONGITUDE (WGS-84), e.g. /loc 29.71 120.24.

    Example: zjcare-guide chat --age-months 8
    """
    guide = load_guide(content)
    store = open_store(None)
    open_directory(store, content, _today(None))
    config = config_from_env()
    conv = Conversation(guide, clock=system_clock, store=store, policy=config.policy, admins=config.admins,
                        bot_username=config.bot_username, retention_months=config.retention_months)
    session = Session(age_months=age_months, numbered_buttons=True)
    interactive = sys.stdin.isatty()
    if isinstance(sys.stdin, io.TextIOWrapper):
        # Undecodable bytes arrive as surrogates and are mended by from_terminal, instead of a traceback.
        sys.stdin.reconfigure(errors="surrogateescape")
    print_replies(conv.safe_handle(Command("start"), session))
    while True:
        if interactive:
            click.echo("")
        try:
            line = input("您> " if interactive else "")
        except (EOFError, KeyboardInterrupt):
            click.echo("")
            break
        line = from_terminal(line).strip()
        if line in ("/quit", "/exit", "/q"):
            break
        if not interactive:
            click.echo(f"您> {line}")
        replies = conv.safe_handle(console_event(line), session)
        click.echo("")
        print_replies(replies)


@main.group()
def content() -> None:
    """Editors' tools for the guidance content."""


@content.command("check")
@click.argument("directory", required=False, type=click.Path(file_okay=False))
@click.option("--today", help="Check review dates as of this day (YYYY-MM-DD); default: today in Asia/Shanghai.")
def content_check(directory: str | None, today: str | None) -> None:
    """Validate every content file; print path:line: problem and exit 1 on any.

    Example: zjcare-guide content check content/
    """
    root = _content_dir(directory)
    library, problems = check_content(root, _today(today))
    demo = check_demo(root, _today(today))
    for p in [*map(str, problems), *demo]:
        click.echo(p)
    if library is None or demo:
        click.echo(f"{len(problems) + len(demo)} problem(s) in {root}", err=True)
        sys.exit(1)
    click.echo(f"ok: {len(library.articles)} articles, {len(library.danger.signs)} danger signs, "
               f"{len(library.topics)} topics in {root}")


@content.command("test")
@click.option("--verbose", "-v", is_flag=True, help="List every miss, not only the first 40.")
@content_option
def content_test(verbose: bool, content: str | None) -> None:
    """Leave-one-out self-test: each example question, removed from the index, must still find its article.

    Example: zjcare-guide content test
    """
    guide = load_guide(content)
    result = leave_one_out(guide)
    share = result.routed / result.asked if result.asked else 0.0
    offered = result.offered / result.asked if result.asked else 0.0
    click.echo(f"{result.routed}/{result.asked} example questions still answered with their own article: "
               f"{share:.1%}; offered among choices or answered: {offered:.1%} (docs/matching.md has the "
               f"figures to compare with)")
    shown = result.misses if verbose else result.misses[:40]
    for article_id, question, got in shown:
        click.echo(f"  miss {article_id}: {question}  →  {got}")
    if len(shown) < len(result.misses):
        click.echo(f"  … {len(result.misses) - len(shown)} more (use -v)")


@content.command("gaps")
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]), help="Only questions from this day on.")
@click.option("--db", type=click.Path(dir_okay=False), help="Database (default: $ZJCARE_DB).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON rows.")
def content_gaps(limit: int, since: dt.datetime | None, db: str | None, as_json: bool) -> None:
    """The questions parents asked most that got no answer or a 👎: what to write next.

    Example: zjcare-guide content gaps --limit 30 --since 2026-11-01
    """
    target = Path(db) if db else config_from_env().db_path
    if not target.is_file():
        # Reading must not create an empty database where the operator mistyped a path.
        raise click.ClickException(f"no database at {target}: give the bot's database with --db or $ZJCARE_DB")
    gaps = open_store(str(target)).gaps(limit=limit, since=since.date() if since else None)
    if as_json:
        click.echo(json.dumps([{"question": g.question, "unanswered": g.unanswered, "disliked": g.disliked,
                                "articles": g.articles.split(",") if g.articles else []} for g in gaps],
                              ensure_ascii=False, indent=2))
        return
    if not gaps:
        click.echo("no unanswered or disliked questions recorded yet")
        return
    click.echo(f"{'total':>5} {'none':>5} {'👎':>4}  question  [disliked articles]")
    for g in gaps:
        extra = f"  [{g.articles}]" if g.articles else ""
        click.echo(f"{g.total:>5} {g.unanswered:>5} {g.disliked:>4}  {g.question}{extra}")


@content.command("eval")
@click.argument("golden", required=False, type=click.Path(dir_okay=False, exists=True))
@click.option("--verbose", "-v", is_flag=True, help="List the misses.")
@content_option
def content_eval(golden: str | None, verbose: bool, content: str | None) -> None:
    """Report matching and triage quality on a golden question file.

    Example: zjcare-guide content eval tests/golden/questions.yaml -v
    """
    guide = load_guide(content)
    report = evaluate(guide, load_golden(Path(golden) if golden else DEFAULT_GOLDEN))
    f = report.figures()
    # (label, figure, count, of, target and note); a group the file has no messages of is not printed.
    lines = [
        ("in-scope answered with a correct article", "answered_correct", report.answered_correct,
         report.in_scope, "target ≥ 90%"),
        ("in-scope correct within the offered choices", "within_choices", report.within_choices,
         report.in_scope, "target ≥ 97%"),
        ("danger-sign messages escalated", "urgent_escalated", report.escalated, report.urgent,
         f"{report.by_model} by the learned model only; target ≥ 97%"),
        ("danger-sign messages escalated at the right tier", "urgent_tier_right", report.tier_right,
         report.urgent, "target ≥ 90%"),
        ("non-urgent danger words escalated anyway", "not_urgent_false_alarms", report.false_alarms,
         report.not_urgent, "target ≤ 10%"),
        ("out-of-scope answered with an article", "out_of_scope_answered", report.out_answered,
         report.out_of_scope, "target ≤ 5%"),
        ("greetings and thanks answered with a greeting", "greetings_greeted", report.greeted, report.greetings,
         ""),
    ]
    for label, key, count, of, note in lines:
        if of:
            click.echo(f"{label}: {f[key]:.1%} ({count}/{of}{'; ' + note if note else ''})")
    if verbose:
        for m in report.misses:
            click.echo(f"  [{m.group}] {m.question}  expected {m.expected}  got {m.got}")


def _date_option(value: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param_hint=option) from None


@main.command()
@click.option("--birth", required=True, help="The child's birth date, YYYY-MM-DD.")
@click.option("--done", "done", multiple=True, metavar="ID=DATE",
              help="An item already given or done and its date, e.g. --done hepb-1=2026-03-01 (repeatable).")
@click.option("--discharge", help="The day the newborn came home (the home visit is due from it), YYYY-MM-DD.")
@click.option("--today", help="Plan as of this day (YYYY-MM-DD); default: today in Asia/Shanghai.")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON items: id, kind, name, dose, due, window_end, done_on, status, note, source.")
@content_option
def schedule(birth: str, done: tuple[str, ...], discharge: str | None, today: str | None, as_json: bool,
             content: str | None) -> None:
    """The child's plan of vaccinations (NIP), health checks and the newborn home visit, birth to 6 years.

    Due dates follow calendar months from the birth date and, after a dose given late, the minimum
    intervals from the actual dates (catch-up). Items whose time has passed show as needing a catch-up,
    to be settled with the vaccination clinic.

    Example: zjcare-guide schedule --birth 2026-03-01 --done hepb-1=2026-03-01 --done bcg-1=2026-03-02
    """
    root = _content_dir(content)
    problems: list[Problem] = []
    templates = {p.stem for p in (root / "templates").glob("*.j2")}
    items = load_schedules(root / "schedules", templates, problems)
    if problems:
        for p in problems[:20]:
            click.echo(str(p), err=True)
        raise click.ClickException(f"the schedules in {root} have problems; run 'zjcare-guide content check'")
    records: dict[str, dt.date] = {}
    for entry in done:
        item_id, sep, day = entry.partition("=")
        if not sep:
            raise click.BadParameter(f"{entry!r}: write ID=DATE, e.g. hepb-1=2026-03-01", param_hint="--done")
        records[item_id.strip()] = _date_option(day, "--done")
    try:
        result = plan(items, _date_option(birth, "--birth"), records, today=_today(today),
                      discharge=_date_option(discharge, "--discharge") if discharge else None)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps([p.as_json() for p in result], ensure_ascii=False, indent=2))
        return
    renderer = Renderer(root / "templates")
    click.echo(to_plain(renderer.render("schedule_plan", plan=result)))
    click.echo("")
    for schedule_ in dict.fromkeys(i.schedule for i in items):
        click.echo(f"{schedule_.edition}（{schedule_.effective.isoformat()}起）")
        for case in schedule_.cases:
            click.echo(f"  · {case}")


from . import db_cli, directory_cli, doctors_cli, reminders_cli  # noqa: E402,F401  (register their commands)

if __name__ == "__main__":  # pragma: no cover
    main()
