#!/usr/bin/env bash
# The live JSON path against Pathway 0.33 (a Rust dataflow engine with a
# Python API) on the same topic: a Pathway program reading the topic with
# its JSON field paths into half-hour event-time means per monitor, until
# its windows have counted every record (`scripts/live_comparison.sh` says
# how the rounds go). Pathway comes from PyPI into a throwaway virtualenv
# (or give PATHWAY_PYTHON).
# Outside CI. Usage: scripts/json_live_vs_pathway.sh [path/to/reset-pipeline]
set -euo pipefail
. "$(dirname "$0")/live_comparison.sh"

python=$(python_with pathway==0.33.0 "${PATHWAY_PYTHON:-}")

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

compare Pathway "$python" "$dir/means.py"
