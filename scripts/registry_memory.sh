#!/usr/bin/env bash
# Peak memory of loading a large registry: `validate --monitors` on 1,000
# and 100,000 air monitors, and what each monitor beyond the first 1,000
# adds at peak. Usage: scripts/registry_memory.sh [path/to/reset-pipeline]
set -euo pipefail
bin=${1:-target/release/reset-pipeline}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fleet() {
  awk -v n="$1" 'BEGIN {
    print "monitors:"
    for (i = 0; i < n; i++) {
      id = sprintf("GA_%08d", i)
      print "  - connection_id: " id
      print "    module: air"
      print "    timezone: Asia/Shanghai"
      print "    label: Floor " (i % 40)
      print "    monitor_brand: GIGA"
      print "    monitor_sku: AirM3"
      print "    monitor_serial_id: " id
      print "    last_monitor_calibration_date: \"2022-08-01T00:00:00+08:00\""
      print "    parameters: {pm2p5: ug/m3, tvoc: ppb, co2: ppm, temp: C, rh: \"%RH\"}"
    }
  }' > "$2"
}
peak_kb() {
  /usr/bin/time -f "%M" "$bin" validate --monitors "$1" 2>&1 >/dev/null | tail -1
}
fleet 1000 "$dir/small.yaml"
fleet 100000 "$dir/large.yaml"
small=$(peak_kb "$dir/small.yaml")
large=$(peak_kb "$dir/large.yaml")
echo "peak RSS: 1,000 monitors ${small} KB, 100,000 monitors ${large} KB ($(du -k "$dir/large.yaml" | cut -f1) KB of YAML)"
awk -v s="$small" -v l="$large" 'BEGIN { printf "per monitor: %.2f KB\n", (l - s) / 99000 }'
