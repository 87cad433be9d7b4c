"""What an escalation says: tier, first actions for the sign and the child's age, the right article,
a short first screen; and what a message that is not urgent but mentions a symptom still says."""

from __future__ import annotations

import pytest

from zjcare_guide.conversation import Conversation
from zjcare_guide.guidance import MAX_MESSAGE
from zjcare_guide.replies import Session, Text

BACK_BLOWS = "拍背5次"
ABDOMINAL = "海姆立克法"
CONVULSION_STEP = "不要往嘴里塞任何东西"


def urgent(conversation: Conversation, text: str, age: float | None = None) -> list:  # type: ignore[type-arg]
    replies = conversation.handle(Text(text), Session(age_months=age))
    assert replies[0].kind == "urgent", replies[0].text
    return replies


def test_choking_under_one_year_gets_back_blows_first_and_no_abdominal_thrusts(conversation: Conversation) -> None:
    first = urgent(conversation, "宝宝8个月 吃苹果噎住了 哭不出声")[0].text
    assert BACK_BLOWS in first and ABDOMINAL not in first.split("不要用腹部冲击")[0]
    assert CONVULSION_STEP not in first


def test_choking_from_one_year_gets_abdominal_thrusts(conversation: Conversation) -> None:
    first = urgent(conversation, "两岁 吃花生卡住了 咳不出来 脸发紫")[0].text
    assert ABDOMINAL in first and BACK_BLOWS not in first


def test_choking_at_an_unknown_age_shows_both_by_age(conversation: Conversation) -> None:
    first = urgent(conversation, "孩子吃果冻卡住了 发不出声")[0].text
    assert "不满1岁" in first and "1岁及以上" in first


def test_a_convulsion_never_carries_the_choking_steps(conversation: Conversation) -> None:
    replies = urgent(conversation, "宝宝抽搐了 眼睛往上翻")
    assert CONVULSION_STEP in replies[0].text
    assert BACK_BLOWS not in replies[0].text and ABDOMINAL not in replies[0].text
    assert replies[1].articles[0].id == "convulsions"


@pytest.mark.parametrize(("text", "article", "step"), [
    ("开水打翻烫到胸口和肚子 一大片都起泡了", "burns-scalds", "流动的凉水"),
    ("孩子掉进水桶里了 刚捞上来 一直咳", "drowning-prevention", "控水"),
    ("宝宝摸插座被电到了 现在哭个不停", "electric-shock", "断电"),
    ("手被菜刀割了 血止不住 按了十分钟还在流", "cuts-bleeding", "按住伤口"),
    ("宝宝吞了一颗纽扣电池", "button-batteries-magnets", "不要催吐"),
])
def test_first_aid_and_article_match_the_sign(conversation: Conversation, text: str, article: str, step: str) -> None:
    replies = urgent(conversation, text)
    assert step in replies[0].text
    assert replies[0].articles[0].id == article and replies[1].articles[0].id == article
    assert "fall-prevention" not in [r.articles[0].id for r in replies if r.articles]


def test_two_signs_of_one_injury_get_both_first_actions(conversation: Conversation) -> None:
    first = urgent(conversation, "孩子头撞到茶几角 流了好多血 按着也止不住")[0].text
    assert "按住伤口" in first and "不要摇晃" in first


def test_tier_two_sends_to_hospital_without_the_tier_one_headline(conversation: Conversation) -> None:
    first = urgent(conversation, "两个月宝宝发烧38度5")[0].text
    assert "去医院" in first and "立即拨打120！" not in first


def test_the_first_screen_is_short(conversation: Conversation) -> None:
    for text in ("宝宝抽搐了", "孩子吃果冻卡住了 发不出声", "宝宝吞了一颗纽扣电池", "两个月宝宝发烧38度5"):
        first = urgent(conversation, text)[0].text
        # What to do now and the number fit on one phone screen; the article comes as the next message.
        assert len(first) < 420, (text, len(first))
        assert "120" in first.split("\n")[0] or "120" in first.split("\n")[1]


def test_a_danger_sign_buried_in_a_long_message_is_escalated(conversation: Conversation) -> None:
    filler = "今天早上吃了半碗粥 下午去楼下晒太阳 跟邻居聊了会天 " * 12
    text = filler + "刚才发现宝宝嘴唇发紫 叫他也不太应 " + filler
    assert len(text) > MAX_MESSAGE
    assert urgent(conversation, text)[0].kind == "urgent"


def test_a_long_message_is_answered_from_its_question(conversation: Conversation) -> None:
    story = "宝宝八个月了 平时是外婆带 我们白天上班 晚上回来陪他玩 周末带他去公园 " * 14
    replies = conversation.handle(Text(story + "想问一下辅食怎么加比较好？"), Session())
    assert len(story) > MAX_MESSAGE
    assert replies[0].kind in ("answer", "choices")
    assert any(a.topic == "nutrition" for a in replies[0].articles)


def test_a_long_message_without_a_question_is_asked_kindly_to_shorten(conversation: Conversation) -> None:
    replies = conversation.handle(Text("今天天气很好 我们去公园玩了 " * 40), Session())
    assert replies[0].kind == "notice" and str(MAX_MESSAGE) in replies[0].text


def test_an_unanswerable_message_about_a_symptom_says_when_to_get_care(conversation: Conversation) -> None:
    [reply] = conversation.handle(Text("宝宝脚后跟摔了一下肿了一个小包 紫了一点点 蹦蹦跳跳的"), Session())
    if reply.kind == "fallback":
        assert "立即拨打120" in reply.text and "尽快去医院" in reply.text
    [plain] = conversation.handle(Text("今天股票涨了吗"), Session())
    assert plain.kind == "fallback" and "立即拨打120" not in plain.text


def test_invisible_characters_and_traditional_text_reach_triage(conversation: Conversation) -> None:
    urgent(conversation, "宝宝抽\u200b搐\u00ad了\ufeff")
    urgent(conversation, "寶寶噎著了 臉都憋紅了 哭不出聲")


def test_lone_surrogates_never_break_a_reply(conversation: Conversation) -> None:
    replies = conversation.handle(Text("宝宝\udce5\udcae发烧了"), Session(age_months=18))
    assert replies and all(ch < "\ud800" or ch > "\udfff" for r in replies for ch in r.text)
