#!/usr/bin/env bash
# Verifies one captured webhook delivery with the official Standard Webhooks library
# (PyPI `standardwebhooks`, pinned), so that the server's `webhook-*` headers are checked
# by the code receivers use rather than only by our own reading of the specification.
# tests/api/webhooks.rs captures real deliveries and runs this on them.
#
#   scripts/verify-standard-webhooks.sh DELIVERY.json
#
# DELIVERY.json: {"secret": "...", "format": "whsec" | "raw", "headers": {...}, "body": "..."}
# ("raw": the secret is passed to the library as bytes, its form for secrets that are
# not whsec_<base64>; see docs/webhooks.md).
#
# Exit status: 0 verified, 1 rejected by the library (its reason on stdout), 77 the
# library is not available here (no python3, no pip, or no registry to install from):
# the caller reports the test as skipped. Under CI=true that case fails (2) instead.
# The library is installed once, with pip from the registry, into .tools/ (ignored by
# git), so a fresh machine needs nothing done by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

STANDARDWEBHOOKS_VERSION="1.1.0"
lib=".tools/standardwebhooks-$STANDARDWEBHOOKS_VERSION"

unavailable() {
    if [[ "${CI:-}" == "true" ]]; then
        echo "verify-standard-webhooks: $1 (CI=true: failing instead of skipping)" >&2
        exit 2
    fi
    echo "verify-standard-webhooks: $1" >&2
    exit 77
}

[[ $# == 1 && -f "$1" ]] || { echo "usage: $0 DELIVERY.json" >&2; exit 2; }
command -v python3 >/dev/null 2>&1 || unavailable "python3 is not installed"
if [[ ! -f "$lib/standardwebhooks/__init__.py" ]]; then
    python3 -m pip --version >/dev/null 2>&1 || unavailable "pip is not available to python3"
    # Into a fresh folder renamed into place: several test processes may get here at
    # once, and none must see a half-installed library.
    mkdir -p .tools
    tmp="$(mktemp -d ".tools/standardwebhooks.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$tmp" \
        "standardwebhooks==$STANDARDWEBHOOKS_VERSION" >&2 ||
        unavailable "could not install standardwebhooks $STANDARDWEBHOOKS_VERSION with pip (no registry?)"
    # Another process that got there first keeps its copy.
    mv -T "$tmp" "$lib" 2>/dev/null || rm -rf "$tmp"
    trap - EXIT
fi
# -s: no user site-packages, so the pinned copy is the one imported.
PYTHONPATH="$PWD/$lib" exec python3 -s scripts/verify_standard_webhooks.py "$STANDARDWEBHOOKS_VERSION" "$1"
