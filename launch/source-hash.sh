#!/usr/bin/env bash
# launch/source-hash.sh [ROOT] — one short hash of the project's source files as they are on disk
# (CMakeLists.txt and every file under kernels, model, train, dist, data, tests, launch, configs), so
# that a log written where .git is stale (the GPU machine's copy keeps the first commit of a
# session) still names the exact tree: run it on a checkout of the commit you think it was and
# compare. Prints 12 hex digits; exit status non-zero when ROOT is not a project tree.
set -euo pipefail
root="${1:-$(cd "$(dirname "$0")/.." && pwd)}"
cd "$root"
[ -f CMakeLists.txt ] && [ -d kernels ] || { echo "source-hash: $root is not the project's root" >&2; exit 2; }
find CMakeLists.txt kernels model train dist data tests launch configs -type f -not -name '*.pyc' -print0 |
    LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-12
