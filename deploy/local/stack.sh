#!/usr/bin/env bash
# stack.sh - a local Redis and a single-node Apache Kafka 3.9 broker (KRaft,
# broker and controller in one JVM) on free loopback ports, for the demo and
# for poking at custpulse by hand. The integration tests start their own
# services (tests/integration/harness.py) from the same config templates.
#
#   stack.sh fetch                     resolve the Kafka jars into
#                                      deploy/local/jars (Maven, cached)
#   stack.sh up     [--dir DIR]        start both, wait until they answer,
#                                      write DIR/stack.env, print addresses
#   stack.sh down   [--dir DIR]        stop the processes recorded in DIR
#                                      (SIGTERM, up to 15 s, then SIGKILL)
#   stack.sh status [--dir DIR]        exit 0 when both run and answer
#   stack.sh topic NAME PARTITIONS [--dir DIR]
#                                      create a topic (an existing one is ok)
#
# DIR defaults to deploy/local/run. A second `up` on the same DIR keeps the
# data (Redis AOF, Kafka log dirs) and reuses the previous ports when free.
# Environment: KAFKA_HEAP_OPTS (default "-Xmx512m -Xms256m"), JAVA_HOME,
# CP_KAFKA_JARS (jars directory).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
JARS=${CP_KAFKA_JARS:-$HERE/jars}
DIR=$HERE/run
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xmx512m -Xms256m}
if [ -n "${JAVA_HOME-}" ]; then
    JAVA=$JAVA_HOME/bin/java
else
    JAVA=java
fi
REDIS_WAIT_S=15
KAFKA_WAIT_S=60
STOP_WAIT_S=15

log() { echo "stack: $*" >&2; }
die() {
    log "$*"
    exit 1
}
usage() {
    sed -n '/^#   stack.sh/,/^# DIR/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

now_ms() { date +%s%3N; }

# --- processes ---------------------------------------------------------------

# A live process: /proc entry present and not a zombie (an exited child that
# its new parent, often pid 1, has not reaped yet). Start-up waits use only
# this: right after the fork the child is still a subshell on its way to exec.
pid_alive() { # PID
    local state
    state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
    [ -n "$state" ] && [ "$state" != Z ]
}

# A pid file may outlive its process and the pid be reused: a pid counts as
# ours only while it is a live (not zombie) process with the expected command
# name whose working directory is the one we started it in.
pid_is_ours() { # PID COMM CWD
    local pid=$1 comm=$2 cwd=$3
    [ -n "$pid" ] && pid_alive "$pid" || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ] || return 1
    [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$cwd" ]
}

# Service table: name -> command name, working directory, pid file.
svc_comm() { case $1 in redis) echo redis-server ;; kafka) echo java ;; esac; }
svc_cwd() { echo "$DIR/$1"; }
svc_pidfile() { echo "$DIR/$1.pid"; }

svc_pid() { cat "$(svc_pidfile "$1")" 2>/dev/null || true; }

svc_running() {
    pid_is_ours "$(svc_pid "$1")" "$(svc_comm "$1")" "$(svc_cwd "$1")"
}

svc_stop() { # NAME
    local name=$1 pid waited=0
    pid=$(svc_pid "$name")
    if ! svc_running "$name"; then
        [ -z "$pid" ] || log "$name: not running (stale pid $pid)"
        rm -f "$(svc_pidfile "$name")"
        return 0
    fi
    kill -CONT "$pid" 2>/dev/null || true # a paused Redis ignores TERM
    kill -TERM "$pid" 2>/dev/null || true
    while svc_running "$name" && [ "$waited" -lt $((STOP_WAIT_S * 10)) ]; do
        sleep 0.1
        waited=$((waited + 1))
    done
    if svc_running "$name"; then
        log "$name: pid $pid still running after ${STOP_WAIT_S}s, SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$(svc_pidfile "$name")"
    log "$name: stopped (pid $pid)"
}

# --- ports and config --------------------------------------------------------

# Prints N distinct free loopback ports. All sockets are held until every
# port is chosen, so the N are distinct; another process can still take one
# before we bind it, which `up` then reports as a start failure.
free_ports() { # N
    python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

port_is_free() { # PORT
    python3 - "$1" 2>/dev/null <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
s.bind(("127.0.0.1", int(sys.argv[1])))
PY
}

# Kafka cluster ids are 16 random bytes in URL-safe base64 without padding;
# Kafka never generates one starting with '-' (it would parse as an option).
cluster_id() {
    python3 -c '
import base64, os
while True:
    u = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
    if not u.startswith("-"):
        print(u)
        break'
}

render() { # TEMPLATE OUT KAFKA_PORT CONTROLLER_PORT LOG_DIR
    sed -e "s|@KAFKA_PORT@|$3|g" -e "s|@CONTROLLER_PORT@|$4|g" \
        -e "s|@LOG_DIR@|$5|g" "$1" >"$2"
}

kafka_version() {
    local jar
    jar=$(ls "$JARS"/kafka_2.13-*.jar 2>/dev/null | head -n1)
    jar=${jar##*/kafka_2.13-}
    echo "${jar%.jar}"
}

# --- fetch -------------------------------------------------------------------

# The jars are copied into a fresh directory and renamed into place, so a
# reader never sees half a set; .complete holds the hash of the pom that
# produced them, so editing the pom refetches. Concurrent fetches (parallel
# tests) serialise on a lock file.
cmd_fetch() {
    local want tmp n
    want=$(sha256sum "$HERE/pom.xml" | cut -d' ' -f1)
    (
        flock 9
        if [ -f "$JARS/.complete" ] && [ "$(cat "$JARS/.complete")" = "$want" ]; then
            log "jars up to date in $JARS (Kafka $(kafka_version))"
            exit 0
        fi
        command -v mvn >/dev/null || die "mvn not found (run deploy/install-deps.sh)"
        tmp=$JARS.tmp.$$
        rm -rf "$tmp"
        log "resolving Kafka jars with Maven (cached in ~/.m2) ..."
        # Maven -q still writes errors (and Debian's 3.8 stray colour codes)
        # to stdout: keep it out of our output unless it failed.
        if ! mvn -B -q -f "$HERE/pom.xml" dependency:copy-dependencies \
            -DoutputDirectory="$tmp" >"$tmp.log" 2>&1; then
            cat "$tmp.log" >&2
            rm -rf "$tmp" "$tmp.log"
            die "mvn dependency:copy-dependencies failed"
        fi
        rm -f "$tmp.log"
        echo "$want" >"$tmp/.complete"
        rm -rf "$JARS"
        mv "$tmp" "$JARS"
        n=$(ls "$JARS"/*.jar | wc -l)
        log "fetched $n jars into $JARS (Kafka $(kafka_version))"
    ) 9>"$JARS.lock"
}

# --- up ----------------------------------------------------------------------

STARTED=()
up_failed() {
    local name
    log "start failed; stopping what this run started"
    for name in "${STARTED[@]}"; do
        svc_stop "$name"
    done
}

start_redis() { # PORT
    (
        cd "$DIR/redis"
        exec setsid redis-server "$HERE/redis.conf" --port "$1" \
            --dir "$DIR/redis" </dev/null >"$DIR/redis.log" 2>&1
    ) &
    echo $! >"$DIR/redis.pid"
    STARTED+=(redis)
}

start_kafka() {
    # shellcheck disable=SC2086 # KAFKA_HEAP_OPTS is a list of options
    (
        cd "$DIR/kafka"
        exec setsid "$JAVA" $KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
            -Djava.awt.headless=true \
            -Dlog4j.configuration="file:$HERE/log4j.properties" \
            -Dkafka.logs.dir="$DIR/kafka" \
            -cp "$JARS/*" kafka.Kafka "$DIR/kafka/server.properties" \
            </dev/null >"$DIR/kafka.log" 2>&1
    ) &
    echo $! >"$DIR/kafka.pid"
    STARTED+=(kafka)
}

wait_redis() { # PORT
    local deadline=$(($(now_ms) + REDIS_WAIT_S * 1000))
    # PONG, not -LOADING: Redis answers while it replays the AOF.
    until [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = PONG ]; do
        pid_alive "$(svc_pid redis)" || { tail -n 20 "$DIR/redis.log" >&2; return 1; }
        [ "$(now_ms)" -lt "$deadline" ] || { log "redis: no PONG after ${REDIS_WAIT_S}s"; return 1; }
        sleep 0.1
    done
}

# The broker binds its listener early but serves requests only once started,
# so a metadata request that succeeds means it is ready.
wait_kafka() { # PORT
    local deadline=$(($(now_ms) + KAFKA_WAIT_S * 1000))
    until kcat -b "127.0.0.1:$1" -L -m 5 >/dev/null 2>&1; do
        pid_alive "$(svc_pid kafka)" || { tail -n 30 "$DIR/kafka.log" >&2; return 1; }
        [ "$(now_ms)" -lt "$deadline" ] || { log "kafka: no metadata after ${KAFKA_WAIT_S}s"; return 1; }
        sleep 0.25
    done
}

# Ports of a previous run of this DIR are reused when still free, so clients
# configured against it keep working after down/up.
choose_ports() {
    local prev_r="" prev_k="" prev_c="" p
    if [ -f "$DIR/stack.env" ]; then
        prev_r=$(sed -n 's/^REDIS_PORT=//p' "$DIR/stack.env")
        prev_k=$(sed -n 's/^KAFKA_BOOTSTRAP=127.0.0.1://p' "$DIR/stack.env")
        prev_c=$(sed -n 's/^KAFKA_CONTROLLER=127.0.0.1://p' "$DIR/stack.env")
    fi
    for p in "$prev_r" "$prev_k" "$prev_c"; do
        if [ -z "$p" ] || ! port_is_free "$p"; then
            read -r REDIS_PORT KAFKA_PORT CONTROLLER_PORT <<<"$(free_ports 3)"
            return
        fi
    done
    REDIS_PORT=$prev_r KAFKA_PORT=$prev_k CONTROLLER_PORT=$prev_c
}

write_env() {
    cat >"$DIR/stack.env.tmp" <<EOF
# written by deploy/local/stack.sh up; source it from a shell
STACK_DIR=$DIR
REDIS_HOST=127.0.0.1
REDIS_PORT=$REDIS_PORT
REDIS_PID=$(svc_pid redis)
KAFKA_BOOTSTRAP=127.0.0.1:$KAFKA_PORT
KAFKA_CONTROLLER=127.0.0.1:$CONTROLLER_PORT
KAFKA_PID=$(svc_pid kafka)
KAFKA_VERSION=$(kafka_version)
EOF
    mv "$DIR/stack.env.tmp" "$DIR/stack.env"
}

print_env() {
    # shellcheck disable=SC1091
    . "$DIR/stack.env"
    echo "redis  127.0.0.1:$REDIS_PORT (pid $REDIS_PID)"
    echo "kafka  $KAFKA_BOOTSTRAP (pid $KAFKA_PID, Kafka $KAFKA_VERSION, KRaft)"
    echo "env    $DIR/stack.env"
}

cmd_up() {
    local t0 t_redis t_kafka
    mkdir -p "$DIR/redis" "$DIR/kafka"
    if svc_running redis && svc_running kafka && [ -f "$DIR/stack.env" ]; then
        log "already running in $DIR"
        print_env
        return 0
    fi
    if svc_running redis || svc_running kafka; then
        die "half running in $DIR; run: $0 down --dir $DIR"
    fi
    command -v redis-server >/dev/null || die "redis-server not found (run deploy/install-deps.sh)"
    command -v kcat >/dev/null || die "kcat not found (run deploy/install-deps.sh)"
    [ -f "$JARS/.complete" ] || cmd_fetch

    choose_ports
    render "$HERE/server.properties.in" "$DIR/kafka/server.properties" \
        "$KAFKA_PORT" "$CONTROLLER_PORT" "$DIR/kafka/data"
    if [ ! -f "$DIR/kafka/data/meta.properties" ]; then
        "$JAVA" -Xmx128m -Dlog4j.configuration="file:$HERE/tools-log4j.properties" \
            -cp "$JARS/*" kafka.tools.StorageTool format -t "$(cluster_id)" \
            -c "$DIR/kafka/server.properties" >"$DIR/kafka-format.log" 2>&1 ||
            { cat "$DIR/kafka-format.log" >&2; die "kafka storage format failed"; }
    fi

    trap up_failed EXIT
    t0=$(now_ms)
    start_redis "$REDIS_PORT"
    start_kafka
    wait_redis "$REDIS_PORT" || exit 1
    t_redis=$(($(now_ms) - t0))
    wait_kafka "$KAFKA_PORT" || exit 1
    t_kafka=$(($(now_ms) - t0))
    trap - EXIT

    write_env
    log "redis ready in ${t_redis} ms, kafka ready in ${t_kafka} ms (dir $DIR)"
    print_env
}

# --- down, status, topic ------------------------------------------------------

cmd_down() {
    [ -d "$DIR" ] || die "no stack directory $DIR"
    svc_stop kafka
    svc_stop redis
}

cmd_status() {
    local ok=0 name
    if [ -f "$DIR/stack.env" ]; then
        # shellcheck disable=SC1091
        . "$DIR/stack.env"
    fi
    for name in redis kafka; do
        if svc_running "$name"; then
            echo "$name  running (pid $(svc_pid "$name"))"
        else
            echo "$name  stopped"
            ok=1
        fi
    done
    [ "$ok" -eq 0 ] || return 1
    [ -n "${REDIS_PORT-}" ] && [ -n "${KAFKA_BOOTSTRAP-}" ] ||
        { echo "no $DIR/stack.env: addresses unknown"; return 1; }
    [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] ||
        { echo "redis  not answering on 127.0.0.1:$REDIS_PORT"; return 1; }
    kcat -b "$KAFKA_BOOTSTRAP" -L -m 5 >/dev/null 2>&1 ||
        { echo "kafka  not answering on $KAFKA_BOOTSTRAP"; return 1; }
    echo "redis  answering on 127.0.0.1:$REDIS_PORT"
    echo "kafka  answering on $KAFKA_BOOTSTRAP"
}

cmd_topic() { # NAME PARTITIONS
    [ $# -eq 2 ] || usage
    [[ $2 =~ ^[1-9][0-9]*$ ]] || die "PARTITIONS must be a positive integer"
    [ -f "$DIR/stack.env" ] || die "no $DIR/stack.env; run: $0 up"
    # shellcheck disable=SC1091
    . "$DIR/stack.env"
    "$JAVA" -Xmx128m -Dlog4j.configuration="file:$HERE/tools-log4j.properties" \
        -cp "$JARS/*" org.apache.kafka.tools.TopicCommand \
        --bootstrap-server "$KAFKA_BOOTSTRAP" --create --if-not-exists \
        --topic "$1" --partitions "$2" --replication-factor 1
    kcat -b "$KAFKA_BOOTSTRAP" -L -t "$1" -m 10 | sed -n 's/^ *topic /topic /p'
}

# --- main --------------------------------------------------------------------

[ $# -ge 1 ] || usage
sub=$1
shift
args=()
while [ $# -gt 0 ]; do
    case $1 in
        --dir)
            [ $# -ge 2 ] || usage
            DIR=$(realpath -m "$2")
            shift 2
            ;;
        --dir=*)
            DIR=$(realpath -m "${1#--dir=}")
            shift
            ;;
        -h | --help) usage ;;
        *)
            args+=("$1")
            shift
            ;;
    esac
done

case $sub in
    fetch) cmd_fetch ;;
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    topic) cmd_topic "${args[@]}" ;;
    *) usage ;;
esac
