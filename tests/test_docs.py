"""Docs that cannot rot: every CLI command is in the README, and CI runs the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

import click

from bot.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _commands(group: click.Group, prefix: str = "zjcare-guide") -> list[str]:
    out = []
    for name, cmd in group.commands.items():
        full = f"{prefix} {name}"
        if isinstance(cmd, click.Group):
            out += _commands(cmd, full)
        else:
            out.append(full)
    return out


def test_every_cli_command_is_documented_with_help_example() -> None:
    commands = _commands(main)
    assert len(commands) >= 5
    for full in commands:
        assert f"`{full}" in README, f"{full} missing from README"
    ctx = click.Context(main)
    for name, cmd in main.commands.items():
        subs = cmd.commands.values() if isinstance(cmd, click.Group) else [cmd]
        for sub in subs:
            assert "Example:" in (sub.help or ""), f"{name} {sub.name} help has no example"
    del ctx


def test_ci_runs_the_readme_test_command() -> None:
    blocks = re.findall(r"```sh\n(.*?)\n```", README, re.S)
    test_cmd = next(b for b in blocks if "pytest" in b)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test_cmd.strip() in ci
