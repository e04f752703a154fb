#!/usr/bin/env bash
# launch/gpu-check.sh OUTDIR — the GPU machine's check, in one call: configure for sm_90a into
# build-gpu, build, `ctest -L gpu`, test_sla_cuda once more on the mma.sync flash kernels (what
# non-Hopper builds run), compute-sanitizer memcheck and racecheck on test_sla_cuda at a
# small size, sla-bench, dit-bench and the torch SDPA anchors (tests/bench/anchors.py). Logs and a short
# table go to OUTDIR (at most 8 files, so several steps share a log); the table is printed last.
# Environment: SLA_GPU_BUILD_DIR (default build-gpu), SLA_JOBS (default nproc),
# SLA_BENCH_ARGS (e.g. --quick), SLA_SKIP=comma list of steps to skip
# (ctest,fallback,sanitizer,bench,ditbench,anchors), SLA_PROFILE=1 adds the forward kernel's
# per-phase cycle profile (a second build in build-prof with -DSLA_FWD_PROFILE, sla-bench --quick).
# Exit status: 0 when every step that ran passed.
set -uo pipefail
out="${1:?usage: launch/gpu-check.sh OUTDIR}"
mkdir -p "$out"
root="$(cd "$(dirname "$0")/.." && pwd)"
bld="${SLA_GPU_BUILD_DIR:-$root/build-gpu}"
jobs="${SLA_JOBS:-$(nproc)}"
skip=",${SLA_SKIP:-},"
export PYTHONUNBUFFERED=1
[ -d /usr/local/cuda/bin ] && export PATH="/usr/local/cuda/bin:$PATH"
summary="$out/summary.md"
: >"$summary"
status=0
note() { echo "$*" | tee -a "$summary"; }
run_step() { # name log command...
    local name="$1" log="$2"
    shift 2
    local t0=$SECONDS
    echo "== $name: $*" >>"$log"
    "$@" >>"$log" 2>&1
    local rc=$?
    if [ $rc -eq 0 ]; then note "- $name: ok ($((SECONDS - t0)) s)"; else note "- $name: FAILED rc=$rc ($((SECONDS - t0)) s, see $(basename "$log"))"; status=1; fi
    return $rc
}

note "# gpu-check $(date -u +%Y-%m-%dT%H:%MZ) on $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"
note "commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null) (+ working tree; this .git may be stale), sources $("$root/launch/source-hash.sh" "$root" 2>&1) (launch/source-hash.sh)"
gen=""
command -v ninja >/dev/null && gen="-G Ninja"
run_step configure "$out/build.log" cmake -S "$root" -B "$bld" $gen -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CUDA_ARCHITECTURES=90a -DSLA_CUDA=ON
# Keep going past other components' failures so that the SLA targets still get built.
if ! run_step build "$out/build.log" cmake --build "$bld" -j "$jobs" -- -k 0; then
    run_step build-sla "$out/build.log" cmake --build "$bld" -j "$jobs" --target test_sla_cuda sla-bench
fi

if [[ $skip != *,ctest,* ]]; then
    pushd "$bld" >/dev/null
    run_step "ctest -L gpu" "$out/ctest_gpu.log" ctest -L gpu -LE bench -V --timeout 3000
    popd >/dev/null
    grep -E "tests passed|tests failed|\*\*\*Failed|Not Run|FAIL" "$out/ctest_gpu.log" | head -40 | sed 's/^/    /' | tee -a "$summary"
fi
if [[ $skip != *,fallback,* ]] && [ -x "$bld/bin/test_sla_cuda" ]; then
    # The mma.sync flash kernels that non-Hopper builds use, forced on this GPU.
    run_step "test_sla_cuda with the mma.sync kernels (SLA_FLASH_WG=0)" "$out/ctest_gpu.log" \
        env SLA_FLASH_WG=0 "$bld/bin/test_sla_cuda"
fi
if [[ $skip != *,sanitizer,* ]] && [ -x "$bld/bin/test_sla_cuda" ]; then
    san="$out/sanitizer.log"
    run_step "compute-sanitizer memcheck (test_sla_cuda --small)" "$san" \
        compute-sanitizer --tool memcheck --error-exitcode 3 "$bld/bin/test_sla_cuda" --small
    run_step "compute-sanitizer racecheck (test_sla_cuda --small)" "$san" \
        compute-sanitizer --tool racecheck --racecheck-report all --error-exitcode 3 "$bld/bin/test_sla_cuda" --small
    grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$san" | sed 's/^/    /' | tee -a "$summary"
fi
if [[ $skip != *,bench,* ]] && [ -x "$bld/bin/sla-bench" ]; then
    run_step "sla-bench ${SLA_BENCH_ARGS:-}" "$out/sla_bench.log" "$bld/bin/sla-bench" ${SLA_BENCH_ARGS:-} --csv "$out/sla_bench.csv"
fi
if [ "${SLA_PROFILE:-0}" = 1 ]; then
    prof="$out/build.log"
    run_step "configure build-prof" "$prof" cmake -S "$root" -B "$root/build-prof" $gen -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_CUDA_ARCHITECTURES=90a -DSLA_CUDA=ON -DCMAKE_CUDA_FLAGS=-DSLA_FWD_PROFILE &&
        run_step "build-prof" "$prof" cmake --build "$root/build-prof" -j "$jobs" --target sla-bench &&
        run_step "forward profile (build-prof sla-bench --quick, in build.log)" "$prof" "$root/build-prof/bin/sla-bench" --quick
fi
if [[ $skip != *,ditbench,* ]] && [ -x "$bld/bin/dit-bench" ]; then
    run_step "dit-bench (Wan2.1-1.3B 480p step, dense vs SLA)" "$out/dit_bench.log" "$bld/bin/dit-bench" --reps 3
fi
if [[ $skip != *,anchors,* ]]; then
    aargs=""
    [[ "${SLA_BENCH_ARGS:-}" == *--quick* ]] && aargs="--quick"
    run_step "anchors (torch SDPA)" "$out/anchors.log" python3 "$root/tests/bench/anchors.py" $aargs
fi

{
    echo
    echo "## sla-bench (median ms; TF/s real / dense-equivalent)"
    [ -f "$out/sla_bench.log" ] && grep -E "^\|" "$out/sla_bench.log"
    echo
    echo "## phases (ms; sla-bench's one timed run per case, in its order) and the forward profile (last launch per shape)"
    if [ -f "$out/sla_bench.log" ]; then
        grep "^\[sla timing\]" "$out/sla_bench.log"
    fi
    if [ -f "$out/build.log" ]; then
        grep "^\[wg_fwd profile\]" "$out/build.log" | awk '{last[$4" "$6" "$8" "$10]=$0} END {for (k in last) print last[k]}'
    fi
    echo
    echo "## anchors: torch SDPA, same shapes"
    [ -f "$out/anchors.log" ] && grep -E "^\|" "$out/anchors.log"
    echo
    echo "## dit-bench: one training step of Wan2.1-1.3B at 480p (recompute on)"
    [ -f "$out/dit_bench.log" ] && grep -E "^\|" "$out/dit_bench.log"
} >>"$summary"
echo
cat "$summary"
exit $status
