#!/usr/bin/env bash
# A single-node Apache Kafka (KRaft, broker + controller in one JVM) for development and tests.
#
#   bash scripts/kafka.sh up       # resolve jars once, format storage once, start, wait until it answers
#   bash scripts/kafka.sh down     # stop it (SIGTERM, then SIGKILL); fine when it is not running
#   bash scripts/kafka.sh status   # exit 0 and print the bootstrap address when running, else exit 3
#
# Environment:
#   KAFKA_HOME_DIR         data, logs, pid and config of this broker   (default: <repo>/.kafka)
#   KAFKA_LIB              jar cache, shared between homes              (default: <repo>/.kafka/lib)
#   KAFKA_PORT             PLAINTEXT port on 127.0.0.1                  (default: 9092)
#   KAFKA_CONTROLLER_PORT  KRaft controller port on 127.0.0.1           (default: KAFKA_PORT + 1)
#   KAFKA_HEAP_OPTS        JVM heap                                     (default: -Xms128m -Xmx512m)
#   KAFKA_START_TIMEOUT    seconds to wait for the broker to answer     (default: 120)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TEMPLATES="$REPO/scripts/kafka"
HOME_DIR="${KAFKA_HOME_DIR:-$REPO/.kafka}"
LIB="${KAFKA_LIB:-$REPO/.kafka/lib}"
PORT="${KAFKA_PORT:-9092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((PORT + 1))}"
HEAP="${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"

DATA_DIR="$HOME_DIR/data"
LOG_DIR="$HOME_DIR/logs"
PID_FILE="$HOME_DIR/kafka.pid"
CONFIG="$HOME_DIR/server.properties"
BOOTSTRAP_FILE="$HOME_DIR/bootstrap"
BOOTSTRAP="127.0.0.1:$PORT"

log() { echo "kafka.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# Print the broker's pid when it is running, else nothing (and fail).
running_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
    ps -p "$pid" -o args= 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
    echo "$pid"
}

# Resolve the broker's jars from Maven Central into $LIB, once.
ensure_jars() {
    if compgen -G "$LIB/kafka_2.13-*.jar" >/dev/null && [[ -f "$LIB/.complete" ]]; then
        return
    fi
    command -v mvn >/dev/null || die "mvn is needed once to fetch Kafka's jars into $LIB"
    log "resolving Kafka jars into $LIB (once)"
    mkdir -p "$LIB"
    mvn -q -B -f "$TEMPLATES/pom.xml" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$LIB" >&2
    touch "$LIB/.complete"
}

java_cp() {
    java -Xmx256m -cp "$LIB/*" -Dlog4j2.configurationFile="$TEMPLATES/log4j2.xml" \
        -Dkafka.logs.dir="$LOG_DIR" "$@"
}

# Write server.properties for the current ports (they may change between runs; storage stays).
render_config() {
    mkdir -p "$DATA_DIR" "$LOG_DIR"
    sed -e "s|@PORT@|$PORT|g" -e "s|@CONTROLLER_PORT@|$CONTROLLER_PORT|g" -e "s|@DATA_DIR@|$DATA_DIR|g" \
        "$TEMPLATES/server.properties.in" >"$CONFIG"
}

# Format KRaft storage with a random cluster id, only on first use.
ensure_formatted() {
    [[ -f "$DATA_DIR/meta.properties" ]] && return
    local cluster_id
    cluster_id="$(java_cp kafka.tools.StorageTool random-uuid | tail -n1)"
    log "formatting storage in $DATA_DIR (cluster id $cluster_id)"
    java_cp kafka.tools.StorageTool format --cluster-id "$cluster_id" --config "$CONFIG" --ignore-formatted \
        >>"$LOG_DIR/format.log" 2>&1 || { cat "$LOG_DIR/format.log" >&2; die "storage format failed"; }
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

# Wait until the broker has started and its port accepts connections; fail early if it died.
wait_ready() {
    local pid="$1" deadline=$((SECONDS + START_TIMEOUT))
    while ((SECONDS < deadline)); do
        kill -0 "$pid" 2>/dev/null || {
            tail -n 40 "$LOG_DIR/server.log" "$LOG_DIR/kafka.out" >&2 2>/dev/null || true
            die "broker exited during start-up (logs in $LOG_DIR)"
        }
        if grep -q 'Kafka Server started' "$LOG_DIR/server.log" 2>/dev/null && port_open; then
            return
        fi
        sleep 0.5
    done
    die "broker did not answer on $BOOTSTRAP within ${START_TIMEOUT}s (logs in $LOG_DIR)"
}

cmd_up() {
    if running_pid >/dev/null; then
        cat "$BOOTSTRAP_FILE"
        return
    fi
    command -v java >/dev/null || die "java is not installed"
    if port_open; then die "port $PORT is taken by another process"; fi
    ensure_jars
    render_config
    ensure_formatted
    : >"$LOG_DIR/server.log"
    log "starting broker on $BOOTSTRAP (controller 127.0.0.1:$CONTROLLER_PORT, home $HOME_DIR)"
    local detach=()
    command -v setsid >/dev/null && detach=(setsid)  # own session: Ctrl-C in the caller spares it
    # shellcheck disable=SC2086  # HEAP holds several JVM options
    ${detach[@]+"${detach[@]}"} java $HEAP -XX:+UseG1GC -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$TEMPLATES/log4j2.xml" -Dkafka.logs.dir="$LOG_DIR" \
        -cp "$LIB/*" kafka.Kafka "$CONFIG" >"$LOG_DIR/kafka.out" 2>&1 </dev/null &
    echo $! >"$PID_FILE"
    echo "$BOOTSTRAP" >"$BOOTSTRAP_FILE"
    wait_ready "$(cat "$PID_FILE")"
    log "broker is up"
    echo "$BOOTSTRAP"
}

cmd_down() {
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$PID_FILE"
        log "not running"
        return
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "broker ignored SIGTERM for 30s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$PID_FILE"
    log "stopped"
}

cmd_status() {
    local pid
    if pid="$(running_pid)"; then
        echo "running pid=$pid bootstrap=$(cat "$BOOTSTRAP_FILE") home=$HOME_DIR"
    else
        echo "stopped home=$HOME_DIR"
        return 3
    fi
}

case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
