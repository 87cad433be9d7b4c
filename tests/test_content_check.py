"""`content check`: the shipped content is clean, and each broken fixture is reported at path:line."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

from zjcare_guide.content import DEFAULT_CONTENT_DIR, check_content
from zjcare_guide.guide import Guide, GuideHolder

from .conftest import FIXTURES, TODAY

CASES: list[dict[str, Any]] = yaml.safe_load((FIXTURES / "broken" / "cases.yaml").read_text(encoding="utf-8"))


def test_shipped_content_is_clean() -> None:
    library, problems = check_content(DEFAULT_CONTENT_DIR, TODAY)
    assert problems == []
    assert library is not None
    assert len(library.articles) >= 80


def test_every_topic_has_articles_and_every_article_names_sources() -> None:
    library, _ = check_content(DEFAULT_CONTENT_DIR, TODAY)
    assert library is not None
    for topic in library.topics:
        assert len(library.in_topic(topic.id)) >= 5, topic.id
    assert all(a.sources for a in library.articles.values())


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_broken_content_is_reported(case: dict[str, Any], content_copy: Path) -> None:
    for rel, text in case["files"].items():
        target = content_copy / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    library, problems = check_content(content_copy, TODAY)
    assert library is None
    expect = case["expect"]
    wanted_path = content_copy / expect["path"]
    found = [p for p in problems if p.path == wanted_path and expect["message"] in p.message]
    assert found, "\n".join(map(str, problems))
    assert found[0].line == expect["line"], str(found[0])
    assert str(found[0]).startswith(f"{wanted_path}:{expect['line']}: ")


def test_review_age_is_measured_from_the_day_passed_in() -> None:
    _, problems = check_content(DEFAULT_CONTENT_DIR, dt.date(2029, 1, 1))
    assert problems and all("more than two years ago" in p.message for p in problems)


def test_reload_keeps_the_last_good_library(content_copy: Path) -> None:
    holder = GuideHolder(Guide.from_dir(content_copy, TODAY))
    before = holder.guide
    (content_copy / "guidance" / "disease" / "fever-basics.md").write_text("不是文章", encoding="utf-8")
    problems = holder.reload(TODAY)
    assert problems
    assert holder.guide is before
    assert holder.guide.article("fever-basics") is not None


def test_reload_swaps_in_good_changes(content_copy: Path) -> None:
    holder = GuideHolder(Guide.from_dir(content_copy, TODAY))
    path = content_copy / "guidance" / "disease" / "fever-basics.md"
    path.write_text(path.read_text(encoding="utf-8").replace("title: ", "title: 【新】", 1), encoding="utf-8")
    assert holder.reload(TODAY) == []
    article = holder.guide.article("fever-basics")
    assert article is not None and article.title.startswith("【新】")


def test_a_file_saved_with_a_byte_order_mark_reads_like_any_other(content_copy: Path) -> None:
    for rel in ("guidance/disease/fever-basics.md", "synonyms.yaml", "templates/help.j2"):
        path = content_copy / rel
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    library, problems = check_content(content_copy, TODAY)
    assert problems == [] and library is not None
    assert library.articles["fever-basics"].title


def test_one_broken_article_is_one_problem(content_copy: Path) -> None:
    """Other articles name it in `related` and danger signs as their article: no cascade of
    "does not exist" for a file that was reported as unreadable."""
    path = content_copy / "guidance" / "disease" / "fever-basics.md"
    path.write_text(path.read_text(encoding="utf-8").replace("id: fever-basics", "id: [fever-basics"),
                    encoding="utf-8")
    _, problems = check_content(content_copy, TODAY)
    assert len(problems) == 1 and problems[0].path == path, problems


def test_a_missing_file_is_named_once(content_copy: Path) -> None:
    (content_copy / "scope.yaml").unlink()
    _, problems = check_content(content_copy, TODAY)
    assert [(p.path.name, p.message) for p in problems] == [("scope.yaml", "file is missing")]


def test_a_directory_without_guidance_is_one_line(tmp_path: Path) -> None:
    _, problems = check_content(tmp_path, TODAY)
    assert [str(p) for p in problems] == [f"{tmp_path / 'guidance'}:1: guidance directory is missing"]


def test_a_snippet_is_written_once_and_filled_in_everywhere(content_copy: Path) -> None:
    (content_copy / "snippets" / "young-infant-fever.md").write_text("示例阈值文字", encoding="utf-8")
    library, problems = check_content(content_copy, TODAY)
    assert problems == [] and library is not None
    using = [a for a in library.articles.values() if "示例阈值文字" in a.body]
    assert len(using) >= 10
    assert not any("[[" in a.body for a in library.articles.values())
