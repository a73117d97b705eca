#!/usr/bin/env bash
# `aggregate` against DuckDB on the same job: 1,000,000 JSON-lines events
# (1,000 air monitors, five measurements each, in time order), DuckDB
# computing only the half-hour means per monitor and parameter. Five rounds,
# alternated, of: DuckDB on one thread, DuckDB on every core, `aggregate`
# decoding on its own thread (`--decoders 0`), and `aggregate` as it runs by
# default (decoding ahead on the other cores); the median wall time and peak
# RSS of each, whole processes. DuckDB comes from PyPI into a throwaway
# virtualenv (or give DUCKDB_PYTHON, a python that imports duckdb).
# Usage: scripts/aggregate_vs_duckdb.sh [path/to/reset-pipeline]
set -euo pipefail
bin=$(realpath "${1:-target/release/reset-pipeline}")
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
. "$(dirname "$0")/fleet.sh"
fleet 1000 "$dir/monitors.yaml"
events 1000 1000000 "$dir/events.jsonl"
python=${DUCKDB_PYTHON:-}
if [ -z "$python" ]; then
  python3 -m venv "$dir/venv"
  "$dir/venv/bin/pip" install --quiet duckdb==2.0.1
  python="$dir/venv/bin/python"
fi
cat > "$dir/means.py" <<'PY'
import duckdb, sys
con = duckdb.connect()
if sys.argv[2] != "all":
    con.execute(f"SET threads={sys.argv[2]}")
con.execute(f"""
COPY (
  SELECT connection_id,
         time_bucket(INTERVAL 30 MINUTE, epoch_ms(event_time)) AS window_start,
         m.parameter, avg(m.value) AS mean
  FROM (SELECT connection_id, event_time, unnest(measurements) AS m
        FROM read_json('{sys.argv[1]}', format='newline_delimited',
             columns={{connection_id:'VARCHAR', event_time:'BIGINT',
                      measurements:'STRUCT(parameter VARCHAR, value DOUBLE)[]'}}))
  GROUP BY ALL
) TO '{sys.argv[3]}' (HEADER)""")
PY
declare -A runs
timed() {
  local name=$1
  shift
  /usr/bin/time -o "$dir/time" -f "%e %M" "$@" >/dev/null 2>&1
  runs[$name]+="$(cat "$dir/time")"$'\n'
}
for _ in 1 2 3 4 5; do
  timed "duckdb, 1 thread" "$python" "$dir/means.py" "$dir/events.jsonl" 1 "$dir/means.csv"
  timed "duckdb, all cores" "$python" "$dir/means.py" "$dir/events.jsonl" all "$dir/means.csv"
  for decoders in 0 default; do
    args=(aggregate --monitors "$dir/monitors.yaml" --input "$dir/events.jsonl"
      --output "$dir/out.jsonl" --now 2030-01-01T00:00:00Z)
    [ "$decoders" = 0 ] && args+=(--decoders 0)
    timed "aggregate, decoders $decoders" "$bin" "${args[@]}"
  done
done
median() { sort -n | awk '{ a[NR] = $0 } END { print a[int((NR + 1) / 2)] }'; }
for name in "duckdb, 1 thread" "duckdb, all cores" "aggregate, decoders 0" "aggregate, decoders default"; do
  s=$(printf '%s' "${runs[$name]}" | awk 'NF { print $1 }' | median)
  kb=$(printf '%s' "${runs[$name]}" | awk 'NF { print $2 }' | median)
  all=$(printf '%s' "${runs[$name]}" | awk 'NF { printf "%s ", $1 }')
  echo "$name: median $s s, $kb KB peak (runs: $all)"
done
