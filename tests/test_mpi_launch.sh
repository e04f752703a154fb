#!/usr/bin/env bash
# tests/test_mpi_launch.sh MPIEXEC SLA_TRAIN SLA_DATA — sla-train started by mpirun (label mpi):
# one rank trains to the end and writes its checkpoint; two ranks exit 2 with the sentence that
# says multi-rank training is not implemented yet, and write nothing.
set -u
mpiexec="$1" train="$2" data="$3"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
"$data" synth --preset tiny --n 8 --out "$dir/d.h5" >/dev/null || fail "sla-data synth"
common=(--config /dev/null --set data="$dir/d.h5" --set sla_blkq=16 --set sla_blkk=16 --set steps=3
        --set backend=cpu --set ckpt_every=0)
"$mpiexec" -np 1 "$train" "${common[@]}" --set out_dir="$dir/one" >"$dir/one.txt" 2>&1 ||
    { cat "$dir/one.txt"; fail "one rank under mpirun"; }
[ -f "$dir/one/ckpt-00000003.h5" ] || fail "one rank wrote no final checkpoint"
"$mpiexec" -np 2 "$train" "${common[@]}" --set out_dir="$dir/two" >"$dir/two.txt" 2>&1
rc=$?
[ $rc -ne 0 ] || fail "two ranks were not refused"
grep -q "multi-rank (data-parallel) training is not implemented yet" "$dir/two.txt" || { cat "$dir/two.txt"; fail "no sentence"; }
[ ! -e "$dir/two" ] || fail "two refused ranks wrote $dir/two"
echo "test_mpi_launch: one rank trained (3 steps, checkpoint); two ranks refused (exit $rc)"
