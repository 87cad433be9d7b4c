"""The core never imports Telegram: bot/ is a thin adapter over it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parent.parent / "zjcare_guide"


def test_core_modules_do_not_import_telegram() -> None:
    modules = [f"zjcare_guide.{p.stem}" for p in CORE.glob("*.py") if p.stem != "__init__"]
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules) + \
        "print(sorted(m for m in sys.modules if m == 'telegram' or m.startswith('telegram.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
