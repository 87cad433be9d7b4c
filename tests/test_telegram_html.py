from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.telegram_html import decode_action, encode_action, markup_to_html, split_html, tg_len
from zjcare_guide.clock import fixed_clock
from zjcare_guide.content import DEFAULT_CONTENT_DIR
from zjcare_guide.conversation import Conversation
from zjcare_guide.guide import Guide
from zjcare_guide.replies import Action

from .conftest import TODAY
from .telegram_rules import html_problems

markup_text = st.lists(
    st.one_of(st.text(max_size=300), st.just("**粗体**"), st.just("- 列表项"), st.just("\n\n"),
              st.just("<b>&amp;</b> < > & \"'"), st.just("😀" * 50)),
    max_size=60,
).map("".join)


def test_markup_is_escaped_and_bold_becomes_b() -> None:
    assert markup_to_html("**注意** 1<2 & 3>2\n- 一项") == "<b>注意</b> 1&lt;2 &amp; 3&gt;2\n• 一项"


@given(markup_text)
def test_split_html_gives_valid_messages_within_the_limit(text: str) -> None:
    for chunk in split_html(text, limit=500):
        assert tg_len(chunk) <= 500
        errors, _ = html_problems(chunk)
        assert errors == []


def test_long_article_splits_on_paragraphs() -> None:
    paragraphs = [f"**第{i}段**\n" + "宝宝" * 300 for i in range(10)]
    chunks = split_html("\n\n".join(paragraphs))
    assert len(chunks) > 1 and all(tg_len(c) <= 4096 for c in chunks)
    assert all(c.startswith("<b>第") for c in chunks)


def test_every_button_of_the_library_encodes_within_64_bytes(guide: Guide) -> None:
    conv = Conversation(guide, clock=fixed_clock(TODAY))
    actions = [Action("topics"), Action("help")]
    for a in guide.library.articles.values():
        actions += [Action("article", a.id), Action("feedback", a.id, value=1), Action("feedback", a.id, value=-1)]
    for t in guide.library.topics:
        actions += [x for r in conv.topic_page(t.id, 0).buttons for x in (b.action for b in r)]
    actions += [b.action for row in conv.main_menu() for b in row]
    for action in actions:
        data = encode_action(action, conv.router)
        assert len(data.encode()) <= 64
        assert decode_action(data, conv.router) == action


ROUTER = Conversation(Guide.from_dir(DEFAULT_CONTENT_DIR, TODAY), clock=fixed_clock(TODAY)).router


@given(st.text(max_size=80))
def test_decoding_anything_never_raises(data: str) -> None:
    decode_action(data, ROUTER)
