#!/usr/bin/env bash
# make demo: the main job end to end on a bundle whose PLE table dominates it, so the profile shows what the
# Gemma 4 launch claims: only the core weights are loaded, the PLE table is paged in on demand.
set -euo pipefail
out=${1:-demo-out}
mkdir -p "$out"
started=$SECONDS
# 65 536 tokens x 8 layers x 256: a 130 MiB int8 PLE table of a 153 MiB bundle (export ~76 s on 2 cores).
edgeship testing make-checkpoint --arch gemma4 --size ple-heavy -o "$out/ckpt-gemma4" --force
# The export ends with the summary `edgeship inspect BUILD` prints: sections, quantization, PLE table.
edgeship export "$out/ckpt-gemma4" -o "$out/build-int8" --recipe int8 --force

# Two virtual phones (a flagship and a 4 GB one) on the local adb server; stopped however the demo ends.
devices=(demo-flagship demo-budget)
stop_devices() { for name in "${devices[@]}"; do edgeship vdevice stop "$name" >/dev/null 2>&1 || true; done; }
trap stop_devices EXIT
serial_of() { python -c 'import json,sys; print(json.load(sys.stdin)["serial"])'; }
flagship=$(edgeship vdevice start --name demo-flagship --profile vflagship --root "$out/vdevices/flagship" --json | serial_of)
budget=$(edgeship vdevice start --name demo-budget --profile vbudget4g --root "$out/vdevices/budget" --json | serial_of)
edgeship devices
selection=(--device "$flagship" --device "$budget")

edgeship push "$out/build-int8" "${selection[@]}"
# Both devices in parallel: warm-up + 3 measured runs each, the native runner under the native probe. Each run
# is ~1 s; the probe's last sample at the runner's exit measures every section however short the run.
# The lines under the table say how much of each section was resident: the PLE table a few percent of it.
edgeship profile "$out/build-int8" "${selection[@]}" --prefill 32 --decode 16 --iterations 3 --warmup 1 \
  -o "$out/runs"

# What a bench report looks like: one HTML file (plots inline, opens offline) and the Markdown CI would post.
edgeship report "$out/runs" -o "$out/report.html" --md "$out/report.md"
edgeship plan "$out/build-int8" --device-profile vflagship --device-profile vbudget4g
echo "demo: $((SECONDS - started)) s"
echo "report: $(realpath "$out/report.html")"
echo "markdown: $(realpath "$out/report.md")"
