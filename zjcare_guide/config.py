"""Settings from the environment, read once at the edge and passed in."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .content import DEFAULT_CONTENT_DIR
from .personal_data import DEFAULT_RETENTION_MONTHS
from .reminders import Policy, parse_quiet_hours


class ConfigError(ValueError):
    """A setting is missing or malformed; the message is one line for the operator."""


def default_db_path(env: Mapping[str, str]) -> Path:
    """`$XDG_DATA_HOME/zjcare-guide/zjcare.db`, i.e. ~/.local/share/zjcare-guide/zjcare.db by default."""
    base = env.get("XDG_DATA_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".local" / "share")
    return Path(base) / "zjcare-guide" / "zjcare.db"


@dataclass(frozen=True)
class Config:
    token: str | None
    api_base_url: str | None
    db_path: Path
    content_dir: Path
    admin_ids: frozenset[int] = field(default_factory=frozenset)
    policy: Policy = field(default_factory=Policy)  # when reminders go out
    bot_username: str | None = None  # ZJCARE_BOT_USERNAME, for invite links when the bot is not running
    # ZJCARE_RETENTION_MONTHS: a family inactive this long is deleted by `zjcare-guide db purge`.
    retention_months: int = DEFAULT_RETENTION_MONTHS

    @property
    def admins(self) -> frozenset[str]:
        """The administrators as the core names accounts (telegram:<id>)."""
        return frozenset(f"telegram:{i}" for i in self.admin_ids)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        env = os.environ if env is None else env
        admins: set[int] = set()
        for part in (env.get("ZJCARE_ADMIN_IDS") or "").replace(";", ",").split(","):
            part = part.strip()
            if not part:
                continue
            if not part.lstrip("-").isdigit():
                raise ConfigError(f"ZJCARE_ADMIN_IDS must be Telegram user ids separated by commas, not {part!r}")
            admins.add(int(part))
        policy = Policy()
        if quiet := (env.get("ZJCARE_QUIET_HOURS") or "").strip():
            try:
                start, end = parse_quiet_hours(quiet)
            except ValueError:
                raise ConfigError(f"ZJCARE_QUIET_HOURS must look like 21:00-08:00, not {quiet!r}") from None
            policy = dataclasses.replace(policy, quiet_start=start, quiet_end=end)
        if late := (env.get("ZJCARE_REMINDER_MAX_LATE_DAYS") or "").strip():
            if not late.isdigit():
                raise ConfigError(f"ZJCARE_REMINDER_MAX_LATE_DAYS must be a whole number of days, not {late!r}")
            policy = dataclasses.replace(policy, max_late=dt.timedelta(days=int(late)))
        if limit := (env.get("ZJCARE_PUSH_DAILY_LIMIT") or "").strip():
            if not limit.isdigit():
                raise ConfigError(f"ZJCARE_PUSH_DAILY_LIMIT must be a whole number of messages, not {limit!r}")
            policy = dataclasses.replace(policy, push_daily_limit=int(limit))
        retention = DEFAULT_RETENTION_MONTHS
        if months := (env.get("ZJCARE_RETENTION_MONTHS") or "").strip():
            if not months.isdigit() or int(months) < 1:
                raise ConfigError(f"ZJCARE_RETENTION_MONTHS must be a whole number of months (1 or more), "
                                  f"not {months!r}")
            retention = int(months)
        return cls(
            token=(env.get("TELEGRAM_BOT_TOKEN") or "").strip() or None,
            api_base_url=(env.get("TELEGRAM_API_BASE_URL") or "").strip() or None,
            db_path=Path(env.get("ZJCARE_DB") or default_db_path(env)),
            content_dir=Path(env.get("ZJCARE_CONTENT_DIR") or DEFAULT_CONTENT_DIR),
            admin_ids=frozenset(admins),
            policy=policy,
            bot_username=(env.get("ZJCARE_BOT_USERNAME") or "").strip().lstrip("@") or None,
            retention_months=retention,
        )

    def require_token(self) -> str:
        if not self.token:
            raise ConfigError("TELEGRAM_BOT_TOKEN is not set: get a token from @BotFather and export it "
                              "(or try the bot offline with `zjcare-guide chat`)")
        if ":" not in self.token:
            raise ConfigError("TELEGRAM_BOT_TOKEN does not look like a bot token (expected '123456:ABC…')")
        return self.token
