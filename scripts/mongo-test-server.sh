#!/usr/bin/env bash
# A MongoDB-compatible server for the test suites: SecantusDB (pip package SecantusDB),
# which speaks the MongoDB wire protocol. Idempotent; safe to call from CI.
#
#   bash scripts/mongo-test-server.sh start [PORT]   # default 27018; prints the export line
#   bash scripts/mongo-test-server.sh stop [PORT]
#   bash scripts/mongo-test-server.sh status [PORT]
#
# MONGO_TEST_MODE=standalone starts it without the single-node replica-set advertisement,
# so the store runs without transactions (its journaled path); the default advertises a
# replica set and the store uses transactions.
# State lives in ${MONGO_TEST_DIR:-${TMPDIR:-/tmp}/eventtracker-mongo-test}/PORT/.
set -euo pipefail

cmd="${1:-start}"
port="${2:-${MONGO_TEST_PORT:-27018}}"
mode="${MONGO_TEST_MODE:-replset}"
base="${MONGO_TEST_DIR:-${TMPDIR:-/tmp}/eventtracker-mongo-test}/$port"
pidfile="$base/secantusd.pid"
log="$base/secantusd.log"
url="mongodb://127.0.0.1:$port"

python_bin() {
    command -v python3 || command -v python
}

running() {
    [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

# Returns 0 once the server answers a ping.
ping_once() {
    "$(python_bin)" - "$url" <<'EOF' >/dev/null 2>&1
import sys
import pymongo
client = pymongo.MongoClient(sys.argv[1], serverSelectionTimeoutMS=500, connectTimeoutMS=500)
client.admin.command("ping")
EOF
}

start() {
    if running && ping_once; then
        echo "export TEST_MONGO_URL=$url"
        return 0
    fi
    if ! command -v secantusd-py >/dev/null 2>&1; then
        echo "installing SecantusDB with pip" >&2
        "$(python_bin)" -m pip install --quiet SecantusDB >&2
    fi
    mkdir -p "$base/data"
    local flags=(--host 127.0.0.1 --port "$port" --storage-path "$base/data" --log-level WARNING)
    if [[ "$mode" == "standalone" ]]; then
        flags+=(--standalone)
    fi
    nohup secantusd-py "${flags[@]}" >"$log" 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 1 120); do
        if ping_once; then
            echo "export TEST_MONGO_URL=$url"
            return 0
        fi
        if ! running; then
            echo "secantusd-py exited; its log ($log):" >&2
            tail -n 40 "$log" >&2 || true
            return 1
        fi
        sleep 0.5
    done
    echo "secantusd-py did not answer on port $port within 60 s; log: $log" >&2
    stop
    return 1
}

stop() {
    if running; then
        local pid
        pid="$(cat "$pidfile")"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 40); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.25
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
    # Test databases are throwaway: start the next run empty.
    rm -rf "$base/data"
}

case "$cmd" in
    start) start ;;
    stop) stop ;;
    status)
        if running && ping_once; then
            echo "running: $url (pid $(cat "$pidfile"))"
        else
            echo "not running"
            exit 1
        fi
        ;;
    *)
        echo "usage: $0 start|stop|status [PORT]" >&2
        exit 2
        ;;
esac
