# The live JSON path against another engine on the same topic, for the
# scripts `json_live_vs_*.sh` (sourced, not run; needs $1, the
# reset-pipeline binary). A local tansu broker (in memory) holds RECORDS
# JSON events in 3 partitions (default 1,500,000: 1,000 air monitors, five
# measurements each, written by `reset-pipeline produce`). `compare NAME
# PROGRAM...` then runs ROUNDS rounds (default 3), each in a group of its
# own: a bare librdkafka consumer (`examples/bare_consumer.rs`, the
# yardstick: no reader of this broker can be faster) until it has read
# every record; `reset-pipeline run` (publishing to the built-in emulator)
# until its metrics count every record consumed (asked every 10 ms); and
# PROGRAM, given the record count, the broker, its group and the fetch
# wait, until it has counted every record through its windows. Times are
# from each process's start. All three read with the same
# `fetch.wait.max.ms`, FETCH_WAIT_MS (default 10): tansu holds every fetch
# that long, even with records to return, so the wait paces every reader
# (librdkafka's 500 ms default: about 75,000 records/s here), where a Kafka
# broker answers as soon as it has records; with 1 the bare consumer shows
# what the readers could do without that.
bin=$(realpath "${1:-target/release/reset-pipeline}")
root=$(realpath "$(dirname "${BASH_SOURCE[0]}")/..")
(cd "$root" && cargo build --release --quiet --example bare_consumer)
bare=$root/target/release/examples/bare_consumer
records=${RECORDS:-1500000}
fetch_wait=${FETCH_WAIT_MS:-10}
rounds=${ROUNDS:-3}
. "$root/scripts/local_stack.sh"
. "$root/scripts/fleet.sh"
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# python_with SPEC GIVEN: GIVEN when set, else the python of a throwaway
# virtualenv that pip gave SPEC.
python_with() {
  if [ -n "$2" ]; then echo "$2"; return; fi
  python3 -m venv "$dir/venv" >&2
  "$dir/venv/bin/pip" install --quiet "$1" >&2
  echo "$dir/venv/bin/python"
}

fleet 1000 "$dir/monitors.yaml"
events 1000 "$records" "$dir/events.jsonl"
start_stack

run_config produce 0 >"$dir/produce.yaml"
"$bin" produce --config "$dir/produce.yaml" --input "$dir/events.jsonl" 2>&1 | tail -1

compare() { # compare NAME PROGRAM...
  local name=$1
  shift
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
    timeout 900 "$@" "$records" "127.0.0.1:$kafka" "$name-$round" "$fetch_wait" >"$dir/$name.log" 2>&1 ||
      { tail "$dir/$name.log"; exit 1; }
    other=$(since "$start")
    awk -v r="$round" -v b="$yardstick" -v c="$consumed" -v p="$other" -v w="$fetch_wait" -v n="$name" 'BEGIN {
      printf "round %d (fetch.wait.max.ms %s): run consumed every record in %s s, %s counted every record in %s s: %.1fx (a bare consumer read them in %s s: %.1fx, run at %.2f of it)\n", r, w, c, n, p, p / c, b, p / b, b / c }'
  done
}
