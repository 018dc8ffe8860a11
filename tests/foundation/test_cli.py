"""The CLI shell: error mapping, lazy imports, help."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest

from edgeship import cli as cli_module
from edgeship.errors import DeviceError, EdgeshipError, InputError, UsageError
from tests.cli import EdgeshipCli

HEAVY_MODULES = ("torch", "litert_torch", "tensorflow", "transformers", "ai_edge_quantizer", "litert_lm")


def test_help_lists_every_command_without_importing_stages() -> None:
    code = (
        "import sys\n"
        "from edgeship.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print([m for m in {HEAVY_MODULES!r} if m in sys.modules])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    for name in cli_module.COMMANDS:
        assert name in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("command", ["devices", "push", "profile", "vdevice", "gc", "runner", "probe"])
def test_light_commands_do_not_import_heavy_modules(command: str) -> None:
    code = (
        "import sys, json\n"
        "from edgeship.cli import cli\n"
        f"cli.get_command(None, {command!r})\n"
        f"print(json.dumps([m for m in {HEAVY_MODULES!r} if m in sys.modules]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


@pytest.mark.parametrize(
    ("error", "code"), [(UsageError("bad"), 2), (InputError("bad"), 3), (DeviceError("bad"), 5)]
)
def test_errors_map_to_one_line_and_exit_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], error: EdgeshipError, code: int
) -> None:
    @click.command()
    def failing() -> None:
        raise error

    monkeypatch.setitem(cli_module.COMMANDS, "failing", ("tests.foundation.test_cli:_unused", "x"))
    monkeypatch.setattr(cli_module.LazyGroup, "get_command", lambda self, ctx, name: failing)
    with pytest.raises(SystemExit) as exit_info:
        cli_module.main(["failing"])
    assert exit_info.value.code == code
    err = capsys.readouterr().err
    assert err == "edgeship: error: bad\n"
    assert "Traceback" not in err


def test_unknown_command_is_a_usage_error(cli: EdgeshipCli) -> None:
    result = cli("no-such-command")
    assert result.returncode == 2
    assert "No such command" in result.stderr
    assert "Traceback" not in result.stderr


def test_version(cli: EdgeshipCli) -> None:
    result = cli("--version")
    assert result.returncode == 0
    assert "edgeship" in result.stdout
