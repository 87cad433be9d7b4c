"""Shared fixtures: the shipped content on a fixed day, and writable copies of it."""

from __future__ import annotations

import datetime as dt
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from zjcare_guide.clock import fixed_clock
from zjcare_guide.content import DEFAULT_CONTENT_DIR
from zjcare_guide.conversation import Conversation
from zjcare_guide.guide import Guide

from .fake_bot_api import FakeBotApi

TODAY = dt.date(2026, 12, 1)
FIXTURES = Path(__file__).parent / "fixtures"
GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(scope="session")
def guide() -> Guide:
    return Guide.from_dir(DEFAULT_CONTENT_DIR, TODAY)


@pytest.fixture
def conversation(guide: Guide) -> Conversation:
    return Conversation(guide, clock=fixed_clock(TODAY))


@pytest.fixture
def content_copy(tmp_path: Path) -> Path:
    """A writable copy of the shipped content, for tests that break or change it."""
    dest = tmp_path / "content"
    shutil.copytree(DEFAULT_CONTENT_DIR, dest)
    return dest


# ---------------------------------------------------------------- end to end: the CLI against the fake Bot API

TOKEN = "123456:E2E-TEST"


def command() -> list[str]:
    """How to run `zjcare-guide` as a subprocess from this environment."""
    script = Path(sys.executable).parent / "zjcare-guide"
    return [str(script)] if script.exists() else [sys.executable, "-m", "bot.cli"]


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    """A fake Telegram Bot API server on 127.0.0.1, for TOKEN."""
    server = FakeBotApi(TOKEN)
    await server.start()
    yield server
    await server.stop()
