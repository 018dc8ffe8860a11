#!/usr/bin/env bash
# make demo: the main job end to end on the built-in default.
set -euo pipefail
out=${1:-demo-out}
mkdir -p "$out"
edgeship testing make-checkpoint --arch gemma4 --size tiny -o "$out/ckpt-gemma4" --force
edgeship export "$out/ckpt-gemma4" -o "$out/build-int8" --recipe int8 --force
edgeship export "$out/ckpt-gemma4" -o "$out/build-int4" --recipe int4 --force
edgeship inspect "$out/build-int8"
edgeship inspect "$out/build-int4"
