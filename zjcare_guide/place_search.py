"""Whether a message typed out of any flow asks for childcare places ("店口有托育机构吗", "附近有托儿所伐",
"风桥托育", "any daycare in Diankou"), as opposed to a question about childcare, which the guidance
answers ("店口的托班一个月几钿", "托育机构要有哪些证", "去哪里投诉").

Rules, not a model: the directory's words are few and a false claim costs the parent their answer.
Measured on blind sets written from the reference only (docs/matching.md, "Finding places").
"""

from __future__ import annotations

import functools
import re

from .homophones import HomophoneIndex
from .towns import OLD_NAMES, TOWNS, find_town, old_place, towns_in

# A place for a child's care. Mistyped ones (脱班, 拖班, 托与) are found by sound below.
_PLACE = re.compile(
    r"托育(机构|园|中心|点|所|室|班)?|托儿所|托班|托小人|托孩子|托小孩|早教(中心|班)?|日托|托管(班|中心)|办托|托的|"
    r"(全日|半日|计时|临时)托|托大班|托小班|乳儿班|托位|普惠|(托|带|送).{0,3}的地方|地方托|"
    r"daycare|day care|nursery|childcare|child care|kindergarten|creche|tuoban|tuoyu|tuoer", re.I)
_PLACE_WORDS = ("托育", "托班", "托儿所", "托育点", "托育机构")
# Asking which, where, nearest, to recommend or list them, or for places left: a search by itself.
_WHICH = re.compile(r"附近|周边|旁边|离家近|离.{0,8}近|最近|就近|哪里有|哪儿有|哪有|哪里(可以|能)|哪些|哪几|哪个|"
                    r"哪家|几家|推荐|找.{0,6}(托|早教|地方)|列一下|地址|电话|名额|空位|托位|位置|any|where|near|"
                    r"looking for|find", re.I)
# Asking whether there are any: a search only with a place named ("店口有托班伐"); without one it is
# as often a question about childcare ("送托育有没有补贴").
_ANY = re.compile(r"有没有|有伐|有吗|有么|有.{0,8}(伐|吗|么|没)|有什么|有啥")
# ...that are about the place itself ("有普惠的托育吗", "有地方托伐"), not about a feature of it
# ("托育有空调伐", "有没有车子接送").
_ANY_PLACE = re.compile(r"(有没有|有)[^，。,？?！!]{0,8}?(托|早教|地方|普惠|班|daycare|nursery)|"
                        r"(托育|托班|托儿所|机构|早教)[^，。,？?！!]{0,6}?(有吗|有伐|有么|有没有|有哇)(?=[\s,，。？?！!]|$)")
# A yes/no question ("托育中午管饭吗", "暑假放不放假"): about the place named, unless it asks whether there is one.
_YES_NO = re.compile(r"吗|伐|么|有没有|([^\s])[不弗]\1|是不是|会不会")
# The whole city, or a part of it that is no township unit: somewhere in Zhuji, ask for the location.
_CITY = re.compile(r"诸暨|市区|城区|城[东西南北中]|市里|城里|市中心|city")
# ...but how, why, whether, how much, how long, what to prepare, and complaints are questions.
_ASK = re.compile(r"怎么|怎样|咋|如何|为什么|为啥|是否|(能不能|可不可以)(?!告诉|帮|给|发)|可以伐|可以吗|行不行|行弗行|"
                  r"好不好|要不要|必要|注意|区别|差别|不同|类型|方式|标准|几岁|多大|多少|几钿|多久|几点|划算|还是|"
                  r"手续|材料|排队|投诉|投素|头诉|举报|哪里查|哪查|在哪查|怎么查|查到|能查|查询|证|资质|费用|价格|老师|体检|"
                  r"是不是|会不会|几种|哪种|"
                  r"疫苗|问题|(?<!有)什么|(?<!有)啥|一般|要看|看哪些|怎么选|如何选|选择|开一家|部门|找谁|(和|跟|与).{0,10}哪(个|种)|比较|"
                  r"how much|how to|should|report|complain")
# Without one of these a message is no search, and costs nothing more (this runs on every message):
# a place word or a likely mistyping of one, or a town's own name.
_CUE = re.compile("[托拖脱]|育|班|早教|普惠|地方|儿所|daycare|day care|nursery|childcare|child care|kindergarten|"
                  "creche|tuo|" + "|".join(t.short for t in TOWNS) + "|" + "|".join(OLD_NAMES), re.I)
# Short enough to be a town's name on its own (店口镇, "dian kou", 风桥): worth reading by pinyin.
_SHORT = 12
# A town with at most this many characters around it is a search by itself: "牌头有伐", "五泄的".
_BARE = 3
MAX_LENGTH = 200


@functools.cache
def _place_sounds() -> HomophoneIndex:
    return HomophoneIndex(_PLACE_WORDS)


def _spell_places(text: str) -> str:
    """The text with mistyped place words written right (拖育所 → 托育所, 脱班 → 托班)."""
    for alike in reversed(_place_sounds().find(text)):
        text = text[:alike.start] + alike.term + text[alike.end:]
    return text


def is_place_search(text: str) -> bool:
    """True when `text` asks to find or list childcare places (by town, nearby, or a town alone)."""
    t = text.strip()
    if not t or len(t) > MAX_LENGTH:
        return False
    if len(t) <= _SHORT and find_town(t, in_sentence=False) is not None:
        return True  # a town's name alone
    if not _CUE.search(t):
        return False
    t = _spell_places(t)
    if _ASK.search(t):
        return False
    bare = re.sub(r"[\s,，。!！?？~～]", "", t)
    place = bool(_PLACE.search(bare))
    named = towns_in(t)
    if named or old_place(t) is not None:
        if place:
            # "马剑托育", "店口有托班伐", "枫桥哪家托育有位置" — not "璜山的托育暑假放不放假的".
            return not _YES_NO.search(t) or bool(_WHICH.search(t) or _ANY_PLACE.search(t))
        # No place named: a town with a word or two ("牌头有伐", "赵家镇有哪些"), not "次坞打面哪家最正宗".
        rest = len(bare) - max((len(n) for town in named for n in (town.name, town.short) if n in bare), default=2)
        return rest <= _BARE or (rest <= 4 and bool(_WHICH.search(t) or _ANY.search(t)))
    if place and _CITY.search(t) and _ANY_PLACE.search(t):
        return True  # "诸暨城西这块有托育伐": somewhere in the city, so the finder asks where
    return place and bool(_WHICH.search(t))
