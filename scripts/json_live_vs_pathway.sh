#!/usr/bin/env bash
# The live JSON path against Pathway on the same topic. A local tansu
# broker (in memory) holds RECORDS JSON events in 3 partitions (default
# 1,500,000: 1,000 air monitors, five measurements each, written by
# `reset-pipeline produce`).
# Then, ROUNDS times in turn (default 3), each in a group of its own: a
# bare librdkafka consumer (`examples/bare_consumer.rs`, the yardstick:
# no reader of this broker can be faster) until it has read every record;
# `reset-pipeline run` (publishing to the built-in emulator) until its
# metrics count every record consumed (asked every 10 ms); and a Pathway program reading the topic with its JSON field
# paths into half-hour event-time means per monitor, until its windows
# have counted every record. Times are from each process's start. All three
# read with the same `fetch.wait.max.ms`, FETCH_WAIT_MS (default 10): tansu
# holds every fetch that long, even with records to return, so the wait
# paces every reader (librdkafka's 500 ms default: about 75,000 records/s
# here), where a Kafka broker answers as soon as it has records; with 1
# the bare consumer shows what the readers could do without that. Pathway
# comes from PyPI into a throwaway virtualenv (or give PATHWAY_PYTHON).
# Outside CI. Usage: scripts/json_live_vs_pathway.sh [path/to/reset-pipeline]
set -euo pipefail
bin=$(realpath "${1:-target/release/reset-pipeline}")
root=$(realpath "$(dirname "$0")/..")
(cd "$root" && cargo build --release --quiet --example bare_consumer)
bare=$root/target/release/examples/bare_consumer
records=${RECORDS:-1500000}
fetch_wait=${FETCH_WAIT_MS:-10}
rounds=${ROUNDS:-3}
. "$(dirname "$0")/local_stack.sh"
. "$(dirname "$0")/fleet.sh"
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

python=${PATHWAY_PYTHON:-}
if [ -z "$python" ]; then
  python3 -m venv "$dir/venv"
  "$dir/venv/bin/pip" install --quiet pathway==0.33.0
  python="$dir/venv/bin/python"
fi

fleet 1000 "$dir/monitors.yaml"
events 1000 "$records" "$dir/events.jsonl"
start_stack

run_config produce 0 >"$dir/produce.yaml"
"$bin" produce --config "$dir/produce.yaml" --input "$dir/events.jsonl" 2>&1 | tail -1

cat >"$dir/means.py" <<'PY'
import datetime, os, sys, time
import pathway as pw

records, kafka, group, fetch_wait = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]

class Event(pw.Schema):
    connection_id: str
    event_time: str
    measurements: pw.Json

events = pw.io.kafka.read(
    {"bootstrap.servers": kafka, "group.id": group, "auto.offset.reset": "earliest",
     "fetch.wait.max.ms": fetch_wait},
    topic="sensor-events", format="json", schema=Event, autocommit_duration_ms=100)
values = {p: pw.unwrap(pw.this.measurements[i]["value"].as_float())
          for i, p in enumerate(["pm2p5", "tvoc", "co2", "temp", "rh"])}
samples = events.select(
    connection_id=pw.this.connection_id,
    at=pw.this.event_time.dt.strptime("%Y-%m-%dT%H:%M:%S.%fZ"), **values)
means = samples.windowby(
    pw.this.at, window=pw.temporal.tumbling(duration=datetime.timedelta(minutes=30)),
    instance=pw.this.connection_id,
).reduce(
    connection_id=pw.this._pw_instance, start=pw.this._pw_window_start,
    n=pw.reducers.count(),
    **{p: pw.reducers.avg(pw.this[p]) for p in values})
counted = 0
def on_change(key, row, time, is_addition):
    global counted
    counted += row["n"] if is_addition else -row["n"]
    if counted == records:
        print("all counted", flush=True)
        os._exit(0)
pw.io.subscribe(means, on_change)
pw.run(monitoring_level=pw.MonitoringLevel.NONE)
PY

for round in $(seq "$rounds"); do
  start=$(now)
  "$bare" "127.0.0.1:$kafka" "bare-$round" sensor-events "$records" "$fetch_wait" >/dev/null
  yardstick=$(since "$start")
  http=$(free_port)
  run_config "bench-$round" "$http" "$fetch_wait" >"$dir/run.yaml"
  start=$(now)
  RESET_CLIENT_SECRET=s "$bin" run --config "$dir/run.yaml" >"$dir/run.log" 2>&1 &
  run=$!
  wait_consumed "$http" "$records" "$run" 0.01 || { tail "$dir/run.log"; exit 1; }
  consumed=$(since "$start")
  kill -TERM "$run"; wait "$run" || true
  start=$(now)
  timeout 600 "$python" "$dir/means.py" "$records" "127.0.0.1:$kafka" "pathway-$round" "$fetch_wait" >"$dir/pathway.log" 2>&1 ||
    { tail "$dir/pathway.log"; exit 1; }
  pathway=$(since "$start")
  awk -v r="$round" -v b="$yardstick" -v c="$consumed" -v p="$pathway" -v w="$fetch_wait" 'BEGIN {
    printf "round %d (fetch.wait.max.ms %s): run consumed every record in %s s, Pathway counted every record in %s s: %.1fx (a bare consumer read them in %s s: %.1fx, run at %.2f of it)\n", r, w, c, p, p / c, b, p / b, b / c }'
done
