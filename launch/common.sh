# launch/common.sh — sourced by run.sh and test.sh: install what a fresh Debian/Ubuntu machine
# lacks (as root, through apt-get), then configure and build into build/ (or $SLA_BUILD_DIR).
# Honours SLA_CMAKE_ARGS (extra cmake arguments) and SLA_JOBS (parallel build jobs).
set -euo pipefail

SLA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SLA_BUILD_DIR="${SLA_BUILD_DIR:-$SLA_ROOT/build}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1  # the machines run as root
[ -d /usr/local/cuda/bin ] && export PATH="/usr/local/cuda/bin:$PATH"

sla_install_deps() {
    local missing=()
    command -v cmake >/dev/null || missing+=(cmake)
    command -v gcc >/dev/null || missing+=(build-essential)
    command -v mpicc >/dev/null || missing+=(libopenmpi-dev openmpi-bin)
    [ -f /usr/include/hdf5/serial/hdf5.h ] || [ -f /usr/include/hdf5.h ] || missing+=(libhdf5-dev)
    [ ${#missing[@]} -eq 0 ] && return 0
    if ! command -v apt-get >/dev/null; then
        echo "launch: missing ${missing[*]} and no apt-get to install them; install them and retry" >&2
        exit 1
    fi
    echo "launch: installing ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 ||
        { $sudo apt-get update -qq && $sudo apt-get install -y -qq "${missing[@]}"; }
}

sla_build() {
    local jobs="${SLA_JOBS:-$(nproc)}"
    cmake -S "$SLA_ROOT" -B "$SLA_BUILD_DIR" -DCMAKE_BUILD_TYPE=Release ${SLA_CMAKE_ARGS:-} >/dev/null
    cmake --build "$SLA_BUILD_DIR" -j "$jobs" | grep -vE "^\[ *[0-9]+%\] (Built target|Building|Linking)" || true
}

sla_have_gpu() { command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q GPU; }
