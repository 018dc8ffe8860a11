"""`edgeship fit` end to end: the real CLI, a real adb server, virtual devices with their own RAM (a memory
cgroup), the tiny Gemma-4 bundle run by the real engine under the real probe. The memory is taken by the
device's own cgroup through adb (``vdevice-ram:``) or by the balloon helper; the device must get it back
however the command ends.
"""

from __future__ import annotations

import json
import shlex
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from edgeship.profiles.fitcurve import FAST, RUNS, load_fit
from edgeship.profiles.schema import load_profile
from tests.cli import EdgeshipCli
from tests.vdevice.helpers import host_pids_with, require_memory_cgroup
from tests.vdevice.test_memory import meminfo_of, small_profile

pytestmark = pytest.mark.e2e

MIB = 1 << 20
DEVICE_RAM = 384 * MIB


@pytest.fixture
def edgeship(cli: EdgeshipCli, adb_server: Any) -> EdgeshipCli:
    """The CLI as a user runs it, talking to the test's adb server."""
    return cli.with_server(adb_server)


def fit_args(build: Path, serial: str, runs: Path, *extra: str) -> list[str]:
    # Short runs (the tiny model decodes 64 tokens in ~0.1 s), an 8 s limit for a thrashing one and 6 steps
    # (both brackets found, each narrowed once or twice) keep the sweep near half a minute; one measured run
    # per step is enough to find the boundaries on a model this small.
    return [
        "fit", str(build), "--device", serial, "--prefill", "16", "--decode", "64", "--iterations", "1",
        "--warmup", "1", "--step-warmup", "0", "--step-timeout", "8", "--max-steps", "6", "-o", str(runs),
        *extra,
    ]  # fmt: skip


def device_ram(adb_server: Any, serial: str) -> int:
    shell = adb_server.run("-s", serial, "shell", "cat /proc/meminfo", timeout=60)
    return meminfo_of(shell.stdout)["MemTotal"]


def test_fit_of_the_tiny_bundle_finds_a_knee_and_a_kill_point_and_reports_them(
    tiny_gemma4_build: Path, adb_server: Any, vdevice_factory: Any, edgeship: EdgeshipCli, tmp_path: Path
) -> None:
    require_memory_cgroup()
    device = vdevice_factory(adb_server, profile=str(small_profile(tmp_path, DEVICE_RAM)))
    runs = tmp_path / "runs"
    result = edgeship(*fit_args(tiny_gemma4_build, device.serial, runs, "--json"), timeout=600)
    assert result.returncode == 0, result.stderr
    [entry] = json.loads(result.stdout)
    assert entry["ok"] and entry["error"] is None
    fit = load_fit(entry["fit"])
    assert fit.method == "cgroup" and fit.state in ("complete", "max steps") and fit.restored is True
    assert 1 <= len(fit.steps) <= 6
    full = fit.baseline.available
    assert full is not None and DEVICE_RAM * 0.9 < full <= DEVICE_RAM

    # every measured step had about the memory it was given (the device's RAM set through adb, read back)
    for step in fit.steps:
        if step.available is not None:
            assert abs(step.available - step.target_available) <= max(2 * MIB, step.target_available // 20)
            assert step.limit is not None and step.limit < DEVICE_RAM
    # the knee: a constrained step that stayed fast, below it one that did not
    knee = fit.knee
    knee_step = next(step for step in fit.steps if step.index == knee["step"])
    assert knee_step.outcome == FAST and knee["available"] == knee_step.available < full
    below = [s for s in fit.steps if (s.available or s.target_available) < knee["available"]]
    assert below and not any(s.outcome == FAST for s in below if (s.available or 0) == knee["above"])
    # the kill point: runs complete down to runs_at and stop completing below it
    kill = fit.kill
    assert (
        kill["not_running_at"] is not None and kill["not_running_at"] < kill["runs_at"] <= knee["available"]
    )
    stopped = [s for s in fit.steps if (s.available or s.target_available) == kill["not_running_at"]]
    assert stopped and RUNS[stopped[0].outcome] is False
    assert fit.verdict.startswith("decode stays ≥ 90% of the unconstrained run down to ")

    # each step is a normal profile: step.json next to its raw probe output
    for step in fit.steps:
        step_file = Path(entry["fit"]).parent / step.profile
        if step.outcome != "no_start":
            loaded = load_profile(step_file)
            assert loaded.config["fit_step"]["index"] == step.index and loaded.iterations
    # the device has its RAM back, and it still works
    assert device.memory.limit() == DEVICE_RAM and device_ram(adb_server, device.serial) == DEVICE_RAM

    # the report plots the curve beside the fit verdict and puts the planner's minimum next to the knee
    html, summary = tmp_path / "report.html", tmp_path / "summary.json"
    report = edgeship("report", str(runs), "-o", str(html), "--json", str(summary))
    assert report.returncode == 0, report.stderr
    [reported] = json.loads(summary.read_text())["entries"]
    assert reported["fit"]["knee"] == fit.knee and reported["fit"]["planner"]["minimum"] > 0
    assert reported["fit"]["curve"][0]["step"] == 0  # the unconstrained run first
    page = html.read_text()
    assert "Fit curve (edgeship fit)" in page and 'id="edgeship-fit-0-' in page
    from jsonschema import validate

    from edgeship.profiles.report import JSON_SCHEMA_FILE

    validate(json.loads(summary.read_text()), json.loads(JSON_SCHEMA_FILE.read_text()))


def hanging_runner(tmp_path: Path, counter: str) -> Path:
    """The host-python runner, which hangs from its third run on: the warm-up and the measured run of the
    unconstrained run work, the first step's run never ends."""
    from edgeship.android_harness.runners.resolve import resolve_runner

    launcher = Path(resolve_runner("x86_64", "host-python", {}).path).read_text().split("\n", 1)
    python, body = shlex.quote(launcher[0].removeprefix("#!")), launcher[1]
    script = tmp_path / "hanging_runner"
    script.write_text(
        "#!/bin/sh\n"
        f"n=$(cat {counter} 2>/dev/null || echo 0); n=$((n + 1)); echo $n > {counter}\n"
        'if [ "$n" -ge 3 ]; then sleep 300; fi\n'
        f'exec {python} -c {shlex.quote(body)} "$@"\n'
    )
    script.chmod(0o755)
    return script


def balloons() -> list[int]:
    return [
        pid
        for pid in host_pids_with("--target-available")
        if b"balloon" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


def balloons_after_hangup(timeout: float = 5.0) -> list[int]:
    """The balloons still running once their SIGHUP has had ``timeout`` seconds to end them (the device gets
    its memory back first; the process exits a moment later, as after adbd's hang-up on a phone)."""
    deadline = time.monotonic() + timeout
    while (left := balloons()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@pytest.mark.parametrize("method", ["cgroup", "balloon"])
def test_an_interrupted_fit_gives_the_device_its_memory_back(
    method: str,
    tiny_gemma4_build: Path,
    adb_server: Any,
    vdevice_factory: Any,
    edgeship: EdgeshipCli,
    tmp_path: Path,
) -> None:
    """SIGINT while a step holds the device's memory (its runner hangs): exit 130, the RAM is the
    profile's again, no balloon is left, fit.json says it was interrupted, the device still works."""
    require_memory_cgroup()
    device = vdevice_factory(adb_server, profile=str(small_profile(tmp_path, DEVICE_RAM)))
    runs = tmp_path / "runs"
    runner = hanging_runner(tmp_path, f"/data/local/tmp/edgeship-test-counter-{uuid.uuid4().hex}")
    # The run in flight at Ctrl-C ends at its time limit (the device has its memory back before): 5 s leaves
    # the SIGINT, sent ~1 s after the memory was taken, well inside the hung run.
    args = fit_args(
        tiny_gemma4_build, device.serial, runs, "--method", method, "--reference-runs", "0",
        "--runner", str(runner), "--step-timeout", "5",
    )  # fmt: skip
    process = edgeship.popen(*args)
    try:
        deadline = time.monotonic() + 240
        held = False
        while time.monotonic() < deadline and not held and process.poll() is None:
            held = bool(balloons()) if method == "balloon" else device.memory.limit() < DEVICE_RAM
            time.sleep(0.1)
        ended = process.poll() is not None
        assert held, f"the step never took the device's memory: {process.communicate()[1] if ended else ''}"
        time.sleep(1.0)  # the step's run has started (and hangs)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, stderr
    assert device.memory.limit() == DEVICE_RAM
    assert balloons_after_hangup() == []
    assert device_ram(adb_server, device.serial) == DEVICE_RAM  # what the device itself reports
    fit = load_fit(next(runs.glob("*/*/fit.json")))
    assert fit.state == "interrupted" and fit.restored is True and fit.steps == []
    assert adb_server.run("-s", device.serial, "shell", "echo usable").stdout == "usable\n"


def test_a_device_without_a_way_to_take_its_memory_is_named_in_one_line(
    tiny_gemma4_build: Path,
    adb_server: Any,
    edgeship: EdgeshipCli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No memory cgroup: the device cannot set its RAM, and a balloon would take the host's memory."""
    from edgeship.vdevice import VirtualDevice, memory

    def unavailable(_name: str, _limit: int) -> memory.MemoryCgroup:
        raise memory.MemoryUnavailable("a memory cgroup needs root")

    monkeypatch.setattr(memory.MemoryCgroup, "create", unavailable)
    with VirtualDevice(name="noram", root=tmp_path / "noram") as device:
        adb_server.connect(device.serial)
        try:
            for method, words in (
                ("cgroup", "its RAM cannot be set: no memory cgroup (a memory cgroup needs root)"),
                ("balloon", "a balloon would take the host's memory"),
                ("auto", "; and "),
            ):
                result = edgeship(
                    *fit_args(tiny_gemma4_build, device.serial, tmp_path / method, "--method", method),
                )
                errors = [line for line in result.stderr.splitlines() if line.startswith("edgeship: error:")]
                assert result.returncode == 5 and len(errors) == 1, result.stderr
                assert words in errors[0] and device.serial in errors[0]
                assert not list((tmp_path / method).glob("*/*/profile.json"))  # failed before anything ran
        finally:
            adb_server.disconnect(device.serial)
