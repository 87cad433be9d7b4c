"""The learned ranker: naive Bayes over character n-grams, trained by counting."""

from __future__ import annotations

import math

import pytest

from zjcare_guide.ranker import NaiveBayesRanker

EXAMPLES = [("eczema", "湿疹怎么护理"), ("eczema", "脸上起湿疹"), ("eczema", "奶癣要涂什么"),
            ("fever", "发烧怎么办"), ("fever", "体温38度要去医院吗"), ("fever", "退烧药怎么吃")]


def test_the_class_whose_examples_share_the_words_wins() -> None:
    ranker = NaiveBayesRanker(EXAMPLES)
    p = ranker.posterior("宝宝湿疹老不好", ["eczema", "fever"])
    assert p[0] > 0.8 and math.isclose(sum(p), 1.0)


def test_an_unknown_class_gets_nothing() -> None:
    ranker = NaiveBayesRanker(EXAMPLES)
    assert ranker.posterior("发烧了", ["fever", "no-such-article"])[1] == 0.0
    assert ranker.posterior("发烧了", ["no-such-article"]) == [0.0]


def test_without_forgets_an_example_and_nothing_else() -> None:
    ranker = NaiveBayesRanker(EXAMPLES)
    lost = ranker.without("eczema", "奶癣要涂什么")
    assert lost.posterior("奶癣要涂什么", ["eczema", "fever"])[0] < ranker.posterior("奶癣要涂什么",
                                                                                  ["eczema", "fever"])[0]
    # The other class and the original ranker are untouched.
    assert lost.log_scores("发烧怎么办", ["fever"]) == pytest.approx(ranker.log_scores("发烧怎么办", ["fever"]))
