#!/usr/bin/env bash
# The live JSON path against Quix Streams 3.28 (Python) on the same topic:
# a Quix application reading the topic (each record's time taken from its
# `event_time`) into half-hour tumbling windows per monitor (the records'
# key), summing the five parameters with a count, until its windows have
# counted every record (`scripts/live_comparison.sh` says how the rounds
# go). Quix Streams comes from PyPI into a throwaway virtualenv (or give
# QUIX_PYTHON). Its state lives in RocksDB under the run's folder; no
# changelog topics.
# Outside CI. Usage: scripts/json_live_vs_quix.sh [path/to/reset-pipeline]
set -euo pipefail
. "$(dirname "$0")/live_comparison.sh"

python=$(python_with quixstreams==3.28.0 "${QUIX_PYTHON:-}")

cat >"$dir/means.py" <<'PY'
import datetime, os, sys
from datetime import timedelta
from quixstreams import Application

records, kafka, group, fetch_wait = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]

def event_time(value, headers, timestamp, timestamp_type):
    at = datetime.datetime.strptime(value["event_time"], "%Y-%m-%dT%H:%M:%S.%fZ")
    return int(at.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)

app = Application(
    broker_address=kafka, consumer_group=group, auto_offset_reset="earliest",
    consumer_extra_config={"fetch.wait.max.ms": fetch_wait},
    use_changelog_topics=False, auto_create_topics=False, loglevel="WARNING",
    state_dir=os.path.join(os.path.dirname(os.path.abspath(__file__)), "state-" + group))
events = app.topic("sensor-events", value_deserializer="json", timestamp_extractor=event_time)
sdf = app.dataframe(events)
sdf = sdf.apply(lambda e: {m["parameter"]: m["value"] for m in e["measurements"]})

def initializer(values):
    return {"n": 1, **values}

def reducer(sums, values):
    sums["n"] += 1
    for p, x in values.items():
        sums[p] = sums.get(p, 0.0) + x
    return sums

# Each record updates its window once: counting the updates counts the records.
windows = sdf.tumbling_window(timedelta(minutes=30)).reduce(reducer, initializer).current()
counted = 0

def count(window):
    global counted
    counted += 1
    if counted == records:
        print("all counted", flush=True)
        os._exit(0)

windows.update(count)
app.run()
PY

compare Quix "$python" "$dir/means.py"
