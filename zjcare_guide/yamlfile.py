"""Content YAML read together with its node tree, so every problem can name its line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .model import Problem

# libyaml when the wheel has it: the pure-Python parser makes a reload of ~100 articles take seconds.
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path: Path, problems: list[Problem]) -> tuple[Any, yaml.Node | None]:
    """The data and the node tree of one file; (None, None) with a problem when it cannot be read."""
    if not path.exists():
        problems.append(Problem(path, 1, "file is missing"))
        return None, None
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(path, 1, f"cannot read file: {exc}"))
        return None, None
    try:
        return yaml.load(text, Loader=LOADER), yaml.compose(text, Loader=LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problems.append(Problem(path, line, f"invalid YAML: {getattr(exc, 'problem', exc)}"))
        return None, None


def line(node: yaml.Node | None) -> int:
    """1-based line where a node starts (1 when there is no node)."""
    return int(node.start_mark.line) + 1 if node is not None else 1


def child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    """The value node under `key` of a mapping node."""
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return v  # type: ignore[no-any-return]
    return None


def items(node: yaml.Node | None) -> list[yaml.Node | None]:
    """The item nodes of a sequence node (empty for anything else)."""
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def line_of(node: yaml.Node | None, key: str) -> int:
    """1-based line of `key` in a YAML mapping node (the node's own line if absent)."""
    if isinstance(node, yaml.MappingNode):
        for k, _v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return int(k.start_mark.line) + 1
        return int(node.start_mark.line) + 1
    return 1


def item_lines(node: yaml.Node | None, key: str) -> list[int]:
    """1-based lines of the items of the sequence under `key`."""
    return [line(item) for item in items(child(node, key))]


def str_list(value: Any) -> list[str] | None:
    """A list of words (None when it is not one; [] for a missing value)."""
    if value is None:
        return []
    # Editors write `[急诊, 120]`; YAML reads 120 as a number, which is still a word here.
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) and not isinstance(v, bool)
                                       and str(v).strip() for v in value):
        return [str(v).strip() for v in value]
    return None
