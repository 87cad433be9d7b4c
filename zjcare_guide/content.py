"""Load and validate the editors' content directory into a `Library`.

Every problem is reported as `path:line: message`; a library with any problem is never served
(`load_library` returns it only when the content is clean, and `LibraryHolder.reload` keeps the last
good one).
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import rjieba
import yaml

from .danger import DangerRules, load_danger_rules
from .danger_model import DangerModel, load_danger_model
from .model import TOPICS, Article, Problem, Topic
from .render import FORBIDDEN_BODY, check_templates, fill_snippets, load_snippets
from .schedule import ScheduleItem, load_schedules
from .text import Normaliser, clean
from .yamlfile import LOADER, child, item_lines, line_of, load_yaml, str_list

# How a problem that a file could not be read or parsed at all begins (yamlfile.load_yaml, parse_article).
UNREADABLE = ("cannot read file", "invalid YAML", "file is missing")
ENGLISH_TERM = re.compile(r"[a-z0-9]+(?:[ '-][a-z0-9]+)*")
ID_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
# Article ids travel in Telegram button data (at most 64 bytes with its prefix).
MAX_ID = 48
MIN_QUESTIONS = 5
REVIEW_MAX_AGE = dt.timedelta(days=730)
DEFAULT_CONTENT_DIR = Path(__file__).resolve().parent.parent / "content"


@dataclass(frozen=True)
class Scope:
    greetings: frozenset[str]
    greeting_fillers: tuple[str, ...]
    mother_words: tuple[str, ...]
    mother_child_words: tuple[str, ...]
    caregiver_verbs: tuple[str, ...]
    company_words: tuple[str, ...]
    child_pronouns: tuple[str, ...]
    older_child_words: tuple[str, ...]
    adult_subjects: tuple[str, ...]
    child_words: tuple[str, ...]
    animals: tuple[str, ...]
    animal_contact: tuple[str, ...]
    child_persons: tuple[str, ...]
    self_words: tuple[str, ...]
    question_markers: tuple[str, ...]


@dataclass
class Library:
    """Everything the conversation needs from `content/`, validated."""

    root: Path
    articles: dict[str, Article]
    topics: tuple[Topic, ...]
    synonyms: dict[str, list[str]]
    fillers: tuple[str, ...]
    scope: Scope
    # English term → Chinese word (content/english.yaml), and the terms that only name the child.
    english: dict[str, str]
    english_people: frozenset[str]
    danger: DangerRules
    templates_dir: Path
    # content/snippets/: shared text for article bodies ([[name]]) and templates.
    snippets: dict[str, str] = field(default_factory=dict)
    # The vaccination, check-up and visit schedules (content/schedules/), in file order.
    schedules: tuple[ScheduleItem, ...] = ()
    # Triage's learned second opinion (content/danger_model.json); None: rules only.
    danger_model: DangerModel | None = None
    normaliser: Normaliser = field(init=False)

    def __post_init__(self) -> None:
        self.normaliser = Normaliser(self.synonyms, self.fillers, self.danger.spellings)

    def vocabulary(self) -> frozenset[str]:
        """The Chinese words (two characters or more) the library uses: its synonyms and the words of
        its articles' titles, questions and keywords."""
        words: set[str] = set()
        for canonical, variants in self.synonyms.items():
            words.update(clean(w) for w in (canonical, *variants))
        for a in self.articles.values():
            for text in (a.title, *a.questions, *a.keywords):
                words.update(rjieba.cut(clean(text), False))
        return frozenset(w for w in words if len(w) >= 2 and all("\u4e00" <= c <= "\u9fff" for c in w))

    def topic(self, topic_id: str) -> Topic | None:
        return next((t for t in self.topics if t.id == topic_id), None)

    def in_topic(self, topic_id: str) -> list[Article]:
        return sorted((a for a in self.articles.values() if a.topic == topic_id), key=lambda a: a.id)


class ContentError(Exception):
    """The content has problems; `problems` lists them."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"{len(problems)} content problem(s)")
        self.problems = problems


# ---------------------------------------------------------------- articles


def parse_article(path: Path, today: dt.date, problems: list[Problem],
                  snippets: dict[str, str] | None = None) -> Article | None:
    """One article file, or None (with problems recorded) when it cannot be served.

    `snippets` (name → text) fill the body's `[[name]]` markers; an unknown name is a problem."""
    try:
        # utf-8-sig: an editor that saves with a byte-order mark must not break the front matter.
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(path, 1, f"cannot read file: {exc}"))
        return None
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        problems.append(Problem(path, 1, "missing front matter: the file must start with a '---' line"))
        return None
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        problems.append(Problem(path, 1, "front matter is not closed with a '---' line"))
        return None
    fm_text = "\n".join(lines[1:end])
    offset = 1  # front-matter line n is file line n + offset
    try:
        meta = yaml.load(fm_text, Loader=LOADER)
        node = yaml.compose(fm_text, Loader=LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = (mark.line + 1 + offset) if mark is not None else 1
        problems.append(Problem(path, line, f"invalid YAML in front matter: {getattr(exc, 'problem', exc)}"))
        return None
    if not isinstance(meta, dict):
        problems.append(Problem(path, 2, "front matter must be a mapping of fields"))
        return None

    def bad(key: str, message: str) -> None:
        problems.append(Problem(path, line_of(node, key) + offset, message))

    known = {"id", "title", "topic", "questions", "keywords", "age_months", "related", "sources", "reviewed"}
    for key in meta:
        if key not in known:
            bad(str(key), f"unknown field '{key}'")
    article_id = meta.get("id")
    if not isinstance(article_id, str) or not ID_RE.match(article_id):
        bad("id", "id must be lower-case letters, digits and hyphens")
        article_id = path.stem
    elif len(article_id) > MAX_ID:
        bad("id", f"id is longer than {MAX_ID} characters (it must fit in a button's data)")
    elif article_id != path.stem:
        bad("id", f"id '{article_id}' does not match the file name '{path.stem}.md'")
    title = meta.get("title")
    if not isinstance(title, str) or not title.strip():
        bad("title", "title is missing")
        title = ""
    topic = meta.get("topic")
    if topic not in TOPICS:
        bad("topic", f"unknown topic '{topic}' (use one of: {', '.join(TOPICS)})")
    questions = str_list(meta.get("questions"))
    if questions is None or len(questions) < MIN_QUESTIONS:
        bad("questions", f"questions must list at least {MIN_QUESTIONS} ways a parent would ask")
        questions = questions or []
    keywords = str_list(meta.get("keywords"))
    if keywords is None:
        bad("keywords", "keywords must be a list of words")
        keywords = []
    related = str_list(meta.get("related"))
    if related is None:
        bad("related", "related must be a list of article ids")
        related = []
    sources = str_list(meta.get("sources"))
    if not sources:
        bad("sources", "sources are missing: name the documents this article is grounded in")
        sources = []
    age = meta.get("age_months", [0, 36])
    if not (isinstance(age, list) and len(age) == 2 and all(isinstance(a, int) for a in age)
            and 0 <= age[0] <= age[1] <= 72):
        bad("age_months", "age_months must be [min, max] in whole months, 0 ≤ min ≤ max ≤ 72")
        age = [0, 36]
    reviewed = meta.get("reviewed")
    if not isinstance(reviewed, dt.date):
        bad("reviewed", "reviewed must be a date such as 2026-11-29")
        reviewed = today
    elif reviewed > today:
        bad("reviewed", f"reviewed date {reviewed} is in the future")
    elif today - reviewed > REVIEW_MAX_AGE:
        bad("reviewed", f"last reviewed {reviewed}, more than two years ago: review it and update the date")
    body = "\n".join(lines[end + 1:]).strip()
    if not body:
        problems.append(Problem(path, end + 2, "the article has no body"))
    for m in FORBIDDEN_BODY.finditer(text, pos=sum(len(ln) + 1 for ln in lines[:end + 1])):
        line = text.count("\n", 0, m.start()) + 1
        problems.append(Problem(path, line, "body may use only paragraphs, '- ' lists and **bold** "
                                            "(no '<', '>', headings or tables)"))
    if body.count("**") % 2:
        problems.append(Problem(path, end + 2, "unbalanced ** in body"))
    body = fill_snippets(body, snippets or {}, path, end + 2, problems)
    # The article is returned even with problems (the library is refused anyway), so that the
    # cross-checks do not add "related id does not exist" noise for an article that is merely stale.
    return Article(
        id=article_id, title=str(title).strip(), topic=str(topic), questions=tuple(questions),
        keywords=tuple(keywords), age_months=(age[0], age[1]), related=tuple(related),
        sources=tuple(sources), reviewed=reviewed, body=body, path=path,
    )


def _question_line(path: Path, needle: str) -> int:
    """The line of a list item (`- needle` or inside `[…]`) naming `needle`, else of any mention."""
    try:
        lines = path.read_text(encoding="utf-8-sig").split("\n")
    except OSError:
        return 1
    for i, line in enumerate(lines, start=1):
        if line.strip().lstrip("- ").strip().strip("'\"") == needle:
            return i
    for i, line in enumerate(lines, start=1):
        if needle in line:
            return i
    return 1


def _cross_checks(articles: list[Article], normaliser: Normaliser, problems: list[Problem],
                  unreadable: Collection[str] = ()) -> None:
    ids: dict[str, Article] = {}
    for a in articles:
        if a.id in ids:
            problems.append(Problem(a.path, 2, f"duplicate id '{a.id}' (also in {ids[a.id].path})"))
        else:
            ids[a.id] = a
    for a in articles:
        for r in a.related:
            if r not in ids and r not in unreadable:
                problems.append(Problem(a.path, _question_line(a.path, r), f"related id '{r}' does not exist"))
            elif r == a.id:
                problems.append(Problem(a.path, _question_line(a.path, r), "an article cannot be related to itself"))
    claimed: dict[str, list[tuple[Article, str]]] = defaultdict(list)
    for a in articles:
        for q in dict.fromkeys(a.questions):
            claimed[normaliser.compact(q)].append((a, q))
    for owners in claimed.values():
        if len({a.id for a, _ in owners}) < 2:
            continue
        for a, q in owners:
            others = ", ".join(f"'{o.id}' ({o.path})" for o, _ in owners if o.id != a.id)
            problems.append(Problem(a.path, _question_line(a.path, q), f"question '{q}' is also claimed by {others}"))


# ---------------------------------------------------------------- other content files


def _load_topics(path: Path, problems: list[Problem]) -> tuple[Topic, ...]:
    data, node = load_yaml(path, problems)
    topics: list[Topic] = []
    if not isinstance(data, dict) or not isinstance(data.get("topics"), list):
        problems.append(Problem(path, 1, "topics.yaml must hold a 'topics' list"))
        return ()
    for i, item in enumerate(data["topics"]):
        line = (item_lines(node, "topics") or [1] * (i + 1))[i]
        if not (isinstance(item, dict) and item.get("id") in TOPICS and isinstance(item.get("name"), str)):
            problems.append(Problem(path, line, f"topic needs an id from {', '.join(TOPICS)} and a name"))
            continue
        topics.append(Topic(item["id"], item["name"], str(item.get("blurb", ""))))
    missing = set(TOPICS) - {t.id for t in topics}
    if missing:
        problems.append(Problem(path, 1, f"topics missing from the menu: {', '.join(sorted(missing))}"))
    return tuple(topics)


def _load_synonyms(path: Path, problems: list[Problem]) -> tuple[dict[str, list[str]], tuple[str, ...]]:
    data, node = load_yaml(path, problems)
    if not isinstance(data, dict) or not isinstance(data.get("synonyms"), dict):
        problems.append(Problem(path, 1, "synonyms.yaml must hold a 'synonyms' mapping"))
        return {}, ()
    synonyms: dict[str, list[str]] = {}
    seen: dict[str, str] = {}
    syn_node = next((v for k, v in node.value if k.value == "synonyms"), None) if isinstance(
        node, yaml.MappingNode) else None
    for canonical, variants in data["synonyms"].items():
        line = line_of(syn_node, str(canonical))
        words = str_list(variants)
        if not isinstance(canonical, str) or words is None:
            problems.append(Problem(path, line, f"'{canonical}' must map to a list of words"))
            continue
        for w in words:
            if w in seen and seen[w] != canonical:
                problems.append(Problem(path, line, f"'{w}' is a variant of both '{seen[w]}' and '{canonical}'"))
            seen[w] = canonical
        synonyms[canonical] = words
    fillers = str_list(data.get("fillers"))
    if fillers is None:
        problems.append(Problem(path, line_of(node, "fillers"), "fillers must be a list of words"))
        fillers = []
    return synonyms, tuple(fillers)


def _load_scope(path: Path, problems: list[Problem]) -> Scope:
    data, node = load_yaml(path, problems)
    lists: dict[str, list[str]] = {}
    keys = ("greeting_fillers", "mother_words", "mother_child_words", "caregiver_verbs", "company_words",
            "child_pronouns", "older_child_words", "adult_subjects", "child_words",
            "animals", "animal_contact", "child_persons", "self_words", "question_markers")
    for key in ("greetings", *keys):
        value = str_list(data.get(key)) if isinstance(data, dict) else None
        if not value:
            problems.append(Problem(path, line_of(node, key), f"'{key}' must be a non-empty list of words"))
            value = []
        lists[key] = value
    return Scope(frozenset(lists["greetings"]), *(tuple(lists[k]) for k in keys))


def _load_english(path: Path, problems: list[Problem]) -> tuple[dict[str, str], frozenset[str]]:
    """content/english.yaml: English word or phrase (lower case) → the Chinese word articles use, and
    the terms that only name the child (`people`)."""
    data, node = load_yaml(path, problems)
    terms = data.get("terms") if isinstance(data, dict) else None
    if not isinstance(terms, dict):
        problems.append(Problem(path, 1, "english.yaml must hold a 'terms' mapping"))
        return {}, frozenset()
    people = str_list(data.get("people")) if isinstance(data, dict) and "people" in data else []
    if people is None or any(p not in terms for p in people):
        problems.append(Problem(path, line_of(node, "people"), "people must list words that are also in terms"))
        people = []
    out: dict[str, str] = {}
    terms_node = child(node, "terms")
    for key, value in terms.items():
        if not (isinstance(key, str) and isinstance(value, str) and value.strip()):
            problems.append(Problem(path, line_of(terms_node, str(key)), f"'{key}' must map to a Chinese word"))
        elif key != key.lower() or not ENGLISH_TERM.fullmatch(key):
            problems.append(Problem(path, line_of(terms_node, key),
                                    f"'{key}' must be lower-case English words"))
        else:
            out[key] = value.strip()
    return out, frozenset(people)


def article_files(root: Path) -> Iterator[Path]:
    yield from sorted((root / "guidance").rglob("*.md"))


def check_content(root: Path, today: dt.date) -> tuple[Library | None, list[Problem]]:
    """Load `root` and return the library (None when anything is wrong) with every problem found."""
    problems: list[Problem] = []
    root = Path(root)
    if not root.is_dir():
        return None, [Problem(root, 1, "content directory does not exist")]
    if not (root / "guidance").is_dir():
        # One line for a directory that is no content directory, not a line for each missing file.
        return None, [Problem(root / "guidance", 1, "guidance directory is missing")]
    articles: list[Article] = []
    snippets = load_snippets(root / "snippets", problems)
    unreadable: set[str] = set()
    for path in article_files(root):
        article = parse_article(path, today, problems, snippets)
        if article is None:
            unreadable.add(path.stem)
        else:
            if article.topic != path.parent.name:
                problems.append(Problem(path, 1, f"article of topic '{article.topic}' is filed under "
                                                 f"'{path.parent.name}/': move it to guidance/{article.topic}/"))
            articles.append(article)
    if not articles and not problems:
        problems.append(Problem(root / "guidance", 1, "no articles found"))
    topics = _load_topics(root / "topics.yaml", problems)
    synonyms, fillers = _load_synonyms(root / "synonyms.yaml", problems)
    scope = _load_scope(root / "scope.yaml", problems)
    english, people = _load_english(root / "english.yaml", problems)
    danger = load_danger_rules(root / "danger_signs.yaml", {a.id for a in articles} | unreadable, problems)
    sign_ids = {s.id for s in danger.signs} | {danger.fever.id, danger.breathing.id}
    danger_model = load_danger_model(root / "danger_model.json", sign_ids, problems)
    templates = {p.stem for p in (root / "templates").glob("*.j2")}
    schedules = load_schedules(root / "schedules", templates, problems)
    library = Library(
        root=root, articles={a.id: a for a in articles}, topics=topics, synonyms=synonyms,
        fillers=fillers, scope=scope, english=english, english_people=people, danger=danger,
        templates_dir=root / "templates", danger_model=danger_model, snippets=snippets,
        schedules=tuple(schedules),
    )
    # An article that could not be read is reported once; the ids it would have had are not
    # reported again as missing wherever they are named. Duplicate questions are judged in the
    # matching form the library serves (its normaliser, dialect spellings included).
    _cross_checks(articles, library.normaliser, problems, unreadable)
    problems.extend(check_templates(library))
    return (None if problems else library), _once_per_broken_file(problems)


def _once_per_broken_file(problems: list[Problem]) -> list[Problem]:
    """A file that cannot be read or parsed is one problem, not that plus what its absence causes
    ("topics.yaml must hold a 'topics' list" after "cannot read file")."""
    broken = {p.path for p in problems if p.message.startswith(UNREADABLE)}
    return [p for p in problems if p.path not in broken or p.message.startswith(UNREADABLE)]


def load_library(root: Path, today: dt.date) -> Library:
    """The validated library, or ContentError listing every problem."""
    library, problems = check_content(root, today)
    if library is None:
        raise ContentError(problems)
    return library
