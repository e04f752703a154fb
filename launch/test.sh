#!/usr/bin/env bash
# launch/test.sh — install what is missing, build, and run every test label this machine can run:
# cpu, mpi and slow everywhere, gpu too where a GPU is present; never bench. The last line is
# ctest's summary. Extra arguments go to ctest (e.g. -R sla_cpu, --output-on-failure is set).
source "$(dirname "$0")/common.sh"
sla_install_deps
sla_build
labels="cpu|mpi|slow"
sla_have_gpu && labels="$labels|gpu"
cd "$SLA_BUILD_DIR"
exec ctest -L "$labels" -LE bench --output-on-failure "$@"
