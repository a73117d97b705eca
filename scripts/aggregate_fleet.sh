#!/usr/bin/env bash
# `aggregate` per event over a small and a large fleet: 1,000,000 JSON-lines
# events (air, five measurements each, every monitor once per 30 s, in time
# order) over 1,000 and over 100,000 monitors; wall time and peak RSS of
# each run (best of three), and the large fleet's time per event against
# the small one's. Usage: scripts/aggregate_fleet.sh [path/to/reset-pipeline]
set -euo pipefail
bin=${1:-target/release/reset-pipeline}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
. "$(dirname "$0")/fleet.sh"
count=1000000
# Seconds and peak KB of the best of three runs over N monitors.
best() {
  fleet "$1" "$dir/monitors.yaml"
  events "$1" "$count" "$dir/events.jsonl"
  for _ in 1 2 3; do
    /usr/bin/time -f "%e %M" "$bin" aggregate --monitors "$dir/monitors.yaml" \
      --input "$dir/events.jsonl" --output "$dir/out.jsonl" --now 2030-01-01T00:00:00Z \
      2>&1 >/dev/null | tail -1
  done | sort -n | head -1
}
read -r small_s small_kb < <(best 1000)
read -r large_s large_kb < <(best 100000)
echo "1,000 monitors: ${small_s} s, ${small_kb} KB peak; 100,000 monitors: ${large_s} s, ${large_kb} KB peak ($count events each)"
awk -v s="$small_s" -v l="$large_s" 'BEGIN { printf "per event, 100,000 monitors against 1,000: %.2fx\n", l / s }'
