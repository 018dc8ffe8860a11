"""A profile session on one device: set-up (facts, runner, probe, push, state before), saving profile.json.

Everything the runs on one device share is gathered once in a ProfileSession; profile_run does the runs.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, is_dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgeship.android_harness.adb import Device, device_facts, device_state
from edgeship.android_harness.probe import build_probe
from edgeship.android_harness.profile.options import ProfileOptions
from edgeship.android_harness.push import push_bundle
from edgeship.android_harness.runners import RunnerAdapter, get_adapter, resolve_runner
from edgeship.android_harness.store import DeviceStore
from edgeship.config import Config
from edgeship.console import Reporter
from edgeship.errors import DeviceError
from edgeship.exporter.manifest import Build, Section
from edgeship.hashing import sha256_file
from edgeship.profiles.schema import PROFILE_FILE_NAME, Profile, write_profile
from edgeship.profiles.summary import summarize_iterations
from edgeship.units import format_bytes, format_duration


def unique_sections(sections: Sequence[Section]) -> list[Section]:
    """The sections in offset order, kinds made unique ('kind', 'kind#2', …) so none is merged away.

    The probe's residency is attributed to these, and profile.json records them (docs/contracts.md).
    """
    unique: list[Section] = []
    seen: dict[str, int] = {}
    for section in sorted(sections, key=lambda item: item.offset):
        seen[section.kind] = seen.get(section.kind, 0) + 1
        count = seen[section.kind]
        unique.append(section if count == 1 else replace(section, kind=f"{section.kind}#{count}"))
    return unique


def bundle_record(build: Build) -> dict[str, Any]:
    """profile.json ``bundle`` (without ``remote_path``, which the push adds)."""
    model = build.manifest["model"]
    return {
        "sha256": build.sha256,
        "manifest_sha256": build.manifest_sha256,
        "file": build.bundle_path.name,
        "bytes": build.bytes,
        "build_dir": str(build.build_dir),
        "arch": build.model.arch,
        "ple": model.get("ple"),
        "recipe": build.export.recipe,
        "sections": [
            {"kind": section.kind, "offset": section.offset, "end": section.end, "bytes": section.bytes}
            for section in unique_sections(build.sections)
        ],
    }


def sanitize_serial(serial: str) -> str:
    """A folder name for a serial: '127.0.0.1:40001' → '127.0.0.1_40001'."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", serial).strip(".")
    return cleaned or "device"


@dataclass
class ProfileSession:
    """Everything the runs on one device share once set up."""

    device: Device
    build: Build
    sections: list[Section]  # the build's, kinds made unique: what residency is attributed to
    options: ProfileOptions
    store: DeviceStore
    adapter: RunnerAdapter
    remote_bundle: str
    remote_probe: str
    runner_path: str
    runner_env: dict[str, str]
    out_dir: Path
    profile: Profile
    reporter: Reporter
    started: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"))
    # A fit's steps save theirs as step.json, so `report` and `gate` (which look for profile.json) do not
    # take a constrained step for a profile of the device.
    profile_name: str = PROFILE_FILE_NAME


def plain_device_state(device: Device) -> dict[str, Any] | None:
    """The device's state now (thermal, battery) as JSON-ready dicts, None when it exposes none."""
    state = device_state(device)
    return _plain(state)


def _plain(value: Any) -> Any:
    """Dataclasses and other records → JSON-ready dicts."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if is_dataclass(value) and not isinstance(value, type):
        return _plain(asdict(value))
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return str(value)


def set_up_session(
    device: Device, build: Build, runs_dir: Path, options: ProfileOptions, config: Config, reporter: Reporter
) -> ProfileSession:
    """Facts, runner and probe for the device's ABI, push what is missing, state before; raises on failure."""
    facts = device_facts(device, device_root=config.device_root)
    abi = facts.abi
    if not abi:
        raise DeviceError(f"{device.serial}: ro.product.cpu.abi is empty; cannot choose a probe or runner")
    local_runner = resolve_runner(abi, options.runner, config.runners, backend=options.backend)
    adapter = get_adapter(local_runner.name)
    reporter.note(f"{device.serial}: {facts.model or '?'} ({abi}); runner {local_runner.path}")
    probe_path = build_probe(abi)

    # Pushes of several devices run in these threads at once; their byte progress stays quiet (one rich live
    # display per console) and a note says what each sent. `edgeship push` is the command with the bars.
    pushed = push_bundle(device, build, root=config.device_root)
    if not pushed.ok:
        raise DeviceError(f"{device.serial}: push failed: {pushed.error}")
    reporter.note(
        f"{device.serial}: bundle {build.sha12} on device "
        f"({format_bytes(pushed.bytes_sent)} sent, {format_bytes(pushed.bytes_reused)} reused, "
        f"{format_duration(pushed.seconds)})"
    )
    store = DeviceStore(device, root=config.device_root)
    remote_probe = store.ensure_file(Path(probe_path), "probe")
    runner_file = Path(local_runner.path)
    remote_runner = store.ensure_file(runner_file, runner_file.name)
    # Content-addressed files sit in folders of their own: the loader is told each of them.
    extra_dirs = [
        store.ensure_file(extra, extra.name, mode=0o644).rsplit("/", 1)[0]
        for extra in local_runner.extra_files
    ]
    env = local_runner.device_env(extra_dirs)

    out_dir = Path(runs_dir) / sanitize_serial(device.serial) / build.sha12
    out_dir.mkdir(parents=True, exist_ok=True)
    _clear_old_runs(out_dir)
    profile = Profile(
        device={
            "serial": device.serial,
            "model": facts.model,
            "manufacturer": facts.manufacturer,
            "soc": facts.soc,
            "abi": abi,
            "sdk": facts.sdk,
            "release": facts.release,
            "ram_total": facts.ram_total,
            "adb_server": facts.adb_server or str(device.server),
        },
        bundle={**bundle_record(build), "remote_path": pushed.remote_path},
        runner={
            "name": adapter.name,
            "path": str(runner_file),
            "remote_path": remote_runner,
            "sha256": sha256_file(runner_file),
            "builtin": local_runner.builtin,
            "version": local_runner.version,
            "ttft_definition": adapter.ttft_definition,
            "extra_files": [str(extra) for extra in local_runner.extra_files],
            "env": env,
        },
        probe={
            "sha256": sha256_file(probe_path),
            "version": None,
            "abi": abi,
            "interval_ms": options.interval_ms,
            "remote_path": remote_probe,
        },
        config=options.to_config(),
        state={"before": None, "after": None},
    )
    session = ProfileSession(
        device=device,
        build=build,
        sections=unique_sections(build.sections),
        options=options,
        store=store,
        adapter=adapter,
        remote_bundle=pushed.remote_path,
        remote_probe=remote_probe,
        runner_path=remote_runner,
        runner_env=env,
        out_dir=out_dir,
        profile=profile,
        reporter=reporter,
    )
    profile.state["before"] = plain_device_state(device)
    return session


def _clear_old_runs(out_dir: Path) -> None:
    """A second profile into the same RUNS_DIR must not mix its raw files with the previous one's."""
    for old in out_dir.iterdir():
        if old.is_dir() and re.fullmatch(r"(iter|warmup)-\d+", old.name):
            shutil.rmtree(old)


def save_profile(session: ProfileSession) -> None:
    """Summarize the runs so far and rewrite profile.json atomically."""
    session.profile.summary = summarize_iterations(session.profile.iterations)
    write_profile(session.profile, session.out_dir / session.profile_name)
