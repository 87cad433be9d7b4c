"""Sound-alike windows: pinyin typos of known words, with Zhejiang merges and every reading."""

from __future__ import annotations

import pytest

from zjcare_guide.homophones import HomophoneIndex, sounds

INDEX = HomophoneIndex(["抽搐", "嘴唇", "喘不上气", "嗜睡", "囟门", "异物"])


@pytest.mark.parametrize(("text", "term"), [
    ("宝宝抽处了", "抽搐"),      # same syllables
    ("咀唇发紫", "嘴唇"),        # 咀 is also read zuǐ
    ("传不上气", "喘不上气"),     # chuan = chuan
    ("踹不上气", "喘不上气"),     # 踹 has a reading chuan
    ("一直是睡", "嗜睡"),        # shi = shi
    ("心门鼓起来", "囟门"),      # xin = xin
    ("一物卡喉", "异物"),        # voice input
])
def test_typo_is_found_as_its_word(text: str, term: str) -> None:
    [found] = INDEX.find(text)
    assert found.term == term and text[found.start:found.end] != term


def test_the_word_itself_and_unrelated_sound_alikes_are_not_reported() -> None:
    assert INDEX.find("宝宝抽搐了") == []
    # Same sound but no character in common: too far from the word to be its typo.
    assert INDEX.find("丑出") == []


def test_a_character_without_a_reading_is_no_sound_and_no_error() -> None:
    assert sounds("䶺") == frozenset()
    assert INDEX.find("宝宝䶺䶺抽处了")[0].term == "抽搐"


def test_zhejiang_merges_count_as_the_same_sound() -> None:
    assert sounds("生") & sounds("森")   # sheng / sen: sh→s, eng→en
    assert not sounds("a")
