#!/usr/bin/env bash
# The project's test command: formatting, lints, and every test.
# Works on a fresh machine with the Rust toolchain and node/npm; installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."

# The reference Socket.IO server for the interoperability test.
(cd tests/node && npm ci --no-audit --no-fund --loglevel=error)

cargo fmt --check
cargo clippy --all-targets -- -D warnings

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# The Kafka tests start brokers and pipeline processes with wall-clock
# timeouts: they run one at a time, after the rest.
core=() kafka=()
for f in tests/*.rs; do
  name=$(basename "$f" .rs)
  case "$name" in
    kafka_*) kafka+=(--test "$name") ;;
    *) core+=(--test "$name") ;;
  esac
done
status=0
cargo test --lib --bins "${core[@]}" 2>&1 | tee "$log" || status=1
cargo test "${kafka[@]}" -- --test-threads 1 2>&1 | tee -a "$log" || status=1
# One closing line over every test binary.
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
