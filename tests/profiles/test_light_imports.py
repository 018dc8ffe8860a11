"""report, gate and plan start without torch, tensorflow or litert_torch (they only read files)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.profiles.factory import make_profile, write

HEAVY = ("torch", "tensorflow", "litert_torch")


def imported_after(args: list[str]) -> list[str]:
    code = (
        "import sys\nfrom edgeship.cli import main\n"
        f"sys.argv = ['edgeship', *{args!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"sys.stderr.write('HEAVY=' + repr(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    line = [part for part in result.stderr.splitlines() if part.startswith("HEAVY=")][-1]
    return json.loads(line.removeprefix("HEAVY=").replace("'", '"'))


@pytest.mark.parametrize("command", ["report", "gate", "plan"])
def test_no_heavy_import(command: str, tmp_path: Path, tiny_gemma4_build: Path) -> None:
    profile = write(make_profile([100, 101, 99]), tmp_path)
    args = {
        "report": ["report", str(profile), "-o", str(tmp_path / "r.html"), "--md", str(tmp_path / "r.md")],
        "gate": ["gate", "--baseline", str(profile), "--current", str(profile)],
        "plan": ["plan", str(tiny_gemma4_build), "--ram", "6GB"],
    }[command]
    assert imported_after(args) == []
