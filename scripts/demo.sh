#!/usr/bin/env bash
# make demo: the main job end to end on the built-in default.
set -euo pipefail
out=${1:-demo-out}
mkdir -p "$out"
edgeship testing make-checkpoint --arch gemma4 --size tiny -o "$out/ckpt-gemma4" --force
# Each export ends with the summary `edgeship inspect BUILD` prints: sections, quantization, PLE table.
edgeship export "$out/ckpt-gemma4" -o "$out/build-int8" --recipe int8 --force
edgeship export "$out/ckpt-gemma4" -o "$out/build-int4" --recipe int4 --force

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
# Profile both devices in parallel: warm-up + 3 measured runs each through the native probe. The tiny model
# runs in half a second, so smaps (section residency) is sampled at a fixed 50 ms instead of adaptively.
edgeship profile "$out/build-int8" "${selection[@]}" --prefill 32 --decode 64 --iterations 3 --warmup 1 \
  --smaps-interval-ms 50 -o "$out/runs"

# What a bench report looks like: one HTML file (plots inline, opens offline) and the Markdown CI would post.
edgeship report "$out/runs" -o "$out/report.html" --md "$out/report.md"
edgeship plan "$out/build-int8" --device-profile vflagship --device-profile vbudget4g
echo "report: $(realpath "$out/report.html")"
echo "markdown: $(realpath "$out/report.md")"
