"""A build dir is data: crafted manifests pushed through the real CLI to a virtual device.

Each manifest field that reaches the device (a file name, a digest, a section kind) is crafted the way an
attacker or a broken tool would write it. `edgeship push` must refuse the build in one line (exit 3) before
any device is touched, and the device is checked afterwards: no command ran (no ``pwned`` file), nothing
was written under or outside the store, no host file was copied onto it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edgeship.errors import InputError
from tests.android_harness.synthetic import random_sections, write_build
from tests.cli import EdgeshipCli

SECRET = b"host secret: must never reach a phone\n"
TOKENIZER = b'{"model": "synthetic"}'


def _manifest(build: Path) -> dict[str, Any]:
    return json.loads((build / "manifest.json").read_text())


def _rewrite(build: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    manifest = _manifest(build)
    change(manifest)
    (build / "manifest.json").write_text(json.dumps(manifest))
    return build


def _device_paths(vdevice: Any) -> set[Path]:
    """Every file and folder the virtual device holds (its /data/local/tmp and /sdcard), not its own log."""
    return {path for path in vdevice.root.rglob("*") if path.name != "device.log"}


def _assert_device_untouched(vdevice: Any, before: set[Path]) -> None:
    paths = _device_paths(vdevice)
    assert not [path for path in paths if path.name == "pwned"], (
        "a manifest field ran a command on the device"
    )
    files = [path for path in paths if path.is_file()]
    assert not [path for path in files if path.read_bytes() == SECRET], "a host file was copied to the device"
    assert paths == before, f"the device gained {sorted(paths - before)}"


def _refused(result: Any, *words: str) -> None:
    assert result.returncode == InputError.exit_code, (result.returncode, result.stdout, result.stderr)
    message = result.stderr.strip()
    assert message.startswith("edgeship: error:") and "\n" not in message, message
    for word in words:
        assert word in message, message


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A host file outside every build dir."""
    path = tmp_path / "outside" / "secret.txt"
    path.parent.mkdir()
    path.write_bytes(SECRET)
    return path


def _build(tmp_path: Path, name: str = "b", tokenizer_name: str = "tokenizer.json") -> Path:
    build = write_build(tmp_path / name, random_sections([3 * 16384 + 5, 20000], seed=7), tokenizer=TOKENIZER)
    if tokenizer_name != "tokenizer.json":
        (build / "tokenizer.json").rename(build / tokenizer_name)
        _rewrite(build, lambda m: m.update(tokenizer={"file": tokenizer_name}))
    return build


@pytest.fixture
def edgeship(cli: EdgeshipCli, adb_server: Any) -> EdgeshipCli:
    """The CLI as a user runs it (tests/cli.py), on the test's adb server."""
    return cli.with_server(adb_server)


def test_a_tokenizer_name_that_is_a_command_never_runs(
    edgeship: EdgeshipCli, vdevice: Any, tmp_path: Path
) -> None:
    """A second bundle reusing a tokenizer the device holds used to put its name raw into the script."""
    evil = "tok$(cd${IFS}$TMPDIR;id>pwned).json"
    first = _build(tmp_path, "v1", evil)
    second = _build(tmp_path, "v2", evil)
    _rewrite(second, lambda m: m["bundle"].update(version="another build"))  # another manifest sha
    before = _device_paths(vdevice)
    results = [edgeship("push", str(b), "--device", vdevice.serial) for b in (first, second)]
    _assert_device_untouched(vdevice, before)
    for result in results:
        _refused(result, "tokenizer", "one path component")


@pytest.mark.parametrize("flags", [["--no-verify"], ["--no-verify", "--dry-run"]])
def test_a_bundle_sha256_that_is_a_command_never_runs(
    edgeship: EdgeshipCli, vdevice: Any, tmp_path: Path, flags: list[str]
) -> None:
    # A store the survey can enter: the injected line comes after `cd <root>`.
    assert edgeship("push", str(_build(tmp_path, "good")), "--device", vdevice.serial).returncode == 0
    build = _rewrite(
        _build(tmp_path), lambda m: m["bundle"].update(sha256="x; touch /data/local/tmp/pwned; echo ")
    )
    before = _device_paths(vdevice)
    result = edgeship("push", str(build), "--device", vdevice.serial, *flags)
    _assert_device_untouched(vdevice, before)
    _refused(result, "bundle.sha256", "64 lowercase hex")


def _forge_kind(manifest: dict[str, Any]) -> None:
    # A second line in the device's sections.txt: "this bundle holds section <sha> at [0, 16384)".
    manifest["sections"][0]["kind"] = "tf_lite_embedder\n" + "e" * 64 + " 0 16384 forged"


def _forge_section_sha(manifest: dict[str, Any]) -> None:
    manifest["sections"][0]["sha256"] += "\nfile tokenizer.json " + "e" * 64 + " 1"


def _uppercase_section_sha(manifest: dict[str, Any]) -> None:
    manifest["sections"][1]["sha256"] = manifest["sections"][1]["sha256"].upper()


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (_forge_kind, ("sections[0].kind", "A-Za-z0-9_.-")),
        (_forge_section_sha, ("sections[0].sha256", "64 lowercase hex")),
        (_uppercase_section_sha, ("sections[1].sha256", "64 lowercase hex")),
    ],
)
def test_section_fields_cannot_forge_the_device_index(
    edgeship: EdgeshipCli,
    vdevice: Any,
    tmp_path: Path,
    change: Callable[[dict[str, Any]], None],
    words: tuple[str, ...],
) -> None:
    build = _rewrite(_build(tmp_path), change)
    before = _device_paths(vdevice)
    result = edgeship("push", str(build), "--device", vdevice.serial)
    _assert_device_untouched(vdevice, before)
    _refused(result, *words)


def _tokenizer_outside_by_climbing(build: Path, secret: Path) -> None:
    climb = os.path.relpath(secret, build)  # ../outside/secret.txt
    _rewrite(build, lambda m: m.update(tokenizer={"file": climb}))


def _tokenizer_outside_by_absolute_path(build: Path, secret: Path) -> None:
    _rewrite(build, lambda m: m.update(tokenizer={"file": str(secret)}))


def _tokenizer_symlink_out(build: Path, secret: Path) -> None:
    (build / "tokenizer.json").unlink()
    (build / "tokenizer.json").symlink_to(secret)


def _tokenizer_in_a_symlinked_folder(build: Path, secret: Path) -> None:
    (build / "sub").symlink_to(secret.parent, target_is_directory=True)
    _rewrite(build, lambda m: m.update(tokenizer={"file": "sub/secret.txt"}))


@pytest.mark.parametrize(
    "escape",
    [
        _tokenizer_outside_by_climbing,
        _tokenizer_outside_by_absolute_path,
        _tokenizer_symlink_out,
        _tokenizer_in_a_symlinked_folder,
    ],
)
def test_a_tokenizer_outside_the_build_dir_stays_on_the_host(
    edgeship: EdgeshipCli, vdevice: Any, tmp_path: Path, secret: Path, escape: Callable[[Path, Path], None]
) -> None:
    build = _build(tmp_path)
    escape(build, secret)
    before = _device_paths(vdevice)
    result = edgeship("push", str(build), "--device", vdevice.serial)
    _assert_device_untouched(vdevice, before)
    _refused(result, "tokenizer")


def test_a_bundle_outside_the_build_dir_stays_on_the_host(
    edgeship: EdgeshipCli, vdevice: Any, tmp_path: Path
) -> None:
    build = _build(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.move(build / "model.litertlm", elsewhere / "model.litertlm")
    _rewrite(build, lambda m: m["bundle"].update(file="../elsewhere/model.litertlm"))
    before = _device_paths(vdevice)
    results = [
        edgeship("push", str(build), "--device", vdevice.serial, *flags) for flags in ([], ["--no-verify"])
    ]
    _assert_device_untouched(vdevice, before)
    for result in results:
        _refused(result, "bundle.file")
    # The same bundle beside its manifest is pushed: the refusal was about where it lives, not its bytes.
    shutil.move(elsewhere / "model.litertlm", build / "model.litertlm")
    _rewrite(build, lambda m: m["bundle"].update(file="model.litertlm"))
    pushed = edgeship("push", str(build), "--device", vdevice.serial, "--json")
    assert pushed.returncode == 0, pushed.stderr
    final = vdevice.sandbox_root / "edgeship" / "bundles" / _manifest(build)["bundle"]["sha256"]
    assert (
        hashlib.sha256((final / "model.litertlm").read_bytes()).hexdigest()
        == _manifest(build)["bundle"]["sha256"]
    )


@pytest.mark.parametrize(
    "reserved", ["sent", "assemble.sh", "sections.txt", "model.litertlm", "manifest.json"]
)
def test_a_tokenizer_cannot_take_a_name_the_push_uses(
    edgeship: EdgeshipCli, vdevice: Any, tmp_path: Path, reserved: str
) -> None:
    build = _build(tmp_path)
    if reserved not in ("model.litertlm", "manifest.json"):  # those two are the build's own files
        (build / "tokenizer.json").rename(build / reserved)
    _rewrite(build, lambda m: m.update(tokenizer={"file": reserved}))
    before = _device_paths(vdevice)
    result = edgeship("push", str(build), "--device", vdevice.serial)
    _assert_device_untouched(vdevice, before)
    _refused(result, "tokenizer", "reserved")
