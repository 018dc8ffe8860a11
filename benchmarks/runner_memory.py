"""Runner comparison: memory and decode speed of the same bundles under edgeship's two x86-64 runners.

For each build (tiny and ple-heavy Gemma-4, int8) and each runner (``native``: C on liblitert-lm.so;
``host-python``: the Python runner on litert-lm-api), runs alternate (native, python, native, …) under the
probe at 50 ms with the bundle's mappings tracked, as ``edgeship profile`` runs them on a virtual device.
Reported per build and runner (medians over the runs): peak RSS, peak anonymous and peak file-backed memory
(the probe's VmRSS, RssAnon, RssFile), and at the runner's exit the resident bytes of the files it maps: the
bundle (all sections), liblitert-lm.so, the XNNPACK weight cache the engine writes beside the bundle on its
first run and maps on every later one (``model.litertlm_<mtime>_<size>.xnnpack_cache``), and the rest (libc,
python and its modules); then decode tokens/s. The memory planner needs the runner's own share to be small and
known: this is that share. (A mapping's Rss also counts its copy-on-write pages, so a library's figure holds
its relocated data, which RssAnon counts as anonymous.)

    .venv/bin/python benchmarks/runner_memory.py [--runs 5] [--prefill 32] [--decode 256] [--json-out F]
        [--build tiny=BUILD_DIR --build ple-heavy=BUILD_DIR]

Builds not given are exported under --work when not there yet (about a minute each).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from probe_overhead import emit, machine, make_build, runner_argv, summary  # noqa: E402

from edgeship.android_harness.probe import build_probe, probe_command, read_probe_output  # noqa: E402
from edgeship.android_harness.runners import HOST_PYTHON, NATIVE, RunConfig, get_adapter  # noqa: E402
from edgeship.android_harness.runners.native import litert_lm_library  # noqa: E402

MIB = 1024 * 1024


def run_once(
    probe: Path, which: str, bundle: Path, sections: list, cfg: RunConfig, out: Path
) -> dict[str, Any]:
    argv, env = runner_argv(which, bundle, cfg)
    library = litert_lm_library()
    caches = sorted(bundle.parent.glob(f"{bundle.name}_*.xnnpack_cache"))  # written by the first run
    maps = [str(bundle), str(library), *(str(cache) for cache in caches)]
    command = probe_command(str(probe), str(out), argv, interval_ms=50, maps=maps)
    completed = subprocess.run(command, capture_output=True, text=True, timeout=3600, env=env)
    run = read_probe_output(out)
    if completed.returncode != 0 or not run.ok:
        sys.exit(f"{which} on {bundle} failed ({completed.returncode}): {run.stderr()[-2000:]}")
    metrics = get_adapter("litert_lm_main").parse(run.stdout(), run.stderr())
    figures = run.memory_figures()
    residency = run.section_residency(sections, path=str(bundle))
    at_exit = sum(entry["resident_at_exit"] or 0 for entry in residency.values())
    peak_sections = sum(entry["resident_peak"] or 0 for entry in residency.values())
    if run.exit_sample is None:
        sys.exit(f"{which}: no exit sample ({run.exit_sample_note})")
    exit_values = run.exit_sample.values
    mapped_at_exit = {path: 0 for path in maps}
    for mapping in run.exit_sample.mappings:
        mapped_at_exit[mapping.path] += mapping.rss or 0
    library_rss = mapped_at_exit[str(library)]
    cache_rss = sum(mapped_at_exit[str(cache)] for cache in caches)
    return {
        "decode_tok_s": metrics.decode_tok_s,
        "prefill_tok_s": metrics.prefill_tok_s,
        "wall_s": run.wall_s,
        "peak_rss": figures["peak_rss"],
        "peak_anon": figures["peak_anon"],
        "peak_file": figures["peak_file"],
        "peak_pss": figures["peak_pss"],
        "bundle_resident_at_exit": at_exit,
        "bundle_resident_peak": peak_sections,
        "rss_at_exit": exit_values.get("vm_rss"),
        "anon_at_exit": exit_values.get("rss_anon"),
        "file_at_exit": exit_values.get("rss_file"),
        "library_at_exit": library_rss,
        "xnnpack_cache_at_exit": cache_rss,
        # Resident pages of every other mapping (file-backed and anonymous: libc, python, heap): RSS minus the
        # three files above.
        "rest_at_exit": exit_values["vm_rss"] - at_exit - library_rss - cache_rss,
        "major_faults": run.fault_counts()["major"],
        "minor_faults": run.fault_counts()["minor"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="tiny,ple-heavy")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgeship-runner-bench")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--prefill", type=int, default=32)
    parser.add_argument("--decode", type=int, default=256)
    parser.add_argument("--threads", type=int, default=None, help="runner CPU threads (engine default)")
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--build", action="append", default=[], help="SIZE=BUILD_DIR of an existing export")
    args = parser.parse_args()
    given = dict(item.split("=", 1) for item in args.build)

    args.work.mkdir(parents=True, exist_ok=True)
    probe = build_probe("x86_64")
    cfg = RunConfig(prefill=args.prefill, decode=args.decode, threads=args.threads)
    results: dict[str, dict[str, Any]] = {}
    for size in args.sizes.split(","):
        build = Path(given[size]) if size in given else make_build(args.work, size)
        manifest = json.loads((build / "manifest.json").read_text())
        bundle = build / manifest["bundle"]["file"]
        sections = [(s["kind"], s["offset"], s["end"]) for s in manifest["sections"]]
        runs: dict[str, list[dict[str, Any]]] = {NATIVE: [], HOST_PYTHON: []}
        for which in runs:  # one unmeasured run each: page cache and imports warm for both
            run_once(probe, which, bundle, sections, cfg, args.work / f"{size}-{which}-warmup")
        for index in range(args.runs):
            order = (NATIVE, HOST_PYTHON) if index % 2 == 0 else (HOST_PYTHON, NATIVE)
            for which in order:
                figures = run_once(probe, which, bundle, sections, cfg, args.work / f"{size}-{which}-{index}")
                runs[which].append(figures)
                print(
                    f"{size} {which:11s} rss {figures['peak_rss'] / MIB:6.1f} MiB anon "
                    f"{figures['peak_anon'] / MIB:5.1f} file {figures['peak_file'] / MIB:6.1f} "
                    f"decode {figures['decode_tok_s']:.1f} tok/s",
                    file=sys.stderr,
                )
        results[size] = {
            "bundle_bytes": bundle.stat().st_size,
            **{
                which: {
                    name: summary([r[name] for r in rows if r[name] is not None])
                    for name in rows[0]
                    if any(r[name] is not None for r in rows)
                }
                for which, rows in runs.items()
            },
            "runs": runs,
        }
    figures = {
        "machine": machine(),
        "config": {**vars(args), "work": str(args.work), "json_out": str(args.json_out)},
        "results": results,
    }
    emit(figures, args.json_out)


if __name__ == "__main__":
    main()
