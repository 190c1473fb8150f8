#!/usr/bin/env bash
# The whole test suite, what CI runs. First the servers the cross-store tests need:
# Redis from TEST_REDIS_URL (default the local 127.0.0.1:6379 when it answers) and a
# MongoDB-protocol test server started by scripts/mongo-test-server.sh (unless
# TEST_MONGO_URL is set), plus a second one in standalone mode (no transactions) unless
# TEST_MONGO_STANDALONE_URL is set. Then every test on SQLite, the Schemathesis run, the
# API suite and cross-store tests again on SQLite+Redis, MongoDB and MongoDB+Redis, and
# a focused set on the standalone server, where the store takes its journaled write path.
# Tests whose server is missing are skipped visibly; with CI=true they fail instead.
# Ports: MONGO_TEST_PORT (default 27018) and MONGO_TEST_STANDALONE_PORT (default 27019).
set -euo pipefail
cd "$(dirname "$0")/.."

redis_answers() {
    local hostport="${1#redis://}"
    hostport="${hostport%%/*}"
    (exec 3<>"/dev/tcp/${hostport%%:*}/${hostport##*:}" && printf 'PING\r\n' >&3 && read -r -t 2 reply <&3 && [[ "$reply" == +PONG* ]]) 2>/dev/null
}

if [[ -z "${TEST_REDIS_URL:-}" ]] && redis_answers redis://127.0.0.1:6379; then
    export TEST_REDIS_URL=redis://127.0.0.1:6379
fi

started_mongo=""
started_standalone=""
standalone_port="${MONGO_TEST_STANDALONE_PORT:-27019}"
cleanup() {
    if [[ -n "$started_mongo" ]]; then
        bash scripts/mongo-test-server.sh stop || true
    fi
    if [[ -n "$started_standalone" ]]; then
        bash scripts/mongo-test-server.sh stop "$standalone_port" || true
    fi
}
trap cleanup EXIT
if [[ -z "${TEST_MONGO_URL:-}" ]] && command -v python3 >/dev/null 2>&1; then
    if line="$(bash scripts/mongo-test-server.sh start)"; then
        eval "$line"
        started_mongo=1
        # mongo_recovery checks that the server is of the kind this says.
        export TEST_MONGO_MODE=replset
    elif [[ "${CI:-}" == "true" ]]; then
        echo "could not start the MongoDB test server" >&2
        exit 1
    fi
fi
if [[ -z "${TEST_MONGO_STANDALONE_URL:-}" ]] && command -v python3 >/dev/null 2>&1; then
    if line="$(MONGO_TEST_MODE=standalone bash scripts/mongo-test-server.sh start "$standalone_port")"; then
        TEST_MONGO_STANDALONE_URL="${line#export TEST_MONGO_URL=}"
        started_standalone=1
    elif [[ "${CI:-}" == "true" ]]; then
        echo "could not start the standalone MongoDB test server" >&2
        exit 1
    fi
fi
export TEST_MONGO_URL="${TEST_MONGO_URL:-}" TEST_REDIS_URL="${TEST_REDIS_URL:-}"
TEST_MONGO_STANDALONE_URL="${TEST_MONGO_STANDALONE_URL:-}"

echo "== SQLite: unit and integration tests"
cargo test --all-targets
# The crash test reports what it checked; show it.
cargo test --test api -- crash:: --show-output
# The minute-long soak is ignored by a plain `cargo test`; CI runs it here.
cargo test --test api -- soak:: --ignored

echo "== Schemathesis against /openapi.json"
scripts/schemathesis.sh

# The integration tests are one crate (tests/api); these are its modules, as name
# filters (libtest runs every test whose name contains one of them).
cross_store=(endpoints:: hostile_input:: ledger:: persistence:: multi_instance:: rules:: bulk:: caps:: recompute:: progression:: wallet::)
if [[ -n "$TEST_REDIS_URL" ]]; then
    echo "== SQLite + Redis"
    TEST_BACKEND=sqlite+redis cargo test --test api -- "${cross_store[@]}" redis_cache:: crash:: webhooks:: --show-output
fi
if [[ -n "$TEST_MONGO_URL" ]]; then
    echo "== MongoDB"
    TEST_BACKEND=mongo cargo test --test api -- "${cross_store[@]}" crash:: webhooks:: --show-output
    if [[ -n "$TEST_REDIS_URL" ]]; then
        echo "== MongoDB + Redis"
        TEST_BACKEND=mongo+redis cargo test --test api -- "${cross_store[@]}" redis_cache::
    fi
fi
if [[ -n "$TEST_MONGO_STANDALONE_URL" ]]; then
    # No transactions here: events are inserted pending, counters move through per-batch
    # guards and recovery finishes what a crash cut short. A focused set, because
    # SecantusDB is slow: the API suite, the ledger invariant, SIGKILLs under load, the
    # staged crash states, and webhooks (queued before a batch is retired, re-queued by
    # recovery).
    echo "== MongoDB standalone (journaled writes, no transactions)"
    TEST_BACKEND=mongo TEST_MONGO_URL="$TEST_MONGO_STANDALONE_URL" TEST_MONGO_MODE=standalone \
        cargo test --test api -- endpoints:: ledger:: crash:: mongo_recovery:: mongo_migration:: \
        caps:: webhooks:: mongo_webhooks_recovery:: progression:: wallet:: --show-output
fi
if [[ -z "$TEST_REDIS_URL" || -z "$TEST_MONGO_URL" || -z "$TEST_MONGO_STANDALONE_URL" ]]; then
    echo "SKIPPED: the suites of a backend whose server is not reachable (TEST_REDIS_URL='$TEST_REDIS_URL', TEST_MONGO_URL='$TEST_MONGO_URL', TEST_MONGO_STANDALONE_URL='$TEST_MONGO_STANDALONE_URL')"
fi
