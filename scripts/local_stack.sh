# A local stack for the scripts beside this one (sourced, not run; needs
# $bin, the reset-pipeline binary): a temporary folder $dir, removed at
# exit with every process whose pid is in $pids, and `start_stack`.
tansu=${TANSU_BIN:-$HOME/.cache/reset-pipeline/tansu/bin/tansu}
dir=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 600); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

# run_config GROUP HTTP_PORT [FETCH_WAIT_MS]: a config for `run` (and
# `produce`) on the stack: JSON input of `fleet.sh`'s monitors in
# $dir/monitors.yaml, the group GROUP, metrics on HTTP_PORT.
run_config() {
  cat <<YAML
kafka: {bootstrap_servers: "127.0.0.1:$kafka", group_id: "$1", topics: [sensor-events],
        properties: {fetch.wait.max.ms: "${3:-500}"}}
input: {format: json}
windowing: {allowed_lateness: 10m, idle_timeout: 5m}
reset: {url: "http://127.0.0.1:$reset", namespace: /v2, client_id: bench}
monitors: {file: "$dir/monitors.yaml"}
dead_letter: {topic: sensor-events.dlq}
http: {listen: "127.0.0.1:$2"}
YAML
}

# start_stack: a tansu broker in memory (port $kafka) holding the topics
# sensor-events and sensor-events.dlq, 3 partitions each, and the built-in
# RESET emulator (port $reset; client bench, secret s).
start_stack() {
  kafka=$(free_port)
  (cd "$dir" && exec "$tansu" broker --listener-url "tcp://127.0.0.1:$kafka" \
    --advertised-listener-url "tcp://127.0.0.1:$kafka" --storage-engine memory://tansu/ \
    >"$dir/tansu.log" 2>&1) &
  pids+=($!)
  wait_port "$kafka"
  reset=$(free_port)
  RESET_CLIENT_SECRET=s "$bin" emulator --listen "127.0.0.1:$reset" --client-id bench \
    --client-secret s >"$dir/emulator.log" 2>&1 &
  pids+=($!)
  wait_port "$reset"
  for topic in sensor-events sensor-events.dlq; do
    # A retention stated, as a Kafka broker states its default: Quix
    # Streams reads it from the topic's configuration.
    "$tansu" topic create --broker "tcp://127.0.0.1:$kafka" --partitions 3 \
      --config retention.ms=-1 "$topic" >/dev/null
  done
}

# wait_consumed PORT RECORDS PID EVERY [answered]: waits until the metrics
# of `run` (on PORT) count RECORDS records consumed (and, with `answered`,
# no message waiting for RESET's answer), asking every EVERY seconds over
# one kept-alive connection: a curl and an awk started 50 times a second
# took about a fifth of this 2-core machine's busy time, which `run` then
# ran without. Fails if `run` (PID) ends first.
wait_consumed() {
  python3 - "$@" <<'PY'
import http.client, os, sys, time
port, records, pid, every = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
answered = sys.argv[5:] == ["answered"]
def value(body, name):
    return sum(float(line.split()[-1]) for line in body.splitlines() if line.startswith(name))
conn = None
while True:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit(1)
    try:
        conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/metrics")
        body = conn.getresponse().read()
        if value(body, b"reset_pipeline_records_consumed_total") >= records and (
                not answered or value(body, b"reset_pipeline_in_flight_messages") == 0):
            sys.exit(0)
    except (OSError, http.client.HTTPException):
        conn = None
    time.sleep(every)
PY
}
