#!/usr/bin/env bash
# The whole test suite: every test on the embedded SQLite store, then the black-box API
# suite and the cross-store tests again on each other backend whose server is reachable.
# With CI=true a missing server is a failure, not a skip.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== SQLite: unit and integration tests"
cargo test --all-targets
