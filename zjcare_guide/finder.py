"""The institution finder in the conversation: a location or a town in, pages of nearby registered
institutions out, with filters and a map pin for each.

The parent's location stays in the chat's in-memory session for paging; it is never stored or logged.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .guide import Guide
from .institutions import FORMS, Directory, Filters, Hit
from .place_search import is_place_search
from .render import Renderer
from .replies import Action, Button, Location, LocationRequest, Reply, Venue
from .router import ActionSpec, BaseFeature, CommandSpec, Turn
from .text import han_count, sanitize
from .towns import BY_CODE, TOWNS, find_town, in_zhuji, old_place

PAGE_SIZE = 5
MAX_AGE_MONTHS = 36  # childcare institutions take children under 3
MAX_PAGES = 20
# Ages a parent can pick when none is known yet (months), shown as 6个月, 1岁, 1岁半…
AGE_CHOICES = (6, 12, 18, 24, 30)
_TOGGLE = r"incl|places|form[0-4]|age(?:none|\d{1,2})"
MAX_NAME_QUERY = 16  # Chinese characters: longer text is no institution's name
_QUESTION = re.compile(r"吗|？|\?|怎么|什么|哪")
PROMPTED = "finder_prompted"  # session state: the last finder message asked for a town
SHOWN = "finder_shown"  # session state: ids of the institutions on the last results page (for /report)


def town_rows(action_kind: str) -> tuple[tuple[Button, ...], ...]:
    """Zhuji's 23 units as buttons, four to a row, each pressing `action_kind` with the unit's code."""
    buttons = [Button(t.short, Action(action_kind, t.code)) for t in TOWNS]
    return tuple(tuple(buttons[i:i + 4]) for i in range(0, len(buttons), 4))


def same_label(text: str, label: str) -> bool:
    """Whether a typed text is a keyboard button's label, with or without its emoji."""
    def bare(s: str) -> str:
        return re.sub(r"[^\w]", "", s)
    return bool(bare(text)) and bare(text) == bare(label)


@dataclass
class Search:
    """The chat's current search: around a point or in a town, with its filters and what was shown."""

    latitude: float | None = None
    longitude: float | None = None
    town_code: str | None = None
    filters: Filters = field(default_factory=Filters)
    page: int = 0


@dataclass(frozen=True)
class Card:
    """One institution as a result card shows it."""

    number: int
    id: int
    name: str
    town: str
    distance_km: str | None  # one decimal, e.g. "1.2"
    inclusive: bool
    ages: str  # "6–36个月"
    forms: str
    places: int | None  # None: 空位待确认
    places_day: str  # "11月20日"
    phone: str
    address: str


def age_label(months: float) -> str:
    m = int(months)
    if m < 12:
        return f"{m}个月"
    years, rest = divmod(m, 12)
    return f"{years}岁" + ("半" if rest == 6 else f"{rest}个月" if rest else "")


class Finder(BaseFeature):
    """找托育机构: the `find` menu entry, shared locations, town and name search, pages and filters."""

    name = "finder"

    def __init__(self, guide: Callable[[], Guide], directory: Directory | None) -> None:
        self._guide = guide
        self.directory = directory

    def commands(self) -> Sequence[CommandSpec]:
        return (CommandSpec("find", lambda t, a: self._start(t, a), listed=True),)

    def actions(self) -> Sequence[ActionSpec]:
        return (ActionSpec("find", "i", lambda t, a: self._start(t, "")),
                ActionSpec("find_town", "it", self._town_action, arg=r"\d{3}"),
                ActionSpec("find_towns", "iT", lambda t, a: [self._town_list("choose", t)]),
                ActionSpec("find_page", "ip", self._page, pages=MAX_PAGES),
                ActionSpec("find_filters", "if", self._filters),
                ActionSpec("find_toggle", "ix", self._toggle, arg=_TOGGLE),
                ActionSpec("find_venue", "iv", self._venue, arg=r"\d{1,9}"))

    # ------------------------------------------------------------ entry points

    def _start(self, turn: Turn, args: str) -> list[Reply]:
        if self.directory is None:
            return [self._notice("unavailable")]
        if args.strip():  # "/find 店口"
            return self.on_text(turn, args) or [self._town_list("not_found", turn)]
        turn.session.awaiting = self.name
        turn.session.state[PROMPTED] = True
        r = self._renderer()
        return [Reply("menu", r.render("find_prompt"),
                      ask_location=LocationRequest(r.label("share_location"), (r.label("find_by_town"),
                                                                             r.label("cancel"))))]

    def claims(self, text: str) -> bool:
        """A town's name alone, or a search for childcare places by town or nearby (place_search)."""
        return self.directory is not None and is_place_search(text)

    def on_text(self, turn: Turn, text: str) -> list[Reply] | None:
        r = self._renderer()
        text = sanitize(text).strip()  # a lone surrogate cannot go into a database query
        if self.directory is None:
            return None
        if turn.session.awaiting != self.name:  # claimed out of any flow
            town = find_town(text)
            if town is not None:
                return self._run(turn, Search(town_code=town.code, filters=self._age_filter(turn)))
            if old_place(text) is not None:
                return [self._town_list("old_name", turn, old=old_place(text))]
            return self._start(turn, "")
        if same_label(text, r.label("cancel")):
            turn.session.awaiting = ""
            return [Reply("notice", r.render("cancelled", nothing=False))]
        if same_label(text, r.label("find_by_town")):
            return [self._town_list("choose", turn)]
        # A town's name alone, then an institution's name, then a sentence naming a town.
        town = find_town(text, in_sentence=False)
        # An institution's name is short and no question; a question typed after the results is not
        # looked up in every name of the directory.
        named = town is None and han_count(text) <= MAX_NAME_QUERY and not _QUESTION.search(text)
        hits = self.directory.search(text, turn.today, limit=PAGE_SIZE * MAX_PAGES) if named else []
        if hits:
            return [self._results(turn, Search(filters=Filters()), hits, by_name=True)]
        town = town or find_town(text)
        if town is not None:
            return self._run(turn, Search(town_code=town.code, filters=self._age_filter(turn)))
        if old_place(text) is not None:
            return [self._town_list("old_name", turn, old=old_place(text))]
        # Asked for a town, the parent typed something short that is none: say so and list them. After
        # results, or for anything that reads as a question, the guidance answers instead.
        if turn.session.state.get(PROMPTED) and han_count(text) <= 10 and not _QUESTION.search(text):
            return [self._town_list("not_found", turn)]
        return None

    def on_location(self, turn: Turn, location: Location) -> list[Reply] | None:
        if self.directory is None:
            return [self._notice("unavailable")]
        if not in_zhuji(location.latitude, location.longitude):
            return [self._town_list("outside", turn)]
        return self._run(turn, Search(latitude=location.latitude, longitude=location.longitude,
                                      filters=self._age_filter(turn)))

    # ------------------------------------------------------------ buttons

    def _town_action(self, turn: Turn, action: Action) -> list[Reply]:
        if self.directory is None:
            return [self._notice("unavailable")]
        if action.arg not in BY_CODE:
            return [self._notice("expired")]
        return self._run(turn, Search(town_code=action.arg, filters=self._age_filter(turn)))

    def _page(self, turn: Turn, action: Action) -> list[Reply]:
        search = self._current(turn)
        if search is None:
            return [self._notice("expired")]
        return self._run(turn, dataclasses.replace(search, page=action.page))

    def _filters(self, turn: Turn, action: Action) -> list[Reply]:
        search = self._current(turn)
        if search is None:
            return [self._notice("expired")]
        r = self._renderer()
        f = search.filters
        check = "✅ "
        rows: list[tuple[Button, ...]] = [
            (Button((check if f.inclusive else "") + r.label("filter_inclusive"), Action("find_toggle", "incl")),
             Button((check if f.with_places else "") + r.label("filter_places"), Action("find_toggle", "places"))),
            tuple(Button((check if (f.form or "") == (FORMS[i - 1] if i else "") else "")
                         + (FORMS[i - 1] if i else r.label("filter_any_form")), Action("find_toggle", f"form{i}"))
                  for i in range(len(FORMS) + 1)),
            tuple(Button((check if f.age_months == m else "") + age_label(m), Action("find_toggle", f"age{m}"))
                  for m in sorted({*AGE_CHOICES, *([int(f.age_months)] if f.age_months is not None else [])})),
            (Button((check if f.age_months is None else "") + r.label("filter_any_age"),
                    Action("find_toggle", "agenone")),),
        ]
        return [Reply("menu", r.render("find_filters", filters=self._filter_words(f)), tuple(rows))]

    def _toggle(self, turn: Turn, action: Action) -> list[Reply]:
        search = self._current(turn)
        if search is None:
            return [self._notice("expired")]
        f, arg = search.filters, action.arg
        if arg == "incl":
            f = dataclasses.replace(f, inclusive=not f.inclusive)
        elif arg == "places":
            f = dataclasses.replace(f, with_places=not f.with_places)
        elif arg.startswith("form"):
            i = int(arg[4:])
            f = dataclasses.replace(f, form=FORMS[i - 1] if i else None)
        elif arg == "agenone":
            f = dataclasses.replace(f, age_months=None)
        else:
            months = int(arg[3:])
            if months > MAX_AGE_MONTHS:
                return [self._notice("expired")]
            f = dataclasses.replace(f, age_months=months)
        return self._run(turn, dataclasses.replace(search, filters=f, page=0))

    def _venue(self, turn: Turn, action: Action) -> list[Reply]:
        inst = self.directory.get(int(action.arg)) if self.directory is not None else None
        if inst is None or inst.status != "备案":
            return [self._notice("expired")]
        return [Reply("venue", inst.name, venue=Venue(inst.name, inst.address, inst.latitude, inst.longitude))]

    # ------------------------------------------------------------ results

    def _run(self, turn: Turn, search: Search) -> list[Reply]:
        assert self.directory is not None
        want = (search.page + 1) * PAGE_SIZE + 1  # one more than shown: is there a next page?
        if search.latitude is not None and search.longitude is not None:
            hits = self.directory.nearest(search.latitude, search.longitude, turn.today,
                                          filters=search.filters, limit=want)
        else:
            assert search.town_code is not None
            hits = [Hit(i) for i in self.directory.in_town(search.town_code, turn.today,
                                                            filters=search.filters, limit=want)]
        return [self._results(turn, search, hits)]

    def _results(self, turn: Turn, search: Search, hits: list[Hit], by_name: bool = False) -> Reply:
        r = self._renderer()
        start = search.page * PAGE_SIZE
        if start and start >= len(hits):
            return self._notice("expired")
        shown = hits[start:start + PAGE_SIZE]
        turn.session.state[SHOWN] = [h.institution.id for h in shown]
        # A town typed next searches again; anything else goes back to the question answering.
        turn.session.awaiting = self.name
        turn.session.state[PROMPTED] = False
        if not by_name:  # a name search has nothing to page or filter
            turn.session.state[self.name] = search
        cards = [self._card(start + n + 1, h, turn) for n, h in enumerate(shown)]
        place = BY_CODE[search.town_code].name if search.town_code else None
        text = r.render("institution_results", cards=cards, place=place, near=search.latitude is not None,
                        by_name=by_name, filters=self._filter_words(search.filters),
                        page=search.page + 1, more=len(hits) > start + PAGE_SIZE)
        rows: list[tuple[Button, ...]] = [
            (Button(f"📍 {c.number}. {c.name}"[:60], Action("find_venue", str(c.id))),) for c in cards]
        nav: list[Button] = []
        if not by_name:
            if search.page > 0:
                nav.append(Button(r.label("prev"), Action("find_page", page=search.page - 1)))
            if len(hits) > start + PAGE_SIZE and search.page + 1 < MAX_PAGES:
                nav.append(Button(r.label("next"), Action("find_page", page=search.page + 1)))
        if nav:
            rows.append(tuple(nav))
        # Filters when there is something to narrow or a filter to loosen.
        filterable = not by_name and (bool(cards) or search.filters != Filters())
        last: list[Button] = [Button(r.label("filters"), Action("find_filters"))] if filterable else []
        last.append(Button(r.label("find_again"), Action("find")))
        rows.append(tuple(last))
        return Reply("results", text, tuple(rows))

    def _card(self, number: int, hit: Hit, turn: Turn) -> Card:
        i = hit.institution
        places = i.places_known(turn.today)
        day = i.places_updated
        return Card(number=number, id=i.id, name=i.name, town=i.town.name,
                    distance_km=None if hit.distance_km is None else f"{hit.distance_km:.1f}",
                    inclusive=i.inclusive, ages=f"{i.age_min}–{i.age_max}个月", forms="、".join(i.forms),
                    places=places, places_day=f"{day.month}月{day.day}日" if day and places is not None else "",
                    phone=i.phone, address=i.address)

    # ------------------------------------------------------------ helpers

    def _current(self, turn: Turn) -> Search | None:
        search = turn.session.state.get(self.name)
        return search if isinstance(search, Search) and self.directory is not None else None

    @staticmethod
    def _age_filter(turn: Turn) -> Filters:
        """The age the parent already gave (/age, a registered child later) narrows the search unasked."""
        age = turn.session.age_months
        return Filters(age_months=age if age is not None and age <= MAX_AGE_MONTHS else None)

    def _filter_words(self, f: Filters) -> list[str]:
        r = self._renderer()
        words = []
        if f.age_months is not None:
            words.append(r.label("filter_age", age=age_label(f.age_months)))
        if f.form:
            words.append(f.form)
        if f.inclusive:
            words.append(r.label("filter_inclusive"))
        if f.with_places:
            words.append(r.label("filter_places"))
        return words

    def _town_list(self, reason: str, turn: Turn, old: str | None = None) -> Reply:
        turn.session.awaiting = self.name
        turn.session.state[PROMPTED] = True
        return Reply("menu", self._renderer().render("town_list", reason=reason, old=old), town_rows("find_town"))

    def _notice(self, reason: str) -> Reply:
        if reason == "expired":
            return Reply("notice", self._renderer().render("expired"))
        return Reply("notice", self._renderer().render("finder_notice", reason=reason))

    def _renderer(self) -> Renderer:
        return self._guide().renderer
