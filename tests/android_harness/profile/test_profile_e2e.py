"""`edgeship profile` end to end: the tiny Gemma-4 build on a virtual device through a real adb server.

Real pieces only: the exported bundle, the adb server binary, the virtual device's sandboxed shell, the probe
cross-built with zig, and the host runner on the LiteRT-LM engine. Misbehaving runners are shell scripts
pushed as `--runner` that wrap the real one.
"""

from __future__ import annotations

import csv
import json
import shlex
import statistics
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from edgeship.profiles.schema import (
    PROFILE_SCHEMA,
    STATUS_OK,
    STATUS_OOM_KILLED,
    STATUS_PROBE_ERROR,
    STATUS_SIGNAL,
    STATUS_TIMEOUT,
    TOP_LEVEL_KEYS,
    load_profile,
    validate_profile,
)
from tests.cli import EdgeshipCli

pytestmark = pytest.mark.e2e

PLE_KIND = "tf_lite_per_layer_embedder"


@pytest.fixture
def edgeship(cli: EdgeshipCli, adb_server: Any) -> EdgeshipCli:
    """The CLI as a user runs it, talking to the test's adb server."""
    return cli.with_server(adb_server)


def run_edgeship(edgeship: EdgeshipCli, *args: str) -> subprocess.CompletedProcess[str]:
    return edgeship(*args, timeout=1200)


def profile_args(build: Path, serial: str, runs: Path, *extra: str) -> list[str]:
    # The tiny model runs in about half a second: a fixed smaps cadence gives several residency samples,
    # and 256 decode steps keep the PLE table in use for several 50 ms samples even on a loaded CI machine
    # (with 64, one CI run saw decoding end between two samples: residency unknown, not a measurement).
    return [
        "profile",
        str(build),
        "--device",
        serial,
        "--prefill",
        "32",
        "--decode",
        "256",
        "--smaps-interval-ms",
        "50",
        "-o",
        str(runs),
        *extra,
    ]


def test_profile_tiny_gemma4(
    tiny_gemma4_build: Path, vdevice: Any, edgeship: EdgeshipCli, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    result = run_edgeship(
        edgeship,
        *profile_args(
            tiny_gemma4_build, vdevice.serial, runs, "--iterations", "2", "--warmup", "1", "--json"
        ),
    )
    assert result.returncode == 0, result.stderr
    [entry] = json.loads(result.stdout)
    assert entry["ok"] and entry["serial"] == vdevice.serial
    path = Path(entry["profile"])
    assert path.parent.parent.parent == runs
    data = json.loads(path.read_text())
    assert list(data) == list(TOP_LEVEL_KEYS)
    assert data["schema"] == PROFILE_SCHEMA
    assert validate_profile(data) == []
    manifest = json.loads((tiny_gemma4_build / "manifest.json").read_text())
    assert data["bundle"]["sha256"] == manifest["bundle"]["sha256"]
    assert path.parent.name == manifest["bundle"]["sha256"][:12]
    assert data["device"]["serial"] == vdevice.serial and data["device"]["abi"] == "x86_64"
    assert data["config"]["iterations"] == 2 and data["config"]["prefill"] == 32

    iterations = data["iterations"]
    assert [(it["warmup"], it["index"]) for it in iterations] == [(True, 1), (False, 1), (False, 2)]
    section_bytes = {s["kind"]: s["bytes"] for s in data["bundle"]["sections"]}
    assert PLE_KIND in section_bytes
    for it in iterations:
        assert it["exit"]["status"] == STATUS_OK, it["exit"]
        latency = it["latency"]
        for name in ("init_s", "ttft_s", "prefill_tok_s", "decode_tok_s"):
            assert latency[name] is not None and latency[name] > 0, (name, latency)
        assert latency["ttft_definition"]
        memory = it["memory"]
        assert memory["peak_rss"] > 0
        assert_hwm_from_raw_files(path.parent / it["raw_dir"], memory)
        assert 0 < memory["peak_anon"] <= memory["peak_rss"] and 0 < memory["peak_file"] <= memory["peak_rss"]
        sections = memory["sections"]
        assert set(sections) == set(section_bytes)
        resident_sum = 0
        for kind, residency in sections.items():
            assert residency["bytes"] == section_bytes[kind]
            if residency["resident_peak"] is None:  # never seen mapped: unknown, and said so
                assert residency["mapped_samples"] == 0 and kind != PLE_KIND
                continue
            assert residency["mapped_samples"] >= 1
            # a mapping's Rss is shared by overlap: its page padding never counts as the section's
            assert 0 <= residency["resident_peak"] <= residency["bytes"], kind
            resident_sum += residency["resident_peak"]
        assert sections[PLE_KIND]["resident_peak"] > 0  # decoding looked rows up in the side-table
        # the sections' pages are part of the process's RSS; RSS counters lag by a bounded slack (2%)
        assert memory["peak_rss"] >= resident_sum - memory["peak_rss"] // 50
        timeline = path.parent / it["timeline"]
        rows = timeline.read_text().splitlines()
        assert rows[0].startswith("t_ms,") and len(rows) >= 2
        assert (path.parent / it["raw_dir"] / "result.json").is_file()
        assert it["wall_s"] > 0

    measured = [it for it in iterations if not it["warmup"]]
    decode = [it["latency"]["decode_tok_s"] for it in measured]
    summary = data["summary"]
    assert summary["latency"]["decode_tok_s"]["median"] == pytest.approx(statistics.median(decode))
    assert summary["latency"]["decode_tok_s"]["n"] == 2
    assert summary["counts"]["ok"] == 2 and summary["counts"]["warmup"] == 1
    assert set(data["state"]) >= {"before", "after"} and data["state"]["before"] is not None
    assert load_profile(path).measured()[0].exit.ok


@pytest.mark.parametrize("runner", ["native", "host-python"])
def test_a_short_run_measures_every_section_it_mapped(
    runner: str, tiny_gemma4_build: Path, vdevice: Any, edgeship: EdgeshipCli, tmp_path: Path
) -> None:
    """Runs of a few tenths of a second with the default (adaptive) smaps cadence: every section the engine
    mapped has a residency figure in every run — the exit sample's, at least — and its figure at exit."""
    runs = tmp_path / "runs"
    args = ["profile", str(tiny_gemma4_build), "--device", vdevice.serial, "--prefill", "16",
            "--decode", "16", "--iterations", "3", "--warmup", "0", "--runner", runner, "-o", str(runs),
            "--json"]  # fmt: skip
    result = run_edgeship(edgeship, *args)
    assert result.returncode == 0, result.stderr
    [entry] = json.loads(result.stdout)
    data = json.loads(Path(entry["profile"]).read_text())
    assert data["runner"]["builtin"] == runner
    assert validate_profile(data) == []
    for it in data["iterations"]:
        memory = it["memory"]
        assert it["exit"]["status"] == STATUS_OK, it["exit"]
        assert memory["at_exit"] is not None, memory["at_exit_note"]
        assert memory["at_exit"]["rss"] > 0 and memory["at_exit"]["minflt"] > 0
        assert memory["faults"]["minor"] >= memory["at_exit"]["minflt"]
        for kind, residency in memory["sections"].items():
            # The engine keeps every section of this bundle mapped until it exits.
            assert residency["resident_at_exit"] is not None and residency["resident_at_exit"] > 0, kind
            assert residency["resident_peak"] is not None and residency["mapped_samples"] >= 1, kind
            assert residency["resident_at_exit"] <= residency["resident_peak"] <= residency["bytes"], kind
    ple = data["summary"]["sections"][PLE_KIND]
    assert ple["resident_peak"]["n"] == 3 and ple["resident_at_exit"]["n"] == 3
    if runner == "native":  # its library went to the device beside it, content-addressed
        [library] = data["runner"]["extra_files"]
        assert Path(library).name == "liblitert-lm.so"
        assert data["runner"]["env"]["LD_LIBRARY_PATH"].startswith("/data/local/tmp/edgeship/bin/")


def assert_hwm_from_raw_files(raw_dir: Path, memory: dict[str, Any]) -> None:
    """``hwm`` recomputed from what the probe wrote (contracts.md): the largest of VmHWM, VmRSS and
    VmRSS + VmSwap over the timeline rows and the exit sample, and wait4's ru_maxrss. Each status read also
    holds the kernel's own invariant VmHWM >= VmRSS (one read of /proc/PID/status), which a misparsed or
    swapped column breaks."""
    with (raw_dir / "timeline.csv").open(newline="") as handle:
        rows = [{k: int(v) for k, v in row.items() if v != ""} for row in csv.DictReader(handle)]
    result = json.loads((raw_dir / "result.json").read_text())
    exit_sample = result.get("exit_sample") or {}
    if exit_sample.get("taken"):
        rows.append({k: v for k, v in exit_sample["values"].items() if v is not None})
    assert rows and all(row["vm_hwm"] >= row["vm_rss"] for row in rows)
    maxrss = result["rusage"]["maxrss"]
    readings = [row["vm_hwm"] for row in rows] + [row["vm_rss"] + row["vm_swap"] for row in rows]
    assert memory["hwm"] == max([*readings, maxrss])
    assert memory["rusage_maxrss"] == maxrss and memory["peak_rss"] == max(row["vm_rss"] for row in rows)


def write_misbehaving_runner(tmp_path: Path, real_runner: Path, counter: str) -> Path:
    """Runs 1 and 4 are the real runner; run 2 kills itself with SIGKILL after a few samples; run 3 hangs;
    run 5 takes the probe down with it (as the OOM killer may), so no result.json is written.

    The real runner is the host runner's launcher (a Python script): its text runs inline, since the host's
    copy of the launcher is outside what the virtual device sees."""
    launcher = real_runner.read_text().split("\n", 1)
    python, body = launcher[0].removeprefix("#!"), launcher[1]
    script = tmp_path / "flaky_runner"
    script.write_text(
        "#!/bin/sh\n"
        f"n=$(cat {counter} 2>/dev/null || echo 0); n=$((n + 1)); echo $n > {counter}\n"
        'if [ "$n" = 2 ]; then echo "about to die" >&2; sleep 1; kill -9 $$; fi\n'
        'if [ "$n" = 3 ]; then sleep 300; fi\n'
        'if [ "$n" = 5 ]; then sleep 1; kill -9 $PPID; kill -9 $$; fi\n'
        f'exec {shlex.quote(python)} -c {shlex.quote(body)} "$@"\n'
    )
    script.chmod(0o755)
    return script


def test_profile_records_killed_and_hung_runs(
    tiny_gemma4_build: Path, vdevice: Any, edgeship: EdgeshipCli, tmp_path: Path
) -> None:
    from edgeship.android_harness.runners.resolve import resolve_runner

    # The Python runner: a launcher that needs nothing pushed beside it (the native one needs its library).
    real_runner = Path(resolve_runner("x86_64", "host-python", {}).path)
    counter = f"/data/local/tmp/edgeship-test-counter-{uuid.uuid4().hex}"
    runner = write_misbehaving_runner(tmp_path, real_runner, counter)
    runs = tmp_path / "runs"
    result = run_edgeship(
        edgeship,
        *profile_args(
            tiny_gemma4_build,
            vdevice.serial,
            runs,
            "--iterations",
            "5",
            "--warmup",
            "0",
            "--timeout",
            "20",
            "--runner",
            str(runner),
            "--json",
        ),
    )
    assert result.returncode == 6, result.stderr  # RunError: runs failed, the device did not
    assert "failed" in result.stderr
    [entry] = json.loads(result.stdout)
    assert not entry["ok"] and entry["error"] is None and entry["failed_runs"] == 3
    data = json.loads(Path(entry["profile"]).read_text())
    assert validate_profile(data) == []
    statuses = [it["exit"]["status"] for it in data["iterations"]]
    assert statuses == [STATUS_OK, STATUS_SIGNAL, STATUS_TIMEOUT, STATUS_OK, STATUS_SIGNAL]
    killed, hung = data["iterations"][1], data["iterations"][2]
    # A SIGKILL from the runner itself: a device with a memory cgroup shows the kernel killed nothing
    # (profile/oom.py); without one, edgeship can only guess.
    not_oom = "the memory cgroup recorded no OOM kill" if vdevice.memory else "likely the OOM killer"
    assert killed["exit"]["signal"] == 9 and not_oom in killed["exit"]["note"]
    assert hung["exit"]["timed_out"] and "timed out" in hung["exit"]["note"]
    assert hung["wall_s"] >= 20
    for it in (killed, hung):  # the partial timelines are kept
        rows = (Path(entry["profile"]).parent / it["timeline"]).read_text().splitlines()
        assert len(rows) >= 2
        assert it["latency"]["decode_tok_s"] is None
    assert data["summary"]["counts"]["ok"] == 2 and data["summary"]["counts"]["failed"] == 3
    both = data["iterations"][4]
    assert both["exit"]["signal"] == 9 and both["exit"]["note"].startswith(
        "probe and runner killed by SIGKILL"
    )
    assert not (Path(entry["profile"]).parent / both["raw_dir"] / "result.json").exists()
    assert both["timeline"] is not None and both["memory"]["peak_rss"] > 0  # from the partial timeline
    assert data["summary"]["latency"]["decode_tok_s"]["n"] == 2
    assert not_oom in entry["row"]["exit"]


def test_a_runner_past_the_device_ram_is_oom_killed_by_the_kernel_and_the_next_run_goes_on(
    tiny_gemma4_build: Path, adb_server: Any, vdevice_factory: Any, edgeship: EdgeshipCli, tmp_path: Path
) -> None:
    """Run 1 allocates 600 MiB on a 256 MiB device: the kernel's OOM killer ends it, the device's memory
    cgroup counts it, and profile.json says oom_killed from that record; run 2 (the real runner) is ok."""
    from edgeship.android_harness.runners.resolve import resolve_runner
    from tests.vdevice.helpers import require_memory_cgroup
    from tests.vdevice.test_memory import small_profile

    require_memory_cgroup()
    device = vdevice_factory(adb_server, profile=str(small_profile(tmp_path, 256 * 1024 * 1024)))
    real_runner = Path(resolve_runner("x86_64", "host-python", {}).path)
    python, body = real_runner.read_text().split("\n", 1)
    python = shlex.quote(python.removeprefix("#!"))
    counter = f"/data/local/tmp/edgeship-test-counter-{uuid.uuid4().hex}"
    script = tmp_path / "greedy_runner"
    script.write_text(
        "#!/bin/sh\n"
        f"n=$(cat {counter} 2>/dev/null || echo 0); n=$((n + 1)); echo $n > {counter}\n"
        f'if [ "$n" = 1 ]; then exec {python} -c "b = b\'x\' * (600 << 20)"; fi\n'
        f'exec {python} -c {shlex.quote(body)} "$@"\n'
    )
    script.chmod(0o755)
    runs = tmp_path / "runs"
    result = run_edgeship(
        edgeship,
        *profile_args(
            tiny_gemma4_build, device.serial, runs, "--iterations", "2", "--warmup", "0", "--runner",
            str(script), "--json",
        ),
    )  # fmt: skip
    assert result.returncode == 6, result.stderr  # a run failed; the device did not
    [entry] = json.loads(result.stdout)
    data = json.loads(Path(entry["profile"]).read_text())
    assert validate_profile(data) == []
    oom, after = data["iterations"]
    assert oom["exit"]["status"] == STATUS_OOM_KILLED and oom["exit"]["signal"] == 9
    assert oom["exit"]["note"] == "killed by the kernel's OOM killer (memory cgroup oom_kill 0 → 1)"
    assert oom["timeline"] is not None and oom["samples"] >= 1  # its partial timeline is kept
    assert after["exit"]["status"] == STATUS_OK and after["latency"]["decode_tok_s"] > 0
    assert device.memory.oom_kills() == 1


def test_profile_two_devices_one_without_runner(
    tiny_gemma4_build: Path, vdevice_factory: Any, adb_server: Any, edgeship: EdgeshipCli, tmp_path: Path
) -> None:
    """Devices run in parallel; one that cannot be profiled (an arm64 phone with no litert_lm_main configured)
    is reported and the other still gets its profile; the exit code is DeviceError's."""
    arm_profile = tmp_path / "varm64.yaml"
    builtin = Path(__file__).resolve().parents[3] / "edgeship" / "vdevice" / "profiles" / "vbudget4g.yaml"
    arm_profile.write_text(
        builtin.read_text()
        .replace("abi: x86_64", "abi: arm64-v8a")
        .replace("name: vbudget4g", "name: varm64")
    )
    good = vdevice_factory(adb_server, name="good")
    arm = vdevice_factory(adb_server, name="arm", profile=str(arm_profile))
    runs = tmp_path / "runs"
    result = run_edgeship(
        edgeship,
        *profile_args(
            tiny_gemma4_build,
            good.serial,
            runs,
            "--device",
            arm.serial,
            "--iterations",
            "1",
            "--warmup",
            "0",
            "--cooldown-c",
            "150",
            "--json",
        ),
    )
    assert result.returncode == 5, result.stderr  # DeviceError
    entries = {entry["serial"]: entry for entry in json.loads(result.stdout)}
    assert entries[good.serial]["ok"] and entries[good.serial]["profile"]
    assert not entries[arm.serial]["ok"] and entries[arm.serial]["profile"] is None
    assert "litert_lm_main" in entries[arm.serial]["error"] and "--runner" in entries[arm.serial]["error"]
    assert "litert_lm_main" in result.stderr
    data = json.loads(Path(entries[good.serial]["profile"]).read_text())
    [iteration] = data["iterations"]
    assert iteration["exit"]["status"] == STATUS_OK
    cooldown = iteration["cooldown"]  # below 150 °C already, or a device without readable zones
    assert cooldown["threshold_c"] == 150
    assert cooldown["reached"] or cooldown["note"] == "device exposes no readable thermal zone"


def _long_profile_after_two_runs(
    build: Path, vdevice: Any, edgeship: EdgeshipCli, tmp_path: Path
) -> tuple[subprocess.Popen[str], Path]:
    """`edgeship profile` of 200 runs as a process, returned once its profile.json holds two finished runs."""
    import time

    runs = tmp_path / "runs"
    args = profile_args(build, vdevice.serial, runs, "--iterations", "200", "--warmup", "0")
    process = edgeship.popen(*args)
    deadline = time.monotonic() + 300
    profiles: list[Path] = []
    while time.monotonic() < deadline and process.poll() is None:
        profiles = list(runs.glob("*/*/profile.json"))
        if profiles and len(json.loads(profiles[0].read_text())["iterations"]) >= 2:
            break
        time.sleep(0.2)
    assert profiles, "no profile.json appeared"
    return process, profiles[0]


def test_profile_interrupted_keeps_finished_runs(
    tiny_gemma4_build: Path, vdevice: Any, edgeship: EdgeshipCli, tmp_path: Path
) -> None:
    """Ctrl-C: the device stops after its current run, exit 130, profile.json valid with the finished runs."""
    import signal

    process, profile_path = _long_profile_after_two_runs(tiny_gemma4_build, vdevice, edgeship, tmp_path)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr
    data = json.loads(profile_path.read_text())
    assert validate_profile(data) == []
    assert 2 <= len(data["iterations"]) < 200
    assert all(it["exit"]["status"] == STATUS_OK for it in data["iterations"])
    assert data["summary"]["counts"]["ok"] == len(data["iterations"])


def test_profile_device_lost_mid_way_keeps_finished_runs(
    tiny_gemma4_build: Path, vdevice: Any, edgeship: EdgeshipCli, tmp_path: Path
) -> None:
    """The phone goes away (cable pulled): exit 5, one line naming it, profile.json keeps finished runs."""

    process, profile_path = _long_profile_after_two_runs(tiny_gemma4_build, vdevice, edgeship, tmp_path)
    vdevice.stop()  # the device's adbd goes away: every connection drops, every command on it dies
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 5, stderr
    error_lines = [line for line in stderr.splitlines() if line.startswith("edgeship: error:")]
    assert len(error_lines) == 1 and vdevice.serial in error_lines[0]
    data = json.loads(profile_path.read_text())
    assert validate_profile(data) == []
    finished = [it for it in data["iterations"] if it["exit"]["status"] == STATUS_OK]
    assert 2 <= len(finished) < 200
    assert all(it["exit"]["status"] == STATUS_OK for it in data["iterations"][: len(finished)])
    # Whatever was running when it went away is recorded as such, not dropped and not counted as ok.
    *_, lost = data["iterations"]
    assert len(data["iterations"]) == len(finished) + 1
    assert (lost["index"], lost["warmup"]) == (len(finished) + 1, False)
    assert lost["exit"]["status"] == STATUS_PROBE_ERROR and lost["exit"]["note"].startswith("device lost:")
    assert data["summary"]["counts"]["ok"] == len(finished) and data["summary"]["counts"]["failed"] == 1
    # state.after is taken after the last run only when the device is still there (contracts.md).
    assert data["state"]["before"] is not None and data["state"]["after"] is None


def test_profiling_again_replaces_the_runs_and_each_run_is_one_engine_iteration(
    tiny_gemma4_build: Path, vdevice: Any, edgeship: EdgeshipCli, tmp_path: Path
) -> None:
    """contracts.md: the same bundle on the same device into the same RUNS_DIR replaces that folder's runs
    and profile.json; every run is one probe run of the runner with --num_iterations=1."""
    runs = tmp_path / "runs"
    first = run_edgeship(
        edgeship, *profile_args(tiny_gemma4_build, vdevice.serial, runs, "--iterations", "2", "--warmup", "1")
    )
    assert first.returncode == 0, first.stderr
    [profile_path] = runs.glob("*/*/profile.json")
    folder = profile_path.parent
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["iter-1", "iter-2", "warmup-1"]
    for raw in ("warmup-1", "iter-1", "iter-2"):
        argv = json.loads((folder / raw / "result.json").read_text())["argv"]
        assert [a for a in argv if a.startswith("--num_iterations")] == ["--num_iterations=1"], argv
        stdout = (folder / raw / "stdout.txt").read_text()  # the runner's own account: one decode turn
        assert "Decode Turn 1:" in stdout and "Decode Turn 2:" not in stdout
    old = {raw: (folder / raw / "result.json").read_bytes() for raw in ("iter-1", "iter-2")}

    again = run_edgeship(
        edgeship, *profile_args(tiny_gemma4_build, vdevice.serial, runs, "--iterations", "1", "--warmup", "0")
    )
    assert again.returncode == 0, again.stderr
    assert list(runs.glob("*/*/profile.json")) == [profile_path]
    data = json.loads(profile_path.read_text())
    assert [(it["warmup"], it["index"]) for it in data["iterations"]] == [(False, 1)]
    assert data["summary"]["counts"] == {
        "warmup": 0, "measured": 1, "ok": 1, "failed": 0, "by_status": {"ok": 1},
    }  # fmt: skip
    # The old runs' folders are gone, not mixed in; iter-1 is the new run's.
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["iter-1"]
    assert (folder / "iter-1" / "result.json").read_bytes() != old["iter-1"]


def test_weight_cache_keep_cold_and_off(
    tiny_gemma4_build: Path, vdevice: Any, adb_server: Any, edgeship: EdgeshipCli, tmp_path: Path
) -> None:
    """LiteRT-LM writes an XNNPACK weight cache beside the bundle unless told not to. keep: it is there after
    a run; cold: whatever cache was there is gone before each run (a planted one disappears); off: the runner
    gets --disable_cache and writes none. profile.json config says which."""
    shell = adb_server.client().device(vdevice.serial).shell
    sha256 = json.loads((tiny_gemma4_build / "manifest.json").read_text())["bundle"]["sha256"]
    bundle_dir = f"/data/local/tmp/edgeship/bundles/{sha256}"

    def caches() -> list[str]:
        return sorted(
            name for name in shell(f"ls -1 {bundle_dir}").split() if name.startswith("model.litertlm_")
        )

    def profile(mode: str) -> dict[str, Any]:
        runs = tmp_path / mode
        args = profile_args(tiny_gemma4_build, vdevice.serial, runs, "--iterations", "1", "--warmup", "0")
        result = run_edgeship(edgeship, *args, "--weight-cache", mode)
        assert result.returncode == 0, result.stderr
        [path] = runs.glob("*/*/profile.json")
        data = json.loads(path.read_text())
        assert data["config"]["weight_cache"] == mode
        data["argv"] = json.loads((path.parent / "iter-1" / "result.json").read_text())["argv"]
        return data

    def stamp(name: str) -> str:  # mtime to the nanosecond and inode: changes if the file is written again
        return shell(f"stat -c '%y %i' {bundle_dir}/{name}").strip()

    kept = profile("keep")
    assert "--disable_cache" not in kept["argv"]
    [written] = caches()
    assert written.endswith(".xnnpack_cache"), written
    first = stamp(written)
    # Later launches map it and leave it as it is. (With the whole-second mtime adbd gives a pushed file,
    # the engine named it by s or s-1 from one launch to the next and wrote it again: push stamps it anew.)
    for _ in range(3):
        profile("keep")
        assert caches() == [written] and stamp(written) == first

    planted = "model.litertlm_0_0.xnnpack_cache"
    shell(f"echo stale > {bundle_dir}/{planted}")
    profile("cold")
    [fresh] = caches()  # removed before the run (planted and kept alike), then the run wrote its own
    assert fresh != planted and fresh.endswith(".xnnpack_cache"), fresh
    assert stamp(fresh) != first

    shell(f"rm -f {bundle_dir}/model.litertlm_*")
    off = profile("off")
    assert "--disable_cache" in off["argv"]
    assert caches() == []
