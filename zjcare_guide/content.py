"""Load and validate the editors' content directory into a `Library`.

Every problem is reported as `path:line: message`; a library with any problem is never served
(`load_library` returns it only when the content is clean, and `LibraryHolder.reload` keeps the last
good one).
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .model import TOPICS, Article, BreathingRule, DangerSign, FeverRule, Problem, Topic
from .text import Normaliser

ID_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
# Article ids travel in Telegram button data (at most 64 bytes with its prefix).
MAX_ID = 48
MIN_QUESTIONS = 5
REVIEW_MAX_AGE = dt.timedelta(days=730)
# Telegram HTML allows only a handful of tags and no raw angle brackets; article bodies are a small
# Markdown subset that the transports render, so these characters never belong in a body.
FORBIDDEN_BODY = re.compile(r"[<>]|^#{1,6}\s|^\s*\|", re.MULTILINE)
DEFAULT_CONTENT_DIR = Path(__file__).resolve().parent.parent / "content"
# libyaml when the wheel has it: the pure-Python parser makes a reload of ~100 articles take seconds.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Scope:
    greetings: frozenset[str]
    adult_subjects: tuple[str, ...]
    child_words: tuple[str, ...]
    animals: tuple[str, ...]
    animal_contact: tuple[str, ...]
    child_persons: tuple[str, ...]
    self_words: tuple[str, ...]


@dataclass(frozen=True)
class DangerRules:
    signs: tuple[DangerSign, ...]
    negations: tuple[str, ...]
    past_markers: tuple[str, ...]
    history_suffixes: tuple[str, ...]
    hypothetical_markers: tuple[str, ...]
    present_markers: tuple[str, ...]
    fever_words: tuple[str, ...]
    fever_rules: tuple[FeverRule, ...]
    fever_label: str
    fever_article: str | None
    breathing_rules: tuple[BreathingRule, ...]
    breathing_label: str
    breathing_article: str | None
    general_article: str | None
    sources: tuple[str, ...]

    def follow_up(self, articles: list[str]) -> str | None:
        """The article to send after an escalation: the first specific one, else the general one."""
        return next((a for a in articles if a != self.general_article), articles[0] if articles else None)


@dataclass
class Library:
    """Everything the conversation needs from `content/`, validated."""

    root: Path
    articles: dict[str, Article]
    topics: tuple[Topic, ...]
    synonyms: dict[str, list[str]]
    fillers: tuple[str, ...]
    scope: Scope
    danger: DangerRules
    templates_dir: Path
    normaliser: Normaliser = field(init=False)

    def __post_init__(self) -> None:
        self.normaliser = Normaliser(self.synonyms, self.fillers)

    def topic(self, topic_id: str) -> Topic | None:
        return next((t for t in self.topics if t.id == topic_id), None)

    def in_topic(self, topic_id: str) -> list[Article]:
        return sorted((a for a in self.articles.values() if a.topic == topic_id), key=lambda a: a.id)


class ContentError(Exception):
    """The content has problems; `problems` lists them."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"{len(problems)} content problem(s)")
        self.problems = problems


# ---------------------------------------------------------------- YAML with line numbers


def _line_of(node: yaml.Node | None, key: str) -> int:
    """1-based line of `key` in a YAML mapping node (the node's own line if absent)."""
    if isinstance(node, yaml.MappingNode):
        for k, _v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return int(k.start_mark.line) + 1
        return int(node.start_mark.line) + 1
    return 1


def _item_lines(node: yaml.Node | None, key: str) -> list[int]:
    """1-based lines of the items of the sequence under `key`."""
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key and isinstance(v, yaml.SequenceNode):
                return [int(item.start_mark.line) + 1 for item in v.value]
    return []


def _load_yaml(path: Path, problems: list[Problem]) -> tuple[Any, yaml.Node | None]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(path, 1, f"cannot read file: {exc}"))
        return None, None
    try:
        return yaml.load(text, Loader=_LOADER), yaml.compose(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problems.append(Problem(path, line, f"invalid YAML: {getattr(exc, 'problem', exc)}"))
        return None, None


# ---------------------------------------------------------------- articles


def _str_list(value: Any) -> list[str] | None:
    if value is None:
        return []
    # Editors write `[急诊, 120]`; YAML reads 120 as a number, which is still a word here.
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) and not isinstance(v, bool)
                                       and str(v).strip() for v in value):
        return [str(v).strip() for v in value]
    return None


def parse_article(path: Path, today: dt.date, problems: list[Problem]) -> Article | None:
    """One article file, or None (with problems recorded) when it cannot be served."""
    try:
        text = path.read_text(encoding="utf-8")
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
        meta = yaml.load(fm_text, Loader=_LOADER)
        node = yaml.compose(fm_text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = (mark.line + 1 + offset) if mark is not None else 1
        problems.append(Problem(path, line, f"invalid YAML in front matter: {getattr(exc, 'problem', exc)}"))
        return None
    if not isinstance(meta, dict):
        problems.append(Problem(path, 2, "front matter must be a mapping of fields"))
        return None

    def bad(key: str, message: str) -> None:
        problems.append(Problem(path, _line_of(node, key) + offset, message))

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
    questions = _str_list(meta.get("questions"))
    if questions is None or len(questions) < MIN_QUESTIONS:
        bad("questions", f"questions must list at least {MIN_QUESTIONS} ways a parent would ask")
        questions = questions or []
    keywords = _str_list(meta.get("keywords"))
    if keywords is None:
        bad("keywords", "keywords must be a list of words")
        keywords = []
    related = _str_list(meta.get("related"))
    if related is None:
        bad("related", "related must be a list of article ids")
        related = []
    sources = _str_list(meta.get("sources"))
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
        lines = path.read_text(encoding="utf-8").split("\n")
    except OSError:
        return 1
    for i, line in enumerate(lines, start=1):
        if line.strip().lstrip("- ").strip().strip("'\"") == needle:
            return i
    for i, line in enumerate(lines, start=1):
        if needle in line:
            return i
    return 1


def _cross_checks(articles: list[Article], normaliser: Normaliser, problems: list[Problem]) -> None:
    ids: dict[str, Article] = {}
    for a in articles:
        if a.id in ids:
            problems.append(Problem(a.path, 2, f"duplicate id '{a.id}' (also in {ids[a.id].path})"))
        else:
            ids[a.id] = a
    for a in articles:
        for r in a.related:
            if r not in ids:
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
    data, node = _load_yaml(path, problems)
    topics: list[Topic] = []
    if not isinstance(data, dict) or not isinstance(data.get("topics"), list):
        problems.append(Problem(path, 1, "topics.yaml must hold a 'topics' list"))
        return ()
    for i, item in enumerate(data["topics"]):
        line = (_item_lines(node, "topics") or [1] * (i + 1))[i]
        if not (isinstance(item, dict) and item.get("id") in TOPICS and isinstance(item.get("name"), str)):
            problems.append(Problem(path, line, f"topic needs an id from {', '.join(TOPICS)} and a name"))
            continue
        topics.append(Topic(item["id"], item["name"], str(item.get("blurb", ""))))
    missing = set(TOPICS) - {t.id for t in topics}
    if missing:
        problems.append(Problem(path, 1, f"topics missing from the menu: {', '.join(sorted(missing))}"))
    return tuple(topics)


def _load_synonyms(path: Path, problems: list[Problem]) -> tuple[dict[str, list[str]], tuple[str, ...]]:
    data, node = _load_yaml(path, problems)
    if not isinstance(data, dict) or not isinstance(data.get("synonyms"), dict):
        problems.append(Problem(path, 1, "synonyms.yaml must hold a 'synonyms' mapping"))
        return {}, ()
    synonyms: dict[str, list[str]] = {}
    seen: dict[str, str] = {}
    syn_node = next((v for k, v in node.value if k.value == "synonyms"), None) if isinstance(
        node, yaml.MappingNode) else None
    for canonical, variants in data["synonyms"].items():
        line = _line_of(syn_node, str(canonical))
        words = _str_list(variants)
        if not isinstance(canonical, str) or words is None:
            problems.append(Problem(path, line, f"'{canonical}' must map to a list of words"))
            continue
        for w in words:
            if w in seen and seen[w] != canonical:
                problems.append(Problem(path, line, f"'{w}' is a variant of both '{seen[w]}' and '{canonical}'"))
            seen[w] = canonical
        synonyms[canonical] = words
    fillers = _str_list(data.get("fillers"))
    if fillers is None:
        problems.append(Problem(path, _line_of(node, "fillers"), "fillers must be a list of words"))
        fillers = []
    return synonyms, tuple(fillers)


def _load_scope(path: Path, problems: list[Problem]) -> Scope:
    data, node = _load_yaml(path, problems)
    lists: dict[str, list[str]] = {}
    for key in ("greetings", "adult_subjects", "child_words", "animals", "animal_contact", "child_persons",
                "self_words"):
        value = _str_list(data.get(key)) if isinstance(data, dict) else None
        if not value:
            problems.append(Problem(path, _line_of(node, key), f"'{key}' must be a non-empty list of words"))
            value = []
        lists[key] = value
    return Scope(frozenset(lists["greetings"]), *(tuple(lists[k]) for k in (
        "adult_subjects", "child_words", "animals", "animal_contact", "child_persons", "self_words")))


def _compile(pattern: str, path: Path, line: int, problems: list[Problem]) -> bool:
    try:
        re.compile(pattern)
    except re.error as exc:
        problems.append(Problem(path, line, f"invalid pattern '{pattern}': {exc}"))
        return False
    return True


def _load_danger(path: Path, article_ids: set[str], problems: list[Problem]) -> DangerRules:
    data, node = _load_yaml(path, problems)
    if not isinstance(data, dict):
        problems.append(Problem(path, 1, "danger_signs.yaml must be a mapping"))
        data = {}
    signs: list[DangerSign] = []
    sign_nodes: list[yaml.Node] = []
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if k.value == "signs" and isinstance(v, yaml.SequenceNode):
                sign_nodes = list(v.value)
    raw_signs = data.get("signs")
    if not isinstance(raw_signs, list) or not raw_signs:
        problems.append(Problem(path, _line_of(node, "signs"), "'signs' must be a non-empty list"))
        raw_signs = []
    seen: set[str] = set()
    for i, item in enumerate(raw_signs):
        snode = sign_nodes[i] if i < len(sign_nodes) else None
        line = int(snode.start_mark.line) + 1 if snode is not None else 1
        if not isinstance(item, dict):
            problems.append(Problem(path, line, "each sign must be a mapping"))
            continue
        sid = item.get("id")
        patterns = _str_list(item.get("patterns"))
        tier = item.get("tier")
        if not isinstance(sid, str) or not ID_RE.match(sid) or sid in seen:
            problems.append(Problem(path, line, f"sign id '{sid}' is missing, malformed or repeated"))
            continue
        seen.add(sid)
        if tier not in (1, 2):
            problems.append(Problem(path, _line_of(snode, "tier"), f"sign '{sid}': tier must be 1 or 2"))
            continue
        if not patterns:
            problems.append(Problem(path, _line_of(snode, "patterns"), f"sign '{sid}' has no patterns"))
            continue
        plines = _item_lines(snode, "patterns")
        if not all(_compile(p, path, plines[j] if j < len(plines) else line, problems)
                   for j, p in enumerate(patterns)):
            continue
        article = item.get("article")
        if article is not None and article not in article_ids:
            problems.append(Problem(path, _line_of(snode, "article"),
                                    f"sign '{sid}': article '{article}' does not exist"))
        label = item.get("label")
        if not isinstance(label, str) or not label:
            problems.append(Problem(path, _line_of(snode, "label"), f"sign '{sid}' needs a label"))
            continue
        signs.append(DangerSign(
            id=sid, tier=tier, label=label, patterns=tuple(patterns), article=article,
            max_age_months=item.get("under_months"), min_age_months=item.get("from_months"),
            with_words=tuple(_str_list(item.get("with")) or ()),
            unless_words=tuple(_str_list(item.get("unless")) or ()),
        ))

    def words(key: str) -> tuple[str, ...]:
        value = _str_list(data.get(key))
        if value is None:
            problems.append(Problem(path, _line_of(node, key), f"'{key}' must be a list of words"))
            return ()
        return tuple(value)

    fever: dict[str, Any] = data["fever"] if isinstance(data.get("fever"), dict) else {}
    breathing: dict[str, Any] = data["fast_breathing"] if isinstance(data.get("fast_breathing"), dict) else {}
    fever_rules: list[FeverRule] = []
    for r in fever.get("rules") or []:
        try:
            fever_rules.append(FeverRule(float(r["under_months"]), float(r["at_or_above"]),
                                         float(r["below"]) if r.get("below") is not None else None,
                                         int(fever.get("tier", 2))))
        except (KeyError, TypeError, ValueError):
            problems.append(Problem(path, _line_of(node, "fever"),
                                    f"fever rule {r!r} needs under_months and at_or_above"))
    breathing_rules: list[BreathingRule] = []
    for r in breathing.get("rules") or []:
        try:
            breathing_rules.append(BreathingRule(float(r["under_months"]), int(r["per_minute"]),
                                                 int(breathing.get("tier", 2))))
        except (KeyError, TypeError, ValueError):
            problems.append(Problem(path, _line_of(node, "fast_breathing"),
                                    f"breathing rule {r!r} needs under_months and per_minute"))
    for key, section in (("fever", fever), ("fast_breathing", breathing), ("general_article", data)):
        art = section.get("article") if key != "general_article" else data.get("general_article")
        if art is not None and art not in article_ids:
            problems.append(Problem(path, _line_of(node, key), f"{key}: article '{art}' does not exist"))
    return DangerRules(
        signs=tuple(signs), negations=words("negations"), past_markers=words("past_markers"),
        history_suffixes=words("history_suffixes"), hypothetical_markers=words("hypothetical_markers"),
        present_markers=words("present_markers"),
        fever_words=tuple(_str_list(fever.get("words")) or ()),
        fever_rules=tuple(sorted(fever_rules, key=lambda r: r.under_months)),
        fever_label=str(fever.get("label", "")), fever_article=fever.get("article"),
        breathing_rules=tuple(sorted(breathing_rules, key=lambda r: r.under_months)),
        breathing_label=str(breathing.get("label", "")), breathing_article=breathing.get("article"),
        general_article=data.get("general_article"),
        sources=tuple(_str_list(data.get("sources")) or ()),
    )


def article_files(root: Path) -> Iterator[Path]:
    yield from sorted((root / "guidance").rglob("*.md"))


def check_content(root: Path, today: dt.date) -> tuple[Library | None, list[Problem]]:
    """Load `root` and return the library (None when anything is wrong) with every problem found."""
    problems: list[Problem] = []
    root = Path(root)
    if not root.is_dir():
        return None, [Problem(root, 1, "content directory does not exist")]
    articles: list[Article] = []
    for path in article_files(root):
        article = parse_article(path, today, problems)
        if article is not None:
            if article.topic != path.parent.name:
                problems.append(Problem(path, 1, f"article of topic '{article.topic}' is filed under "
                                                 f"'{path.parent.name}/': move it to guidance/{article.topic}/"))
            articles.append(article)
    if not articles and not problems:
        problems.append(Problem(root / "guidance", 1, "no articles found"))
    topics = _load_topics(root / "topics.yaml", problems)
    synonyms, fillers = _load_synonyms(root / "synonyms.yaml", problems)
    scope = _load_scope(root / "scope.yaml", problems)
    normaliser = Normaliser(synonyms, fillers)
    _cross_checks(articles, normaliser, problems)
    danger = _load_danger(root / "danger_signs.yaml", {a.id for a in articles}, problems)
    library = Library(
        root=root, articles={a.id: a for a in articles}, topics=topics, synonyms=synonyms,
        fillers=fillers, scope=scope, danger=danger, templates_dir=root / "templates",
    )
    from .render import check_templates  # late: render imports Library for typing only

    problems.extend(check_templates(library))
    return (None if problems else library), problems


def load_library(root: Path, today: dt.date) -> Library:
    """The validated library, or ContentError listing every problem."""
    library, problems = check_content(root, today)
    if library is None:
        raise ContentError(problems)
    return library
