"""`edgeship profile`: run a bundle through the probe on each device and write profile.json.

Per device (devices in parallel, one run at a time on each): facts → runner and probe for its ABI → push what
is missing → state before → warm-up runs → measured runs (each its own probe run, so each has its own memory
timeline) → state after. After every run the raw outputs are pulled into
``RUNS_DIR/<serial>/<bundle-sha12>/{warmup,iter}-<k>/`` and profile.json is rewritten atomically, so a crash
of edgeship, the device or the runner keeps every run measured so far. A runner that is killed, crashes or
overstays ``--timeout`` is recorded with its partial timeline and the next run goes on.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import signal as signals
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgeship.android_harness.cooldown import wait_for_cooldown
from edgeship.config import Config
from edgeship.console import Reporter
from edgeship.errors import DeviceError, EdgeshipError, InputError, UsageError
from edgeship.hashing import sha256_file
from edgeship.profiles.schema import (
    PROFILE_FILE_NAME,
    STATUS_CRASH,
    STATUS_NO_METRICS,
    STATUS_OK,
    STATUS_PROBE_ERROR,
    STATUS_SIGNAL,
    STATUS_TIMEOUT,
    ExitStatus,
    Iteration,
    Latency,
    Memory,
    Profile,
    SectionResidency,
    write_profile,
)
from edgeship.profiles.summary import summarize_iterations

MANIFEST_FILE_NAME = "manifest.json"
# Extra time the adb shell call gets beyond the probe's own --timeout-s: start-up, the final smaps read, exit.
SHELL_GRACE_S = 120.0
# Signals that mean the program itself failed (a crash), as opposed to being killed from outside.
CRASH_SIGNALS = {signals.SIGSEGV, signals.SIGABRT, signals.SIGBUS, signals.SIGILL, signals.SIGFPE}


@dataclass
class ProfileOptions:
    """What `edgeship profile` was asked to do (the CLI fills it; every field is recorded in config)."""

    prefill: int = 128
    decode: int = 128
    iterations: int = 3
    warmup: int = 1
    threads: int | None = None
    backend: str = "cpu"
    interval_ms: int = 50
    # None: the probe's adaptive smaps cadence (smaps reads ≤ 1% of wall time). A short run may then get a
    # single smaps sample; a fixed interval makes section residency reliable at the price of probe overhead.
    smaps_interval_ms: int | None = None
    timeout_s: float = 600.0
    cooldown_c: float | None = None
    cooldown_max_wait_s: float = 600.0
    runner: str | None = None  # explicit local runner binary (--runner)
    max_tokens: int | None = None  # None: prefill + decode, so the KV cache is no larger than the run needs

    def validate(self) -> None:
        if self.iterations < 1:
            raise UsageError("--iterations must be at least 1")
        if self.warmup < 0:
            raise UsageError("--warmup cannot be negative")
        if self.prefill < 1 or self.decode < 1:
            raise UsageError("--prefill and --decode must be at least 1 token")
        if self.interval_ms < 1:
            raise UsageError("--interval-ms must be at least 1")
        if self.smaps_interval_ms is not None and self.smaps_interval_ms < self.interval_ms:
            raise UsageError("--smaps-interval-ms cannot be shorter than --interval-ms")
        if self.timeout_s <= 0:
            raise UsageError("--timeout must be positive")
        if self.threads is not None and self.threads < 1:
            raise UsageError("--threads must be at least 1")
        if self.backend not in ("cpu", "gpu", "npu"):
            raise UsageError(f"--backend {self.backend!r} is not one of cpu, gpu, npu")

    @property
    def effective_max_tokens(self) -> int:
        return self.max_tokens if self.max_tokens is not None else self.prefill + self.decode

    def to_config(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "threads": self.threads,
            "prefill": self.prefill,
            "decode": self.decode,
            "iterations": self.iterations,
            "warmup": self.warmup,
            "interval_ms": self.interval_ms,
            "smaps_interval_ms": self.smaps_interval_ms,
            "max_tokens": self.effective_max_tokens,
            "timeout_s": self.timeout_s,
            "cooldown_c": self.cooldown_c,
        }


# -- the build ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SectionSpan:
    """A bundle section as the probe attributes mappings to it: [offset, end) of the bundle file."""

    kind: str
    offset: int
    end: int

    @property
    def bytes(self) -> int:
        return self.end - self.offset


@dataclass
class BuildInfo:
    build_dir: Path
    bundle_path: Path
    manifest: dict[str, Any]
    manifest_sha256: str
    sections: list[SectionSpan]
    local: Any = None  # push's checked LocalBundle, loaded once for every device

    @property
    def sha256(self) -> str:
        return str(self.manifest["bundle"]["sha256"])

    @property
    def sha12(self) -> str:
        return self.sha256[:12]

    def to_record(self) -> dict[str, Any]:
        """profile.json ``bundle``."""
        model = self.manifest.get("model") or {}
        return {
            "sha256": self.sha256,
            "manifest_sha256": self.manifest_sha256,
            "file": self.bundle_path.name,
            "bytes": self.manifest["bundle"].get("bytes"),
            "build_dir": str(self.build_dir),
            "arch": model.get("arch"),
            "ple": model.get("ple"),
            "recipe": (self.manifest.get("export") or {}).get("recipe"),
            "sections": [
                {"kind": span.kind, "offset": span.offset, "end": span.end, "bytes": span.bytes}
                for span in self.sections
            ],
        }


def section_spans(manifest_sections: Sequence[dict[str, Any]]) -> list[SectionSpan]:
    """One span per manifest section, with kinds made unique ('kind', 'kind#2', …) so none is merged away."""
    spans: list[SectionSpan] = []
    seen: dict[str, int] = {}
    for section in sorted(manifest_sections, key=lambda item: int(item["offset"])):
        kind = str(section["kind"])
        seen[kind] = seen.get(kind, 0) + 1
        name = kind if seen[kind] == 1 else f"{kind}#{seen[kind]}"
        spans.append(SectionSpan(name, int(section["offset"]), int(section["end"])))
    return spans


def read_build(build_dir: Path) -> BuildInfo:
    """The build's manifest and section spans; InputError when BUILD_DIR is not an export."""
    build_dir = Path(build_dir)
    manifest_path = build_dir / MANIFEST_FILE_NAME
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise InputError(
            f"{build_dir} has no {MANIFEST_FILE_NAME}; is it an `edgeship export` BUILD_DIR?"
        ) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{manifest_path} is not valid JSON ({exc})") from None
    try:
        bundle_path = build_dir / manifest["bundle"]["file"]
        sections = section_spans(manifest["sections"])
        _ = manifest["bundle"]["sha256"]
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{manifest_path} lacks bundle/sections; re-export with `edgeship export`") from None
    if not bundle_path.is_file():
        raise InputError(f"{bundle_path} is missing; the build dir is incomplete")
    return BuildInfo(build_dir, bundle_path, manifest, sha256_file(manifest_path), sections)


# -- pure pieces of one run ----------------------------------------------------------------------------------


def sanitize_serial(serial: str) -> str:
    """A folder name for a serial: '127.0.0.1:40001' → '127.0.0.1_40001'."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", serial).strip(".")
    return cleaned or "device"


def probe_shell_command(
    *,
    probe: str,
    out_dir: str,
    interval_ms: int,
    timeout_s: float,
    maps: Sequence[str],
    runner_argv: Sequence[str],
    env: dict[str, str] | None = None,
    smaps_interval_ms: int | None = None,
) -> str:
    """The one device shell line of a run: make the run dir, go there, exec the probe (every word quoted)."""
    probe_argv = [probe, "--interval-ms", str(interval_ms), "--timeout-s", f"{timeout_s:g}"]
    if smaps_interval_ms is not None:
        probe_argv += ["--smaps-interval-ms", str(smaps_interval_ms)]
    for path in maps:
        probe_argv += ["--maps", path]
    probe_argv += ["--out", out_dir, "--", *runner_argv]
    env_words = [f"{name}={value}" for name, value in sorted((env or {}).items())]
    exec_words = (["env", *env_words] if env_words else []) + probe_argv
    quote = shlex.quote
    return f"mkdir -p {quote(out_dir)} && cd {quote(out_dir)} && exec " + " ".join(
        quote(w) for w in exec_words
    )


def signal_name(number: int) -> str:
    try:
        return signals.Signals(number).name
    except ValueError:
        return f"signal {number}"


def classify_exit(
    code: int | None, signal: int | None, timed_out: bool, has_metrics: bool, timeout_s: float | None = None
) -> ExitStatus:
    """Why a run ended, in the words a reader needs ('SIGKILL: likely the OOM killer')."""
    if timed_out:
        limit = f" {timeout_s:g} s" if timeout_s is not None else ""
        return ExitStatus(code, signal, True, STATUS_TIMEOUT, f"timed out (past --timeout{limit}); killed")
    if signal:
        name = signal_name(signal)
        if signal == signals.SIGKILL:
            return ExitStatus(code, signal, False, STATUS_SIGNAL, "killed by SIGKILL (likely the OOM killer)")
        if signal in CRASH_SIGNALS:
            return ExitStatus(code, signal, False, STATUS_CRASH, f"crashed with {name}")
        return ExitStatus(code, signal, False, STATUS_SIGNAL, f"killed by {name}")
    if code is None:
        return ExitStatus(None, None, False, STATUS_PROBE_ERROR, "no exit status recorded (probe failed?)")
    if code != 0:
        return ExitStatus(code, None, False, STATUS_CRASH, f"runner exited with code {code}")
    if not has_metrics:
        return ExitStatus(
            0, None, False, STATUS_NO_METRICS, "runner exited 0 but printed no benchmark figures"
        )
    return ExitStatus(0, None, False, STATUS_OK, None)


def memory_record(
    figures: dict[str, int | None], sections: dict[str, dict[str, Any]], rusage_maxrss: int | None
) -> Memory:
    """profile.json ``memory`` from the probe's peak figures (``ProbeRun.memory_figures()``) and residency."""
    return Memory(
        peak_rss=figures.get("peak_rss"),
        peak_pss=figures.get("peak_pss"),
        peak_anon=figures.get("peak_anon"),
        peak_file=figures.get("peak_file"),
        peak_swap=figures.get("peak_swap"),
        hwm=figures.get("hwm"),
        rusage_maxrss=int(rusage_maxrss) if rusage_maxrss else None,
        sections={
            kind: SectionResidency(
                bytes=int(value["bytes"]),
                resident_peak=value.get("resident_peak"),
                mapped_samples=value.get("mapped_samples"),
            )
            for kind, value in sections.items()
        },
    )


def mapped_sample_counts(
    spans: Sequence[SectionSpan], mappings: Sequence[tuple[float, int]]
) -> dict[str, int]:
    """Per section kind, in how many smaps samples (t_ms) a mapping at a file offset inside it was present."""
    seen: dict[str, set[float]] = {}
    for t_ms, offset in mappings:
        for span in spans:
            if span.offset <= offset < span.end:
                seen.setdefault(span.kind, set()).add(t_ms)
                break
    return {kind: len(times) for kind, times in seen.items()}


# -- one device ------------------------------------------------------------------------------------------


@dataclass
class DeviceOutcome:
    """What happened on one device: where its profile is, and whether it or any run failed."""

    serial: str
    profile_path: Path | None = None
    profile: Profile | None = None
    error: str | None = None  # the device failed (setup, push, lost mid-way)
    failed_runs: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None and self.failed_runs == 0


@dataclass
class _Session:
    """Everything the runs on one device share once set up."""

    device: Any
    build: BuildInfo
    options: ProfileOptions
    store: Any
    adapter: Any
    remote_bundle: str
    remote_probe: str
    runner_path: str
    runner_env: dict[str, str]
    out_dir: Path
    profile: Profile
    reporter: Reporter
    started: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"))


def profile_device(
    device: Any,
    build: BuildInfo,
    runs_dir: Path,
    options: ProfileOptions,
    config: Config,
    reporter: Reporter,
    cancel: threading.Event | None = None,
) -> DeviceOutcome:
    """Profile ``build`` on one device; never raises for a device or run failure (the outcome says so)."""
    outcome = DeviceOutcome(serial=device.serial)
    session: _Session | None = None
    try:
        session = _set_up(device, build, runs_dir, options, config, reporter)
        outcome.profile_path = session.out_dir / PROFILE_FILE_NAME
        outcome.profile = session.profile
        _save(session)
        plan = [(k, True) for k in range(1, options.warmup + 1)] + [
            (k, False) for k in range(1, options.iterations + 1)
        ]
        for index, warmup in plan:
            if cancel is not None and cancel.is_set():
                raise DeviceError(
                    f"{device.serial}: interrupted before {'warm-up' if warmup else 'run'} {index}"
                )
            iteration = _run_once(session, index, warmup)
            session.profile.iterations.append(iteration)
            _save(session)
            label = "warm-up" if warmup else "iteration"
            reporter.note(f"{device.serial}: {label} {index}: {_describe(iteration)}")
        session.profile.state["after"] = _device_state(device)
        _save(session)
    except EdgeshipError as exc:
        outcome.error = (
            exc.message if exc.message.startswith(device.serial) else f"{device.serial}: {exc.message}"
        )
    except OSError as exc:  # the local disk (runs dir) or the adb socket
        outcome.error = f"{device.serial}: {exc}"
    except Exception as exc:  # a bug must not stop the other devices' runs; the message says it is one
        outcome.error = f"{device.serial}: unexpected {type(exc).__name__}: {exc} (please report)"
    if session is not None:
        outcome.failed_runs = len(session.profile.failed())
    return outcome


def _describe(iteration: Iteration) -> str:
    if not iteration.exit.ok:
        return iteration.exit.note or iteration.exit.status
    latency = iteration.latency
    decode = (
        f"{latency.decode_tok_s:.1f} tok/s decode" if latency.decode_tok_s is not None else "no decode figure"
    )
    return f"ok, {decode}"


def _device_state(device: Any) -> dict[str, Any] | None:
    from edgeship.android_harness.facts import device_state

    state = device_state(device)
    return _plain(state)


def _plain(value: Any) -> Any:
    """Dataclasses and other records → JSON-ready dicts."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "__dataclass_fields__"):
        from dataclasses import asdict

        return _plain(asdict(value))
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return str(value)


def _set_up(
    device: Any, build: BuildInfo, runs_dir: Path, options: ProfileOptions, config: Config, reporter: Reporter
) -> _Session:
    from edgeship.android_harness.facts import device_facts
    from edgeship.android_harness.probe.build import build_probe
    from edgeship.android_harness.push import push_bundle
    from edgeship.android_harness.runners import get_adapter
    from edgeship.android_harness.runners.resolve import resolve_runner
    from edgeship.android_harness.store import DeviceStore

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
    pushed = push_bundle(device, build.build_dir, local=build.local, root=config.device_root)
    if not pushed.ok:
        raise DeviceError(f"{device.serial}: push failed: {pushed.error}")
    reporter.note(
        f"{device.serial}: bundle {build.sha12} on device "
        f"({pushed.bytes_sent} bytes sent, {pushed.bytes_reused} reused, {pushed.seconds:.1f} s)"
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
            "adb_server": str(facts.adb_server) if getattr(facts, "adb_server", None) else str(device.server),
        },
        bundle={**build.to_record(), "remote_path": pushed.remote_path},
        runner={
            "name": adapter.name,
            "path": str(runner_file),
            "remote_path": remote_runner,
            "sha256": sha256_file(runner_file),
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
    session = _Session(
        device=device,
        build=build,
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
    profile.state["before"] = _device_state(device)
    return session


def _clear_old_runs(out_dir: Path) -> None:
    """A second profile into the same RUNS_DIR must not mix its raw files with the previous one's."""
    for old in out_dir.iterdir():
        if old.is_dir() and re.fullmatch(r"(iter|warmup)-\d+", old.name):
            shutil.rmtree(old)


def _save(session: _Session) -> None:
    session.profile.summary = summarize_iterations(session.profile.iterations)
    write_profile(session.profile, session.out_dir / PROFILE_FILE_NAME)


def _run_once(session: _Session, index: int, warmup: bool) -> Iteration:
    from edgeship.android_harness.runners import RunConfig

    options = session.options
    device = session.device
    name = f"{'warmup' if warmup else 'iter'}-{index}"
    local_dir = session.out_dir / name
    if local_dir.exists():
        shutil.rmtree(local_dir)
    local_dir.mkdir(parents=True)

    cooldown = None
    if options.cooldown_c is not None:
        result = wait_for_cooldown(
            lambda: (_device_state(device) or {}).get("thermal"),
            options.cooldown_c,
            max_wait_s=options.cooldown_max_wait_s,
            on_wait=lambda zone, c: session.reporter.note(
                f"{device.serial}: waiting for {zone} {c:.1f} °C < {options.cooldown_c:g} °C"
            ),
        )
        cooldown = result.to_dict()

    run_id = f"{session.build.sha12}-{session.started}-{sanitize_serial(device.serial)}-{name}"
    remote_dir = session.store.run_dir(run_id)
    log_sink = f"{remote_dir}/log_sink.txt"
    run_config = RunConfig(
        backend=options.backend,
        threads=options.threads,
        prefill=options.prefill,
        decode=options.decode,
        iterations=1,  # one engine run per probe run: each iteration gets its own memory timeline
        max_tokens=options.effective_max_tokens,
        log_sink_path=log_sink,
    )
    runner_argv = session.adapter.build_command(
        session.remote_bundle, run_config, runner_path=session.runner_path
    )
    command = probe_shell_command(
        probe=session.remote_probe,
        out_dir=remote_dir,
        interval_ms=options.interval_ms,
        timeout_s=options.timeout_s,
        maps=[session.remote_bundle],
        runner_argv=runner_argv,
        env=session.runner_env,
        smaps_interval_ms=options.smaps_interval_ms,
    )
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    started = time.monotonic()
    shell_problem: str | None = None
    shell_exit: int | None = None
    try:
        shell = device.shell(command, timeout=options.timeout_s + SHELL_GRACE_S)
        shell_exit = shell.exit_code
        if shell.exit_code == 127 or (shell.exit_code != 0 and not shell.stdout and shell.stderr):
            shell_problem = _last_line(shell.stderr) or f"shell exited {shell.exit_code}"
    except DeviceError as exc:
        shell_problem = exc.message
    shell_wall = time.monotonic() - started

    try:
        _pull_run_dir(device, remote_dir, local_dir)
        device.shell(["rm", "-rf", remote_dir])  # the raw files are on the host now; keep the phone clean
    except DeviceError as exc:
        # The device is gone: keep what this run left locally, then let the device be reported as failed.
        lost = _iteration_from_outputs(session, index, warmup, local_dir, exc.message, shell_wall)
        lost.exit = ExitStatus(None, None, False, STATUS_PROBE_ERROR, f"device lost: {exc.message}")
        session.profile.iterations.append(lost)
        _save(session)
        raise
    iteration = _iteration_from_outputs(
        session, index, warmup, local_dir, shell_problem, shell_wall, shell_exit
    )
    iteration.cooldown = cooldown
    iteration.started_at = started_at
    return iteration


def _last_line(data: bytes) -> str:
    lines = [line.strip() for line in data.decode(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _pull_run_dir(device: Any, remote_dir: str, local_dir: Path) -> None:
    listing = device.shell(["ls", "-1", remote_dir])
    if listing.exit_code != 0:
        return  # the probe never made it; the iteration says why
    for name in listing.stdout.decode(errors="replace").split("\n"):
        name = name.strip()
        if name and "/" not in name and name not in (".", ".."):
            device.pull_file(f"{remote_dir}/{name}", local_dir / name)


def _iteration_from_outputs(
    session: _Session,
    index: int,
    warmup: bool,
    local_dir: Path,
    shell_problem: str | None,
    shell_wall: float,
    shell_exit: int | None = None,
) -> Iteration:
    from edgeship.android_harness.probe.results import read_probe_output

    relative_dir = local_dir.name
    timeline = local_dir / "timeline.csv"
    latency = Latency(ttft_definition=session.adapter.ttft_definition)
    memory = Memory()
    try:
        run = read_probe_output(local_dir)
    except (EdgeshipError, OSError, ValueError) as exc:
        note = shell_problem or (exc.message if isinstance(exc, EdgeshipError) else str(exc))
        return Iteration(
            index=index,
            warmup=warmup,
            latency=latency,
            memory=memory,
            exit=ExitStatus(None, None, False, STATUS_PROBE_ERROR, f"probe left no usable output: {note}"),
            timeline=f"{relative_dir}/timeline.csv" if timeline.exists() else None,
            wall_s=shell_wall,
            raw_dir=relative_dir,
        )

    spans = [(span.kind, span.offset, span.end) for span in session.build.sections]
    residency = run.section_residency(spans)
    mapped = mapped_sample_counts(
        session.build.sections, [(row.t_ms, row.offset) for row in run.mapping_samples]
    )
    for kind, entry in residency.items():
        entry["mapped_samples"] = mapped.get(kind, 0)
        if not mapped.get(kind):
            entry["resident_peak"] = None  # never seen mapped: unknown, not "0 bytes resident"
    memory = memory_record(run.memory_figures(), residency, run.rusage.get("maxrss"))
    if run.probe_version:
        session.profile.probe["version"] = run.probe_version
    metrics = _parse_runner(session.adapter, local_dir)
    if metrics is not None:
        latency = Latency(
            init_s=metrics.init_s,
            ttft_s=metrics.ttft_s,
            ttft_definition=session.adapter.ttft_definition,
            prefill_tok_s=metrics.prefill_tok_s,
            decode_tok_s=metrics.decode_tok_s,
            prefill_tokens=metrics.prefill_tokens,
            decode_tokens=metrics.decode_tokens,
        )
    has_metrics = metrics is not None and metrics.decode_tok_s is not None
    exit_code, signal = run.exit_code, run.signal
    probe_killed = not run.complete and exit_code is None and signal is None and (shell_exit or 0) > 128
    if probe_killed:
        # No result.json: the probe died with the runner (the OOM killer takes the whole process group);
        # the shell saw the probe's death as 128 + signal.
        signal = (shell_exit or 0) - 128
    status = classify_exit(exit_code, signal, run.timed_out, has_metrics, session.options.timeout_s)
    if probe_killed and status.note:
        status.note = f"probe and runner {status.note}"
    if status.status == STATUS_PROBE_ERROR and shell_problem:
        status.note = shell_problem
    if status.status == STATUS_CRASH and status.signal is None:
        detail = (
            _last_line((local_dir / "stderr.txt").read_bytes()) if (local_dir / "stderr.txt").exists() else ""
        )
        if detail:
            status.note = f"{status.note}: {detail[:160]}"
    return Iteration(
        index=index,
        warmup=warmup,
        latency=latency,
        memory=memory,
        exit=status,
        timeline=f"{relative_dir}/timeline.csv" if timeline.exists() else None,
        wall_s=run.wall_s if run.wall_s is not None else shell_wall,
        raw_dir=relative_dir,
        samples=len(run.samples),
        smaps_samples=run.smaps_samples,
    )


def _parse_runner(adapter: Any, local_dir: Path) -> Any | None:
    def read(name: str) -> str | None:
        path = local_dir / name
        return path.read_text(errors="replace") if path.exists() else None

    try:
        return adapter.parse(read("stdout.txt") or "", read("stderr.txt") or "", read("log_sink.txt"))
    except (EdgeshipError, ValueError):
        return None  # no BenchmarkInfo block: classify_exit reports it


# -- many devices -----------------------------------------------------------------------------------------


def profile_devices(
    devices: Sequence[Any],
    build_dir: Path,
    runs_dir: Path,
    options: ProfileOptions,
    config: Config,
    reporter: Reporter | None = None,
) -> list[DeviceOutcome]:
    """Profile one build on every device in parallel (one thread per device); outcomes in device order."""
    options.validate()
    from edgeship.android_harness.bundle_plan import load_build

    build = read_build(Path(build_dir))
    build.local = load_build(build.build_dir, verify=True)  # sha256 of the bundle vs manifest, once
    cache_length = (build.manifest.get("export") or {}).get("cache_length")
    if cache_length and options.effective_max_tokens > int(cache_length):
        raise UsageError(
            f"--prefill + --decode = {options.effective_max_tokens} tokens exceeds the bundle's cache length "
            f"{cache_length}; lower them or re-export with --cache-length"
        )
    reporter = reporter or Reporter()
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    if not devices:
        return []
    cancel = threading.Event()
    pool = ThreadPoolExecutor(max_workers=len(devices), thread_name_prefix="profile")
    futures = [
        pool.submit(profile_device, device, build, runs_dir, options, config, reporter, cancel)
        for device in devices
    ]
    try:
        return [future.result() for future in futures]
    except KeyboardInterrupt:
        # Threads cannot be killed: ask each device to stop after its current run (bounded by --timeout);
        # profile.json already holds every finished run. A second Ctrl-C leaves at once.
        cancel.set()
        reporter.note("interrupted: stopping after the current runs; profile.json keeps the finished ones")
        for future in futures:
            future.result()
        raise
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def raise_for_outcomes(outcomes: Sequence[DeviceOutcome]) -> None:
    """The exit code says what failed: DeviceError when a device failed, RunError when only runs did."""
    from edgeship.errors import RunError

    failed_devices = [outcome for outcome in outcomes if outcome.error]
    if failed_devices:
        first = failed_devices[0]
        more = f" (and {len(failed_devices) - 1} more devices)" if len(failed_devices) > 1 else ""
        raise DeviceError(f"{first.error}{more}")
    failed_runs = [outcome for outcome in outcomes if outcome.failed_runs]
    if failed_runs:
        total = sum(outcome.failed_runs for outcome in failed_runs)
        where = ", ".join(f"{o.serial} ({o.failed_runs})" for o in failed_runs)
        raise RunError(f"{total} profiled run(s) failed on {where}; see exit in profile.json")
