#!/usr/bin/env bash
# tests/ptxas_check.sh NVCC KERNELS_DIR — a static check of the Hopper attention kernels' machine
# code, no GPU needed (ctest label cpu): compiles kernels/cuda/sla_flash_wg.cu and
# sla_flash_wg_bwd.cu for sm_90a with `-Xptxas -v` and fails, naming the kernel and the report line,
# when ptxas
#   - serialises wgmma instructions (its C7510-C7519 "Potential Performance Loss" notes: a wait it
#     injects, e.g. for code with branches or loops while a wgmma is in flight; this once made the
#     dense forward 30% slower with every test still passing), or
#   - spills registers in the forward, dQ or dK/dV kernels (wg_fwd_kernel, wg_dq_kernel,
#     wg_dkdv_kernel).
# Timing stays in the benchmarks; this only reads what the compiler reports.
set -uo pipefail
nvcc="${1:?usage: tests/ptxas_check.sh NVCC KERNELS_DIR}"
kdir="${2:?usage: tests/ptxas_check.sh NVCC KERNELS_DIR}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
status=0
for src in sla_flash_wg.cu sla_flash_wg_bwd.cu; do
    log="$tmp/$src.log"
    if ! "$nvcc" -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a -DSLA_WGMMA=1 -DSLA_HAVE_CUDA=1 \
        --expt-relaxed-constexpr -I"$kdir" -Xptxas -v -c "$kdir/cuda/$src" -o "$tmp/$src.o" >"$log" 2>&1; then
        echo "ptxas_check: $src does not compile:"
        cat "$log"
        exit 1
    fi
    # One line per problem: "<kernel>: <report>".
    problems="$(awk '
        /Compiling entry function/ { fn = $0; sub(/.*entry function .../, "", fn); sub(/. for .sm_90a.*/, "", fn) }
        /Function properties for/ { fn = $0; sub(/.*Function properties for /, "", fn) }
        /\(C751[0-9]\)/ { print "wgmma serialised: " $0 }
        /bytes spill stores/ {
            n = $0; sub(/.*stack frame, /, "", n); sub(/ bytes spill stores.*/, "", n)
            if (n + 0 > 0 && fn ~ /wg_(fwd|dq|dkdv)_kernel/) print fn ": " $0
        }' "$log")"
    if [ -n "$problems" ]; then
        echo "ptxas_check: $src:"
        echo "$problems" | sed 's/^/  /' | { command -v c++filt >/dev/null && c++filt || cat; }
        status=1
    else
        echo "ptxas_check: $src: no wgmma serialisation, no spills in the attention kernels"
    fi
done
exit $status
