"""The real PTB Application with an offline request: every update type gets a valid reply."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from telegram import Update
from telegram.ext import Application

from bot.app import _post_init, build_application
from bot.logs import quiet_libraries
from bot.telegram_html import decode_action
from zjcare_guide.clock import TZ
from zjcare_guide.config import Config
from zjcare_guide.content import DEFAULT_CONTENT_DIR
from zjcare_guide.dispatcher import Dispatcher
from zjcare_guide.doctors import Doctors
from zjcare_guide.guide import Guide, GuideHolder
from zjcare_guide.identity import user_key
from zjcare_guide.institutions import Directory
from zjcare_guide.registry_import import load_demo
from zjcare_guide.store import Store

from .conftest import TODAY
from .fakes import (
    ADMIN,
    BOT_USER,
    DOCUMENT,
    PARENT,
    PHOTO,
    STICKER,
    VOICE,
    RecordingRequest,
    callback,
    edited,
    location,
    message,
)
from .locks import write_lock


@dataclass
class Bot:
    app: Application  # type: ignore[type-arg]
    request: RecordingRequest
    store: Store
    holder: GuideHolder

    async def send(self, raw: dict[str, Any]) -> list[dict[str, Any]]:
        """What the bot sent (messages and venues, in order) in answer to one update."""
        before = len(self.request.calls)
        await self.app.process_update(Update.de_json(raw, self.app.bot))
        assert self.request.rejected == [], self.request.rejected
        return [p for m, p in self.request.calls[before:] if m in ("sendMessage", "sendVenue")]


@pytest.fixture
async def bot(tmp_path: Path, content_copy: Path) -> AsyncIterator[Bot]:
    async with running_bot(tmp_path, content_copy) as bot:
        yield bot


@asynccontextmanager
async def running_bot(tmp_path: Path, content_copy: Path) -> AsyncIterator[Bot]:
    request = RecordingRequest()
    config = Config(token="123456:TEST", api_base_url=None, db_path=tmp_path / "z.db",
                    content_dir=content_copy, admin_ids=frozenset({ADMIN["id"]}))
    holder = GuideHolder(Guide.from_dir(content_copy, TODAY))
    store = Store.open(config.db_path)
    app = build_application(config, holder, store, request=request, rate_limit=False)
    async with app:
        yield Bot(app, request, store, holder)


def buttons(sent: dict[str, Any]) -> list[tuple[str, str]]:
    markup = sent.get("reply_markup")
    markup = json.loads(markup) if isinstance(markup, str) else (markup or {})
    return [(b["text"], b["callback_data"]) for row in markup.get("inline_keyboard", []) for b in row]


async def test_start_sends_welcome_and_main_menu(bot: Bot) -> None:
    [sent] = await bot.send(message("/start"))
    assert "120" in sent["text"] and sent["parse_mode"] == "HTML"
    labels = [label for label, _ in buttons(sent)]
    assert [x.split(" ", 1)[1] for x in labels] == ["问育儿问题", "找托育机构", "接种体检提醒", "我的孩子", "帮助"]


async def test_post_init_registers_chinese_commands(bot: Bot) -> None:
    await _post_init(bot.app)
    [params] = bot.request.sent("setMyCommands")
    commands = json.loads(params["commands"]) if isinstance(params["commands"], str) else params["commands"]
    assert [c["command"] for c in commands] == ["start", "help", "topics", "age", "find", "child", "reminders", "pause",
                                                "resume", "report", "privacy", "mydata", "forget", "cancel"]
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in c["description"]) for c in commands)


async def test_question_related_button_and_feedback(bot: Bot) -> None:
    [answer] = await bot.send(message("宝宝湿疹怎么护理"))
    assert "<b>" in answer["text"] and "湿疹" in answer["text"]
    data = [d for _, d in buttons(answer)]
    router = bot.app.bot_data["state"].conversation.router
    related = [d for d in data if (a := decode_action(d, router)) and a.kind == "article"]
    down = [d for d in data if (a := decode_action(d, router)) and a.kind == "feedback" and a.value == -1]
    assert related and down
    [article] = await bot.send(callback(related[0]))
    assert article["text"]
    [thanks] = await bot.send(callback(down[0]))
    assert "谢谢" in thanks["text"]
    [row] = bot.store.db.table("feedback").rows
    assert row["value"] == -1 and "湿疹" in row["question"]
    assert len(bot.request.sent("answerCallbackQuery")) == 2


async def test_urgent_message_comes_first(bot: Bot) -> None:
    sent = await bot.send(message("孩子抽搐了，叫不醒"))
    assert "🚨" in sent[0]["text"] and "120" in sent[0]["text"]
    assert len(sent) >= 2


@pytest.mark.parametrize("extra", [{"sticker": STICKER}, {"photo": PHOTO}, {"voice": VOICE},
                                   {"document": DOCUMENT}], ids=["sticker", "photo", "voice", "document"])
async def test_unreadable_messages_get_a_short_reply(bot: Bot, extra: dict[str, Any]) -> None:
    [sent] = await bot.send(message(None, **extra))
    assert "文字" in sent["text"]


async def test_edited_message_is_answered_as_the_new_question(bot: Bot) -> None:
    sent = await bot.send(edited("宝宝抽搐了"))
    assert "🚨" in sent[0]["text"] and "120" in sent[0]["text"]
    [sent] = await bot.send(edited("宝宝湿疹怎么护理"))
    assert "湿疹" in sent["text"]


async def test_a_photo_caption_is_read_like_any_question(bot: Bot) -> None:
    sent = await bot.send(message(None, photo=PHOTO, caption="看看这个疹子 按了不褪色 还在发烧"))
    assert "🚨" in sent[0]["text"]
    [sent] = await bot.send(message(None, document=DOCUMENT, caption="宝宝湿疹怎么护理"))
    assert "湿疹" in sent["text"]


@pytest.mark.parametrize("text", ["宝宝抽\u200b搐\u00ad了\ufeff", "寶寶噎著了 臉都憋紅了 哭不出聲"],
                         ids=["zero-width", "traditional"])
async def test_invisible_characters_and_traditional_text_are_triaged(bot: Bot, text: str) -> None:
    sent = await bot.send(message(text))
    assert "🚨" in sent[0]["text"]


async def test_a_long_message_is_triaged_whole(bot: Bot) -> None:
    filler = "今天早上吃了半碗粥 下午去楼下晒太阳 " * 20
    sent = await bot.send(message(filler + "刚才抽了 眼睛往上翻 " + filler))
    assert "🚨" in sent[0]["text"]


async def test_replies_stay_in_the_forum_topic(bot: Bot) -> None:
    forum = {"id": -100777, "type": "supergroup", "title": "宝妈群", "is_forum": True}
    raw = message(f"@{BOT_USER['username']} 宝宝抽搐了", chat_id=-100777)
    raw["message"].update(chat=forum, message_thread_id=42, is_topic_message=True)
    sent = await bot.send(raw)
    assert sent and all(p.get("message_thread_id") == 42 for p in sent)
    assert "🚨" in sent[0]["text"]


@pytest.mark.parametrize("text", [f"/help@{BOT_USER['username']}", f"@{BOT_USER['username']} /help"])
async def test_group_commands_for_this_bot_get_the_help(bot: Bot, text: str) -> None:
    [sent] = await bot.send(message(text, chat_id=-100123))
    assert "怎么使用" in sent["text"]


async def test_unknown_command_gets_help(bot: Bot) -> None:
    [sent] = await bot.send(message("/foobar"))
    assert "怎么使用" in sent["text"]


@pytest.mark.parametrize("data", ["2|a|no-such-article", "2|a|../etc/passwd", "garbage", "9|a|eczema",
                                  "1|a|eczema", "2|t|nutrition|999", "2|f|eczema|0|5", "2|f|eczema|0|*",
                                  "2|" + "a" * 80, "", "2|zz|x", "2|iv|abc", "2|it|999", "2|ip||3"])
async def test_forged_or_stale_callbacks_expire_and_change_nothing(bot: Bot, data: str) -> None:
    [sent] = await bot.send(callback(data))
    assert "已过期" in sent["text"]
    assert bot.store.counts() == {"feedback": 0, "unanswered": 0}


async def test_groups_only_when_addressed(bot: Bot) -> None:
    group = -100123
    assert await bot.send(message("宝宝湿疹怎么办", chat_id=group)) == []
    assert await bot.send(message(None, chat_id=group, sticker=STICKER)) == []
    assert await bot.send(message("/start@other_bot", chat_id=group)) == []
    [sent] = await bot.send(message(f"@{BOT_USER['username']} 宝宝湿疹怎么办", chat_id=group))
    assert "湿疹" in sent["text"]
    [sent] = await bot.send(message("宝宝湿疹怎么办", chat_id=group, reply_to_bot=True))
    assert "湿疹" in sent["text"]


async def test_reload_is_for_admins_and_refuses_broken_content(bot: Bot, content_copy: Path) -> None:
    [sent] = await bot.send(message("/reload"))
    assert "仅限管理员" in sent["text"]
    before = bot.holder.guide
    path = content_copy / "guidance" / "disease" / "eczema.md"
    original = path.read_text(encoding="utf-8")
    path.write_text("---\nid: eczema\n---\n", encoding="utf-8")
    [sent] = await bot.send(message("/reload", user=ADMIN, chat_id=ADMIN["id"]))
    assert "拒绝" in sent["text"] and "eczema.md" in sent["text"]
    assert bot.holder.guide is before
    path.write_text(original.replace("title: ", "title: 【更新】", 1), encoding="utf-8")
    [sent] = await bot.send(message("/reload", user=ADMIN, chat_id=ADMIN["id"]))
    assert "重新加载" in sent["text"]
    article = bot.holder.guide.article("eczema")
    assert article is not None and article.title.startswith("【更新】")


async def test_a_failing_send_is_logged_without_personal_data_and_apologised_for(
        bot: Bot, caplog: pytest.LogCaptureFixture) -> None:
    bot.request.fail_next = 1
    caplog.set_level(logging.ERROR)
    await bot.app.process_update(Update.de_json(message("我家宝宝小明发烧了"), bot.app.bot))
    sent = bot.request.sent()
    assert "抱歉" in sent[-1]["text"]
    assert "小明" not in caplog.text and "message update" in caplog.text


async def test_a_429_is_retried_after_retry_after(tmp_path: Path, content_copy: Path) -> None:
    request = RecordingRequest()
    config = Config(token="123456:TEST", api_base_url=None, db_path=tmp_path / "z.db", content_dir=content_copy)
    app = build_application(config, GuideHolder(Guide.from_dir(content_copy, TODAY)), None, request=request)
    request.throttle_next = 1
    async with app:
        await app.process_update(Update.de_json(message("/start"), app.bot))
    attempts = request.sent()
    assert len(attempts) == 2 and attempts[0]["text"] == attempts[1]["text"]


# ---------------------------------------------------------------- the institution finder on Telegram


async def test_find_asks_for_the_location_with_a_request_location_keyboard(bot: Bot) -> None:
    [sent] = await bot.send(message("/find"))
    markup = sent["reply_markup"]
    markup = json.loads(markup) if isinstance(markup, str) else markup
    first = markup["keyboard"][0][0]
    assert first["request_location"] is True and "位置" in first["text"]
    assert markup.get("one_time_keyboard") is True


async def test_a_shared_location_gives_cards_a_venue_and_a_next_page(bot: Bot) -> None:
    load_demo(Directory(bot.store.db), DEFAULT_CONTENT_DIR, TODAY)
    [results] = await bot.send(location(29.712, 120.237))
    assert "公里" in results["text"] and "示例" in results["text"]
    data = dict((label, d) for label, d in buttons(results))
    pin = next(d for label, d in data.items() if label.startswith("📍 1."))
    [venue] = await bot.send(callback(pin))
    assert venue["title"] in results["text"] and float(venue["latitude"]) == pytest.approx(29.71, abs=0.05)
    assert bot.request.sent("sendVenue") == [venue]
    nxt = next(d for label, d in data.items() if "下一页" in label)
    [page2] = await bot.send(callback(nxt))
    assert "6. " in page2["text"]


async def test_an_operator_updates_places_in_the_bot_and_a_parent_cannot(bot: Bot) -> None:
    directory = Directory(bot.store.db)
    load_demo(directory, DEFAULT_CONTENT_DIR, TODAY)
    directory.add_operator(user_key("telegram", ADMIN["id"]), "DEMO-005", TODAY)
    [refused] = await bot.send(message("/places 3"))
    assert "只有登记" in refused["text"]
    [done] = await bot.send(message("/places 3", user=ADMIN, chat_id=ADMIN["id"]))
    assert "3 个空余托位" in done["text"]
    assert directory.by_filing_no("DEMO-005").places == 3  # type: ignore[union-attr]


async def test_a_report_through_the_bot_is_stored_with_a_reference(bot: Bot) -> None:
    [start] = await bot.send(message("/report"))
    [towns] = await bot.send(callback(next(d for label, d in buttons(start) if "未备案" in label)))
    town = next(d for label, d in buttons(towns) if label == "店口")
    await bot.send(callback(town))
    [filed] = await bot.send(message("某小区一楼有人无证收托孩子"))
    [row] = bot.store.db.table("reports").rows
    assert row["ref"] in filed["text"] and row["town_code"] == "104" and row["reporter"] == f"telegram:{4242}"


async def test_in_a_group_the_location_request_is_text_only(bot: Bot) -> None:
    [sent] = await bot.send(message("@zjcare_test_bot /find", chat_id=-100123))
    assert "镇街" in sent["text"] and not sent.get("reply_markup")


async def test_the_bots_reminder_job_sends_through_telegram_and_the_done_button_records(
        tmp_path: Path, content_copy: Path) -> None:
    moment = {"now": dt.datetime(2026, 12, 1, 10, 0, tzinfo=TZ)}
    request = RecordingRequest()
    config = Config(token="123456:TEST", api_base_url=None, db_path=tmp_path / "z.db", content_dir=content_copy)
    store = Store.open(config.db_path)
    app = build_application(config, GuideHolder(Guide.from_dir(content_copy, TODAY)), store, request=request,
                            rate_limit=False, clock=lambda: moment["now"])
    async with app:
        bot = Bot(app, request, store, GuideHolder(Guide.from_dir(content_copy, TODAY)))
        [consent] = await bot.send(message("/child"))
        await bot.send(callback(next(d for _, d in buttons(consent) if d.startswith("2|cc|") and d.endswith("|1"))))
        await bot.send(message("豆豆"))
        [sex] = await bot.send(message("2026-11-01"))
        [preterm] = await bot.send(callback(buttons(sex)[0][1]))
        [summary] = await bot.send(callback(buttons(preterm)[1][1]))
        assert "已登记" in summary["text"]
        dispatcher = app.bot_data["dispatcher"]
        assert isinstance(dispatcher, Dispatcher)
        # 2026-12-29 09:00: three days before DTaP 1 and IPV 1. A 429 first: the dispatcher waits and resends.
        moment["now"] = dt.datetime(2026, 12, 29, 9, 0, tzinfo=TZ)
        request.throttle_next = 1
        before = len(request.sent())
        counts = await dispatcher.run(moment["now"])
        reminders = request.sent()[before:]
        assert (counts.sent, counts.rows_sent, counts.retried) == (1, 2, 1) and len(reminders) == 2  # the 429, then it
        reminder = reminders[-1]
        assert int(reminder["chat_id"]) == 4242 and "百白破疫苗" in reminder["text"] and "<b>" in reminder["text"]
        done = next(d for label, d in buttons(reminder) if label.startswith("✅") and "百白破" in label)
        [recorded] = await bot.send(callback(done))
        assert "已记录" in recorded["text"] and "2026年12月29日" in recorded["text"]
        assert store.db.execute("select item_id, done_on from records").fetchall() == [("dtap-1", "2026-12-29")]
        # A 400 (chat not found) is given up at once and shows in the status.
        moment["now"] = dt.datetime(2027, 1, 1, 9, 0, tzinfo=TZ)
        request.fail_next = 1
        counts = await dispatcher.run(moment["now"])
        assert counts.failed == 1 and sum(dispatcher.reminders.status()["failed"].values()) == 1


async def test_a_doctors_invite_is_a_photo_of_the_qr_code_with_the_link(bot: Bot) -> None:
    Doctors(bot.store.db).add("王医生", "店口镇卫生院", dt.datetime(2026, 12, 1, 10, 0, tzinfo=TZ),
                              user_key("telegram", 4242))
    await _post_init(bot.app)  # learns the bot's @username from getMe, as `run` does
    before = len(bot.request.calls)
    await bot.app.process_update(Update.de_json(message("/invite"), bot.app.bot))
    [photo] = [p for m, p in bot.request.calls[before:] if m == "sendPhoto"]
    assert "https://t.me/zjcare_test_bot?start=join_" in photo["caption"] and bot.request.rejected == []
    [refused] = await bot.send(message("/families", user=ADMIN, chat_id=ADMIN["id"]))
    assert "家庭医生开放" in refused["text"]


async def test_an_emergency_is_sent_while_another_process_holds_the_write_lock(
        tmp_path: Path, content_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An ordering, not a timing: the chat's earlier message waits on the lock (it cannot finish
    before the lock is released), and the emergency typed after it is sent before the release."""
    # The write must outwait the lock however slow this machine is: the release decides, not a clock.
    monkeypatch.setattr("zjcare_guide.store.BUSY_TIMEOUT_S", 300.0)
    async with running_bot(tmp_path, content_copy) as bot:
        [consent] = await bot.send(message("/child"))
        [data] = [d for label, d in buttons(consent) if "同意" in label and "不" not in label]
        await bot.send(callback(data))
        await bot.send(message("豆豆"))
        [sex] = await bot.send(message("2026-03-01"))
        [(_, girl), *_] = buttons(sex)
        [preterm] = await bot.send(callback(girl))
        no = buttons(preterm)[-1][1]
        lock = bot.app.bot_data["state"].chat_lock(PARENT["id"])
        before = len(bot.request.calls)

        def texts() -> list[str]:
            return [p["text"] for m, p in bot.request.calls[before:] if m == "sendMessage"]

        with write_lock(tmp_path / "z.db"):
            saving = asyncio.create_task(bot.app.process_update(Update.de_json(callback(no), bot.app.bot)))
            while not lock.locked():
                await asyncio.sleep(0.01)
            urgent = asyncio.create_task(bot.app.process_update(Update.de_json(message("宝宝抽搐了，叫不醒"),
                                                                               bot.app.bot)))
            while not texts():
                await asyncio.sleep(0.01)
            assert "120" in texts()[0] and texts()[0].startswith("🚨")
            assert not saving.done()  # still waiting on the lock held by the other process
        await saving
        await urgent
        # Saved after the release; the emergency (its first-aid screen and article) was not sent twice.
        assert "已登记" in texts()[-1] and not any("已登记" in t for t in texts()[:-1])
        assert sum(t.startswith("🚨") for t in texts()) == 1


async def test_an_emergency_waits_for_a_reply_half_sent_to_the_same_chat_not_in_the_middle_of_it(
        bot: Bot, monkeypatch: pytest.MonkeyPatch) -> None:
    """The chat's Bot API calls stay one at a time even when a danger sign skips the chat's lock: the
    🚨 reply goes out right after the answer being sent, never between its call and that call's retry
    (an ordering: the answer's call is held until released)."""
    held, release = asyncio.Event(), asyncio.Event()
    real = bot.request.do_request

    async def held_once(url: str, method: str, request_data: Any = None, **kwargs: Any) -> tuple[int, bytes]:
        if url.endswith("/sendMessage") and not held.is_set():
            held.set()
            await release.wait()
        return await real(url, method, request_data, **kwargs)

    monkeypatch.setattr(bot.request, "do_request", held_once)
    before = len(bot.request.calls)
    answer = asyncio.create_task(bot.app.process_update(Update.de_json(message("宝宝湿疹怎么护理"), bot.app.bot)))
    await held.wait()
    urgent = asyncio.create_task(bot.app.process_update(Update.de_json(message("宝宝抽搐了，叫不醒"), bot.app.bot)))
    for _ in range(200):  # the urgent reply runs on the event loop only (no thread): it is now waiting
        await asyncio.sleep(0)
    assert bot.request.calls[before:] == [] and not urgent.done()
    release.set()
    await answer
    await urgent
    texts = [p["text"] for m, p in bot.request.calls[before:] if m == "sendMessage"]
    assert "湿疹" in texts[0] and texts[1].startswith("🚨") and "120" in texts[1]


async def test_a_reload_runs_off_the_event_loop(bot: Bot, monkeypatch: pytest.MonkeyPatch) -> None:
    """While the content is being read and checked, other parents are still answered (an ordering:
    the reload cannot finish before the other parent's answer has been sent)."""
    release = threading.Event()
    real = GuideHolder.reload

    def slow_reload(holder: GuideHolder, today: dt.date) -> list[Any]:
        release.wait(timeout=120)  # on the event loop this would stall every chat until the timeout
        return real(holder, today)

    monkeypatch.setattr(GuideHolder, "reload", slow_reload)
    before = len(bot.request.calls)
    reload = asyncio.create_task(bot.app.process_update(
        Update.de_json(message("/reload", user=ADMIN, chat_id=ADMIN["id"]), bot.app.bot)))
    await bot.app.process_update(Update.de_json(message("宝宝湿疹怎么办"), bot.app.bot))
    texts = [p["text"] for m, p in bot.request.calls[before:] if m == "sendMessage"]
    assert len(texts) == 1 and "湿疹" in texts[0] and not reload.done()
    release.set()
    await reload
    texts = [p["text"] for m, p in bot.request.calls[before:] if m == "sendMessage"]
    assert "重新加载" in texts[-1]


async def test_mydata_is_a_message_and_a_json_file_and_forget_deletes_after_a_confirmation(bot: Bot) -> None:
    [consent] = await bot.send(message("/child"))
    [data] = [d for label, d in buttons(consent) if "同意" in label and "不" not in label]
    await bot.send(callback(data))
    await bot.send(message("小团圆"))
    [sex] = await bot.send(message("2026-03-01"))
    [preterm] = await bot.send(callback(buttons(sex)[0][1]))
    await bot.send(callback(buttons(preterm)[-1][1]))
    before = len(bot.request.calls)
    await bot.app.process_update(Update.de_json(message("/mydata"), bot.app.bot))
    calls = bot.request.calls[before:]
    assert [m for m, _ in calls] == ["sendMessage", "sendDocument"]
    assert "小团圆" in calls[0][1]["text"]
    filename, content, mime = calls[1][1]["document"]
    assert filename.endswith(".json") and mime == "application/json"
    payload = json.loads(content)
    assert payload["children"][0]["nickname"] == "小团圆"
    [confirm] = await bot.send(message("/forget"))
    yes = next(d for label, d in buttons(confirm) if "确定" in label)
    [done] = await bot.send(callback(yes))
    assert "已删除" in done["text"]
    assert bot.store.db.execute("select count(*) from children").fetchone()[0] == 0
    [group] = await bot.send(message(f"/mydata@{BOT_USER['username']}", chat_id=-100123))
    assert "私聊" in group["text"]


async def test_logs_never_hold_names_nicknames_birth_dates_or_message_texts(
        bot: Bot, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """A parent's whole journey, failures included, with every logger at DEBUG: no personal data in
    any record or traceback (with the libraries held as `run` holds them: PTB logs every call's
    parameters at DEBUG)."""
    caplog.set_level(logging.DEBUG)
    quiet_libraries()
    secret = ("小团圆", "2026-03-01", "2026年3月1日", "王小明", "宝宝抽搐了叫不醒", "围兜用什么布料", "厨房很脏")
    [consent] = await bot.send(message("/child", user={**PARENT, "first_name": "王小明"}))
    await bot.send(callback(next(d for label, d in buttons(consent) if "同意" in label and "不" not in label)))
    await bot.send(message("小团圆"))
    [sex] = await bot.send(message("2026年3月1日"))
    [preterm] = await bot.send(callback(buttons(sex)[0][1]))
    await bot.send(callback(buttons(preterm)[-1][1]))
    await bot.send(message("宝宝抽搐了叫不醒"))
    await bot.send(message("宝宝的围兜用什么布料好"))
    bot.request.fail_next = 1  # a send that fails: the error handler logs it
    await bot.app.process_update(Update.de_json(message("我家小团圆发烧了"), bot.app.bot))

    def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("unexpected")

    monkeypatch.setattr("zjcare_guide.guidance.Guidance.on_text", boom)  # a conversation that fails
    await bot.send(message("小团圆的厨房很脏"))
    monkeypatch.undo()
    await bot.app.bot_data["dispatcher"].run(dt.datetime(2026, 12, 2, 9, 0, tzinfo=TZ))
    await bot.send(message("/mydata"))
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    logged = "\n".join(formatter.format(r) for r in caplog.records)
    assert "conversation failed" in logged and "handler failed" in logged  # the failures were logged
    assert [s for s in secret if s in logged] == []


async def test_a_question_is_answered_while_another_process_holds_the_write_lock(
        tmp_path: Path, content_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The unanswered question is recorded for the editors after the answer, once the lock is free:
    the answer does not wait for it (an ordering: it is sent while the lock is still held)."""
    monkeypatch.setattr("zjcare_guide.store.BUSY_TIMEOUT_S", 300.0)
    async with running_bot(tmp_path, content_copy) as bot:
        before = len(bot.request.calls)
        with write_lock(tmp_path / "z.db"):
            asking = asyncio.create_task(bot.app.process_update(
                Update.de_json(message("宝宝的围兜用什么布料的好呢"), bot.app.bot)))
            while not any(m == "sendMessage" for m, _ in bot.request.calls[before:]) and not asking.done():
                await asyncio.sleep(0.01)
            [answer] = [p for m, p in bot.request.calls[before:] if m == "sendMessage"]
            assert answer["text"] and not asking.done()  # answered; the record still waits on the lock
            assert bot.store.counts()["unanswered"] == 0
        await asking
        assert bot.store.counts()["unanswered"] == 1
