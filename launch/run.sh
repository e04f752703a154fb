#!/usr/bin/env bash
# launch/run.sh — install what is missing, build, and run the main job on its embedded default.
# Until the trainer lands, the main job is the SLA demonstration: random video-like Q/K/V,
# forward and backward on the best backend present (CUDA when a GPU is there, else CPU),
# printing the kept block ratio, SLA's error against dense attention and the time of each part.
# Extra arguments go to the program (build/bin/sla-demo --help lists them).
source "$(dirname "$0")/common.sh"
sla_install_deps
sla_build
exec "$SLA_BUILD_DIR/bin/sla-demo" "$@"
