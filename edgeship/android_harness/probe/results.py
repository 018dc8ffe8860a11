"""Read a probe output folder (result.json, timeline.csv, maps.csv) into a ``ProbeRun``.

A folder may be partial: when the probe itself was killed (with the runner, e.g. by the OOM killer or a
lost adb connection) there is no result.json, and everything is derived from the rows the probe flushed
before dying.

timeline.csv: the status columns (vm_*, rss_anon/file/shmem) and the page-fault counts (minflt, majflt:
/proc/PID/stat, the whole thread group) are read every tick; the smaps_rollup columns (rss, pss*,
private_dirty, swap_pss) are refreshed at the rollup rate (``rollup_samples`` reads; adaptive by default,
because each read walks every page table) and repeat the last reading in between. An empty cell is a field
this kernel does not report.

The exit sample (result.json ``exit_sample``): where the probe could trace the runner, one more reading of
everything at the runner's exit stop, before the kernel tears its address space down. It is absent when the
runner was killed, or not traced (``ProbeRun.exit_sample_note`` says why).

Section residency (docs/contracts.md): smaps gives one Rss per mapping of the bundle, and a mapping may
overlap several sections (it is whole pages, so its last page holds padding or the next section). Each
mapping's Rss is shared pro rata among the sections it overlaps: a section gets Rss × (overlap ÷ mapping
size). A fully resident mapping so counts exactly a section's bytes, never more; only a partly resident
mapping spanning several sections gives an estimate (pages assumed evenly resident). A section's resident
bytes at one smaps sample are the sum of its shares; its resident peak is the largest sum over the samples,
the exit sample included; its resident bytes at exit are the exit sample's.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeship.errors import InputError

# timeline.csv columns after t_ms, in the probe's order (bytes).
TIMELINE_FIELDS: tuple[str, ...] = (
    "vm_rss", "vm_hwm", "vm_swap", "rss_anon", "rss_file", "rss_shmem",
    "rss", "pss", "pss_anon", "pss_file", "private_dirty", "swap_pss",
)  # fmt: skip
# timeline.csv columns after the byte fields: page faults of the runner so far (counts).
FAULT_FIELDS: tuple[str, ...] = ("minflt", "majflt")
SIGKILL = 9


@dataclass(frozen=True)
class Sample:
    """One timeline row: ``values[field]`` is bytes, or None when the kernel did not report the field."""

    t_ms: float
    values: dict[str, int | None]


@dataclass(frozen=True)
class MappingSample:
    t_ms: float
    path: str
    offset: int
    size: int
    rss: int | None
    pss: int | None


@dataclass(frozen=True)
class MappingPeak:
    path: str
    offset: int
    size: int
    rss_peak: int | None
    pss_peak: int | None


@dataclass(frozen=True)
class ExitSample:
    """The reading at the runner's exit stop: ``values`` holds the timeline fields (bytes; faults as counts),
    ``mappings`` the --maps files' mappings still mapped then (only when ``smaps_read``)."""

    t_ms: float
    values: dict[str, int | None]
    smaps_read: bool
    mappings: list[MappingSample]


@dataclass
class ProbeRun:
    """What the probe saw of one runner execution."""

    directory: Path
    complete: bool  # result.json was written (the probe itself finished)
    exit_code: int | None
    signal: int | None
    timed_out: bool
    wall_s: float | None
    rusage: dict[str, float | int]
    peaks: dict[str, int | None]
    missing: list[str]
    samples: list[Sample]
    mapping_samples: list[MappingSample]
    mappings: list[MappingPeak]
    interval_ms: int | None = None
    smaps_samples: int = 0
    smaps_cost_us_mean: float | None = None
    sample_cost_us_mean: float | None = None  # one /proc/PID/status read
    rollup_samples: int = 0
    rollup_cost_us_mean: float | None = None
    pid: int | None = None
    argv: list[str] = field(default_factory=list)
    error: str | None = None
    probe_version: str | None = None
    traced: bool = False
    trace_error: str | None = None  # why the runner ran untraced (ptrace refused, --no-trace)
    exit_sample: ExitSample | None = None
    exit_sample_note: str | None = None  # why there is no exit sample
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.complete and self.exit_code == 0 and self.signal is None and not self.timed_out

    @property
    def likely_oom_killed(self) -> bool:
        """SIGKILL that the probe did not send for a timeout: on a phone that is almost always the low-memory
        killer."""
        return self.signal == SIGKILL and not self.timed_out

    def stdout(self) -> str:
        return _read_text(self.directory / "stdout.txt")

    def stderr(self) -> str:
        return _read_text(self.directory / "stderr.txt")

    def memory_figures(self) -> dict[str, int | None]:
        """The peak figures profile.json records, in bytes (None = not measurable on this kernel).

        ``hwm`` is the largest of VmHWM, VmRSS+VmSwap (zram-swapped anonymous pages leave RSS but were
        resident) and wait4's ru_maxrss.
        """
        peaks = self.peaks
        candidates = [peaks.get("vm_hwm"), peaks.get("vm_rss"), _max_rss_plus_swap(self.samples)]
        maxrss = self.rusage.get("maxrss")
        if isinstance(maxrss, int) and maxrss > 0:
            candidates.append(maxrss)
        known = [value for value in candidates if value is not None]
        return {
            "peak_rss": _first_known(peaks.get("vm_rss"), peaks.get("rss")),
            "peak_pss": peaks.get("pss"),
            "peak_anon": _first_known(peaks.get("rss_anon"), peaks.get("pss_anon")),
            "peak_file": _first_known(peaks.get("rss_file"), peaks.get("pss_file")),
            "peak_swap": peaks.get("vm_swap"),
            "hwm": max(known) if known else None,
        }

    def fault_counts(self) -> dict[str, int | None]:
        """The runner's page faults over the whole run: ``{"minor": n, "major": n}`` (None = not known).

        wait4's rusage when the probe finished (it counts the runner's waited-for children too), else the
        exit sample, else the last timeline row.
        """
        rows = [self.exit_sample.values] if self.exit_sample else []
        rows += [sample.values for sample in reversed(self.samples)]
        last = next((row for row in rows if row.get("minflt") is not None), {})
        counts: dict[str, int | None] = {}
        for name, rusage_key in (("minor", "minflt"), ("major", "majflt")):
            value = self.rusage.get(rusage_key)
            counts[name] = int(value) if isinstance(value, int) else last.get(rusage_key)
        return counts

    def section_residency(
        self, sections: Iterable[Sequence[Any]], path: str | None = None
    ) -> dict[str, dict[str, int | None]]:
        """Per section kind: ``{"bytes": end - offset, "resident_peak": bytes or None, "mapped_samples": n,
        "resident_at_exit": bytes or None}``.

        ``sections`` holds ``(kind, offset, end)`` triples (manifest order). ``path`` restricts to the
        mappings of one --maps file (all of them when None). ``resident_peak`` is the largest over the smaps
        samples and the exit sample: None when smaps was never read (unknown), 0 when it was read and the
        section was never mapped; ``mapped_samples`` counts the readings (the exit sample among them) that
        saw the section mapped (0: a caller may prefer to say "unknown"). ``resident_at_exit`` is the exit
        sample's figure — 0 when the section was no longer mapped then — or None without an exit sample of
        the mappings. Kinds that repeat are summed.
        """
        triples = [(str(kind), int(offset), int(end)) for kind, offset, end in sections]
        result: dict[str, dict[str, int | None]] = {}
        for kind, offset, end in triples:
            entry = result.setdefault(
                kind, {"bytes": 0, "resident_peak": None, "mapped_samples": 0, "resident_at_exit": None}
            )
            entry["bytes"] = int(entry["bytes"] or 0) + (end - offset)
        exit_totals = self._exit_residency(triples, path)
        sampled_times = sorted({row.t_ms for row in self.mapping_samples})
        if not sampled_times and self.smaps_samples == 0 and exit_totals is None:
            return result
        readings = list(_residency_by_sample(triples, self.mapping_samples, path).values())
        if exit_totals is not None:
            readings.append(exit_totals)
        for kind in result:
            result[kind]["resident_peak"] = max((totals.get(kind, 0) for totals in readings), default=0)
            result[kind]["mapped_samples"] = sum(1 for totals in readings if kind in totals)
            if exit_totals is not None:
                result[kind]["resident_at_exit"] = exit_totals.get(kind, 0)
        return result

    def section_timeline(
        self, sections: Iterable[Sequence[Any]], path: str | None = None
    ) -> dict[float, dict[str, int]]:
        """Resident bytes per section kind at each smaps sample that saw the bundle: {t_ms: {kind: bytes}}.

        The same pro-rata rule as ``section_residency`` (whose peaks are the largest of these per kind, the
        exit sample included there).
        """
        triples = [(str(kind), int(offset), int(end)) for kind, offset, end in sections]
        per_time = _residency_by_sample(triples, self.mapping_samples, path)
        return {t: dict(kinds) for t, kinds in sorted(per_time.items())}

    def _exit_residency(self, triples: list[tuple[str, int, int]], path: str | None) -> dict[str, int] | None:
        if self.exit_sample is None or not self.exit_sample.smaps_read:
            return None
        return _residency_by_sample(triples, self.exit_sample.mappings, path).get(self.exit_sample.t_ms, {})


def _residency_by_sample(
    triples: list[tuple[str, int, int]], rows: Iterable[MappingSample], path: str | None
) -> dict[float, dict[str, int]]:
    """Per smaps sample (its t_ms): resident bytes per section kind that had a mapping then."""
    per_time: dict[float, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        if path is not None and row.path != path:
            continue
        for kind, share in _resident_shares(triples, row):
            per_time[row.t_ms][kind] += share
    return per_time


def _resident_shares(triples: list[tuple[str, int, int]], row: MappingSample) -> list[tuple[str, int]]:
    """The mapping's Rss split over the sections it overlaps, in proportion to the overlap.

    smaps gives one Rss per mapping, not per page. A mapping is whole pages, so one that maps a section
    also maps the padding or neighbour bytes on its last page; a fully resident mapping therefore gives
    each section exactly its overlapping bytes, never more than the section. Where a mapping spans several
    sections and is only partly resident, the split is an estimate (pages assumed evenly resident).
    """
    start, end = row.offset, row.offset + row.size
    shares = []
    for kind, offset, section_end in triples:
        overlap = min(end, section_end) - max(start, offset)
        if overlap > 0 and row.size > 0:
            shares.append((kind, (row.rss or 0) * overlap // row.size))
    return shares


def _first_known(*values: int | None) -> int | None:
    return next((value for value in values if value is not None), None)


def _max_rss_plus_swap(samples: list[Sample]) -> int | None:
    sums = [
        s.values["vm_rss"] + s.values["vm_swap"]
        for s in samples
        if s.values.get("vm_rss") is not None and s.values.get("vm_swap") is not None
    ]
    return max(sums) if sums else None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _int_or_none(text: str | None) -> int | None:
    if text is None or text.strip() == "":
        return None
    return int(text)


def read_timeline(path: Path) -> list[Sample]:
    """Rows of timeline.csv; a torn last row (probe killed mid-write) is dropped."""
    samples: list[Sample] = []
    try:
        handle = path.open(newline="")
    except FileNotFoundError:
        return samples
    with handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            return samples
        columns = header[1:]
        for row in reader:
            if len(row) != len(header):
                continue
            try:
                values = {name: _int_or_none(cell) for name, cell in zip(columns, row[1:], strict=True)}
                samples.append(Sample(float(row[0]), values))
            except ValueError:
                continue
    return samples


def read_maps(path: Path) -> list[MappingSample]:
    rows: list[MappingSample] = []
    try:
        handle = path.open(newline="")
    except FileNotFoundError:
        return rows
    with handle:
        reader = csv.DictReader(handle)
        for row in reader:
            try:
                rows.append(
                    MappingSample(
                        t_ms=float(row["t_ms"]),
                        path=row["path"],
                        offset=int(row["offset"]),
                        size=int(row["size"]),
                        rss=_int_or_none(row["rss"]),
                        pss=_int_or_none(row["pss"]),
                    )
                )
            except (KeyError, TypeError, ValueError):
                continue  # torn last row
    return rows


def _peaks_from(samples: list[Sample]) -> tuple[dict[str, int | None], list[str]]:
    peaks: dict[str, int | None] = {}
    for name in TIMELINE_FIELDS:
        seen = [s.values[name] for s in samples if s.values.get(name) is not None]
        peaks[name] = max(seen) if seen else None  # type: ignore[type-var]
    missing = [name for name, value in peaks.items() if value is None] if samples else list(TIMELINE_FIELDS)
    return peaks, missing


def _mapping_peaks(rows: list[MappingSample]) -> list[MappingPeak]:
    grouped: dict[tuple[str, int, int], list[MappingSample]] = defaultdict(list)
    for row in rows:
        grouped[(row.path, row.offset, row.size)].append(row)
    peaks = []
    for (path, offset, size), group in grouped.items():
        rss = [r.rss for r in group if r.rss is not None]
        pss = [r.pss for r in group if r.pss is not None]
        peaks.append(MappingPeak(path, offset, size, max(rss) if rss else None, max(pss) if pss else None))
    return peaks


def read_result(directory: Path) -> dict[str, Any]:
    """result.json alone (exit, rusage, peaks, costs): {} when the probe wrote none (it was killed)."""
    result_path = Path(directory) / "result.json"
    if not result_path.is_file():
        return {}
    try:
        raw = json.loads(result_path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{result_path} is not valid JSON ({exc.msg}); was it cut short?") from None
    return raw if isinstance(raw, dict) else {}


def read_probe_output(directory: Path) -> ProbeRun:
    """Parse a probe output folder; raise InputError if it holds no probe output at all."""
    directory = Path(directory)
    result_path = directory / "result.json"
    timeline_path = directory / "timeline.csv"
    if not result_path.is_file() and not timeline_path.is_file():
        raise InputError(
            f"{directory} holds no probe output (no result.json or timeline.csv); did the probe run?"
        )
    samples = read_timeline(timeline_path)
    mapping_samples = read_maps(directory / "maps.csv")
    raw = read_result(directory)
    if not raw:
        peaks, missing = _peaks_from(samples)
        return ProbeRun(
            directory=directory,
            complete=False,
            exit_code=None,
            signal=None,
            timed_out=False,
            wall_s=samples[-1].t_ms / 1000.0 if samples else None,
            rusage={},
            peaks=peaks,
            missing=missing,
            samples=samples,
            mapping_samples=mapping_samples,
            mappings=_mapping_peaks(mapping_samples),
            smaps_samples=len({row.t_ms for row in mapping_samples}),
            exit_sample_note="the probe did not finish (no result.json): no exit sample",
        )
    exit_info = raw.get("exit") or {}
    exit_sample, exit_sample_note = _exit_sample(raw)
    trace = raw.get("trace") or {}
    mappings = [
        MappingPeak(m["path"], int(m["offset"]), int(m["size"]), m.get("rss_peak"), m.get("pss_peak"))
        for m in raw.get("mappings", [])
    ]
    return ProbeRun(
        directory=directory,
        complete=True,
        exit_code=exit_info.get("code"),
        signal=exit_info.get("signal"),
        timed_out=bool(exit_info.get("timed_out")),
        wall_s=raw.get("wall_s"),
        rusage=dict(raw.get("rusage") or {}),
        peaks={name: (raw.get("peaks") or {}).get(name) for name in TIMELINE_FIELDS},
        missing=list(raw.get("missing") or []),
        samples=samples,
        mapping_samples=mapping_samples,
        mappings=mappings,
        interval_ms=raw.get("interval_ms"),
        smaps_samples=int(raw.get("smaps_samples") or 0),
        smaps_cost_us_mean=raw.get("smaps_cost_us_mean"),
        sample_cost_us_mean=raw.get("sample_cost_us_mean"),
        rollup_samples=int(raw.get("rollup_samples") or 0),
        rollup_cost_us_mean=raw.get("rollup_cost_us_mean"),
        pid=raw.get("pid"),
        argv=list(raw.get("argv") or []),
        error=raw.get("error"),
        probe_version=raw.get("probe_version"),
        traced=bool(trace.get("enabled")),
        trace_error=trace.get("error"),
        exit_sample=exit_sample,
        exit_sample_note=exit_sample_note,
        raw=raw,
    )


def _exit_sample(raw: dict[str, Any]) -> tuple[ExitSample | None, str | None]:
    """result.json's exit sample, or None and why there is none (a probe before version 2 took none)."""
    entry = raw.get("exit_sample")
    if not isinstance(entry, dict):
        return None, "this probe version takes no exit sample"
    if not entry.get("taken"):
        return None, str(entry.get("reason") or "no exit sample was taken")
    t_ms = float(entry.get("t_ms") or 0)
    values = entry.get("values") or {}
    mappings = [
        MappingSample(t_ms, m["path"], int(m["offset"]), int(m["size"]), m.get("rss"), m.get("pss"))
        for m in entry.get("mappings") or []
    ]
    fields = (*TIMELINE_FIELDS, *FAULT_FIELDS)
    return ExitSample(
        t_ms=t_ms,
        values={name: values.get(name) for name in fields},
        smaps_read=bool(entry.get("smaps_read")),
        mappings=mappings,
    ), None
