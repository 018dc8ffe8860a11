"""Device shell text quoted by construction: what ``sh`` makes of hostile words, and a read of the package
that every template is a literal (so no f-string can carry a name into a device script)."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

import edgeship
from edgeship.android_harness.adb.quoting import Line, script, sh

HOSTILE = [
    "tok$(touch pwned).json",
    "a;touch pwned",
    "`touch pwned`",
    "x\ntouch pwned",
    "it's",
    '"; touch pwned; "',
    "${IFS}touch${IFS}pwned",
    "-rf",
    "",
]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_a_hostile_word_reaches_the_shell_as_one_argument(tmp_path: Path, hostile: str) -> None:
    line = sh('printf "%s\\0" {word} "$HOME"/{word}', word=hostile)
    result = subprocess.run(
        ["sh", "-c", script(line)], capture_output=True, cwd=tmp_path, env={"HOME": "/h"}, check=True
    )
    assert result.stdout.split(b"\0")[:2] == [hostile.encode(), b"/h/" + hostile.encode()]
    assert not (tmp_path / "pwned").exists()


def test_fields_numbers_lines_and_argvs() -> None:
    inner = sh("dd if={source} bs={block}", source="/data/a b", block=16384)
    assert inner == "dd if='/data/a b' bs=16384"
    assert sh("{command} || exit {code}", command=inner, code=5) == "dd if='/data/a b' bs=16384 || exit 5"
    assert sh("sleep {poll}", poll=0.02) == "sleep 0.02"
    assert sh("rm -rf -- {paths}", paths=["a", "b c"]) == "rm -rf -- a 'b c'"
    # The shell's own braces stay as written: parameter expansion, groups, arithmetic.
    text = 'x="${x%% *}"; { echo $((n+1)); } && f() { :; }'
    assert sh(text) == text


def test_a_template_and_its_words_must_agree() -> None:
    with pytest.raises(KeyError, match="has no word"):
        sh("echo {missing}")
    with pytest.raises(KeyError, match="no field"):
        sh("echo", extra="x")
    with pytest.raises(TypeError):
        sh("echo {flag}", flag=True)
    with pytest.raises(ValueError):
        sh("sleep {s}", s=float("nan"))


def test_a_script_refuses_text_that_did_not_come_from_sh() -> None:
    assert script(sh("a"), [sh("b"), sh("c\n")]) == Line("a\nb\nc\n")
    with pytest.raises(TypeError, match="must come from sh"):
        script(sh("a"), "rm -rf " + "$(oops)")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must come from sh"):
        script([sh("a"), f"echo {'raw'}"])  # type: ignore[list-item]


def _calls_to(tree: ast.AST, name: str) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Name) and node.func.id == name)
            or (isinstance(node.func, ast.Attribute) and node.func.attr == name)
        )
    ]


def test_every_shell_template_in_the_package_is_a_literal() -> None:
    """An f-string, a concatenation or a variable as template would let data in unquoted."""
    package = Path(edgeship.__file__).parent
    offenders = []
    checked = 0
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        if not any(
            isinstance(node, ast.ImportFrom) and node.module == "edgeship.android_harness.adb.quoting"
            for node in ast.walk(tree)
        ):
            continue
        for call in _calls_to(tree, "sh"):
            checked += 1
            template = call.args[0] if call.args else None
            if not (isinstance(template, ast.Constant) and isinstance(template.value, str)):
                offenders.append(f"{path.relative_to(package)}:{call.lineno}")
        # Line(...) made directly would skip the quoting: only quoting.py itself makes them.
        offenders += [f"{path.relative_to(package)}:{call.lineno} Line()" for call in _calls_to(tree, "Line")]
    assert checked > 50  # the push and store scripts are built this way
    assert offenders == [], f"sh() templates that are not string literals: {offenders}"


@pytest.mark.parametrize(
    "room", ["android_harness/push", "android_harness/store", "android_harness/adb/tagged.py"]
)
def test_the_push_and_store_rooms_hand_the_device_only_argvs_and_built_lines(room: str) -> None:
    """In these rooms a device command is an argv list (each word quoted) or a Line from sh()/script()."""
    package = Path(edgeship.__file__).parent
    paths = [package / room] if room.endswith(".py") else sorted((package / room).rglob("*.py"))
    offenders = []
    for path in paths:
        tree = ast.parse(path.read_text(), filename=str(path))
        for call in _calls_to(tree, "shell") + _calls_to(tree, "shell_start"):
            command = call.args[0] if call.args else None
            if isinstance(command, (ast.JoinedStr, ast.BinOp, ast.Constant)) or (
                isinstance(command, ast.Call)
                and isinstance(command.func, ast.Attribute)
                and command.func.attr in {"format", "join"}
            ):
                offenders.append(f"{path.relative_to(package)}:{call.lineno}")
        for node in ast.walk(tree):  # no function in these rooms returns shell text as a plain str
            if isinstance(node, ast.FunctionDef) and node.name.endswith("_script"):
                returns = ast.unparse(node.returns) if node.returns else ""
                if returns != "Line":
                    offenders.append(f"{path.relative_to(package)}:{node.lineno} {node.name} -> {returns}")
    assert offenders == []
