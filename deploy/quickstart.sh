#!/usr/bin/env bash
# quickstart.sh - from a fresh Debian/Ubuntu machine to segments, in one go:
# installs what is missing, builds, starts a local Redis and Kafka 3.9
# (KRaft) on free loopback ports, replays the CDNOW purchases (69,659
# orders of 23,570 customers, 1997-98) as order events, runs custpulse until
# it has caught up, and prints customers per RFM segment and the first
# segment-change events.
#
#   deploy/quickstart.sh [--keep]
#
# Leaves nothing running unless --keep (then stop the stack with the command
# it prints). Each run starts from an empty stack.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

keep=0
case "${1-}" in
    --keep) keep=1 ;;
    "") ;;
    *) echo "usage: $0 [--keep]" >&2; exit 2 ;;
esac

step() { printf '\n==> %s\n' "$*"; }

step "Installing what is missing"
./deploy/install-deps.sh

step "Building"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
BIN=build/custpulse
KT=build/tests/tools/cpkafka

step "Starting Redis and Kafka 3.9 (KRaft) on loopback"
./deploy/local/stack.sh fetch
RUN=deploy/local/run/quickstart
./deploy/local/stack.sh down --dir "$RUN" >/dev/null 2>&1 || true
rm -rf "$RUN"
./deploy/local/stack.sh up --dir "$RUN"
if [ "$keep" = 1 ]; then
    trap 'echo "stack left running; stop it with: deploy/local/stack.sh down --dir $RUN"' EXIT
else
    trap './deploy/local/stack.sh down --dir "$RUN" >/dev/null' EXIT
fi
# shellcheck disable=SC1090,SC1091
. "$RUN/stack.env"

step "Replaying the CDNOW purchases into customer.orders (3 partitions)"
"$KT" create-topic -b "$KAFKA_BOOTSTRAP" -t customer.orders -p 3
python3 tests/data/cdnow_events.py --by-date | "$KT" produce -b "$KAFKA_BOOTSTRAP" -t customer.orders

step "Running custpulse until it has caught up"
start=$(date +%s.%N)
CUSTPULSE_LOG_LEVEL=warn "$BIN" run -c deploy/demo/custpulse.properties \
    -X kafka.bootstrap.servers="$KAFKA_BOOTSTRAP" -X redis.port="$REDIS_PORT" \
    --exit-at-end
end=$(date +%s.%N)
awk -v s="$start" -v e="$end" 'BEGIN { printf "caught up in %.1f s (69,659 events: %.0f events/s)\n", e - s, 69659 / (e - s) }'

python3 deploy/demo/summary.py --redis-port "$REDIS_PORT" \
    --bootstrap "$KAFKA_BOOTSTRAP" --kafkatool "$KT"

echo
echo "One customer's state:"
"$BIN" inspect -X redis.port="$REDIS_PORT" 00001
