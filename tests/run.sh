#!/usr/bin/env bash
# tests/run.sh - the whole test run, locally and in CI (.ci/run calls it).
#
#   tests/run.sh [--quick]
#
# 1. deploy/install-deps.sh (installs only what is missing)
# 2. build/ (RelWithDebInfo), the Kafka jars (deploy/local/stack.sh fetch)
# 3. ctest in build/: every label (unit, integration, ...)
# 4. unless --quick or CP_SANITIZE_RUN=0:
#    - build-asan/ (-DCP_SANITIZE=ON: ASan + UBSan), ctest -L 'unit|integration'
#    - every unit test of build/ under valgrind memcheck
#    - the libFuzzer targets of tests/fuzz/ for CP_FUZZ_SECONDS each (30,
#      side by side; 0 skips them)
#
# Environment: CP_SANITIZE_RUN (default 1), CP_CTEST_JOBS (ctest -j, default
# 1: the fault tests and some integration tests run their own Kafka, the
# other integration tests share one per ctest run, fixture cp_shared_kafka
# in tests/CMakeLists.txt), CP_BUILD_JOBS (default 2).
# Exits non-zero on the first failure.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd -P)

quick=0
for arg in "$@"; do
    case $arg in
        --quick) quick=1 ;;
        -h | --help)
            sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "run.sh: unknown argument $arg (try --help)" >&2
            exit 2
            ;;
    esac
done
SANITIZE=${CP_SANITIZE_RUN:-1}
CTEST_JOBS=${CP_CTEST_JOBS:-1}
BUILD_JOBS=${CP_BUILD_JOBS:-2}

T0=$(date +%s)
step() {
    echo
    echo "=== [$(($(date +%s) - T0))s] $* ==="
}

step "dependencies"
deploy/install-deps.sh

step "build (build/, RelWithDebInfo)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$BUILD_JOBS"

step "Kafka jars"
deploy/local/stack.sh fetch

step "ctest (build/, every label but long)"
# Label "long" holds the full-size fault tests (by hand:
# ctest --test-dir build -L long); "faults" runs their CI size.
ctest --test-dir build --output-on-failure -j"$CTEST_JOBS" -LE '^long$'

if [ "$quick" -eq 1 ] || [ "$SANITIZE" = 0 ]; then
    step "done (sanitizer and valgrind passes skipped)"
    exit 0
fi

step "build (build-asan/, ASan + UBSan)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCP_SANITIZE=ON
cmake --build build-asan -j"$BUILD_JOBS"

step "ctest (build-asan/, unit + integration)"
# The build uses -fno-sanitize-recover=undefined, so any ASan or UBSan report
# ends the process with a non-zero status and fails its test. The harness
# self-test runs no custpulse code (only the test tool cpkafka): not here;
# nor the full 69,659-event CDNOW replay (the suite's 20-minute budget):
# its code path, the plain batch, runs under ASan in every other test, and
# test_cdnow_warnings replays the CDNOW sample here.
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    ctest --test-dir build-asan --output-on-failure -j"$CTEST_JOBS" \
    -L '^(unit|integration)$' -E 'test_harness_selftest|test_cdnow_replay'

step "valgrind (unit tests of build/)"
# The commands and working directories come from ctest itself, so this runs
# exactly what `ctest -L unit` runs. (ctest -T memcheck would need
# include(CTest) in the top-level CMakeLists.)
ctest --test-dir build -L '^unit$' --show-only=json-v1 >build/unit-tests.json
python3 - build/unit-tests.json >build/unit-tests.list <<'PY'
import json, sys
with open(sys.argv[1]) as f:
    doc = json.load(f)
for t in doc.get("tests", []):
    wd = next((p["value"] for p in t.get("properties", [])
               if p["name"] == "WORKING_DIRECTORY"), ".")
    print("\t".join([t["name"], wd] + t["command"]))
PY
VG=(valgrind --quiet --error-exitcode=99 --leak-check=full
    --errors-for-leak-kinds=definite,indirect
    --show-leak-kinds=definite,indirect --track-origins=yes)
if [ -f tests/valgrind.supp ]; then
    VG+=(--suppressions="$ROOT/tests/valgrind.supp")
fi
n=0
failed=()
while IFS=$'\t' read -r -a t; do
    name=${t[0]} wd=${t[1]}
    n=$((n + 1))
    echo "--- valgrind $name"
    if ! (cd "$wd" && "${VG[@]}" "${t[@]:2}"); then
        failed+=("$name")
    fi
done <build/unit-tests.list
if [ "${#failed[@]}" -gt 0 ]; then
    echo "valgrind: ${#failed[@]} of $n unit tests failed: ${failed[*]}" >&2
    exit 1
fi
echo "valgrind: $n unit tests clean"

# libFuzzer (clang, from Debian's clang package): the decoder, the config
# parsers and the segment rule language, each for CP_FUZZ_SECONDS (30) on
# a copy of its seed corpus, side by side.
FUZZ_S=${CP_FUZZ_SECONDS:-30}
if [ "$FUZZ_S" -gt 0 ]; then
    step "fuzz (build-fuzz/, $FUZZ_S s per target, in parallel)"
    cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DCP_FUZZ=ON \
        -DCMAKE_C_COMPILER=clang >/dev/null
    cmake --build build-fuzz -j"$BUILD_JOBS" --target fuzz_decode fuzz_config \
        fuzz_expr
    pids=()
    targets=()
    for t in decode:corpus config:corpus-config expr:corpus-expr; do
        target=fuzz_${t%%:*} seeds=tests/fuzz/${t#*:}
        work=build-fuzz/work-$target
        rm -rf "$work" && mkdir -p "$work" && cp "$seeds"/* "$work"/
        build-fuzz/tests/fuzz/"$target" "$work" -max_total_time="$FUZZ_S" \
            -print_final_stats=1 2>build-fuzz/$target.log &
        pids+=($!)
        targets+=("$target")
    done
    fuzz_failed=0
    for i in "${!pids[@]}"; do
        target=${targets[$i]}
        if ! wait "${pids[$i]}"; then
            tail -40 build-fuzz/$target.log >&2
            fuzz_failed=1
        fi
        grep -E "^stat::number_of_executed_units" build-fuzz/$target.log |
            sed "s/^/$target: /"
        echo "$target: corpus $(ls build-fuzz/work-$target | wc -l) inputs"
    done
    [ "$fuzz_failed" -eq 0 ] || exit 1
fi

step "done"
