#!/usr/bin/env bash
# The project's test command: formatting, lints, and every test.
# Works on a fresh machine with the Rust toolchain; installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."

# The reference Socket.IO server for the interoperability test.
(cd tests/node && npm ci --no-audit --no-fund --loglevel=error)

cargo fmt --check
cargo clippy --all-targets -- -D warnings

log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --lib --bins --tests 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# One closing line over every test binary.
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
