#!/usr/bin/env bash
# /metrics and /openapi.json as the tools that consume them read them, on a live server:
# `promtool check metrics` (Prometheus' own linter: # HELP and # TYPE on every family,
# naming conventions) and Redocly CLI's `lint` with its recommended rules (redocly.yaml
# says which rule is off and why). Either one reporting an error fails the script.
#
# The tools are installed by this script, pinned, from the package registries into
# .tools/ (ignored by git), so a fresh machine needs nothing done by hand:
# - promtool from Debian's `prometheus` package: only its promtool binary is unpacked
#   (`apt-get download`), because installing the package would also install and start
#   a Prometheus server and a hundred MB of web assets.
# - Redocly CLI from npm.
# Without apt-get/dpkg-deb or npm the check is skipped visibly; under CI=true it fails.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian 12's Prometheus; any Debian revision of it (security updates replace the old
# revision on the mirrors, so pinning the revision would break on the next one).
PROMETHEUS_DEB_UPSTREAM="2.42.0+ds"
REDOCLY_VERSION="2.77.0"

tools="$PWD/.tools"
# Redocly CLI sends usage data to its vendor by default, and checks for updates: neither
# is wanted from CI (nor can it get there).
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true

skip() {
    if [[ "${CI:-}" == "true" ]]; then
        echo "lint-outside-tools: $1 (CI=true: failing instead of skipping)" >&2
        exit 1
    fi
    echo "SKIPPED: promtool and Redocly checks: $1"
    exit 0
}

# Root runs apt-get itself; anyone else needs sudo for the package lists.
as_root() {
    if [[ "$(id -u)" == 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        return 1
    fi
}

# Sets `promtool` to a promtool of the pinned version, installing it when missing. (Not
# printed for a command substitution: `skip` must end this script, not a subshell.)
install_promtool() {
    promtool="$tools/prometheus/usr/bin/promtool"
    if [[ -x "$promtool" ]] && "$promtool" --version 2>&1 | grep -qF "version $PROMETHEUS_DEB_UPSTREAM"; then
        return
    fi
    for tool in apt-get apt-cache dpkg-deb; do
        command -v "$tool" >/dev/null 2>&1 || skip "$tool is not installed (promtool comes from Debian's prometheus package)"
    done
    local version=""
    pick() {
        version="$(apt-cache madison prometheus 2>/dev/null | awk -F'|' '{gsub(/ /, "", $2); print $2}' |
            grep -F "$PROMETHEUS_DEB_UPSTREAM-" | head -n 1 || true)"
    }
    pick
    local dl
    dl="$(mktemp -d)"
    # A stale or empty package list: refresh it once, then look again.
    if [[ -z "$version" ]] || ! (cd "$dl" && apt-get download -q "prometheus=$version" >/dev/null 2>&1); then
        as_root apt-get update -qq >/dev/null || skip "cannot refresh the apt package lists"
        pick
        [[ -n "$version" ]] || skip "no prometheus $PROMETHEUS_DEB_UPSTREAM in the apt sources"
        (cd "$dl" && apt-get download -q "prometheus=$version" >/dev/null 2>&1) ||
            skip "cannot download prometheus=$version"
    fi
    rm -rf "$tools/prometheus"
    mkdir -p "$tools/prometheus"
    dpkg-deb --fsys-tarfile "$dl"/prometheus_*.deb | tar -x -C "$tools/prometheus" ./usr/bin/promtool
    rm -rf "$dl"
}

# Sets `redocly` to a Redocly CLI of the pinned version, installing it when missing.
install_redocly() {
    redocly="$tools/redocly/node_modules/.bin/redocly"
    if [[ -x "$redocly" ]] && [[ "$("$redocly" --version 2>/dev/null | tail -n 1)" == "$REDOCLY_VERSION" ]]; then
        return
    fi
    command -v npm >/dev/null 2>&1 || skip "npm is not installed (Redocly CLI comes from npm)"
    mkdir -p "$tools/redocly"
    npm install --prefix "$tools/redocly" --no-audit --no-fund --silent "@redocly/cli@$REDOCLY_VERSION" ||
        skip "could not install @redocly/cli@$REDOCLY_VERSION with npm"
}

install_promtool
install_redocly
echo "lint-outside-tools: $("$promtool" --version 2>&1 | head -n 1); Redocly CLI $("$redocly" --version 2>/dev/null | tail -n 1)"

# The same target set as `cargo test --all-targets`, so its build is reused rather than
# redone with the features the tests' dev-dependencies do not unify in.
cargo build --quiet --all-targets
work="$(mktemp -d)"
server=""
cleanup() {
    if [[ -n "$server" ]]; then
        kill "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# Port 0: the server picks a free port and logs it ("listening addr=...").
API_SERVER_HOST=127.0.0.1 API_SERVER_PORT=0 SQLITE_PATH="$work/et.db" APP_ENV=test LOG_LEVEL=info \
    PUBLIC_METRICS=true target/debug/eventtracker serve >"$work/log" 2>&1 &
server="$!"
addr=""
for _ in $(seq 1 100); do
    addr="$(grep -o 'listening addr=[0-9.:]*' "$work/log" | head -n 1 | cut -d= -f2 || true)"
    [[ -n "$addr" ]] && break
    kill -0 "$server" 2>/dev/null || break
    sleep 0.1
done
if [[ -z "$addr" ]]; then
    echo "lint-outside-tools: the server did not start:" >&2
    cat "$work/log" >&2
    exit 1
fi
base="http://$addr"

# Something for the metrics to show: a request per outcome, so the labelled counters and
# the histograms have series (an empty exposition would pass without checking them).
event='{"user_id": "lint", "event_type": "LOGIN", "timestamp": 1793613600}'
for expected in 201 409; do
    got="$(curl -sS -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' -d "$event" "$base/v1/users/events")"
    [[ "$got" == "$expected" ]] || { echo "lint-outside-tools: POST an event: $got, expected $expected" >&2; exit 1; }
done
curl -fsS -o /dev/null "$base/v1/users/lint/points"

curl -fsS "$base/metrics" >"$work/metrics.txt"
grep -q '^http_request_duration_seconds_bucket' "$work/metrics.txt" ||
    { echo "lint-outside-tools: /metrics has no request histogram yet" >&2; exit 1; }
echo "== promtool check metrics ($base/metrics, $(grep -c '^# TYPE' "$work/metrics.txt") families)"
"$promtool" check metrics <"$work/metrics.txt"
echo "promtool: no problems"

curl -fsS "$base/openapi.json" >"$work/openapi.json"
echo "== redocly lint (recommended rules, redocly.yaml) $base/openapi.json"
"$redocly" lint --config redocly.yaml --format=summary "$work/openapi.json"
