#!/usr/bin/env bash
# The project's test command: formatting, lints, and every test.
# Works on a fresh Debian machine with the Rust toolchain, node/npm and python3;
# installs what it needs (tansu, node packages, a Python virtualenv, Prometheus).
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${XDG_CACHE_HOME:-$HOME/.cache}/reset-pipeline"
mkdir -p "$cache"

# tansu, the Kafka-compatible broker of the Kafka tests, built once into the
# cache (a few minutes cold), in the background while the project builds.
export TANSU_BIN="$cache/tansu/bin/tansu"
tansu_install=
# The tests keep its data in SQLite (the `libsql` feature): its in-memory
# storage (`dynostore`, used by the end-to-end benchmark) has offset faults
# that SQLite's has not (tests/common/kafka.rs).
if [ ! -x "$TANSU_BIN" ] || ! grep -q '"dynostore","libsql"' "$cache/tansu/.crates2.json" 2>/dev/null; then
  cargo install tansu --version 0.6.0 --locked --features dynostore,libsql --force --root "$cache/tansu" \
    > "$cache/tansu-install.log" 2>&1 &
  tansu_install=$!
fi

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
# --no-fail-fast: every test binary runs even after one fails, and the
# closing line counts them all.
cargo test --no-fail-fast --lib --bins "${core[@]}" 2>&1 | tee "$log" || status=1

# The Helm chart: rendered and linted by Helm's Go SDK, checked against
# Kubernetes' schemas, its config read by the binary. A virtualenv per
# requirements file, kept in the cache folder.
venv="$cache/venv-$(sha256sum tests/helm/requirements.txt | cut -c1-12)"
if [ ! -f "$venv/complete" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/helm/requirements.txt
  touch "$venv/complete"
fi
# Prometheus and promtool, from Debian's package (unpacked into the cache,
# not installed): promtool checks and unit-tests the chart's alert rules,
# and a Kafka test lets a real Prometheus scrape a running pipeline.
prometheus="$cache/prometheus"
if [ ! -x "$prometheus/usr/bin/promtool" ] || [ ! -x "$prometheus/usr/bin/prometheus" ]; then
  rm -rf "$prometheus" && mkdir -p "$prometheus"
  (cd "$prometheus" \
    && { apt-get download prometheus > /dev/null 2>&1 || { apt-get update -qq && apt-get download prometheus; }; } \
    && dpkg-deb -x prometheus_*.deb . && rm prometheus_*.deb)
fi
export PROMTOOL="$prometheus/usr/bin/promtool" PROMETHEUS_BIN="$prometheus/usr/bin/prometheus"
cargo build --quiet --bin reset-pipeline
RESET_PIPELINE_BIN=target/debug/reset-pipeline "$venv/bin/python" -m unittest -v tests/helm/test_chart.py 2>&1 \
  | tee -a "$log" || status=1

# The Kafka tests on the mock cluster first: on a fresh machine they run
# while tansu is still being built (its cold build is the longest step).
# Every test on tansu has "tansu" in its name.
cargo test --no-fail-fast "${kafka[@]}" -- --test-threads 1 --skip tansu 2>&1 | tee -a "$log" || status=1
if [ -n "$tansu_install" ] && ! wait "$tansu_install"; then
  echo "cannot install tansu; see $cache/tansu-install.log" | tee -a "$log"
  tail -20 "$cache/tansu-install.log"
  status=1
fi
cargo test --no-fail-fast "${kafka[@]}" -- --test-threads 1 tansu 2>&1 | tee -a "$log" || status=1
# One closing line over every test binary and the chart tests.
awk '/^test result:/ { p += $4; f += $6 }
     /^Ran [0-9]+ tests? in/ { ran = $2 }
     /^(OK|FAILED)/ { bad = 0
                      while (match($0, /(failures|errors)=[0-9]+/)) {
                        bad += substr($0, RSTART + index(substr($0, RSTART, RLENGTH), "="), RLENGTH)
                        $0 = substr($0, RSTART + RLENGTH)
                      }
                      p += ran - bad; f += bad }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
