"""Runner resolution: explicit path, edgeship.yaml, the x86_64 host runner launcher, and the phone message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgeship.android_harness.runners import HOST_PYTHON, NATIVE, host_runner_launcher, resolve_runner
from edgeship.android_harness.runners.resolve import launcher_text
from edgeship.errors import UsageError


def release_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "android_arm64"
    folder.mkdir()
    (folder / "litert_lm_main").write_bytes(b"\x7fELF fake")
    (folder / "libLiteRtOpenClAccelerator.so").write_bytes(b"gpu")
    (folder / "libGemmaModelConstraintProvider.so").write_bytes(b"constraints")
    return folder


def test_arm64_without_a_runner_says_where_to_get_one() -> None:
    with pytest.raises(UsageError) as info:
        resolve_runner("arm64-v8a", None, {})
    message = str(info.value)
    assert "cannot download" in message and "github.com/google-ai-edge/LiteRT-LM/releases" in message
    assert "runners: {arm64-v8a: PATH}" in message and "--runner PATH" in message
    assert "\n" not in message


def test_missing_explicit_runner(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"--runner: runner .* does not exist"):
        resolve_runner("arm64-v8a", str(tmp_path / "nope"), {})


def test_config_runner_folder_cpu_and_gpu(tmp_path: Path) -> None:
    folder = release_folder(tmp_path)
    cpu = resolve_runner("arm64-v8a", None, {"arm64-v8a": str(folder)})
    assert cpu.path == folder / "litert_lm_main" and cpu.name == "litert_lm_main"
    assert [p.name for p in cpu.extra_files] == ["libGemmaModelConstraintProvider.so"]
    gpu = resolve_runner("arm64-v8a", None, {"arm64-v8a": str(folder / "litert_lm_main")}, backend="gpu")
    assert sorted(p.name for p in gpu.extra_files) == [
        "libGemmaModelConstraintProvider.so",
        "libLiteRtOpenClAccelerator.so",
    ]
    env = gpu.device_env(["/d/bin/aa", "/d/bin/bb", "/d/bin/aa"])
    assert env == {"LD_LIBRARY_PATH": "/d/bin/aa:/d/bin/bb"}


def test_explicit_wins_over_config(tmp_path: Path) -> None:
    folder = release_folder(tmp_path)
    other = tmp_path / "mine"
    other.write_bytes(b"x")
    assert resolve_runner("arm64-v8a", str(other), {"arm64-v8a": str(folder)}).path == other


def test_gpu_without_accelerators_is_refused(tmp_path: Path) -> None:
    lonely = tmp_path / "litert_lm_main"
    lonely.write_bytes(b"x")
    with pytest.raises(UsageError, match=r"accelerator \.so"):
        resolve_runner("arm64-v8a", str(lonely), {}, backend="gpu")


def test_x86_64_gets_the_native_runner_and_its_library(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("EDGESHIP_CACHE", str(tmp_path))
    runner = resolve_runner("x86_64", None, {})
    assert runner.builtin == NATIVE and runner.name == "litert_lm_main"
    assert runner.path.is_relative_to(tmp_path / "runners" / "native") and os.access(runner.path, os.X_OK)
    assert runner.path.read_bytes()[:4] == b"\x7fELF"
    assert [p.name for p in runner.extra_files] == ["liblitert-lm.so"]
    # Pushed beside nothing else: the loader is told the library's own device folder.
    assert runner.device_env(["/d/bin/abc"]) == {"LD_LIBRARY_PATH": "/d/bin/abc"}
    assert runner.version and runner.version.startswith("native-litert-lm-api-")
    assert resolve_runner("x86_64", "native", {}).path == runner.path  # by name, too


def test_host_python_by_flag_or_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EDGESHIP_CACHE", str(tmp_path))
    runner = resolve_runner("x86_64", HOST_PYTHON, {})
    assert runner.builtin == HOST_PYTHON and runner.name == "litert_lm_main" and not runner.extra_files
    assert runner.path.is_relative_to(tmp_path / "runners" / "host")
    assert os.access(runner.path, os.X_OK)
    text = runner.path.read_text()
    assert text.splitlines()[0] == f"#!{sys.executable}"
    # Self-contained: the host runner's own text, nothing of the edgeship package on the device.
    assert "import edgeship" not in text and "from edgeship" not in text and "sys.path" not in text
    assert runner.version and runner.version.startswith("host-python-litert-lm-api-")
    # Idempotent and content-addressed: the same venv gives the same file.
    assert host_runner_launcher(tmp_path / "runners" / "host") == runner.path
    assert resolve_runner("x86_64", None, {"x86_64": HOST_PYTHON}).path == runner.path


def test_builtin_runners_are_for_x86_64_only() -> None:
    with pytest.raises(UsageError, match="the native runner is for x86_64 devices"):
        resolve_runner("arm64-v8a", "native", {})


def test_launcher_refuses_an_overlong_interpreter_path() -> None:
    with pytest.raises(UsageError, match="#! line"):
        launcher_text("/" + "v" * 300 + "/bin/python")


def test_the_launcher_runs_outside_the_package(tmp_path: Path) -> None:
    """Copied anywhere and run with no PYTHONPATH, the launcher still parses its flags (a device has no
    edgeship package)."""
    launcher = tmp_path / "litert_lm_main"
    launcher.write_text(launcher_text())
    launcher.chmod(0o755)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    completed = subprocess.run(
        [str(launcher), "--bogus"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert completed.returncode == 1
    assert completed.stderr == "ERROR: Unknown command line flag 'bogus'\n"
