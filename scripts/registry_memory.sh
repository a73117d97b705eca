#!/usr/bin/env bash
# Peak memory of loading a large registry: `validate --monitors` on 1,000
# and 100,000 air monitors, and what each monitor beyond the first 1,000
# adds at peak. Usage: scripts/registry_memory.sh [path/to/reset-pipeline]
set -euo pipefail
bin=${1:-target/release/reset-pipeline}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
. "$(dirname "$0")/fleet.sh"
peak_kb() {
  /usr/bin/time -f "%M" "$bin" validate --monitors "$1" 2>&1 >/dev/null | tail -1
}
fleet 1000 "$dir/small.yaml"
fleet 100000 "$dir/large.yaml"
small=$(peak_kb "$dir/small.yaml")
large=$(peak_kb "$dir/large.yaml")
echo "peak RSS: 1,000 monitors ${small} KB, 100,000 monitors ${large} KB ($(du -k "$dir/large.yaml" | cut -f1) KB of YAML)"
awk -v s="$small" -v l="$large" 'BEGIN { printf "per monitor: %.2f KB\n", (l - s) / 99000 }'
