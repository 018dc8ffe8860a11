"""Push against virtual devices through a real adb server: reuse, idempotence, resume, refusals, CLI, gc."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from edgeship.android_harness.adb import parse_df_available, select_devices
from edgeship.android_harness.adb.device import Device
from edgeship.android_harness.push import push_bundle, push_many
from edgeship.android_harness.push.script import parse_survey, survey_script
from edgeship.android_harness.store import (
    BLOCK,
    PARTIAL_PREFIX,
    collect_garbage,
    partial_name,
    plan_transfer,
    transfer,
)
from edgeship.console import TransferProgress
from edgeship.errors import InputError
from edgeship.exporter.manifest import read_build
from tests.android_harness.conftest import config_for, device_on
from tests.android_harness.synthetic import write_build
from tests.android_harness.traffic import TrafficTap, device_sha256
from tests.cli import EdgeshipCli

ROOT = "/data/local/tmp/edgeship"


def _host_path(vdevice: Any, remote: str) -> Path:
    return vdevice.sandbox_root / Path(remote).relative_to("/data/local/tmp")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def builds(tmp_path: Path) -> dict[str, Path]:
    """v1, and v2 where only the 'transformer' changed (PLE bytes identical)."""
    ple = os.urandom(6 * 1024 * 1024 + 1234)
    embedder = os.urandom(300_000)
    v1 = write_build(
        tmp_path / "v1",
        [
            ("tf_lite_per_layer_embedder", ple),
            ("tf_lite_embedder", embedder),
            ("tf_lite_prefill_decode", os.urandom(2_000_000)),
        ],
    )
    v2 = write_build(
        tmp_path / "v2",
        [
            ("tf_lite_per_layer_embedder", ple),
            ("tf_lite_embedder", embedder),
            ("tf_lite_prefill_decode", os.urandom(2_100_000)),
        ],
    )
    return {"v1": v1, "v2": v2}


def test_first_push_present_and_transformer_only_rebuild(
    device: Device, vdevice: Any, builds: dict[str, Path]
) -> None:
    v1, v2 = read_build(builds["v1"]), read_build(builds["v2"])
    first = push_bundle(device, builds["v1"])
    assert first.ok and first.status == "pushed", first.error
    assert first.bytes_reused == 0 and first.bytes_sent >= v1.bytes
    final = _host_path(vdevice, first.remote_path)
    assert _sha(final) == v1.sha256
    folder = final.parent
    assert (folder / "manifest.json").read_bytes() == (builds["v1"] / "manifest.json").read_bytes()
    assert (folder / "tokenizer.json").read_bytes() == (builds["v1"] / "tokenizer.json").read_bytes()
    assert not any((vdevice.sandbox_root / "edgeship" / "staging").iterdir())

    again = push_bundle(device, builds["v1"])
    assert again.ok and again.status == "present" and again.bytes_sent == 0

    rebuild = push_bundle(device, builds["v2"])
    assert rebuild.ok and rebuild.status == "pushed", rebuild.error
    changed = v2.sections[2].bytes
    header = v2.sections[0].offset
    manifest = (builds["v2"] / "manifest.json").stat().st_size
    # Derived bound: the changed section, the header, one block per reused section, and the new manifest
    # (the tokenizer is the same file, copied on the device).
    assert rebuild.bytes_sent <= changed + header + 2 * BLOCK + manifest
    assert rebuild.bytes_reused >= v2.sections[0].bytes - BLOCK
    assert _sha(_host_path(vdevice, rebuild.remote_path)) == v2.sha256
    assert _sha(final) == v1.sha256  # the older bundle is untouched


def test_a_bundle_damaged_on_the_device_is_caught_only_with_verify_present(
    device: Device, vdevice: Any, builds: dict[str, Path]
) -> None:
    v1 = read_build(builds["v1"])
    first = push_bundle(device, builds["v1"])
    assert first.ok, first.error
    final = _host_path(vdevice, first.remote_path)
    assert push_bundle(device, builds["v1"], verify_present=True).status == "present"  # intact: kept
    with final.open("r+b") as handle:  # flipped in place on the device: same size
        handle.seek(v1.sections[0].offset + 100)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))
    assert push_bundle(device, builds["v1"]).status == "present"  # by size, as documented
    planned = push_bundle(device, builds["v1"], verify_present=True, dry_run=True)
    assert planned.ok and planned.status == "planned" and planned.bytes_sent >= v1.bytes
    assert _sha(final) != v1.sha256  # a dry run changes nothing
    again = push_bundle(device, builds["v1"], verify_present=True)
    assert again.ok and again.status == "pushed", again.error
    assert _sha(final) == v1.sha256
    assert not (vdevice.sandbox_root / "edgeship" / "staging" / v1.sha256).exists()


def test_dry_run_sends_nothing(device: Device, vdevice: Any, builds: dict[str, Path]) -> None:
    planned = push_bundle(device, builds["v1"], dry_run=True)
    assert planned.ok and planned.status == "planned"
    assert planned.bytes_sent >= read_build(builds["v1"]).bytes
    assert not (vdevice.sandbox_root / "edgeship" / "bundles").exists()


class _LinkCut(Exception):
    pass


def _partial_bytes(pieces: Path) -> int:
    """What a first push's partial link (pieces/partial.<attempt>) holds, on the host side of the sandbox."""
    sizes = [0]
    with contextlib.suppress(FileNotFoundError):
        for path in pieces.iterdir():
            if path.name.startswith(PARTIAL_PREFIX):
                with contextlib.suppress(FileNotFoundError):
                    sizes.append(path.stat().st_size)
    return max(sizes)


class _CutAfter(TransferProgress):
    """A link that dies once ``limit`` bytes went out — after the device's partial link in ``pieces`` holds
    ``limit // 2`` of them (polled on the host side of the sandbox): the cut lands on bytes that arrived."""

    def __init__(self, limit: int, pieces: Path) -> None:
        self.limit = limit
        self.pieces = pieces
        self.sent = 0
        self.arrived = 0

    def advance(self, sent: int) -> None:
        self.sent += sent
        if self.sent < self.limit:
            return
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            self.arrived = _partial_bytes(self.pieces)
            if self.arrived >= self.limit // 2:
                raise _LinkCut
            time.sleep(0.01)
        raise AssertionError(f"{self.pieces}: {self.arrived} bytes after 60 s, {self.sent} sent")


def test_interrupted_first_push_resumes_from_what_arrived(
    device: Device, vdevice: Any, builds: dict[str, Path]
) -> None:
    local = read_build(builds["v1"])
    pieces = vdevice.sandbox_root / "edgeship" / "staging" / local.sha256 / "pieces"
    cut = _CutAfter(local.bytes // 2, pieces)
    with pytest.raises(_LinkCut):
        push_bundle(device, builds["v1"], progress=cut)
    # adbd dropped its half-received file; the device script's hard link kept the bytes that had arrived.
    assert _partial_bytes(pieces) >= cut.arrived >= local.bytes // 4
    assert not (vdevice.sandbox_root / "edgeship" / "bundles").exists()
    resumed = push_bundle(device, builds["v1"])
    assert resumed.ok, resumed.error
    assert resumed.bytes_resumed >= cut.arrived // BLOCK * BLOCK
    assert resumed.bytes_sent < local.bytes
    assert _sha(_host_path(vdevice, resumed.remote_path)) == local.sha256


def test_interrupted_rebuild_resumes_with_the_pieces_that_arrived(
    device: Device, vdevice: Any, builds: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transfer, "PIECE_GRID", 512 * 1024)
    assert push_bundle(device, builds["v1"]).ok
    local = read_build(builds["v2"])
    index = parse_survey(device.shell(survey_script(ROOT, local.sha256)).text).index
    plan = plan_transfer(local, index)
    assert plan.copies and len(plan.pieces) >= 2
    staging = f"{ROOT}/staging/{local.sha256}/pieces"
    device.shell(["mkdir", "-p", staging], check=True)
    # What a push killed in its second piece leaves: one whole piece, one cut short.
    whole, cut = plan.pieces[0], plan.pieces[1]
    device.push_range(local.bundle_path, f"{staging}/{whole.name}", whole.offset, whole.length)
    device.push_range(local.bundle_path, f"{staging}/{cut.name}", cut.offset, cut.length // 2)
    resumed = push_bundle(device, builds["v2"])
    assert resumed.ok, resumed.error
    assert resumed.bytes_resumed == whole.length
    assert resumed.bytes_sent < plan.bytes_to_send
    assert _sha(_host_path(vdevice, resumed.remote_path)) == local.sha256


def test_a_corrupt_partial_is_caught_and_the_push_redone(
    device: Device, vdevice: Any, builds: dict[str, Path]
) -> None:
    local = read_build(builds["v1"])
    staging = f"{ROOT}/staging/{local.sha256}/pieces"
    device.shell(["mkdir", "-p", staging], check=True)
    # A prefix with the wrong bytes, left by a push that is gone (no attempt folder).
    device.push_bytes(os.urandom(8 * BLOCK), f"{staging}/{partial_name('attempt-gone')}")
    result = push_bundle(device, builds["v1"])
    assert result.ok, result.error
    assert result.bytes_sent >= local.bytes
    assert _sha(_host_path(vdevice, result.remote_path)) == local.sha256


def test_not_enough_space_is_refused_before_sending(device: Device, vdevice: Any, tmp_path: Path) -> None:
    build = write_build(tmp_path / "huge", [("tf_lite_prefill_decode", b"x" * 100)])
    manifest = json.loads((build / "manifest.json").read_text())
    # What the device itself reports: inside the sandbox a filesystem may show other free space than the
    # host's statvfs (reserved blocks counted per uid), and the push trusts the device.
    free = parse_df_available(device.shell(["df", "-k", ROOT.rsplit("/", 1)[0]]).text.splitlines())
    assert free is not None
    huge = 2 * free + BLOCK  # sparse: twice what the device says it has free
    with (build / "model.litertlm").open("r+b") as handle:
        handle.truncate(huge)
    manifest["bundle"]["bytes"] = huge
    (build / "manifest.json").write_text(json.dumps(manifest))
    result = push_bundle(device, build, verify=False)
    assert not result.ok
    assert "needs" in result.error and "has" in result.error and "\n" not in result.error
    assert not (vdevice.sandbox_root / "edgeship" / "staging").exists()


def test_unwritable_root_fails_in_one_line(device: Device, builds: dict[str, Path]) -> None:
    result = push_bundle(device, builds["v1"], root="/system/edgeship")
    assert not result.ok and result.error and "\n" not in result.error


def test_bad_build_is_refused_before_anything_is_sent(device: Device, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no manifest\.json"):
        push_bundle(device, tmp_path)


def test_push_many_and_gc(adb_server: Any, vdevice_factory: Any, builds: dict[str, Path]) -> None:
    virtual = [vdevice_factory(name=f"many{i}") for i in range(2)]
    devices = [device_on(adb_server, item) for item in virtual]
    v1, v2 = read_build(builds["v1"]), read_build(builds["v2"])
    results = push_many(devices, builds["v1"])
    assert [r.ok for r in results] == [True, True]
    assert {r.serial for r in results} == {d.serial for d in devices}
    # Each phone's own sha256sum of its copy, not push's "ok".
    for result in results:
        assert device_sha256(adb_server, result.serial, result.remote_path) == v1.sha256
    rebuilds = [push_bundle(d, builds["v2"]) for d in devices]
    assert all(r.ok for r in rebuilds), [r.error for r in rebuilds]
    for result in rebuilds:
        assert device_sha256(adb_server, result.serial, result.remote_path) == v2.sha256
    # Leftovers: one abandoned an hour ago, one a push is writing to right now.
    staging = virtual[0].sandbox_root / "edgeship" / "staging"
    for name, age_s in (("a" * 64, 3600), ("b" * 64, 0)):
        piece = staging / name / "pieces" / "0-16384"
        piece.parent.mkdir(parents=True)
        piece.write_bytes(b"x" * 16384)
        when = time.time() - age_s
        for path in (piece, piece.parent, piece.parent.parent):
            os.utime(path, (when, when))
    dry = collect_garbage(devices[0], keep=1, dry_run=True)
    assert dry.removed_bundles == [v1.sha256]
    assert dry.removed_leftovers == [f"staging/{'a' * 64}"] and dry.in_use == [f"staging/{'b' * 64}"]
    done = collect_garbage(devices[0], keep=1)
    assert done.ok and done.kept == [v2.sha256]
    assert not (staging / ("a" * 64)).exists() and (staging / ("b" * 64)).exists()
    assert device_sha256(adb_server, devices[0].serial, results[0].remote_path) == ""  # v1 is gone
    assert device_sha256(adb_server, devices[0].serial, rebuilds[0].remote_path) == v2.sha256
    assert push_bundle(devices[0], builds["v1"]).status == "pushed"  # gone, so sent again


def test_cli_push_devices_and_errors(
    cli: EdgeshipCli, adb_server: Any, vdevice: Any, builds: dict[str, Path], tmp_path: Path
) -> None:
    edgeship = cli.with_server(adb_server)
    pushed = edgeship("push", str(builds["v1"]), "--device", vdevice.serial, "--json")
    assert pushed.returncode == 0, pushed.stderr
    [row] = json.loads(pushed.stdout)
    assert {"serial", "bundle_sha256", "bytes_sent", "bytes_reused", "seconds", "ok", "error"} <= set(row)
    assert row["ok"] and row["bundle_sha256"] == read_build(builds["v1"]).sha256
    assert device_sha256(adb_server, vdevice.serial, row["remote_path"]) == row["bundle_sha256"]
    checked = edgeship("push", str(builds["v1"]), "--device", vdevice.serial, "--verify-present", "--json")
    assert checked.returncode == 0 and json.loads(checked.stdout)[0]["status"] == "present", checked.stderr

    listed = edgeship("devices", "--json")
    assert listed.returncode == 0, listed.stderr
    [entry] = [d for d in json.loads(listed.stdout) if d["serial"] == vdevice.serial]
    assert entry["abi"] == "x86_64" and entry["ram_total"] > 0

    no_manifest = edgeship("push", str(tmp_path), "--device", vdevice.serial)
    assert no_manifest.returncode == InputError.exit_code
    assert no_manifest.stderr.strip().count("\n") == 0 and "manifest" in no_manifest.stderr
    tampered = tmp_path / "tampered"
    shutil.copytree(builds["v1"], tampered)
    with (tampered / "model.litertlm").open("r+b") as handle:
        handle.seek(BLOCK + 5)
        handle.write(b"\x00\xff")
    refused = edgeship("push", str(tampered), "--device", vdevice.serial)
    assert refused.returncode == InputError.exit_code and "does not match its manifest" in refused.stderr
    assert not (vdevice.sandbox_root / "edgeship" / "staging" / read_build(builds["v1"]).sha256).exists()
    unknown = edgeship("push", str(builds["v1"]), "--device", "nope:1")
    assert unknown.returncode == 5 and "not connected" in unknown.stderr
    both = edgeship("push", str(builds["v1"]), "--verify-present", "--no-verify")
    assert both.returncode != 0 and both.stderr.strip().count("\n") == 0 and "--no-verify" in both.stderr
    dry = edgeship("push", str(builds["v2"]), "--dry-run", "--json")
    assert dry.returncode == 0 and json.loads(dry.stdout)[0]["status"] == "planned"
    gc = edgeship("gc", "--keep", "0", "--json")
    assert gc.returncode == 0 and json.loads(gc.stdout)[0]["removed_bundles"]


@pytest.mark.e2e
def test_real_exported_build(device: Device, vdevice: Any, tiny_gemma4_build: Path) -> None:
    local = read_build(tiny_gemma4_build)
    assert local.sections and any(s.kind == "tf_lite_per_layer_embedder" for s in local.sections)
    result = push_bundle(device, tiny_gemma4_build)
    assert result.ok, result.error
    folder = _host_path(vdevice, result.remote_path).parent
    assert _sha(folder / "model.litertlm") == local.sha256
    tokenizer = json.loads((tiny_gemma4_build / "manifest.json").read_text())["tokenizer"]["file"]
    assert (folder / tokenizer).read_bytes() == (tiny_gemma4_build / tokenizer).read_bytes()
    # The device's section index lists exactly the manifest's sections.
    index = [line.split() for line in (folder / "sections.txt").read_text().splitlines()]
    assert {(row[0], int(row[1]), int(row[2])) for row in index if len(row[0]) == 64} == {
        (s.sha256, s.offset, s.end) for s in local.sections
    }
    assert push_bundle(device, tiny_gemma4_build).status == "present"


def test_two_pushes_of_one_bundle_to_one_device_at_once(
    device: Device, adb_server: Any, vdevice: Any, builds: dict[str, Path]
) -> None:
    """Two CI jobs pushing the same build to the same phone: each writes its own attempt folder."""
    from concurrent.futures import ThreadPoolExecutor

    other = device_on(adb_server, vdevice)  # a second handle, as a second process would have
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda d: push_bundle(d, builds["v1"]), [device, other]))
    assert all(r.ok for r in results), [r.error for r in results]
    final = _host_path(vdevice, results[0].remote_path)
    sha = read_build(builds["v1"]).sha256
    assert _sha(final) == sha
    assert sorted(p.name for p in final.parent.iterdir()) == [
        "manifest.json",
        "model.litertlm",
        "sections.txt",
        "tokenizer.json",
    ]
    # Whichever push finished last tidied up: no attempt folder, pieces or partial link is left.
    assert not (final.parent.parent.parent / "staging" / sha).exists()


def _flip_a_byte(path: Path, offset: int) -> None:
    with path.open("r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))


def test_a_bundle_pushed_unverified_is_never_present_for_a_verified_push(
    device: Device, vdevice: Any, builds: dict[str, Path]
) -> None:
    """--no-verify lands its bundle at the content-addressed path; main then took it as "present" by its
    size for every later push and profile, even when the bytes that arrived were wrong."""
    local = read_build(builds["v1"])
    unverified = push_bundle(device, builds["v1"], verify=False)
    assert unverified.ok and unverified.status == "pushed", unverified.error
    final = _host_path(vdevice, unverified.remote_path)
    _flip_a_byte(final, local.sections[0].offset + 100)  # what an unchecked transfer may have delivered
    assert push_bundle(device, builds["v1"], verify=False).status == "present"  # sizes only, as asked
    marked = (final.parent / "unverified").exists()
    checked = push_bundle(device, builds["v1"])
    assert (checked.ok, checked.status, checked.error, _sha(final) == local.sha256) == (
        True,
        "pushed",
        None,
        True,
    )
    assert marked and not (final.parent / "unverified").exists()
    assert push_bundle(device, builds["v1"]).status == "present"


def test_an_intact_unverified_bundle_is_verified_once_on_the_device(
    device: Device, vdevice: Any, builds: dict[str, Path]
) -> None:
    assert push_bundle(device, builds["v1"], verify=False).ok
    rebuild = push_bundle(device, builds["v2"])  # an unverified bundle is no source of reuse
    assert rebuild.ok and rebuild.bytes_reused == 0, rebuild.error
    checked = push_bundle(device, builds["v1"])
    assert checked.ok and checked.status == "present" and checked.bytes_sent == 0, checked.error
    final = _host_path(vdevice, checked.remote_path)
    assert _sha(final) == read_build(builds["v1"]).sha256 and not (final.parent / "unverified").exists()


def test_a_first_push_sends_the_bundle_and_its_side_files_once(
    adb_server: Any, vdevice: Any, builds: dict[str, Path]
) -> None:
    """Counted on the wire (a TCP tap in front of the device's adbd), not by edgeship: a first push moves the
    bundle, manifest.json and tokenizer.json once, plus the adb/sync framing and its small device scripts."""
    local = read_build(builds["v1"])
    side = sum((builds["v1"] / name).stat().st_size for name in ("manifest.json", "tokenizer.json"))
    tap = TrafficTap(vdevice.port)
    try:
        adb_server.connect(tap.serial)
        [device] = select_devices(config_for(adb_server), (tap.serial,))
        tap.reset()
        result = push_bundle(device, builds["v1"])
        wire = tap.to_device
        assert result.ok and result.status == "pushed", result.error
        assert result.bytes_sent == local.bytes + side  # what edgeship says it sent...
        # ...and what the device received: the payload, adb headers (24 B per packet), sync DATA headers
        # (8 B per 64 KiB), the survey/assemble/index scripts (a few KiB): 0.2% + 32 KiB (seen: 6.7 KB).
        assert local.bytes + side <= wire <= (local.bytes + side) * 1.002 + 32 * 1024, wire
        assert device_sha256(adb_server, tap.serial, result.remote_path) == local.sha256
    finally:
        adb_server.disconnect(tap.serial)
        tap.close()
