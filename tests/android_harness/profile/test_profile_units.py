"""The pure pieces of the profile orchestration: command line, exit classification, memory, build reading."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from edgeship.android_harness.profile.options import ProfileOptions
from edgeship.android_harness.profile.outcome import classify_exit, memory_record
from edgeship.android_harness.profile.run import probe_shell_command
from edgeship.android_harness.profile.session import bundle_record, sanitize_serial, unique_sections
from edgeship.errors import DeviceError, InputError, UsageError
from edgeship.exporter.manifest import Section, read_build
from edgeship.hashing import sha256_file
from edgeship.profiles.schema import (
    STATUS_CRASH,
    STATUS_NO_METRICS,
    STATUS_OK,
    STATUS_PROBE_ERROR,
    STATUS_SIGNAL,
    STATUS_TIMEOUT,
)
from tests.android_harness.synthetic import write_build
from tests.cli import EdgeshipCli


def test_sanitize_serial() -> None:
    assert sanitize_serial("127.0.0.1:40001") == "127.0.0.1_40001"
    assert sanitize_serial("R5CT1234") == "R5CT1234"
    assert sanitize_serial("../../etc") == "_.._etc"
    assert "/" not in sanitize_serial("a/b") and sanitize_serial("..") == "device"


def test_probe_command_quotes_every_word(tmp_path: Path) -> None:
    """Run the command line in a real shell with a fake probe that echoes its argv: nothing is interpreted."""
    fake_probe = tmp_path / "probe it"
    fake_probe.write_text('#!/bin/sh\nprintf "%s\\n" "$PWD" "$WEIRD" "$@"\n')
    fake_probe.chmod(0o755)
    out_dir = tmp_path / "run $(touch pwned) dir"
    bundle = "/data/local/tmp/x; rm -rf /;`id`.litertlm"
    runner = ["/bin/runner", "--model_path", bundle, "--flag=it's"]
    command = probe_shell_command(
        probe=str(fake_probe),
        out_dir=str(out_dir),
        interval_ms=50,
        timeout_s=12.5,
        maps=[bundle],
        runner_argv=runner,
        env={"WEIRD": "a b;$(c)"},
        smaps_interval_ms=200,
    )
    result = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True, cwd=tmp_path)
    lines = result.stdout.splitlines()
    assert lines[0] == str(out_dir)  # the probe runs inside the run dir, which it created
    assert lines[1] == "a b;$(c)"
    assert lines[2:] == [
        "--interval-ms",
        "50",
        "--timeout-s",
        "12.5",
        "--smaps-interval-ms",
        "200",
        "--maps",
        bundle,
        "--out",
        str(out_dir),
        "--",
        *runner,
    ]
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    ("code", "sig", "timed_out", "metrics", "status", "words"),
    [
        (0, None, False, True, STATUS_OK, None),
        (None, 9, True, False, STATUS_TIMEOUT, "timed out"),
        (None, signal.SIGKILL, False, False, STATUS_SIGNAL, "likely the OOM killer"),
        (None, signal.SIGTERM, False, False, STATUS_SIGNAL, "SIGTERM"),
        (None, signal.SIGSEGV, False, False, STATUS_CRASH, "crashed with SIGSEGV"),
        (3, None, False, False, STATUS_CRASH, "code 3"),
        (0, None, False, False, STATUS_NO_METRICS, "no benchmark figures"),
        (None, None, False, False, STATUS_PROBE_ERROR, "no exit status"),
    ],
)
def test_classify_exit(code, sig, timed_out, metrics, status, words) -> None:  # type: ignore[no-untyped-def]
    result = classify_exit(code, sig, timed_out, metrics, timeout_s=30)
    assert result.status == status
    assert result.timed_out == timed_out
    assert (result.note is None) if words is None else (words in result.note)


def test_memory_record_keeps_missing_fields_missing() -> None:
    figures = {
        "peak_rss": 100,
        "hwm": 120,
        "peak_anon": 40,
        "peak_file": 60,
        "peak_swap": None,
        "peak_pss": None,
    }
    memory = memory_record(figures, {"ple": {"bytes": 1000, "resident_peak": 10}}, rusage_maxrss=130)
    assert (memory.peak_rss, memory.hwm, memory.peak_anon, memory.peak_file) == (100, 120, 40, 60)
    assert memory.peak_pss is None and memory.peak_swap is None
    assert memory.rusage_maxrss == 130
    assert memory.sections["ple"].bytes == 1000 and memory.sections["ple"].resident_peak == 10
    assert memory_record({}, {}, None).rusage_maxrss is None


def test_section_spans_are_sorted_and_unique() -> None:
    spans = unique_sections(
        [
            Section("TFLiteModel", 32768, 49152),
            Section("LlmMetadataProto", 16384, 16400),
            Section("TFLiteModel", 65536, 65540),
        ]
    )
    assert [s.kind for s in spans] == ["LlmMetadataProto", "TFLiteModel", "TFLiteModel#2"]
    assert [s.bytes for s in spans] == [16, 16384, 4]


def test_bundle_record(tmp_path: Path) -> None:
    manifest = {
        "schema": "edgeship.manifest/1",
        "bundle": {"file": "model.litertlm", "bytes": 32768, "sha256": "ab" * 32},
        "sections": [
            {"kind": "tf_lite_per_layer_embedder", "offset": 16384, "end": 32768, "sha256": "cd" * 32}
        ],
        "model": {"arch": "gemma4"},
        "export": {"recipe": "int8"},
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "model.litertlm").write_bytes(b"\0" * 32768)
    record = bundle_record(read_build(tmp_path))
    assert record["manifest_sha256"] == sha256_file(tmp_path / "manifest.json")
    assert record["sections"] == [
        {"kind": "tf_lite_per_layer_embedder", "offset": 16384, "end": 32768, "bytes": 16384}
    ]


def test_options_validation() -> None:
    ProfileOptions().validate()
    assert ProfileOptions(prefill=32, decode=16).effective_max_tokens == 48
    for bad in (
        ProfileOptions(iterations=0),
        ProfileOptions(warmup=-1),
        ProfileOptions(timeout_s=0),
        ProfileOptions(backend="tpu"),
        ProfileOptions(threads=0),
        ProfileOptions(interval_ms=50, smaps_interval_ms=10),
    ):
        with pytest.raises(UsageError):
            bad.validate()


def test_exit_code_follows_what_failed() -> None:
    from edgeship.android_harness.profile.orchestrate import DeviceOutcome, raise_for_outcomes
    from edgeship.errors import DeviceError, RunError

    raise_for_outcomes([DeviceOutcome("a"), DeviceOutcome("b")])  # all well: no error
    with pytest.raises(RunError, match=r"3 profiled run\(s\) failed on a \(1\), b \(2\)"):
        raise_for_outcomes([DeviceOutcome("a", failed_runs=1), DeviceOutcome("b", failed_runs=2)])
    with pytest.raises(DeviceError, match=r"b: offline \(and 1 more devices\)"):
        raise_for_outcomes(
            [
                DeviceOutcome("a", failed_runs=1),
                DeviceOutcome("b", error="b: offline"),
                DeviceOutcome("c", error="x"),
            ]
        )


def _lab_host_that_never_answers(cli: EdgeshipCli) -> EdgeshipCli:
    """`edgeship profile` as a user runs it, configured with one lab host that never answers (TEST-NET-1):
    any question to a device would fail with a DeviceError (exit 5) after the connect timeout."""
    return cli.with_config('adb_servers: ["192.0.2.1:5037"]\n')


def test_profile_refuses_the_build_dir_before_asking_any_device(cli: EdgeshipCli, tmp_path: Path) -> None:
    lab = _lab_host_that_never_answers(cli)
    runs = tmp_path / "runs"
    missing = lab("profile", "/nonexistent", "--all", "-o", runs, timeout=120)
    assert missing.returncode == InputError.exit_code, missing.stderr
    [line] = missing.stderr.strip().splitlines()
    assert line.startswith("edgeship: error: /nonexistent is not a folder") and "BUILD_DIR" in line
    assert "adb" not in line and not (tmp_path / "runs").exists()
    # Options that do not fit the bundle's KV cache (1024 tokens) are refused before any device too.
    build = write_build(tmp_path / "build", [("tf_lite_prefill_decode", os.urandom(50_000))])
    too_long = lab("profile", build, "--all", "--prefill", "1000", "--decode", "100", "-o", runs, timeout=120)
    assert too_long.returncode == UsageError.exit_code, too_long.stderr
    assert "exceeds the bundle's cache length 1024" in too_long.stderr
    # A good build: only now is the device side asked, and it is the lab host that is reported.
    asked = lab("profile", build, "--all", "-o", runs, timeout=120)
    assert asked.returncode == DeviceError.exit_code and "192.0.2.1:5037" in asked.stderr
