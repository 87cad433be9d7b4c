"""The guidance feature: free-text questions, articles, topics, 👍/👎, help and the main menu."""

from __future__ import annotations

import datetime as dt
import logging
import math
import weakref
from collections.abc import Callable, Sequence

from .danger import FirstAidStep
from .guide import Guide, Outcome
from .model import Article
from .replies import Action, ArticleRef, Button, Reply
from .router import ActionSpec, BaseFeature, CommandSpec, Turn
from .store import Store
from .text import han_count, question_part, sanitize
from .triage import TriageResult

MAX_MESSAGE = 500
PAGE_SIZE = 8
MAX_AGE_MONTHS = 72
# Menu entries that are not built yet, and where they point meanwhile.
MENU = ("ask",)
# How many runners-up a 👎 offers.
MAX_OTHERS = 3
_ID = r"[a-z0-9]+(?:-[a-z0-9]+)*"
log = logging.getLogger(__name__)


class Guidance(BaseFeature):
    """Answers questions from the guide's library; stateless over chats (state is in the Session)."""

    name = "guidance"

    def __init__(self, guide: Callable[[], Guide], store: Store | None = None) -> None:
        self._guide = guide
        self.store = store
        self._rendered: weakref.WeakKeyDictionary[Guide, dict[str, tuple[str, tuple[tuple[Button, ...], ...]]]] = \
            weakref.WeakKeyDictionary()

    @property
    def guide(self) -> Guide:
        return self._guide()

    # ------------------------------------------------------------ registry

    def commands(self) -> Sequence[CommandSpec]:
        return (CommandSpec("start", self._start, listed=True),
                CommandSpec("help", lambda t, a: [self.help()], listed=True),
                CommandSpec("topics", lambda t, a: [self.topics_menu()], listed=True),
                CommandSpec("menu", lambda t, a: [self.topics_menu()]),
                CommandSpec("age", self._age, listed=True))

    def actions(self) -> Sequence[ActionSpec]:
        return (ActionSpec("article", "a", self._article, arg=_ID),
                ActionSpec("topic", "t", lambda t, a: [self.topic_page(a.arg, a.page)], arg=_ID, pages=100),
                ActionSpec("topics", "T", lambda t, a: [self.topics_menu()]),
                ActionSpec("feedback", "f", self._feedback_action, arg=_ID, values=frozenset({1, -1})),
                ActionSpec("help", "h", lambda t, a: [self.help()]),
                ActionSpec("menu", "m", self._menu, arg="[a-z]{1,16}"))

    def on_text(self, turn: Turn, text: str) -> list[Reply] | None:
        outcome, replies = self.ask(text, turn.session.age_months)
        if outcome is not None:
            self._remember(outcome.question or text, outcome, turn)
            if outcome.kind == "urgent" and turn.escalated:
                return []  # the transport sent this escalation already
        return replies

    # ------------------------------------------------------------ questions

    def ask(self, text: str, age_months: float | None = None) -> tuple[Outcome | None, list[Reply]]:
        """The decision and the replies a parent gets for a free-text question (no decision when
        the message is empty, or too long and with no question that can be answered).

        Triage always reads the whole message first, however long: a danger sign in the middle of
        800 characters must still be escalated."""
        text = sanitize(text).strip()
        if not text:
            return None, [self.notice("bad_input", reason="empty")]
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
            return None, [self.notice("bad_input", reason="too_long", max_length=MAX_MESSAGE,
                                      symptom=triage.mentions_symptom)]
        return answered, self.respond(answered)

    def _remember(self, text: str, outcome: Outcome, turn: Turn) -> None:
        """Keep the question for a later 👍/👎; store an unanswered one for the editors."""
        session = turn.session
        session.last_question = text
        session.last_article = outcome.candidates[0].article.id if outcome.kind == "answer" else None
        session.last_choices = [c.article.id for c in outcome.candidates] if outcome.kind == "choices" else []
        session.last_others = [c.article.id for c in outcome.candidates[1:MAX_OTHERS + 1]
                               if c.on_topic] if outcome.kind == "answer" else []
        # Only in-scope Chinese questions nobody could answer are kept: editors can write for those,
        # while an adult's health question is personal data the service has no use for, and emoji,
        # numbers or unreadable English give them nothing to write.
        if outcome.kind == "fallback" and not outcome.scope and han_count(text) >= 2:
            key = self.guide.library.normaliser.compact(text)
            self._write(turn, lambda store, day: store.record_unanswered(text, "fallback", day, key))

    def _write(self, turn: Turn, write: Callable[[Store, dt.date], None]) -> None:
        """Deferred until the reply is out (Turn.defer): the reply never waits on this write, and a
        failed write is logged and never costs the parent their reply."""
        store, day = self.store, turn.today
        if store is None:
            return

        def run() -> None:
            try:
                write(store, day)
            except Exception as exc:  # the text may name a child: the log keeps only the error's type
                log.warning("could not store feedback or an unanswered question: %s", type(exc).__name__)

        turn.defer(run)

    def respond(self, outcome: Outcome) -> list[Reply]:
        g = self.guide
        if outcome.kind == "urgent":
            assert outcome.triage is not None
            return self._urgent(outcome.triage)
        if outcome.kind == "greeting":
            return [Reply("greeting", g.renderer.render("greeting", topics=g.library.topics),
                          self.topic_buttons())]
        if outcome.kind == "answer":
            best = outcome.candidates[0]
            reply = self.article_reply(best.article, kind="answer")
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
        return [Reply("fallback", text, self.topic_buttons())]

    def urgent_replies(self, triage: TriageResult) -> list[Reply]:
        return self._urgent(triage)

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
            replies.append(self.article_reply(article, kind="article"))
        return replies

    # ------------------------------------------------------------ buttons

    def _article(self, turn: Turn, action: Action) -> list[Reply]:
        article = self.guide.article(action.arg)
        if article is None:
            return [self.notice("expired")]
        if article.id in turn.session.last_choices:
            turn.session.last_article = article.id  # the parent picked it for their question
        return [self.article_reply(article, kind="article")]

    def _feedback_action(self, turn: Turn, action: Action) -> list[Reply]:
        if self.guide.article(action.arg) is None:
            return [self.notice("expired")]
        return [self._feedback(action.arg, action.value, turn)]

    def _feedback(self, article_id: str, value: int, turn: Turn) -> Reply:
        g = self.guide
        session = turn.session
        if article_id in session.rated:
            return Reply("notice", g.renderer.label("already_rated"))
        session.rated.add(article_id)
        # The question is kept only when this article was the answer to it.
        question = session.last_question if session.last_article == article_id else None
        key = g.library.normaliser.compact(question) if question else ""
        self._write(turn, lambda store, day: store.record_feedback(article_id, value, question, day, key))
        if value > 0 or not question:
            return Reply("notice", g.renderer.label("thanks_feedback"))
        others = [a for a in (g.article(i) for i in session.last_others) if a is not None]
        if not others:
            return Reply("notice", g.renderer.label("thanks_feedback"))
        # The answer missed: the runners-up to the same question may be what the parent meant.
        session.last_choices = [a.id for a in others]
        text = g.renderer.render("choices", articles=others, after_feedback=True)
        rows = tuple((Button(a.title, Action("article", a.id)),) for a in others)
        return Reply("choices", text, (*rows, (self._topics_button(),)))

    def help(self) -> Reply:
        return Reply("notice", self.guide.renderer.render("help"), self.topic_buttons())

    def main_menu(self) -> tuple[tuple[Button, ...], ...]:
        r = self.guide.renderer
        return ((Button(r.label("menu_ask"), Action("menu", "ask")),),
                (Button(r.label("menu_institutions"), Action("find")),
                 Button(r.label("menu_reminders"), Action("reminders"))),
                (Button(r.label("menu_child"), Action("child")),
                 Button(r.label("menu_help"), Action("help"))))

    def _start(self, turn: Turn, args: str) -> list[Reply]:
        return [Reply("greeting", self.guide.renderer.render("welcome"), self.main_menu())]

    def _menu(self, turn: Turn, action: Action) -> list[Reply]:
        g = self.guide
        entry = action.arg
        if entry not in MENU:
            return [self.notice("expired")]
        return [Reply("menu", g.renderer.render("ask_prompt"), self.topic_buttons())]

    def _age(self, turn: Turn, args: str) -> list[Reply]:
        try:
            months = int(args.strip())
        except ValueError:
            return [self.notice("bad_input", reason="age")]
        if not 0 <= months <= MAX_AGE_MONTHS:
            return [self.notice("bad_input", reason="age")]
        turn.session.age_months = months
        return [Reply("notice", self.guide.renderer.render("age_set", age_months=months))]

    def topics_menu(self) -> Reply:
        g = self.guide
        return Reply("menu", g.renderer.render("topics", topics=g.library.topics), self.topic_buttons())

    def topic_page(self, topic_id: str, page: int) -> Reply:
        g = self.guide
        topic = g.library.topic(topic_id)
        articles = g.library.in_topic(topic_id)
        pages = max(1, math.ceil(len(articles) / PAGE_SIZE))
        if topic is None or not 0 <= page < pages:
            return self.notice("expired")
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

    # ------------------------------------------------------------ helpers

    def article_reply(self, article: Article, kind: str) -> Reply:
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

    def topic_buttons(self) -> tuple[tuple[Button, ...], ...]:
        topics = self.guide.library.topics
        buttons = [Button(t.name, Action("topic", t.id)) for t in topics]
        return tuple(tuple(buttons[i:i + 2]) for i in range(0, len(buttons), 2))

    def _topics_button(self) -> Button:
        return Button(self.guide.renderer.label("topics"), Action("topics"))

    def notice(self, template: str, **context: object) -> Reply:
        return Reply("notice", self.guide.renderer.render(template, **context))

    @staticmethod
    def _ref(article: Article, score: float | None) -> ArticleRef:
        return ArticleRef(article.id, article.title, article.topic, score)


