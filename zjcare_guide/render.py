"""Message templates (Jinja2 files in content/templates/) and the light markup they produce.

Templates and article bodies share one small markup — paragraphs, `- ` list lines and `**bold**` —
which each transport renders: plain text on the console, Telegram HTML in the bot.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import yaml

from .model import Article, Problem, Topic

if TYPE_CHECKING:
    from .content import Library

REQUIRED_TEMPLATES = ("welcome", "help", "greeting", "answer", "choices", "urgent", "fallback",
                      "out_of_scope", "english", "topics", "topic_articles", "disclaimer", "expired", "bad_input",
                      "error", "age_set", "ask_prompt", "child", "reminder", "reminders",
                      "doctors", "not_allowed", "visit", "push", "admin_only", "reload_ok",
                      "reload_failed", "find_prompt", "institution_results", "town_list", "finder_notice",
                      "find_filters", "cancelled", "report", "places", "reminder_vaccine", "reminder_checkup",
                      "schedule_plan")
LABELS_FILE = "labels.yaml"
REQUIRED_LABELS = ("feedback_up", "feedback_down", "more", "prev", "next", "topics", "related_prefix",
                   "thanks_feedback", "choice_prompt", "menu_ask", "menu_institutions", "menu_reminders",
                   "menu_child", "menu_help", "already_rated", "command_start", "command_help",
                   "command_topics", "command_age", "share_location", "find_by_town", "cancel", "filters",
                   "find_again", "filter_inclusive", "filter_places", "filter_any_form", "filter_any_age",
                   "filter_age", "report_prefix", "report_unfiled", "command_find", "command_report",
                   "command_cancel", "places_button", "plan_done", "plan_upcoming", "plan_due", "plan_overdue",
                   "plan_not_given", "consent_yes", "consent_no", "child_add", "sex_f", "sex_m", "sex_skip",
                   "preterm_yes", "preterm_no", "edit_nickname", "edit_birth", "remove_child", "child_list",
                   "remove_yes", "remove_no", "command_child", "set_discharge", "remind_done", "done_today",
                   "remind_snooze", "remind_mute",
                   "snooze_days", "unmute", "reminders_pause", "reminders_resume", "command_reminders",
                   "command_pause", "command_resume", "join_yes", "join_no", "unlink_yes", "unlink_no", "no_children",
                   "visit_home",
                   "visit_no_note", "visit_save", "visit_confirm", "visit_reschedule", "push_all", "push_overdue",
                   "push_age", "push_send")

# Telegram HTML allows only a handful of tags and no raw angle brackets; article bodies are a small
# Markdown subset that the transports render, so these characters never belong in a body.
FORBIDDEN_BODY = re.compile(r"[<>]|^#{1,6}\s|^\s*\|", re.MULTILINE)
# `[[name]]` in an article body stands for content/snippets/name.md: advice many articles share (the
# fever threshold for young infants, the hotlines) is written once, so a correction reaches them all.
SNIPPET_RE = re.compile(r"\[\[([a-z0-9-]+)\]\]")
_BOLD = re.compile(r"\*\*(.+?)\*\*")

_SAMPLE_ARTICLE = Article(
    id="sample", title="示例文章", topic="disease", questions=("示例",) * 5, keywords=(), age_months=(0, 36),
    related=(), sources=("示例来源",), reviewed=dt.date(2026, 1, 1), body="示例正文。", path=Path("sample.md"),
)
_SAMPLE_TOPIC = Topic("disease", "常见病护理", "示例")


def sample_context(name: str) -> dict[str, Any]:
    """A context that exercises every variable a template may use, for `content check`."""
    return {**_SAMPLE, **_SAMPLE_BY_TEMPLATE.get(name, {})}


_SAMPLE_DOCTOR = {"name": "王医生", "clinic": "示例镇卫生院"}
_SAMPLE_CHILD = {"nickname": "豆豆", "age": "8个月", "next_item": "麻腮风疫苗第1剂", "next_due": "12月4日",
                 "overdue": ("乙肝疫苗第3剂",)}
_SAMPLE_BY_TEMPLATE: dict[str, dict[str, Any]] = {
    "doctors": {"step": "preview", "doctor": _SAMPLE_DOCTOR, "previous": _SAMPLE_DOCTOR, "children": [_SAMPLE_CHILD],
                "when": "12月5日（星期六）14:30", "place": "店口镇卫生院", "note": "", "state": "confirmed",
                "text": "示例消息", "count": 3, "left": 1000, "audience": "全部签约家庭", "reason": "long",
                "link": "https://t.me/example_bot?start=join_x", "overdue_only": True,
                "families": [{"number": 1, "children": [_SAMPLE_CHILD]}]},
    "not_allowed": {"permission": "doctor"},
    "privacy": {"step": "mydata", "months": 24, "deleted": 12, "called_off": 1,
                "children": [{"nickname": "豆豆", "birth": "2026-03-01", "age": "9个月", "sex": "f", "preterm": True,
                              "discharge": "2026-03-05", "records": 2, "pending": 3, "muted": 1}],
                "data": {"exported_at": "2026-12-01T09:00:00+08:00",
                         "family": {"consent_at": "2026-03-02T10:00:00+08:00", "last_active": "2026-12-01",
                                    "reminders_paused": False},
                         "doctor": {**_SAMPLE_DOCTOR, "since": "2026-04-01T10:00:00+08:00"},
                         "visits": [{"at": "2026-03-10T14:30:00+08:00", "place": "家中"}],
                         "doctor_messages": [{"created": "2026-05-01T09:00:00+08:00", "doctor": "王医生",
                                              "text": "本周六上午卫生院有免费体检，请带上母子健康手册和孩子的接种证"}],
                         "doctor_actions": [{"at": "2026-04-01T10:00:00+08:00", "doctor": "王医生",
                                             "action": "families"}],
                         "reports": [{"ref": "JB20261201-0001"}]}},
    "visit": {"step": "visit_new", "doctor": _SAMPLE_DOCTOR, "when": "12月5日（星期六）14:30", "place": "店口镇卫生院",
              "note": "请带上母子健康手册", "state": "scheduled", "children": ["豆豆"]},
    "push": {"step": "progress", "doctor": _SAMPLE_DOCTOR, "text": "示例消息", "total": 3, "done": False,
             "counts": {"sent": 1, "failed": 1, "blocked": 0, "cancelled": 1, "pending": 0, "sending": 0}},
    "reminder": {"parts": ["**预防接种提醒**：小宝3天后（12月4日）可以接种：乙肝疫苗第2剂"]},
    "reminders": {"step": "timeline", "paused": True, "typed": False, "day": "2026年12月1日", "item": "乙肝疫苗第2剂",
                  "children": [{"nickname": "豆豆", "done": 2, "now": [w], "upcoming": [w], "later": 3} for w in (
                      {"name": "乙肝疫苗第2剂", "due": "2026年12月4日", "status": "overdue", "muted": True,
                       "window_end": ""},)],
                  "next": [{"name": "乙肝疫苗第3剂", "due": "2027年4月30日"}]},
}
_SAMPLE: dict[str, Any] = {
        "article": _SAMPLE_ARTICLE, "articles": [_SAMPLE_ARTICLE, _SAMPLE_ARTICLE],
        "related": [_SAMPLE_ARTICLE], "topic": _SAMPLE_TOPIC, "topics": [_SAMPLE_TOPIC],
        "findings": [{"label": "抽搐", "tier": 1}], "tier": 1,
        "first_aid": [{"label": "不满1岁", "steps": ["示例步骤"]}, {"label": "", "steps": ["示例步骤"]}],
        "symptom": True,
        "age_months": 8, "page": 1, "pages": 2, "reason": "too_long", "max_length": 500,
        "feature": "institutions", "articles_count": 1, "signs": 3,
        "count": 3, "problems": ["content/x.md:1: 示例问题"],
        # The institution finder, reports and operators.
        "cards": [{"number": 1, "id": 1, "name": "示例托育园", "town": "店口镇", "distance_km": "1.2",
                   "inclusive": True, "ages": "6–36个月", "forms": "全日托", "places": p, "places_day": "11月20日",
                   "phone": "0575-00000000", "address": "示例路1号"} for p in (3, 0, None)],
        "place": "店口镇", "near": True, "by_name": False, "filters": ["普惠"], "more": True, "listed": True,
        "step": "start", "ref": "JB20261201-0001", "min": 5, "max": 1000, "town": "店口镇", "places": 3,
        "institution": {"name": "示例托育园", "capacity": 20, "places": 3, "places_updated": "2026-11-20"},
        "today": dt.date(2026, 12, 1), "nothing": False, "old": "阮市",
        # Reminders and plans.
        "nickname": "小宝", "days_left": 3, "due": "12月4日",
        "items": [{"name": "乙肝疫苗", "dose": 2, "kind": "vaccine", "missing": ["乙肝疫苗第1剂"]},
                  {"name": "新生儿家庭访视", "dose": None, "kind": "visit", "missing": []},
                  {"name": "满月健康检查", "dose": None, "kind": "checkup", "missing": []}],
        "children": [("豆豆", "8个月")], "again": True, "age": "8个月", "added": True, "updated": False,
        "preterm": True, "upcoming": [{"name": "乙肝疫苗第3剂", "due": "2026年9月1日"}],
        "missed": [{"name": "满月健康检查", "due": "2026年3月29日"}], "cases": ["示例情况"],
        "plan": [{"due": "2026-12-04", "window_end": None, "name": "乙肝疫苗", "dose": 2, "status": s,
                  "done_on": None} for s in ("done", "upcoming", "due", "overdue", "not_given")],
}


class Renderer:
    """Renders the content's templates; strict, so a typo in a template fails `content check`."""

    def __init__(self, templates_dir: Path, snippets: dict[str, str] | None = None) -> None:
        """`snippets`: the library's shared snippets (content/snippets/, loaded once with the content)."""
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(templates_dir), encoding="utf-8-sig"),
            undefined=jinja2.StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        labels_path = templates_dir / LABELS_FILE
        data = yaml.safe_load(labels_path.read_text(encoding="utf-8-sig")) if labels_path.exists() else {}
        self.labels: dict[str, str] = {str(k): str(v) for k, v in (data or {}).items()}
        # The shared snippets (content/snippets/) the articles use, for templates too: the hotline
        # is named in one place.
        self.env.globals["snippets"] = dict(snippets or {})

    def render(self, name: str, **context: Any) -> str:
        template = self.env.get_template(f"{name}.j2")
        text = template.render(labels=self.labels, **context)
        # Collapse the blank lines that template logic leaves behind.
        return re.sub(r"\n{3,}", "\n\n", text).strip()

    def label(self, key: str, **context: Any) -> str:
        return self.labels[key].format(**context) if context else self.labels[key]


def fill_snippets(body: str, snippets: dict[str, str], path: Path, first_line: int,
                   problems: list[Problem]) -> str:
    """The body with each `[[name]]` replaced by its snippet; an unknown name is reported at its line."""
    def fill(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in snippets:
            line = first_line + body.count("\n", 0, m.start())
            known = ", ".join(sorted(snippets)) or "none"
            problems.append(Problem(path, line, f"unknown snippet '[[{name}]]' (snippets/: {known})"))
            return m.group(0)
        return snippets[name]
    return SNIPPET_RE.sub(fill, body)


def load_snippets(directory: Path, problems: list[Problem]) -> dict[str, str]:
    """content/snippets/*.md as name → text (a missing directory is no snippets)."""
    out: dict[str, str] = {}
    for path in sorted(directory.glob("*.md")) if directory.is_dir() else []:
        try:
            text = path.read_text(encoding="utf-8-sig").strip()
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(path, 1, f"cannot read file: {exc}"))
            continue
        if not text:
            problems.append(Problem(path, 1, "the snippet is empty"))
        elif SNIPPET_RE.search(text) or FORBIDDEN_BODY.search(text):
            problems.append(Problem(path, 1, "a snippet may use only paragraphs, '- ' lists and **bold**, "
                                             "and no other snippet"))
        out[path.stem] = text
    return out


def check_templates(library: Library) -> list[Problem]:
    """Every required template exists and renders; every label is present."""
    problems: list[Problem] = []
    tdir = library.templates_dir
    if not tdir.is_dir():
        return [Problem(tdir, 1, "templates directory is missing")]
    try:
        renderer = Renderer(tdir, library.snippets)
    except (yaml.YAMLError, OSError) as exc:
        return [Problem(tdir / LABELS_FILE, 1, f"cannot load labels: {exc}")]
    for key in REQUIRED_LABELS:
        if key not in renderer.labels:
            problems.append(Problem(tdir / LABELS_FILE, 1, f"label '{key}' is missing"))
    names = {p.stem for p in tdir.glob("*.j2")}
    for name in REQUIRED_TEMPLATES:
        if name not in names:
            problems.append(Problem(tdir / f"{name}.j2", 1, "required template is missing"))
    for name in sorted(names):
        path = tdir / f"{name}.j2"
        try:
            text = renderer.render(name, **sample_context(name))
        except jinja2.TemplateSyntaxError as exc:
            problems.append(Problem(path, exc.lineno or 1, f"template syntax error: {exc.message}"))
            continue
        except (jinja2.TemplateError, AttributeError, TypeError, KeyError) as exc:
            problems.append(Problem(path, 1, f"template fails to render: {exc}"))
            continue
        if not text:
            problems.append(Problem(path, 1, "template renders to empty text"))
        if re.search(r"[<>]", text):
            problems.append(Problem(path, 1, "templates may not contain '<' or '>' (use the light markup)"))
        if text.count("**") % 2:
            problems.append(Problem(path, 1, "unbalanced ** in template"))
    return problems


def to_plain(markup: str) -> str:
    """The console form of the light markup."""
    return _BOLD.sub(r"\1", markup)
