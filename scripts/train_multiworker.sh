#!/usr/bin/env bash
# Multi-worker training on one host: N t2t-train processes joined by TF_CONFIG on loopback.
#
#   scripts/train_multiworker.sh [--timeout=SECONDS] [--grace=SECONDS] [--log_dir=DIR] \
#       N t2t-train-flags...
#   scripts/train_multiworker.sh 2 --config=configs/tiny.yaml --model_dir=runs/mw --set ...
#
# Each worker gets the same cluster spec (N free 127.0.0.1 ports) and its own task index,
# and writes its output to DIR/worker-I.log (DIR defaults to a new temporary directory).
# Worker 0 is the chief: it writes the checkpoints and summaries in --model_dir.
# The script waits for all workers. If one exits non-zero, the others are stopped
# (SIGTERM, then SIGKILL after 10 s) and the script exits with that worker's status, naming
# it and its log. --timeout (default 0 = none) bounds the whole run; --grace (default 300)
# bounds how long the others may keep running once one worker has finished successfully
# (they train in lockstep, so a worker left alone is stuck waiting for its peers).
# SIGINT/SIGTERM to the script are passed on to the workers as SIGTERM.
#
# The training command is $T2T_TRAIN (default: t2t-train), e.g.
# T2T_TRAIN="python -m t2t_lite.cli.train" from a source checkout.
set -euo pipefail

usage() {
  sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

timeout=0
grace=300
log_dir=""
while [[ $# -gt 0 && "$1" == --* ]]; do
  case "$1" in
    --timeout=*) timeout="${1#*=}" ;;
    --grace=*) grace="${1#*=}" ;;
    --log_dir=*) log_dir="${1#*=}" ;;
    *) usage ;;
  esac
  shift
done
[[ $# -ge 1 && "$1" =~ ^[1-9][0-9]*$ ]] || usage
[[ "$timeout" =~ ^[0-9]+$ && "$grace" =~ ^[0-9]+$ ]] || usage
num_workers="$1"
shift
read -r -a train_cmd <<<"${T2T_TRAIN:-t2t-train}"
if [[ -z "$log_dir" ]]; then
  log_dir="$(mktemp -d "${TMPDIR:-/tmp}/t2t_multiworker.XXXXXX")"
fi
mkdir -p "$log_dir"

# Free ports: bind N sockets at once (so they differ), print their ports, release them.
# Another process could take one before TensorFlow binds it; rerun if a worker then fails.
mapfile -t ports < <(
  "${PYTHON:-python3}" - "$num_workers" <<'EOF'
import socket, sys
sockets = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in sockets:
    s.bind(("127.0.0.1", 0))
print("\n".join(str(s.getsockname()[1]) for s in sockets))
EOF
)
if ((${#ports[@]} != num_workers)); then
  echo "train_multiworker: could not pick $num_workers free ports with ${PYTHON:-python3}" >&2
  exit 1
fi
workers=""
for port in "${ports[@]}"; do
  workers+="${workers:+, }\"127.0.0.1:$port\""
done

# Each worker leads its own process group (setsid), so stopping it also stops whatever it
# started (e.g. when $T2T_TRAIN is a wrapper script).
pids=()
for ((i = 0; i < num_workers; i++)); do
  tf_config="{\"cluster\": {\"worker\": [$workers]}, \"task\": {\"type\": \"worker\", \"index\": $i}}"
  TF_CONFIG="$tf_config" setsid "${train_cmd[@]}" "$@" >"$log_dir/worker-$i.log" 2>&1 &
  pids[i]=$!
done
echo "train_multiworker: $num_workers workers on 127.0.0.1 ports ${ports[*]}; logs in $log_dir" >&2

running() { [[ -n "${pids[$1]}" ]] && kill -0 "${pids[$1]}" 2>/dev/null; }

any_running() {
  local i
  for i in "${!pids[@]}"; do running "$i" && return 0; done
  return 1
}

# SIGTERM to the workers still running, SIGKILL after $1 seconds (a worker whose peer is gone
# is blocked in a collective and does not get to act on SIGTERM).
stop_workers() {
  local i waited
  for i in "${!pids[@]}"; do running "$i" && kill -TERM -- "-${pids[$i]}" 2>/dev/null || true; done
  for ((waited = 0; waited < $1; waited++)); do
    any_running || break
    sleep 1
  done
  for i in "${!pids[@]}"; do [[ -n "${pids[$i]}" ]] && kill -KILL -- "-${pids[$i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
}

# fail MESSAGE STATUS [STOP_SECONDS]
fail() {
  echo "train_multiworker: $1" >&2
  stop_workers "${3:-10}"
  exit "$2"
}

# Interrupted: the workers get --grace seconds to save a checkpoint and exit.
trap 'fail "interrupted; workers stopped (logs in $log_dir)" 130 "$grace"' INT TERM

start=$SECONDS
first_done=""
remaining=$num_workers
while ((remaining > 0)); do
  for i in "${!pids[@]}"; do
    if [[ -z "${pids[$i]}" ]] || running "$i"; then continue; fi
    status=0
    wait "${pids[$i]}" || status=$?
    pids[i]=""
    remaining=$((remaining - 1))
    if ((status != 0)); then
      fail "worker $i exited with status $status; see its log $log_dir/worker-$i.log" "$status"
    fi
    first_done="${first_done:-$SECONDS}"
    echo "train_multiworker: worker $i finished" >&2
  done
  ((remaining > 0)) || break
  if ((timeout > 0 && SECONDS - start >= timeout)); then
    fail "timeout: workers still running after ${timeout}s (logs in $log_dir)" 124
  fi
  if [[ -n "$first_done" ]] && ((SECONDS - first_done >= grace)); then
    fail "workers still running ${grace}s after another finished; stuck? (logs in $log_dir)" 124
  fi
  sleep 1
done
echo "train_multiworker: all $num_workers workers finished; logs in $log_dir" >&2
