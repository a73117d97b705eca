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
    "$tansu" topic create --broker "tcp://127.0.0.1:$kafka" --partitions 3 "$topic" >/dev/null
  done
}
