"""`zjcare-guide run` at start-up, as a subprocess: each failure is one line on stderr (checked before
Telegram is contacted where it can be); commands that do not run the bot never import telegram; the
webhook refuses requests without Telegram's secret token; no secret reaches the log."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from .conftest import command
from .fake_bot_api import SERVER_ERROR, FakeBotApi
from .fakes import message

SECRET_TOKEN = "123456:AAHsEcReTpArT-of_The_Token42"
WEBHOOK_SECRET = "hook-Secret_value_77"


def free_port() -> int:
    """A port nothing listens on (bound by nobody once this returns)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TELEGRAM_", "ZJCARE_")) and k.lower() not in ("https_proxy", "http_proxy",
                                                                                "all_proxy", "no_proxy")}
    closed = f"http://127.0.0.1:{free_port()}"
    # A request that is not for the fake on 127.0.0.1 (Telegram's own API) goes to a closed local port:
    # a check that should have stopped the start before any request cannot reach the network instead.
    env.update(HOME=str(tmp_path), ZJCARE_DB=str(tmp_path / "bot.db"), HTTPS_PROXY=closed, HTTP_PROXY=closed,
               ALL_PROXY=closed, NO_PROXY="127.0.0.1,localhost")
    env.update(extra)
    return env


def start_failure(tmp_path: Path, *args: str, **env: str) -> str:
    """Run `zjcare-guide run ARGS`, expect it to fail at start-up, and return its one line (without
    click's "Error: ")."""
    started = time.perf_counter()
    result = subprocess.run([*command(), "run", *args], env=base_env(tmp_path, **env), capture_output=True,
                            text=True, timeout=120)
    print(f"start-up failure after {time.perf_counter() - started:.2f} s: {result.stderr.strip()}")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].strip(), result.stderr[-3000:]
    return lines[0].removeprefix("Error: ")


# ---------------------------------------------------------------- one line per start-up failure


def test_an_unreachable_bot_api_is_one_line(tmp_path: Path) -> None:
    port = free_port()
    line = start_failure(tmp_path, TELEGRAM_BOT_TOKEN="123:ABCDEF", TELEGRAM_API_BASE_URL=f"http://127.0.0.1:{port}/bot")
    assert line.startswith(f"cannot reach the Bot API at http://127.0.0.1:{port}/bot: ")


async def test_a_rejected_token_is_one_line(api: FakeBotApi, tmp_path: Path) -> None:
    line = await asyncio.to_thread(start_failure, tmp_path, TELEGRAM_BOT_TOKEN="999:WRONG-token",
                                   TELEGRAM_API_BASE_URL=api.base_url)
    assert line == f"the Bot API at {api.base_url} rejected TELEGRAM_BOT_TOKEN: check the token from @BotFather"


@pytest.mark.parametrize("token, expected", [
    ("", "TELEGRAM_BOT_TOKEN is not set"), ("no-colon-here", "does not look like a bot token")])
def test_a_missing_or_malformed_token_is_one_line(tmp_path: Path, token: str, expected: str) -> None:
    assert expected in start_failure(tmp_path, TELEGRAM_BOT_TOKEN=token)


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def test_a_webhook_port_in_use_is_one_line_before_telegram_is_contacted(tmp_path: Path, busy_port: int) -> None:
    # The Bot API is unreachable too: the port is checked first, so that is not what is reported.
    line = start_failure(tmp_path, "--webhook-url", f"http://127.0.0.1:{busy_port}/hook", "--port", str(busy_port),
                         TELEGRAM_BOT_TOKEN="123:ABCDEF", TELEGRAM_API_BASE_URL=f"http://127.0.0.1:{free_port()}/bot")
    assert line == f"cannot listen on 127.0.0.1 port {busy_port}: the port is already in use (choose another --port)"


def test_an_unresolvable_listen_address_is_one_line(tmp_path: Path) -> None:
    line = start_failure(tmp_path, "--webhook-url", "https://bot.example.org/hook", "--listen", "no.such.host.invalid",
                         "--port", str(free_port()), TELEGRAM_BOT_TOKEN="123:ABCDEF")
    assert line == ("cannot listen on --listen no.such.host.invalid: no such address on this machine "
                    "(the name does not resolve)")


@pytest.mark.parametrize("url, expected", [
    ("http://bot.example.org/hook", "--webhook-url must start with https://"),
    ("https://bot.example.org:9000/hook", "--webhook-url has port 9000"),
    ("bot.example.org/hook", "--webhook-url must be a full URL with a host name"),
], ids=["http", "port", "no-scheme"])
def test_a_webhook_url_telegram_would_not_call_is_one_line(tmp_path: Path, url: str, expected: str) -> None:
    # Telegram's own Bot API (no TELEGRAM_API_BASE_URL): checked before anything is contacted.
    line = start_failure(tmp_path, "--webhook-url", url, "--port", str(free_port()), TELEGRAM_BOT_TOKEN="123:ABCDEF")
    assert line.startswith(expected)


@pytest.mark.parametrize("secret, expected", [
    ("bad secret!", "has characters Telegram refuses"),
    ("秘密-token", "has characters Telegram refuses"),
    ("tab\there", "has characters Telegram refuses"),
    ("x" * 257, "is longer than the 256 characters"),
], ids=["space", "chinese", "tab", "too-long"])
def test_a_webhook_secret_telegram_refuses_is_one_line_that_does_not_show_it(
        tmp_path: Path, secret: str, expected: str) -> None:
    line = start_failure(tmp_path, "--webhook-url", "https://bot.example.org/hook", "--port", str(free_port()),
                         TELEGRAM_BOT_TOKEN="123:ABCDEF", ZJCARE_WEBHOOK_SECRET=secret)
    assert line.startswith("ZJCARE_WEBHOOK_SECRET ") and expected in line
    assert secret not in line and secret[:5] not in line


def _read_only_dir(tmp_path: Path) -> str:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    return str(ro / "sub" / "bot.db")


@pytest.mark.parametrize("where", ["proc", "sys", "under-a-file", "read-only-dir"])
def test_an_unwritable_database_is_one_line_before_telegram_is_contacted(tmp_path: Path, where: str) -> None:
    if where == "read-only-dir" and os.geteuid() == 0:
        pytest.skip("root writes into a read-only directory")
    (tmp_path / "a-file").write_text("x")
    paths = {"proc": "/proc/zjcare/bot.db", "sys": "/sys/zjcare/bot.db",
             "under-a-file": str(tmp_path / "a-file" / "b.db")}
    path = _read_only_dir(tmp_path) if where == "read-only-dir" else paths[where]
    line = start_failure(tmp_path, TELEGRAM_BOT_TOKEN="123:ABCDEF", ZJCARE_DB=path,
                         TELEGRAM_API_BASE_URL=f"http://127.0.0.1:{free_port()}/bot")
    assert line.startswith(f"cannot open the database {path}: ")


def test_checks_without_telegram_come_first(tmp_path: Path) -> None:
    """With several problems at once, the ones found without Telegram are reported, in this order."""
    unreachable = f"http://127.0.0.1:{free_port()}/bot"
    env = {"TELEGRAM_BOT_TOKEN": "123:ABCDEF", "TELEGRAM_API_BASE_URL": unreachable, "ZJCARE_DB": "/proc/zjcare/x.db",
           "ZJCARE_WEBHOOK_SECRET": "not ok!"}
    webhook = ("--webhook-url", "https://bot.example.org:9000/hook", "--listen", "no.such.host.invalid")
    # A self-hosted API allows any port and http: the secret is the first problem, then the address.
    assert start_failure(tmp_path, *webhook, **env).startswith("ZJCARE_WEBHOOK_SECRET")
    del env["ZJCARE_WEBHOOK_SECRET"]
    assert start_failure(tmp_path, *webhook, **env).startswith("cannot listen on --listen no.such.host.invalid")
    assert start_failure(tmp_path, **env).startswith("cannot open the database /proc/zjcare/x.db")


# ---------------------------------------------------------------- telegram only where it is needed

_PROBE = """
import sys
from bot.cli import main
args = sys.argv[1:]
code = main(args, standalone_mode=False)
print("EXIT", code or 0, file=sys.stderr)
heavy = sorted(m for m in sys.modules if m == "telegram" or m.startswith(("telegram.", "tornado", "apscheduler"))
               or m in ("bot.app", "bot.handlers", "bot.outbound", "httpx"))
print("LOADED", len(heavy), heavy[:5], file=sys.stderr)
"""

_EVERY_HELP = """
import sys, click
from bot.cli import main
def leaves(group, path):
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from leaves(cmd, [*path, name])
        else:
            yield [*path, name]
done = []
for path in leaves(main, []):
    if path in (["run"], ["reminders", "send-due"]):
        continue
    main([*path, "--help"], standalone_mode=False)
    done.append(" ".join(path))
heavy = sorted(m for m in sys.modules if m == "telegram" or m.startswith("telegram."))
print("COMMANDS", len(done), "|".join(done), file=sys.stderr)
print("LOADED", len(heavy), heavy[:5], file=sys.stderr)
"""


def _probe(tmp_path: Path, *args: str, code: str = _PROBE, stdin: str = "") -> str:
    env = base_env(tmp_path)
    result = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True,
                            input=stdin, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stderr


NO_BOT = {
    "ask": ["ask", "宝宝湿疹怎么护理"],
    "ask --json": ["ask", "宝宝发烧38度", "--age-months", "2", "--json"],
    "chat": ["chat"],
    "content check": ["content", "check", "--today", "2026-12-01"],
    "schedule": ["schedule", "--birth", "2026-03-01", "--today", "2026-12-01"],
    "institutions search": ["institutions", "search", "店口"],
    "doctors list": ["doctors", "list"],
    "audit": ["audit"],
    "reminders status": ["reminders", "status"],
    "reports list": ["reports", "list"],
    "db check": ["db", "check"],
    # Without a token there is nothing to send through Telegram: it is not loaded either.
    "reminders send-due (no token)": ["reminders", "send-due", "--at", "2026-12-27T10:00"],
}


@pytest.mark.parametrize("name", list(NO_BOT))
def test_commands_that_do_not_run_the_bot_do_not_import_telegram(tmp_path: Path, name: str) -> None:
    if name in ("audit", "reminders status", "reports list", "doctors list", "db check"):
        _probe(tmp_path, "institutions", "search", "店口")  # these read an existing database
    err = _probe(tmp_path, *NO_BOT[name], stdin="宝宝湿疹怎么护理\n/quit\n")
    assert "EXIT 0" in err and "LOADED 0 []" in err, err[-2000:]


def test_no_command_but_run_and_send_due_imports_telegram_even_for_its_help(tmp_path: Path) -> None:
    err = _probe(tmp_path, code=_EVERY_HELP)
    commands = re.search(r"COMMANDS (\d+) (.*)", err)
    assert commands is not None and int(commands.group(1)) >= 20
    assert "content check" in commands.group(2) and "db check" in commands.group(2)
    assert "LOADED 0 []" in err
    # `run` itself still loads it, and its help works.
    result = subprocess.run([*command(), "run", "--help"], env=base_env(tmp_path), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and "--webhook-url" in result.stdout and "ZJCARE_WEBHOOK_SECRET" in result.stdout


def test_start_up_time_of_ask(tmp_path: Path) -> None:
    """Prints (does not assert) how long `ask` and `import bot.cli` take now; telegram is not imported."""
    env = base_env(tmp_path)
    walls = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run([*command(), "ask", "宝宝湿疹怎么护理"], env=env, capture_output=True, check=True, timeout=60)
        walls.append(time.perf_counter() - started)
    imports = subprocess.run([sys.executable, "-X", "importtime", "-c", "import bot.cli"], env=env,
                             capture_output=True, text=True, check=True, timeout=60).stderr
    rows = [line.split("|") for line in imports.splitlines() if line.startswith("import time:") and "|" in line]
    total = next(int(r[1]) for r in rows if r[2].strip() == "bot.cli")
    telegram = [int(r[1]) for r in rows if r[2].strip() in ("telegram", "telegram.ext")]
    print(f"zjcare-guide ask wall time: {', '.join(f'{w:.2f} s' for w in walls)}; "
          f"import bot.cli {total / 1e6:.2f} s cumulative (-X importtime), telegram {sum(telegram) / 1e6:.2f} s")
    assert telegram == []


# ---------------------------------------------------------------- the webhook's secret token


async def _start(api: FakeBotApi, tmp_path: Path, *args: str, **env: str) -> asyncio.subprocess.Process:
    full = base_env(tmp_path, TELEGRAM_BOT_TOKEN=api.token, TELEGRAM_API_BASE_URL=api.base_url, **env)
    return await asyncio.create_subprocess_exec(*command(), "run", *args, env=full, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)


async def _stop(proc: asyncio.subprocess.Process) -> str:
    if proc.returncode is None:
        proc.terminate()
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    return out.decode() + err.decode()


async def _webhook(api: FakeBotApi, proc: asyncio.subprocess.Process) -> dict[str, str]:
    for _ in range(600):
        if api.called("setWebhook") or proc.returncode is not None:
            break
        await asyncio.sleep(0.05)
    [hook] = api.called("setWebhook")
    return hook


async def _post(url: str, headers: dict[str, str]) -> int:
    async with aiohttp.ClientSession() as http:
        for _ in range(100):
            try:
                async with http.post(url, json=message("宝宝湿疹怎么护理"), headers=headers) as resp:
                    return resp.status
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)
    raise AssertionError("the webhook server never answered")


HEADER = "X-Telegram-Bot-Api-Secret-Token"


@pytest.fixture
async def secret_api() -> AsyncIterator[FakeBotApi]:
    server = FakeBotApi(SECRET_TOKEN)
    await server.start()
    yield server
    await server.stop()


async def test_the_webhook_refuses_requests_without_the_secret_token(secret_api: FakeBotApi, tmp_path: Path) -> None:
    api = secret_api
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"  # http: allowed with a self-hosted Bot API
    proc = await _start(api, tmp_path, "--webhook-url", url, "--port", str(port), ZJCARE_WEBHOOK_SECRET=WEBHOOK_SECRET)
    try:
        hook = await _webhook(api, proc)
        assert hook["url"] == url and hook["secret_token"] == WEBHOOK_SECRET
        assert await _post(url, {}) == 403
        assert await _post(url, {HEADER: "wrong-secret"}) == 403
        assert await _post(url, {HEADER: WEBHOOK_SECRET[:-1]}) == 403
        assert await _post(url, {HEADER: WEBHOOK_SECRET}) == 200
        sent = await api.wait_sent(1, timeout=30)
        assert "湿疹" in sent[0]["text"]
    finally:
        log = await _stop(proc)
    assert proc.returncode == 0, log[-2000:]
    assert len(api.sent) == 1  # the three forged updates got nothing
    assert SECRET_TOKEN not in log and SECRET_TOKEN.split(":")[1] not in log and WEBHOOK_SECRET not in log
    assert "ready (webhook)" in log


async def test_without_a_configured_secret_the_webhook_gets_a_random_one(secret_api: FakeBotApi,
                                                                          tmp_path: Path) -> None:
    api = secret_api
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    proc = await _start(api, tmp_path, "--webhook-url", url, "--port", str(port))
    try:
        hook = await _webhook(api, proc)
        secret = hook["secret_token"]
        assert re.fullmatch(r"[A-Za-z0-9_-]{32,256}", secret)
        assert await _post(url, {}) == 403
        assert await _post(url, {HEADER: secret}) == 200
        await api.wait_sent(1, timeout=30)
    finally:
        log = await _stop(proc)
    assert proc.returncode == 0 and len(api.sent) == 1
    assert secret not in log


# ---------------------------------------------------------------- no secret in the log


async def test_no_secret_in_the_log_of_runs_and_failed_starts(secret_api: FakeBotApi, tmp_path: Path) -> None:
    api = secret_api
    logs: dict[str, str] = {}
    # Long polling, with a failing send (logged by the error handler) and a normal answer.
    proc = await _start(api, tmp_path, ZJCARE_WEBHOOK_SECRET=WEBHOOK_SECRET)
    try:
        api.push(message("/start"))
        await api.wait_sent(1, timeout=30)
        api.fail(SERVER_ERROR, SERVER_ERROR, SERVER_ERROR)  # past send_to_chat's two retries: the handler fails
        api.push(message("宝宝湿疹怎么护理"))
        await api.wait_sent(2, timeout=30)
    finally:
        logs["polling"] = await _stop(proc)
    # A webhook.
    port = free_port()
    proc = await _start(api, tmp_path, "--webhook-url", f"http://127.0.0.1:{port}/hook", "--port", str(port),
                        ZJCARE_WEBHOOK_SECRET=WEBHOOK_SECRET)
    try:
        await _webhook(api, proc)
    finally:
        logs["webhook"] = await _stop(proc)
    # Failed starts: a rejected token (PTB's own log of it names the token) and an unreachable API.
    wrong = "123456:AAHwRoNgSecretPart_zz99"
    full = base_env(tmp_path, TELEGRAM_BOT_TOKEN=wrong, TELEGRAM_API_BASE_URL=api.base_url,
                    ZJCARE_WEBHOOK_SECRET=WEBHOOK_SECRET)
    result = await asyncio.to_thread(subprocess.run, [*command(), "run"], env=full, capture_output=True, text=True,
                                     timeout=120)
    logs["rejected"] = result.stdout + result.stderr
    full["TELEGRAM_BOT_TOKEN"] = SECRET_TOKEN
    full["TELEGRAM_API_BASE_URL"] = f"http://127.0.0.1:{free_port()}/bot"
    result = await asyncio.to_thread(subprocess.run, [*command(), "run", "--webhook-url", "https://bot.example.org/h",
                                                      "--port", str(free_port())],
                                     env=full, capture_output=True, text=True, timeout=120)
    logs["unreachable"] = result.stdout + result.stderr
    assert "ready (long polling)" in logs["polling"] and "handler failed" in logs["polling"]
    assert "ready (webhook)" in logs["webhook"]
    assert "rejected TELEGRAM_BOT_TOKEN" in logs["rejected"] and "cannot reach" in logs["unreachable"]
    for name, text in logs.items():
        for secret in (SECRET_TOKEN, SECRET_TOKEN.split(":")[1], wrong, wrong.split(":")[1], WEBHOOK_SECRET):
            assert secret not in text, f"{name}: {text[-2000:]}"


# ---------------------------------------------------------------- Telegram lost while running


async def test_telegram_lost_while_polling_is_one_line_per_retry_not_a_traceback(tmp_path: Path) -> None:
    api = FakeBotApi(SECRET_TOKEN)
    await api.start()
    proc = await _start(api, tmp_path)
    assert proc.stderr is not None
    lines: list[str] = []
    try:
        api.push(message("/start"))
        await api.wait_sent(1, timeout=30)
        await api.stop()  # Telegram unreachable from now on: every getUpdates fails
        while not any("getting updates failed, retrying" in line for line in lines):
            raw = await asyncio.wait_for(proc.stderr.readline(), timeout=60)
            assert raw, "the bot ended"
            lines.append(raw.decode())
    finally:
        log = "".join(lines) + await _stop(proc)
    assert proc.returncode == 0, log[-2000:]
    failure = next(line for line in lines if "getting updates failed" in line)
    print(f"logged while Telegram is unreachable: {failure.strip()}")
    assert "WARNING" in failure and "Traceback" not in log and SECRET_TOKEN.split(":")[1] not in log
