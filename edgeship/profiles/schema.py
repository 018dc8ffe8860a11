"""profile.json (`edgeship.profile/1`): the dataclasses `edgeship profile` fills, their JSON form, validation.

One file per device and bundle, written after every iteration so a crash leaves what was measured. Byte counts
are integers, times are seconds, tokens per second are floats; a figure the device or runner did not give is
``null`` — never 0. Later stages (report, gate, plan) read it through ``load_profile``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeship.errors import InputError
from edgeship.files import read_json_document, refuse_invalid, write_text_atomic

PROFILE_SCHEMA = "edgeship.profile/1"
PROFILE_FILE_NAME = "profile.json"

TOP_LEVEL_KEYS = ("schema", "device", "bundle", "runner", "probe", "config", "iterations", "summary", "state")
DEVICE_KEYS = ("serial", "model", "manufacturer", "soc", "abi", "sdk", "release", "ram_total", "adb_server")
LATENCY_KEYS = ("init_s", "ttft_s", "ttft_definition", "prefill_tok_s", "decode_tok_s")
MEMORY_KEYS = ("peak_rss", "peak_pss", "peak_anon", "peak_file", "peak_swap", "hwm", "sections")
EXIT_KEYS = ("code", "signal", "timed_out", "status", "note")
ITERATION_KEYS = ("index", "warmup", "latency", "memory", "exit", "timeline", "wall_s")
CONFIG_KEYS = (
    "backend",
    "threads",
    "prefill",
    "decode",
    "iterations",
    "warmup",
    "interval_ms",
    "max_tokens",
    "timeout_s",
)

# exit.status values: why an iteration ended. Everything but "ok" counts as a failed iteration.
STATUS_OK = "ok"
STATUS_TIMEOUT = "timeout"  # past --timeout; the probe killed the runner's process group
STATUS_SIGNAL = "signal"  # killed by a signal it did not ask for (SIGKILL: likely the OOM killer)
STATUS_CRASH = "crash"  # exited with a non-zero code
STATUS_NO_METRICS = "no_metrics"  # exited 0 but printed no benchmark figures
STATUS_PROBE_ERROR = "probe_error"  # the probe itself could not run or left no output
# SIGKILL with the kernel's word that it was a memory kill: the device's memory cgroup counted an OOM kill
# during the run, or lmkd / the kernel logged the runner's pid (android_harness/profile/oom.py).
STATUS_OOM_KILLED = "oom_killed"
EXIT_STATUSES = (
    STATUS_OK,
    STATUS_TIMEOUT,
    STATUS_SIGNAL,
    STATUS_OOM_KILLED,
    STATUS_CRASH,
    STATUS_NO_METRICS,
    STATUS_PROBE_ERROR,
)


@dataclass
class Latency:
    init_s: float | None = None
    ttft_s: float | None = None
    ttft_definition: str | None = None
    prefill_tok_s: float | None = None
    decode_tok_s: float | None = None
    prefill_tokens: int | None = None
    decode_tokens: int | None = None


@dataclass
class SectionResidency:
    """One bundle section: its size, the largest resident size seen in one smaps reading, and what was
    resident when the runner exited.

    ``resident_peak`` is None when no smaps reading (the exit sample included) saw the section mapped:
    unknown, not 0. ``resident_at_exit`` is the exit sample's figure (0 when the section was no longer mapped
    then); None when there was no exit sample (``Memory.at_exit_note`` says why).
    """

    bytes: int
    resident_peak: int | None
    mapped_samples: int | None = None  # smaps readings in which a mapping of the section was present
    resident_at_exit: int | None = None


@dataclass
class Memory:
    """Peaks over the probe's samples (bytes). ``None`` where the kernel lacks the field."""

    peak_rss: int | None = None
    peak_pss: int | None = None
    peak_anon: int | None = None
    peak_file: int | None = None
    peak_swap: int | None = None
    hwm: int | None = None
    # ru_maxrss of the runner from wait4: what LiteRT-LM itself calls "peak system ram usage".
    rusage_maxrss: int | None = None
    sections: dict[str, SectionResidency] = field(default_factory=dict)
    # The runner's page faults over the run: {"minor": n, "major": n} (major: pages read from storage, e.g.
    # the on-demand loading of a file-backed section).
    faults: dict[str, int | None] | None = None
    # The reading at the runner's exit (rss, pss, anon, file, swap in bytes; minflt, majflt), or None with
    # at_exit_note saying why (killed, or the probe could not trace the runner).
    at_exit: dict[str, int | None] | None = None
    at_exit_note: str | None = None


@dataclass
class ExitStatus:
    code: int | None = None
    signal: int | None = None
    timed_out: bool = False
    status: str = STATUS_OK
    note: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK


@dataclass
class Iteration:
    index: int
    warmup: bool
    latency: Latency
    memory: Memory
    exit: ExitStatus
    timeline: str | None  # path of timeline.csv relative to profile.json
    wall_s: float | None
    raw_dir: str | None = None  # folder of the pulled raw outputs, relative to profile.json
    samples: int | None = None
    smaps_samples: int | None = None
    cooldown: dict[str, Any] | None = None
    started_at: str | None = None


@dataclass
class Profile:
    device: dict[str, Any]
    bundle: dict[str, Any]
    runner: dict[str, Any]
    probe: dict[str, Any]
    config: dict[str, Any]
    iterations: list[Iteration] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=lambda: {"before": None, "after": None})
    schema: str = PROFILE_SCHEMA

    def measured(self) -> list[Iteration]:
        """Iterations that count: not warm-up."""
        return [it for it in self.iterations if not it.warmup]

    def failed(self) -> list[Iteration]:
        return [it for it in self.measured() if not it.exit.ok]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {key: data[key] for key in TOP_LEVEL_KEYS}


def write_profile(profile: Profile, path: Path) -> None:
    """Write atomically (temp file in the same folder, fsync, rename): a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(profile.to_dict(), indent=2) + "\n")


def validate_profile(data: Any) -> list[str]:
    """Every way ``data`` departs from the contract, as short messages (empty list: valid)."""
    problems: list[str] = []
    if not isinstance(data, dict):
        return ["profile is not a JSON object"]
    if data.get("schema") != PROFILE_SCHEMA:
        problems.append(f"schema is {data.get('schema')!r}, expected {PROFILE_SCHEMA!r}")
    for key in TOP_LEVEL_KEYS:
        if key not in data:
            problems.append(f"missing top-level key {key!r}")
    problems += _missing_keys(data.get("device"), DEVICE_KEYS, "device")
    problems += _missing_keys(data.get("config"), CONFIG_KEYS, "config")
    bundle = data.get("bundle")
    problems += _missing_keys(bundle, ("sha256", "manifest_sha256", "sections"), "bundle")
    iterations = data.get("iterations")
    if not isinstance(iterations, list):
        problems.append("iterations is not a list")
        iterations = []
    for position, iteration in enumerate(iterations):
        where = f"iterations[{position}]"
        problems += _missing_keys(iteration, ITERATION_KEYS, where)
        if not isinstance(iteration, dict):
            continue
        problems += _missing_keys(iteration.get("latency"), LATENCY_KEYS, f"{where}.latency")
        problems += _missing_keys(iteration.get("memory"), MEMORY_KEYS, f"{where}.memory")
        problems += _missing_keys(iteration.get("exit"), EXIT_KEYS, f"{where}.exit")
        exit_status = iteration.get("exit")
        if isinstance(exit_status, dict) and exit_status.get("status") not in EXIT_STATUSES:
            problems.append(
                f"{where}.exit.status is {exit_status.get('status')!r}, not one of {EXIT_STATUSES}"
            )
        memory = iteration.get("memory")
        sections = memory.get("sections") if isinstance(memory, dict) else None
        if isinstance(sections, dict):
            for kind, residency in sections.items():
                problems += _missing_keys(
                    residency, ("bytes", "resident_peak"), f"{where}.memory.sections.{kind}"
                )
    state = data.get("state")
    problems += _missing_keys(state, ("before", "after"), "state")
    if "summary" in data and not isinstance(data["summary"], dict):
        problems.append("summary is not an object")
    return problems


def _missing_keys(value: Any, keys: tuple[str, ...], where: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{where} is not an object"]
    return [f"missing key {where}.{key}" for key in keys if key not in value]


def profile_from_dict(data: dict[str, Any]) -> Profile:
    """The dataclass form of a validated profile.json object."""
    iterations = []
    for item in data["iterations"]:
        memory = dict(item["memory"])
        sections = {
            kind: SectionResidency(
                bytes=value["bytes"],
                resident_peak=value["resident_peak"],
                mapped_samples=value.get("mapped_samples"),
                resident_at_exit=value.get("resident_at_exit"),
            )
            for kind, value in (memory.pop("sections") or {}).items()
        }
        iterations.append(
            Iteration(
                index=item["index"],
                warmup=item["warmup"],
                latency=Latency(**_known(Latency, item["latency"])),
                memory=Memory(**_known(Memory, memory), sections=sections),
                exit=ExitStatus(**_known(ExitStatus, item["exit"])),
                **_known(Iteration, item, skip=("index", "warmup", "latency", "memory", "exit")),
            )
        )
    return Profile(
        device=data["device"],
        bundle=data["bundle"],
        runner=data["runner"],
        probe=data["probe"],
        config=data["config"],
        iterations=iterations,
        summary=data["summary"],
        state=data["state"],
        schema=data["schema"],
    )


def _known(cls: type, values: dict[str, Any], skip: tuple[str, ...] = ()) -> dict[str, Any]:
    # Newer writers may add keys; an older reader keeps what it knows.
    names = {name for name in cls.__dataclass_fields__ if name not in skip and name != "sections"}
    return {key: value for key, value in values.items() if key in names}


def load_profile(path: str | Path) -> Profile:
    """Read and validate a profile.json (or a folder holding one); InputError names the first problem."""
    path, data = read_json_document(
        path, PROFILE_FILE_NAME, "run `edgeship profile` first", "; was the profile interrupted?"
    )
    schema = data.get("schema") if isinstance(data, dict) else None
    if isinstance(schema, str) and schema.startswith("edgeship.profile/") and schema != PROFILE_SCHEMA:
        raise InputError(
            f"{path} is a {schema} profile; this edgeship reads {PROFILE_SCHEMA} "
            "(profile again with this version, or use the edgeship that wrote it)"
        )
    refuse_invalid(path, f"{PROFILE_SCHEMA} profile", validate_profile(data))
    return profile_from_dict(data)
