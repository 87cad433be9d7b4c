"""One conversation, many transports: an event and the chat's session in, replies out.

The console `chat` and the Telegram bot both call `Conversation.handle`; it dispatches through one
router (`router.py`) to the features, so a new feature is a module the transports never hear about.
Triage comes before any feature: a danger sign typed while a feature waits for a town or a report
is still escalated at once.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import re
import sqlite3
from collections.abc import Callable, Sequence

from . import personal_data
from .child_flow import ChildFlow
from .children import Families, age_in_months
from .clock import Clock
from .doctor_flow import DoctorFlow
from .finder import Finder
from .guidance import Guidance
from .guide import Guide, GuideHolder, Outcome
from .institutions import Directory
from .operators import Operators
from .outbox import Outbox
from .privacy import Privacy
from .reminder_flow import ReminderFlow, ReminderPlanner
from .reminders import Policy, Reminders
from .replies import Action, Button, Command, Event, Location, Press, Reply, Session, Text, Unsupported
from .reports import Reports
from .roles import Authority
from .router import BaseFeature, CommandSpec, Feature, Router, Turn
from .store import Store
from .text import sanitize

_CHOICE = re.compile(r"^\s*(\d{1,2})\s*$")
_CANCELLED_STEP = "cancelled_step"  # session state: the step the last command ended, for /cancel
_AGE_LOOKED_UP = "age_looked_up"  # session state: the registered child's age was looked up
_SEEN = "seen_on"  # session state: the day the family's last activity was recorded
log = logging.getLogger(__name__)


class Conversation(BaseFeature):
    """Stateless over chats: everything per chat lives in the `Session` the transport passes in."""

    name = "conversation"

    def __init__(self, guide: Guide | Callable[[], Guide], *, clock: Clock, store: Store | None = None,
                 policy: Policy | None = None, admins: frozenset[str] = frozenset(),
                 bot_username: str | None = None,
                 retention_months: int = personal_data.DEFAULT_RETENTION_MONTHS) -> None:
        # A callable lets a transport swap in a reloaded guide without rebuilding the conversation.
        self._guide = guide if callable(guide) else (lambda: guide)
        self.store = store
        # The time comes from the transport (the edge); nothing here reads the clock itself.
        self.clock = clock
        self.guidance = Guidance(self._guide, store)
        directory = Directory(store.db) if store is not None else None
        # In the order the bot's command menu lists their commands.
        families = self.families = Families(store.db) if store is not None else None
        self.planner = ReminderPlanner(self._guide, Reminders(store.db, families), policy or Policy()) \
            if store is not None else None
        self.authority = Authority(store.db if store is not None else None, admins)
        # The bot's @username, for invite links: from the transport (getMe) or ZJCARE_BOT_USERNAME.
        self.bot_username = bot_username
        self.doctor_flow = DoctorFlow(self._guide, self.authority, self.planner, lambda: self.bot_username,
                                      Outbox(store.db) if store is not None else None, policy)
        features: list[Feature] = [self.guidance, Finder(self._guide, directory),
                                   ChildFlow(self._guide, families, self.planner),
                                   ReminderFlow(self._guide, families, self.planner),
                                   Reports(self._guide, directory), Operators(self._guide, directory),
                                   self.doctor_flow,
                                   Privacy(self._guide, store.db if store is not None else None, retention_months),
                                   self]
        self.router = Router(features)

    @property
    def guide(self) -> Guide:
        return self._guide()

    # ------------------------------------------------------------ the conversation's own commands

    def commands(self) -> Sequence[CommandSpec]:
        return (CommandSpec("cancel", self._cancel, listed=True),)

    def _cancel(self, turn: Turn, args: str) -> list[Reply]:
        # The command itself already ended the step (see _command); `was` is what it was.
        was = turn.session.state.pop(_CANCELLED_STEP, "")
        return [Reply("notice", self.guide.renderer.render("cancelled", nothing=not was), self.guidance.main_menu())]

    def _registered_age(self, turn: Turn) -> float | None:
        assert self.families is not None
        family = self.families.get(turn.actor.user_key) if turn.actor.user_id else None
        if family is None or family.consent_at is None:
            return None
        ages = {age_in_months(c.birth, turn.today) for c in self.families.children(family.id)}
        if len(ages) != 1:
            return None
        months = ages.pop()
        return float(months) if months <= 72 else None

    # ------------------------------------------------------------ entry point

    def safe_handle(self, event: Event, session: Session, *, escalated: bool = False,
                    later: list[Callable[[], None]] | None = None) -> list[Reply]:
        """`handle`, but an unexpected error becomes a short apology instead of reaching the parent,
        and a write that could not get the database (another process held it past the busy timeout)
        says kindly that nothing was saved, with the session as it was: sending the same again works.

        The log names the event type only: message text can hold a child's name or symptoms."""
        before = copy.deepcopy(session)
        try:
            return self.handle(event, session, escalated=escalated, later=later)
        except sqlite3.OperationalError as exc:
            if not _busy(exc):
                log.error("conversation failed on a %s event: %s", type(event).__name__, exc)
                return [self.guidance.notice("error")]
            log.warning("database busy: a %s event's write was not saved", type(event).__name__)
            _restore(session, before)
            return [self.guidance.notice("not_saved")]
        except Exception:
            log.exception("conversation failed on a %s event", type(event).__name__)
            return [self.guidance.notice("error")]

    def urgent_first(self, event: Event, session: Session) -> list[Reply]:
        """The escalation for a text with a danger sign, computed without the database, so that a
        transport can send it before anything else (a write waiting on a lock, the chat's earlier
        message): then it handles the event with `escalated=True`, which does not send it again.
        Empty when the text is no emergency or the step awaiting it does not triage (a doctor's push).

        Reads the session but never changes it (the chat's earlier event may still be running)."""
        if not isinstance(event, Text):
            return []
        feature = self.router.features.get(session.awaiting) if session.awaiting else None
        if feature is not None and not feature.triages_text:
            return []
        text = sanitize(event.text).strip()
        if not text:
            return []
        try:
            triage = self.guide.triage.assess(text, session.age_months)
            if not triage.urgent:
                return []
            return self.guidance.respond(Outcome("urgent", triage=triage, question=text))
        except Exception:
            log.exception("urgent_first failed on a text event")
            return []  # the ordinary path still triages the text

    def handle(self, event: Event, session: Session, *, escalated: bool = False,
               later: list[Callable[[], None]] | None = None) -> list[Reply]:
        """The replies to one event. Writes the reply does not depend on are run before returning,
        or, given a `later` list, appended to it for the transport to run after sending."""
        turn = Turn(event.actor, session, self.clock(), escalated=escalated)
        replies = self._dispatch(event, turn)
        if self.families is not None and turn.actor.user_id and session.state.get(_SEEN) != turn.today:
            # Last activity, for the retention purge (db purge): once a day per chat at most.
            session.state[_SEEN] = turn.today
            families, key, today = self.families, turn.actor.user_key, turn.today
            turn.defer(lambda: families.seen(key, today))
        if later is not None:
            later.extend(turn.later)
        else:
            run_later(turn.later)
        return replies

    def _dispatch(self, event: Event, turn: Turn) -> list[Reply]:
        session = turn.session
        if session.age_months is None and not session.state.get(_AGE_LOOKED_UP) and self.families is not None:
            # A family with one registered child need not give the age again (/age): answers and the
            # institution finder use it. Looked up once per session; with twins or several children
            # the parent still says which age they mean.
            session.state[_AGE_LOOKED_UP] = True
            session.age_months = self._registered_age(turn)
        if isinstance(event, Text):
            replies = self._text(event.text, turn)
        elif isinstance(event, Command):
            replies = self._command(event, turn)
        elif isinstance(event, Press):
            replies = self._press(event.action, turn)
        elif isinstance(event, Location):
            replies = self._location(event, turn)
        elif isinstance(event, Unsupported):
            replies = [self.guidance.notice("bad_input", reason="unsupported")]
        else:  # pragma: no cover - the Event union is closed
            replies = [self.guidance.notice("error")]
        actions = [a for r in replies for a in r.actions()]
        if actions:  # a reply without buttons (a notice) keeps the previous choices open
            session.options = actions
        elif any(r.ask_location for r in replies):
            session.options = []  # its keyboard replaces the earlier buttons: a number presses none
        return replies

    def _text(self, text: str, turn: Turn) -> list[Reply]:
        session = turn.session
        text = text.strip()
        m = _CHOICE.match(text) if session.numbered_buttons else None
        if m and session.options:
            n = int(m.group(1))
            if 1 <= n <= len(session.options):
                return self._press(session.options[n - 1], turn)
            return [self.guidance.notice("bad_input", reason="choice")]
        feature = self.router.features.get(session.awaiting) if session.awaiting else None
        if feature is None:
            # Out of any flow, a feature may claim a message ("店口有托育机构吗"); the rest are questions.
            feature = next((f for f in self.router.features.values()
                            if f is not self.guidance and f.claims(text)), None)
        if feature is not None:
            triage = self.guide.triage.assess(sanitize(text), session.age_months) \
                if feature.triages_text else None
            if triage is not None and triage.urgent:
                urgent = [] if turn.escalated else \
                    self.guidance.respond(Outcome("urgent", triage=triage, question=text))
                if session.awaiting == feature.name and feature.files_urgent_text:
                    return urgent + (feature.on_text(turn, text) or [])
                session.awaiting = ""
                return urgent
            replies = feature.on_text(turn, text)
            if replies is not None:
                return replies
            session.awaiting = ""  # not what the feature waited for: a question like any other
        return self.guidance.on_text(turn, text) or []

    def _command(self, cmd: Command, turn: Turn) -> list[Reply]:
        spec = self.router.command(cmd.name.lower())
        if spec is None:
            return [self.guidance.help()]
        # A command ends whatever a feature was waiting for.
        turn.session.state[_CANCELLED_STEP] = turn.session.awaiting
        turn.session.awaiting = ""
        if not self.authority.allowed(turn.actor, spec.permission):
            return [self._refused(spec.permission)]
        if spec.name == "start" and cmd.args.strip():
            # A deep link (t.me/<bot>?start=join_<code>, a doctor's invite): the feature that made it answers.
            for feature in self.router.features.values():
                if (replies := feature.start_link(turn, cmd.args.strip())) is not None:
                    return replies
        return spec.handler(turn, cmd.args)

    def _refused(self, permission: str) -> Reply:
        return Reply("notice", self.guide.renderer.render("not_allowed", permission=permission))

    def _press(self, action: Action, turn: Turn) -> list[Reply]:
        spec = self.router.action(action.kind)
        if spec is None or not spec.accepts(action):
            return [self.guidance.notice("expired")]
        if not self.authority.allowed(turn.actor, spec.permission):
            return [self._refused(spec.permission)]
        return spec.handler(turn, action)

    def _location(self, location: Location, turn: Turn) -> list[Reply]:
        if not location.valid:
            return [self.guidance.notice("bad_input", reason="location")]
        for feature in self.router.features.values():
            replies = feature.on_location(turn, location)
            if replies is not None:
                return replies
        return [self.guidance.notice("bad_input", reason="unsupported")]

    # ------------------------------------------------------------ for the CLI, tests and benchmarks

    def ask(self, text: str, age_months: float | None = None) -> tuple[Outcome | None, list[Reply]]:
        return self.guidance.ask(text, age_months)

    def respond(self, outcome: Outcome) -> list[Reply]:
        return self.guidance.respond(outcome)

    def press(self, action: Action, session: Session | None = None) -> list[Reply]:
        return self.handle(Press(action), session or Session())

    def main_menu(self) -> tuple[tuple[Button, ...], ...]:
        return self.guidance.main_menu()

    def topic_page(self, topic_id: str, page: int) -> Reply:
        return self.guidance.topic_page(topic_id, page)


def run_later(writes: list[Callable[[], None]]) -> None:
    """Run a turn's deferred writes (Turn.defer). None of them is worth a parent's reply: a failure
    is logged by its type only (the data may name a child) and the others still run."""
    for write in writes:
        try:
            write()
        except Exception as exc:
            log.warning("a deferred write failed: %s", type(exc).__name__)


def _busy(exc: sqlite3.OperationalError) -> bool:
    """Another connection held the database past the busy timeout (store.BUSY_TIMEOUT_S)."""
    message = str(exc).lower()
    return "locked" in message or "busy" in message


def _restore(session: Session, before: Session) -> None:
    # The transport keeps this very Session object: put its fields back rather than replace it.
    for name in vars(before):
        setattr(session, name, getattr(before, name))


def reload_content(holder: GuideHolder, today: dt.date) -> Reply:
    """Reload `content/` for an administrator; a library with problems is refused and the last good
    one keeps serving."""
    problems = holder.reload(today)
    renderer = holder.guide.renderer
    if problems:
        text = renderer.render("reload_failed", count=len(problems), problems=[str(p) for p in problems[:10]])
    else:
        library = holder.guide.library
        text = renderer.render("reload_ok", articles_count=len(library.articles), signs=len(library.danger.signs))
    return Reply("notice", text)
