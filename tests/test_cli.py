from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from bot.cli import main
from zjcare_guide.store import Store


def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), input=input, env=env)
    return result.exit_code, result.output


def test_ask_json_answer() -> None:
    code, out = run("ask", "8个月宝宝湿疹怎么护理", "--age-months", "8", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["kind"] == "answer"
    assert data["articles"][0]["id"] == "eczema"
    assert set(data["articles"][0]) == {"id", "title", "topic", "score"}
    assert data["text"].startswith(data["articles"][0]["title"])


def test_ask_urgent_and_fallback() -> None:
    code, out = run("ask", "孩子抽搐了叫不醒", "--json")
    assert code == 0 and json.loads(out)["kind"] == "urgent"
    code, out = run("ask", "今天股票涨了吗", "--json")
    assert code == 0 and json.loads(out)["kind"] == "fallback"


def test_ask_plain_prints_the_reply_and_buttons() -> None:
    code, out = run("ask", "宝宝湿疹怎么护理")
    assert code == 0
    assert "湿疹" in out and "[1]" in out and "**" not in out


def test_ask_rejects_impossible_age() -> None:
    code, out = run("ask", "宝宝发烧", "--age-months", "500")
    assert code == 2 and "Traceback" not in out


def test_chat_plays_a_conversation(tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    code, out = run("chat", input="宝宝发烧了怎么办\n1\n/age 2\n宝宝发烧38度\n怎么给宝宝办护照\n/quit\n",
                    env={"ZJCARE_DB": str(db)})
    assert code == 0
    assert "您好" in out
    assert "120" in out
    assert out.count("您> ") == 5
    assert Store.open(db).counts()["unanswered"] == 1


def test_content_gaps_lists_unanswered_questions(tmp_path: Path) -> None:
    db = tmp_path / "gaps.db"
    run("chat", input="怎么给宝宝办护照\n怎么给宝宝办护照？\n", env={"ZJCARE_DB": str(db)})
    code, out = run("content", "gaps", "--db", str(db))
    assert code == 0 and "护照" in out and out.splitlines()[1].split()[0] == "2"
    code, out = run("content", "gaps", "--db", str(db), "--json")
    assert json.loads(out)[0]["unanswered"] == 2


def test_content_check_ok_and_failing(tmp_path: Path, content_copy: Path) -> None:
    code, out = run("content", "check", str(content_copy), "--today", "2026-12-01")
    assert code == 0 and out.startswith("ok:")
    (content_copy / "guidance" / "disease" / "oops.md").write_text("---\nid: oops\n---\n正文", encoding="utf-8")
    code, out = run("content", "check", str(content_copy), "--today", "2026-12-01")
    assert code == 1
    assert f"{content_copy / 'guidance' / 'disease' / 'oops.md'}:" in out


def test_commands_refuse_broken_content_without_traceback(content_copy: Path) -> None:
    (content_copy / "synonyms.yaml").write_text("synonyms: [", encoding="utf-8")
    code, out = run("ask", "宝宝发烧", "--content", str(content_copy))
    assert code == 1
    assert "problem" in out and "Traceback" not in out


def test_content_test_reports_share() -> None:
    code, out = run("content", "test")
    assert code == 0
    assert "example questions still answered with their own article" in out


def test_content_eval_reports_the_figures() -> None:
    code, out = run("content", "eval")
    assert code == 0
    for phrase in ("answered with a correct article", "within the offered choices", "escalated",
                   "out-of-scope answered"):
        assert phrase in out


def _script() -> list[str]:
    script = Path(sys.executable).parent / "zjcare-guide"
    return [str(script)] if script.exists() else [sys.executable, "-m", "bot.cli"]


def test_an_argument_that_is_not_utf8_is_read_not_a_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "LC_ALL": "C.UTF-8", "HOME": str(tmp_path)}
    # GBK bytes, as an older Windows or Linux terminal in Zhuji sends them: 宝宝抽搐了.
    gbk = "宝宝抽搐了".encode("gbk")
    done = subprocess.run([*_script(), "ask", gbk, "--json"], capture_output=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert json.loads(done.stdout)["kind"] == "urgent"
    broken = "宝宝".encode() + b"\xe5\xae" + "发烧了".encode()
    done = subprocess.run([*_script(), "ask", broken], capture_output=True, env=env, timeout=120)
    assert done.returncode == 0 and b"Traceback" not in done.stderr


def test_the_console_reads_lines_that_are_not_utf8(tmp_path: Path) -> None:
    env = {**os.environ, "LC_ALL": "C.UTF-8", "HOME": str(tmp_path), "ZJCARE_DB": str(tmp_path / "c.db")}
    stdin = "宝宝抽搐了\n".encode("gbk") + b"\xff\xfe\n" + b"/quit\n"
    done = subprocess.run([*_script(), "chat"], input=stdin, capture_output=True, env=env, timeout=120)
    assert done.returncode == 0 and b"Traceback" not in done.stderr
    assert "120" in done.stdout.decode()


def test_doctors_invite_to_an_unwritable_png_creates_no_invite(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from bot.cli import main as cli_main

    db = str(tmp_path / "z.db")
    runner = CliRunner()
    added = runner.invoke(cli_main, ["doctors", "add", "--name", "王医生", "--clinic", "店口镇卫生院", "--db", db])
    assert added.exit_code == 0
    result = runner.invoke(cli_main, ["doctors", "invite", "1", "--png", str(tmp_path / "no" / "x.png"), "--db", db],
                           env={"ZJCARE_BOT_USERNAME": "zjcare_bot"})
    assert result.exit_code == 1 and "cannot write" in result.output and "Traceback" not in result.output
    import sqlite3
    assert sqlite3.connect(db).execute("select count(*) from invites").fetchone()[0] == 0
