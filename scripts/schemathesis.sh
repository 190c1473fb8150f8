#!/usr/bin/env bash
# Property-based API test: Schemathesis generates requests from /openapi.json (valid and
# invalid ones, plus stateful sequences) against the real server, and checks that no
# answer is a 5xx and every answer matches the documented status codes, content types,
# headers and schemas. The number of examples is bounded so CI time stays predictable.
set -euo pipefail
cd "$(dirname "$0")/.."

examples="${SCHEMATHESIS_EXAMPLES:-25}"

# Schemathesis is a Python tool: on a machine with only the Rust toolchain (no python3,
# no pip, no network to install it) this run is skipped visibly; under CI=true it fails.
skip() {
    if [[ "${CI:-}" == "true" ]]; then
        echo "schemathesis: $1 (CI=true: failing instead of skipping)" >&2
        exit 1
    fi
    echo "SKIPPED: the Schemathesis run: $1"
    exit 0
}
for tool in python3 curl; do
    command -v "$tool" >/dev/null 2>&1 || skip "$tool is not installed"
done
if ! command -v schemathesis >/dev/null 2>&1; then
    python3 -m pip --version >/dev/null 2>&1 || skip "pip is not available to python3"
    python3 -m pip install --quiet 'schemathesis==4.32.5' ||
        skip "could not install schemathesis with pip (no network?)"
    command -v schemathesis >/dev/null 2>&1 ||
        skip "schemathesis was installed but is not on PATH"
fi

# The same target set as `cargo test --all-targets`, so its build is reused rather than
# redone with the features the tests' dev-dependencies do not unify in.
cargo build --quiet --all-targets
work="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
API_SERVER_HOST=127.0.0.1 API_SERVER_PORT="$port" SQLITE_PATH="$work/et.db" LOG_LEVEL=warn \
    APP_ENV=test target/debug/eventtracker > "$work/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done

# Checks: the ones about the server's own answers. (Negative-data rejection is left out
# on purpose: the API reads an empty query parameter as absent, and a batch answers 200
# with a per-event "rejected" result, both documented behaviours.)
(cd "$work" && schemathesis run "http://127.0.0.1:$port/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
    --max-examples "$examples" --seed 1 --no-color)
echo "schemathesis: no 5xx, every answer matched the OpenAPI document"
