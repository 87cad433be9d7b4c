"""One conversation, many transports: an event and the chat's session in, replies out.

The console `chat` and the Telegram bot both call `Conversation.handle`, so they behave the same.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
import weakref
from collections.abc import Callable

from .danger import FirstAidStep
from .guide import Guide, GuideHolder, Outcome
from .model import Article
from .replies import (
    Action,
    ArticleRef,
    Button,
    Command,
    Event,
    Press,
    Reply,
    Session,
    Text,
    Unsupported,
)
from .store import Store
from .text import han_count, question_part, sanitize
from .triage import TriageResult

MAX_MESSAGE = 500
PAGE_SIZE = 8
MAX_AGE_MONTHS = 72
MENU = ("ask", "institutions", "reminders", "child")
# Where the menu entries that are not built yet point meanwhile.
COMING_SOON_ARTICLES = {"institutions": ("check-registration", "choosing-childcare"),
                        "reminders": ("vaccine-schedule", "checkup-schedule")}
_CHOICE = re.compile(r"^\s*(\d{1,2})\s*$")
# How many runners-up a 👎 offers.
MAX_OTHERS = 3
log = logging.getLogger(__name__)


class Conversation:
    """Stateless over chats: everything per chat lives in the `Session` the transport passes in."""

    def __init__(self, guide: Guide | Callable[[], Guide], store: Store | None = None,
                 today: Callable[[], dt.date] | None = None) -> None:
        # A callable lets a transport swap in a reloaded guide without rebuilding the conversation.
        self._guide = guide if callable(guide) else (lambda: guide)
        if store is not None and today is None:
            raise ValueError("a conversation that stores feedback needs today() from its transport")
        self.store = store
        self._rendered: weakref.WeakKeyDictionary[Guide, dict[str, tuple[str, tuple[tuple[Button, ...], ...]]]] = \
            weakref.WeakKeyDictionary()
        # The day comes from the transport (the edge); nothing here reads the clock itself.
        self._today = today

    @property
    def guide(self) -> Guide:
        return self._guide()

    # ------------------------------------------------------------ entry point

    def safe_handle(self, event: Event, session: Session) -> list[Reply]:
        """`handle`, but an unexpected error becomes a short apology instead of reaching the parent.

        The log names the event type only: message text can hold a child's name or symptoms."""
        try:
            return self.handle(event, session)
        except Exception:
            log.exception("conversation failed on a %s event", type(event).__name__)
            return [self._notice("error")]

    def handle(self, event: Event, session: Session) -> list[Reply]:
        if isinstance(event, Text):
            replies = self._text(event.text, session)
        elif isinstance(event, Command):
            replies = self._command(event, session)
        elif isinstance(event, Press):
            replies = self.press(event.action, session)
        elif isinstance(event, Unsupported):
            replies = [self._notice("bad_input", reason="unsupported")]
        else:  # pragma: no cover - the Event union is closed
            replies = [self._notice("error")]
        actions = [a for r in replies for a in r.actions()]
        if actions:  # a reply without buttons (a notice) keeps the previous choices open
            session.options = actions
        return replies

    # ------------------------------------------------------------ text

    def _text(self, text: str, session: Session) -> list[Reply]:
        text = text.strip()
        m = _CHOICE.match(text) if session.numbered_buttons else None
        if m and session.options:
            n = int(m.group(1))
            if 1 <= n <= len(session.options):
                return self.press(session.options[n - 1], session)
            return [self._notice("bad_input", reason="choice")]
        outcome, replies = self.ask(text, session.age_months)
        if outcome is not None:
            self._remember(outcome.question or text, outcome, session)
        return replies

    def _remember(self, text: str, outcome: Outcome, session: Session) -> None:
        """Keep the question for a later 👍/👎; store an unanswered one for the editors."""
        session.last_question = text
        session.last_article = outcome.candidates[0].article.id if outcome.kind == "answer" else None
        session.last_choices = [c.article.id for c in outcome.candidates] if outcome.kind == "choices" else []
        session.last_others = [c.article.id for c in outcome.candidates[1:MAX_OTHERS + 1]
                               if c.on_topic] if outcome.kind == "answer" else []
        # Only in-scope Chinese questions nobody could answer are kept: editors can write for those,
        # while an adult's health question is personal data the service has no use for, and emoji,
        # numbers or unreadable English give them nothing to write.
        if self.store is not None and self._today is not None and outcome.kind == "fallback" \
                and not outcome.scope and han_count(text) >= 2:
            key = self.guide.library.normaliser.compact(text)
            self._write(lambda store, day: store.record_unanswered(text, "fallback", day, key))

    def _write(self, write: Callable[[Store, dt.date], None]) -> None:
        """A failed write is logged and never costs the parent their reply."""
        if self.store is None or self._today is None:
            return
        try:
            write(self.store, self._today())
        except Exception:
            log.exception("could not store feedback or an unanswered question")

    def ask(self, text: str, age_months: float | None = None) -> tuple[Outcome | None, list[Reply]]:
        """The decision and the replies a parent gets for a free-text question (no decision when
        the message is empty, or too long and with no question that can be answered).

        Triage always reads the whole message first, however long: a danger sign in the middle of
        800 characters must still be escalated."""
        text = sanitize(text).strip()
        if not text:
            return None, [self._notice("bad_input", reason="empty")]
        g = self.guide
        if len(text) <= MAX_MESSAGE:
            outcome = g.decide(text, age_months)
            return outcome, self.respond(outcome)
        triage = g.triage.assess(text, age_months)
        if triage.urgent:
            outcome = Outcome("urgent", triage=triage, question=text)
            return outcome, self.respond(outcome)
        question = question_part(text, MAX_MESSAGE, g.library.scope.question_markers)
        answered = g.decide(question, triage.age_months) if question else None
        if answered is None or answered.kind == "fallback":
            return None, [self._notice("bad_input", reason="too_long", max_length=MAX_MESSAGE,
                                       symptom=triage.mentions_symptom)]
        return answered, self.respond(answered)

    def respond(self, outcome: Outcome) -> list[Reply]:
        g = self.guide
        if outcome.kind == "urgent":
            assert outcome.triage is not None
            return self._urgent(outcome.triage)
        if outcome.kind == "greeting":
            return [Reply("greeting", g.renderer.render("greeting", topics=g.library.topics),
                          self._topic_buttons())]
        if outcome.kind == "answer":
            best = outcome.candidates[0]
            reply = self._article_reply(best.article, kind="answer")
            refs = tuple(self._ref(c.article, c.score) for c in outcome.candidates[:3])
            return [Reply(reply.kind, reply.text, reply.buttons, refs)]
        if outcome.kind == "choices":
            arts = [c.article for c in outcome.candidates]
            text = g.renderer.render("choices", articles=arts)
            buttons = tuple((Button(a.title, Action("article", a.id)),) for a in arts)
            refs = tuple(self._ref(c.article, c.score) for c in outcome.candidates)
            return [Reply("choices", text, (*buttons, (self._topics_button(),)), refs)]
        template = "out_of_scope" if outcome.out_of_scope else "english" if outcome.scope == "english" \
            else "fallback"
        symptom = outcome.triage is not None and outcome.triage.mentions_symptom
        text = g.renderer.render(template, topics=g.library.topics, symptom=symptom, reason=outcome.scope)
        return [Reply("fallback", text, self._topic_buttons())]

    def _urgent(self, triage: TriageResult) -> list[Reply]:
        """The escalation: what to do now and the number to call on a short first screen, then the
        most specific article. First actions come only from the signs of the highest tier found,
        so a convulsion never carries the choking steps, nor choking the convulsion ones."""
        g = self.guide
        danger = g.library.danger
        aids: list[FirstAidStep] = []
        used: list[str] = []
        for f in triage.findings:
            if f.tier == triage.tier and f.first_aid and f.first_aid not in used and len(used) < 2:
                used.append(f.first_aid)
                aids.extend(danger.first_aid[f.first_aid].for_age(triage.age_months))
        chosen = danger.follow_up([f.article for f in triage.findings if f.article])
        article = g.article(chosen) if chosen else None
        text = g.renderer.render("urgent", findings=triage.findings, tier=triage.tier, first_aid=aids,
                                 article=article)
        refs: tuple[ArticleRef, ...] = (self._ref(article, None),) if article else ()
        replies = [Reply("urgent", text, articles=refs)]
        if article is not None:
            replies.append(self._article_reply(article, kind="article"))
        return replies

    # ------------------------------------------------------------ buttons

    def press(self, action: Action, session: Session | None = None) -> list[Reply]:
        g = self.guide
        if action.kind == "article":
            article = g.article(action.arg)
            if article is None:
                return [self._notice("expired")]
            if session is not None and article.id in session.last_choices:
                session.last_article = article.id  # the parent picked it for their question
            return [self._article_reply(article, kind="article")]
        if action.kind == "topics":
            return [self.topics_menu()]
        if action.kind == "topic":
            return [self.topic_page(action.arg, action.page)]
        if action.kind == "feedback":
            if g.article(action.arg) is None or action.value not in (1, -1):
                return [self._notice("expired")]
            return [self._feedback(action.arg, action.value, session)]
        if action.kind == "help":
            return [Reply("notice", g.renderer.render("help"), self._topic_buttons())]
        if action.kind == "menu" and action.arg in MENU:
            return [self._menu(action.arg)]
        return [self._notice("expired")]

    def _feedback(self, article_id: str, value: int, session: Session | None) -> Reply:
        g = self.guide
        if session is not None and article_id in session.rated:
            return Reply("notice", g.renderer.label("already_rated"))
        if session is not None:
            session.rated.add(article_id)
        # The question is kept only when this article was the answer to it.
        question = session.last_question if session and session.last_article == article_id else None
        key = g.library.normaliser.compact(question) if question else ""
        self._write(lambda store, day: store.record_feedback(article_id, value, question, day, key))
        if session is None or value > 0 or not question:
            return Reply("notice", g.renderer.label("thanks_feedback"))
        others = [a for a in (g.article(i) for i in session.last_others) if a is not None]
        if not others:
            return Reply("notice", g.renderer.label("thanks_feedback"))
        # The answer missed: the runners-up to the same question may be what the parent meant.
        session.last_choices = [a.id for a in others]
        text = g.renderer.render("choices", articles=others, after_feedback=True)
        rows = tuple((Button(a.title, Action("article", a.id)),) for a in others)
        return Reply("choices", text, (*rows, (self._topics_button(),)))

    def main_menu(self) -> tuple[tuple[Button, ...], ...]:
        r = self.guide.renderer
        return ((Button(r.label("menu_ask"), Action("menu", "ask")),),
                (Button(r.label("menu_institutions"), Action("menu", "institutions")),
                 Button(r.label("menu_reminders"), Action("menu", "reminders"))),
                (Button(r.label("menu_child"), Action("menu", "child")),
                 Button(r.label("menu_help"), Action("help"))))

    def _menu(self, entry: str) -> Reply:
        g = self.guide
        if entry == "ask":
            return Reply("menu", g.renderer.render("ask_prompt"), self._topic_buttons())
        if entry == "child":
            return Reply("notice", g.renderer.render("child"))
        articles = [a for a in (g.article(i) for i in COMING_SOON_ARTICLES[entry]) if a is not None]
        rows = tuple((Button(a.title, Action("article", a.id)),) for a in articles)
        return Reply("notice", g.renderer.render("coming_soon", feature=entry), rows)

    def topics_menu(self) -> Reply:
        g = self.guide
        return Reply("menu", g.renderer.render("topics", topics=g.library.topics), self._topic_buttons())

    def topic_page(self, topic_id: str, page: int) -> Reply:
        g = self.guide
        topic = g.library.topic(topic_id)
        articles = g.library.in_topic(topic_id)
        pages = max(1, math.ceil(len(articles) / PAGE_SIZE))
        if topic is None or not 0 <= page < pages:
            return self._notice("expired")
        shown = articles[page * PAGE_SIZE:(page + 1) * PAGE_SIZE]
        text = g.renderer.render("topic_articles", topic=topic, articles=shown, page=page + 1, pages=pages)
        rows: list[tuple[Button, ...]] = [(Button(a.title, Action("article", a.id)),) for a in shown]
        nav: list[Button] = []
        if page > 0:
            nav.append(Button(g.renderer.label("prev"), Action("topic", topic_id, page - 1)))
        if page + 1 < pages:
            nav.append(Button(g.renderer.label("next"), Action("topic", topic_id, page + 1)))
        nav.append(self._topics_button())
        rows.append(tuple(nav))
        return Reply("menu", text, tuple(rows))

    # ------------------------------------------------------------ commands

    def _command(self, cmd: Command, session: Session) -> list[Reply]:
        g = self.guide
        name = cmd.name.lower()
        if name == "start":
            return [Reply("greeting", g.renderer.render("welcome"), self.main_menu())]
        if name == "help":
            return self.press(Action("help"), session)
        if name in ("topics", "menu"):
            return [self.topics_menu()]
        if name == "age":
            try:
                months = int(cmd.args.strip())
            except ValueError:
                return [self._notice("bad_input", reason="age")]
            if not 0 <= months <= MAX_AGE_MONTHS:
                return [self._notice("bad_input", reason="age")]
            session.age_months = months
            return [Reply("notice", g.renderer.render("age_set", age_months=months))]
        return [Reply("notice", g.renderer.render("help"), self._topic_buttons())]

    # ------------------------------------------------------------ helpers

    def _article_reply(self, article: Article, kind: str) -> Reply:
        g = self.guide
        # An article's message is the same for every parent: render it once per loaded library.
        rendered = self._rendered.setdefault(g, {})
        if article.id not in rendered:
            related = [a for a in (g.article(r) for r in article.related[:3]) if a is not None]
            text = g.renderer.render("answer", article=article, related=related)
            rows: list[tuple[Button, ...]] = [(Button(a.title, Action("article", a.id)),) for a in related]
            rows.append((Button(g.renderer.label("feedback_up"), Action("feedback", article.id, value=1)),
                         Button(g.renderer.label("feedback_down"), Action("feedback", article.id, value=-1))))
            rendered[article.id] = (text, tuple(rows))
        text, buttons = rendered[article.id]
        return Reply(kind, text, buttons, (self._ref(article, None),))

    def _topic_buttons(self) -> tuple[tuple[Button, ...], ...]:
        topics = self.guide.library.topics
        buttons = [Button(t.name, Action("topic", t.id)) for t in topics]
        return tuple(tuple(buttons[i:i + 2]) for i in range(0, len(buttons), 2))

    def _topics_button(self) -> Button:
        return Button(self.guide.renderer.label("topics"), Action("topics"))

    def _notice(self, template: str, **context: object) -> Reply:
        return Reply("notice", self.guide.renderer.render(template, **context))

    @staticmethod
    def _ref(article: Article, score: float | None) -> ArticleRef:
        return ArticleRef(article.id, article.title, article.topic, score)


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
