#!/usr/bin/env bash
# install-deps.sh - installs everything custpulse needs to build, test and run
# the local demo, on Debian 12 or Ubuntu 22.04+.
#
# Idempotent: packages already installed are left alone, and `apt-get update`
# runs only when something is missing. Uses sudo only when not root.
#
#   deploy/install-deps.sh           install what is missing
#   deploy/install-deps.sh --check   list what is missing, exit 1 if anything
set -euo pipefail

PKGS=(
    build-essential cmake pkg-config                # toolchain
    librdkafka-dev libhiredis-dev libjansson-dev    # custpulse libraries
    libuv1-dev libcmocka-dev
    redis-server kcat                               # local services, tools
    openjdk-17-jdk-headless maven                   # Kafka broker from jars
    python3 python3-jsonschema valgrind tzdata clang # tests (clang: libFuzzer;
                                                    # jsonschema: schemas/ checked)
)

check_only=0
case "${1-}" in
    --check) check_only=1 ;;
    "") ;;
    *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-deps: needs a Debian/Ubuntu system (dpkg and apt-get)" >&2
    exit 1
fi

# A package counts as present only when fully installed ("install ok
# installed"); half-configured or removed-with-config ones are reinstalled.
missing=()
for pkg in "${PKGS[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [ "$status" != "install ok installed" ]; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-deps: all ${#PKGS[@]} packages present"
    exit 0
fi
echo "install-deps: missing: ${missing[*]}"
if [ "$check_only" -eq 1 ]; then
    exit 1
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "install-deps: not root and sudo is not installed" >&2
        exit 1
    fi
    SUDO=(sudo)
fi

# `env` so that the variable survives sudo's environment reset.
APT=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get)
"${APT[@]}" update -q
"${APT[@]}" install -y -q --no-install-recommends "${missing[@]}"
echo "install-deps: installed ${missing[*]}"
