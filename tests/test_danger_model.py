"""Triage's learned second opinion: built from this corpus, checked like content, kept in its lane."""

from __future__ import annotations

import json
import re
from pathlib import Path

from zjcare_guide.content import DEFAULT_CONTENT_DIR, check_content
from zjcare_guide.danger_model import corpus_digest
from zjcare_guide.evaluation import evaluate, load_golden
from zjcare_guide.guide import Guide

from .conftest import GOLDEN, TODAY

ROOT = Path(__file__).resolve().parent.parent
MODEL = DEFAULT_CONTENT_DIR / "danger_model.json"


def test_the_shipped_model_was_built_from_this_corpus() -> None:
    files = [*sorted((ROOT / "training" / "danger").glob("*.yaml")), GOLDEN / "questions.yaml"]
    recorded = json.loads(MODEL.read_text(encoding="utf-8"))["corpus_sha256"]
    assert recorded == corpus_digest(files), "the corpus changed: run python scripts/train_danger_model.py"


def test_no_blind_set_is_in_the_training_corpus() -> None:
    training = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "training" / "danger").glob("*.yaml"))
    blind = [p for p in GOLDEN.glob("danger_blind_*.yaml")]
    assert blind, "the blind sets are kept in tests/golden/"
    for path in blind:
        for q in re.findall(r'q: "([^"]{12,})"', path.read_text(encoding="utf-8")):
            assert q not in training, q


def test_content_check_refuses_a_model_naming_an_unknown_sign(content_copy: Path) -> None:
    data = json.loads(MODEL.read_text(encoding="utf-8"))
    data["sign_ids"]["convulsion"] = "no-such-sign"
    (content_copy / "danger_model.json").write_text(json.dumps(data), encoding="utf-8")
    library, problems = check_content(content_copy, TODAY)
    assert library is None and any("no-such-sign" in p.message for p in problems)


def test_content_check_refuses_a_model_of_another_format(content_copy: Path) -> None:
    (content_copy / "danger_model.json").write_text('{"format": 99}', encoding="utf-8")
    library, problems = check_content(content_copy, TODAY)
    assert library is None and any("format" in p.message for p in problems)


def test_without_a_model_triage_runs_on_its_rules(content_copy: Path) -> None:
    (content_copy / "danger_model.json").unlink()
    guide = Guide.from_dir(content_copy, TODAY)
    assert guide.triage.model is None
    assert guide.triage.assess("宝宝抽搐了").urgent


def test_the_model_adds_what_the_rules_miss_on_the_blind_sets(guide: Guide) -> None:
    for name in ("danger_blind_a.yaml", "danger_blind_b.yaml"):
        report = evaluate(guide, load_golden(GOLDEN / name))
        assert report.by_model >= 1, name  # escalations the rules alone would have missed


def test_a_counted_rate_or_temperature_under_the_limit_is_not_overruled(guide: Guide) -> None:
    for text, age in (("十一个月 呼吸 一分钟38下 睡着", None), ("一岁半娃烧到38度7 精神还好 要去医院伐", None)):
        result = guide.triage.assess(text, age)
        assert not result.urgent, result.findings
