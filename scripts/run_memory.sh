#!/usr/bin/env bash
# Whether `run`'s memory stays flat over a long input. A local tansu broker
# (in memory) and the built-in emulator; 1,000 air monitors, five
# measurements each, every monitor once per 30 s, in time order. `run`
# starts once and is fed SLICES slices of SLICE records each (default 8 of
# 500,000: 4,000,000 records, about 33 hours of the fleet's time), one
# after another: after each slice, once `run` has counted every record
# consumed and RESET has answered every message, its resident memory
# (VmRSS) and peak (VmHWM) are printed. Windows close, messages are
# answered, offsets are committed: what stays is the fleet's open windows
# and what was announced, so the figures should stop growing after the
# first slices. Outside CI.
# Usage: scripts/run_memory.sh [path/to/reset-pipeline]
set -euo pipefail
bin=$(realpath "${1:-target/release/reset-pipeline}")
slices=${SLICES:-8}
slice=${SLICE:-500000}
. "$(dirname "$0")/local_stack.sh"
. "$(dirname "$0")/fleet.sh"

fleet 1000 "$dir/monitors.yaml"
events 1000 $((slices * slice)) "$dir/events.jsonl"
split -l "$slice" -d -a 3 "$dir/events.jsonl" "$dir/slice."
rm "$dir/events.jsonl"
start_stack
http=$(free_port)
run_config memory "$http" >"$dir/run.yaml"
RESET_CLIENT_SECRET=s "$bin" run --config "$dir/run.yaml" >"$dir/run.log" 2>&1 &
run=$!
pids+=($run)

wait_port "$http"
total=0
for part in "$dir"/slice.*; do
  "$bin" produce --config "$dir/run.yaml" --input "$part" >/dev/null 2>&1
  total=$((total + slice))
  wait_consumed "$http" "$total" "$run" 0.2 answered || { tail "$dir/run.log"; exit 1; }
  awk -v n="$total" '/^VmRSS/ { rss = $2 } /^VmHWM/ { hwm = $2 }
    END { printf "%9d records: VmRSS %6.1f MB, VmHWM %6.1f MB\n", n, rss / 1024, hwm / 1024 }' "/proc/$run/status"
done
