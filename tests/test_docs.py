"""Docs are part of the product: every command the README names must exist."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
KIZUNA = Path(sys.executable).parent / "kizuna"


def test_the_quickstart_is_the_two_make_targets():
    quickstart = README.split("## Quickstart", 1)[1].split("```", 2)[1]
    commands = [line.split("#")[0].strip() for line in quickstart.splitlines()[1:] if line.strip()]
    assert commands == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    for target in ("demo", "test", "bench", "docs", "help"):
        assert re.search(rf"^{target}:", makefile, re.M), target
    assert "make test" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("command", sorted(set(re.findall(r"`kizuna ([a-z][a-z -]*?)`", README))))
def test_every_kizuna_command_in_the_readme_exists(command):
    args = [a for a in command.split() if not a.startswith("-")]
    result = subprocess.run([str(KIZUNA), *args, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
