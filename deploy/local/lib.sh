# Shared helpers for deploy/local/* (sourced, not run). Services listen on 127.0.0.1 only.
set -euo pipefail

LOCAL_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$LOCAL_DIR/../.." && pwd)
# Runtime state (data, logs, pids): per checkout, so two clones don't share a broker by accident.
STATE_DIR=${BLOGPULSE_STATE_DIR:-$REPO_DIR/.local-services}
# Downloaded jars: per user, kept between runs and clones.
CACHE_DIR=${BLOGPULSE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/blogpulse}

KAFKA_VERSION=${BLOGPULSE_KAFKA_VERSION:-3.9.1}
KAFKA_PORT=${BLOGPULSE_KAFKA_PORT:-9092}
# Nodes of the local KRaft cluster (each is broker and controller); node i listens on KAFKA_PORT+i-1.
KAFKA_BROKERS=${BLOGPULSE_KAFKA_BROKERS:-1}
if [ "$KAFKA_BROKERS" -gt 1 ]; then
  # 9093 would be node 2's client port: controllers move out of the way.
  KAFKA_CONTROLLER_PORT=${BLOGPULSE_KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 100))}
else
  KAFKA_CONTROLLER_PORT=${BLOGPULSE_KAFKA_CONTROLLER_PORT:-9093}
fi
# Set: each node also has a SASL_SSL listener (SCRAM-SHA-512, certificates made at first start).
KAFKA_SASL_SSL_PORT=${BLOGPULSE_KAFKA_SASL_SSL_PORT:-}
PG_PORT=${BLOGPULSE_PG_PORT:-5432}
PROMETHEUS_PORT=${BLOGPULSE_PROMETHEUS_PORT:-9090}

mkdir -p "$STATE_DIR"

say() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

need() {  # need CMD "how to get it"
  command -v "$1" >/dev/null 2>&1 || die "'$1' not found. $2"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {  # wait_port PORT NAME SECONDS LOGFILE
  local port=$1 name=$2 limit=$3 log=${4:-} i=0
  while ! port_open "$port"; do
    i=$((i + 1))
    if [ "$i" -gt $((limit * 5)) ]; then
      [ -n "$log" ] && [ -f "$log" ] && tail -n 30 "$log" >&2
      die "$name did not answer on 127.0.0.1:$port within ${limit}s${log:+ (log: $log)}"
    fi
    sleep 0.2
  done
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_pid() {  # stop_pid PIDFILE NAME
  local pidfile=$1 name=$2 i=0
  if ! pid_alive "$pidfile"; then rm -f "$pidfile"; say "$name not running"; return 0; fi
  local pid; pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do
    i=$((i + 1)); [ "$i" -eq 300 ] && { say "$name did not stop in 30s; killing"; kill -9 "$pid" 2>/dev/null || true; }
    sleep 0.1
  done
  rm -f "$pidfile"; say "$name stopped"
}
