#!/usr/bin/env bash
# launch/run.sh — install what is missing, build, and run the main job on its embedded default:
# make a synthetic dataset (objects moving across frames, with text that describes them) and
# fine-tune with SLA — the tiny model on the CPU, the small model when a GPU is present —
# stopping half-way with a checkpoint and resuming from it, as a real interrupted job would.
# Output: runs/<preset>-demo/ (checkpoints, metrics.jsonl). Extra arguments are --set overrides
# for sla-train (e.g. launch/run.sh --set steps=100).
source "$(dirname "$0")/common.sh"
sla_install_deps
sla_build
cd "$SLA_ROOT"
bin="$SLA_BUILD_DIR/bin"
if sla_have_gpu; then preset=small; n=256; else preset=tiny; n=64; fi
data="runs/data/$preset.h5"
out="runs/$preset-demo"
mkdir -p runs/data
[ -f "$data" ] || "$bin/sla-data" synth --preset "$preset" --n "$n" --out "$data"
rm -rf "$out"
steps=$(sed -n 's/^steps *= *\([0-9]*\).*/\1/p' "configs/$preset.cfg")
echo "== first half: $((steps / 2)) of $steps steps, then a checkpoint"
"$bin/sla-train" --config "configs/$preset.cfg" --set out_dir="$out" --set data="$data" \
    --set stop_after=$((steps / 2)) "$@"
echo "== resume from the newest checkpoint and finish"
exec "$bin/sla-train" --config "configs/$preset.cfg" --set out_dir="$out" --set data="$data" "$@"
