#!/usr/bin/env bash
# Reproducible benchmark: builds the server and the ceiling in release mode, runs every
# scenario and writes bench-results/latest.md and latest.json. See docs/benchmark.md.
# Usage: scripts/bench.sh [--quick] [--duration SECS] [--connections N] [--mongo-url URL ...]
set -euo pipefail
cd "$(dirname "$0")/.."
# The same package set the bench builds itself, so nothing is built twice.
cargo build --release -p eventtracker -p bench --bins
exec "${CARGO_TARGET_DIR:-target}/release/bench" "$@"
