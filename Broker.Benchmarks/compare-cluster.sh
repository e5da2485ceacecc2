#!/usr/bin/env bash
# What the Redis cluster costs and gives, with the load tool, in one run:
#   cross-redis   publisher on node A, subscribers on node B, two Broker.Server nodes with Broker:Cluster:Kind=redis
#   cross-relay   the same with two relay nodes on one RabbitMQ node (TARGETS includes it; skipped without rabbitmq-server)
#   local-redis   publisher and subscribers on node A of the Redis cluster (a same-node fan-out, cluster on)
#   local-off     the same on a node without the cluster (in-process broker), same session store
# Each: 1 publisher -> SUBSCRIBERS subscribers, SIZE B, unpaced (window 500), DURATION s, RUNS times
# (alternating), median shown. Goals (issue 9): cross-redis >= 5x cross-relay; local-redis within the
# machine's noise of local-off.
#
#   Broker.Benchmarks/compare-cluster.sh
#   RUNS=3 TARGETS="cross-redis local-redis local-off" Broker.Benchmarks/compare-cluster.sh
#
# Pinning (2-core machine): every server (redis-server, RabbitMQ, the Broker.Server nodes) on SERVER_CPU
# (default 0), the load tool on CLIENT_CPU (default 1). Sessions: STORE=redis (default: every node's
# durable sessions in the same redis-server, as a cluster runs) or none.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
DURATION=${DURATION:-10}
RUNS=${RUNS:-1}
SUBSCRIBERS=${SUBSCRIBERS:-100}
SIZE=${SIZE:-128}
STORE=${STORE:-redis}
TARGETS=${TARGETS:-"cross-redis cross-relay local-redis local-off"}
OUT=${OUT:-$(mktemp -d /tmp/broker-compare-cluster.XXXXXX)}
BASE_PORT=${BASE_PORT:-29180}
REDIS_PORT=${REDIS_PORT:-29379}
RABBIT_AMQP_PORT=${RABBIT_AMQP_PORT:-29772}

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
say() { printf '==> %s\n' "$*" >&2; }

say "dotnet build -c Release (Broker.Server, Broker.Benchmarks)"
dotnet build "$ROOT/Broker.Server" -c Release -v q -nologo >/dev/null
dotnet build "$ROOT/Broker.Benchmarks" -c Release -v q -nologo >/dev/null
SERVER_DLL=$ROOT/Broker.Server/bin/Release/net10.0/Broker.Server.dll
LOAD_DLL=$ROOT/Broker.Benchmarks/bin/Release/net10.0/Broker.Benchmarks.dll

PIDS=()
RABBIT_DIR=$OUT/rabbit
RABBIT_STARTED=""
cleanup() {
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "$RABBIT_STARTED" ]; then
    "$ROOT/Broker.Benchmarks/rabbitmq.sh" stop "$RABBIT_DIR" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

wants() { case " $TARGETS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

say "redis-server on CPU $SERVER_CPU, port $REDIS_PORT (no persistence)"
taskset -c "$SERVER_CPU" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize no >"$OUT/redis.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 50); do
  redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
  sleep 0.1
done

if wants cross-relay; then
  if command -v rabbitmq-server >/dev/null; then
    say "RabbitMQ on CPU $SERVER_CPU: amqp $RABBIT_AMQP_PORT"
    taskset -c "$SERVER_CPU" "$ROOT/Broker.Benchmarks/rabbitmq.sh" start "$RABBIT_DIR" "$RABBIT_AMQP_PORT" >&2
    RABBIT_STARTED=1
  else
    say "no rabbitmq-server: cross-relay skipped"
    TARGETS=${TARGETS//cross-relay/}
  fi
fi

store_args=(--Broker:Sessions:Store=redis --Broker:Sessions:Redis=127.0.0.1:$REDIS_PORT)
if [ "$STORE" = none ]; then
  store_args=(--Broker:Sessions:Store=none)
fi

# node NAME PORT ARGS...: a Broker.Server on CPU SERVER_CPU, waited for until /health answers.
node() {
  local name=$1 port=$2
  shift 2
  mkdir -p "$OUT/$name"
  (cd "$OUT/$name" && exec taskset -c "$SERVER_CPU" dotnet "$SERVER_DLL" \
      --Broker:Server:ListenAddress=127.0.0.1 --Broker:Server:HttpPort="$port" --Broker:Server:TcpPort=-1 \
      "${store_args[@]}" --Broker:Sessions:RedisKeyPrefix="bench-$$:" "$@" \
      --Logging:LogLevel:Default=Warning) >"$OUT/$name.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "compare-cluster.sh: node $name did not start; see $OUT/$name.log" >&2
  exit 1
}

cluster_args=(--Broker:Cluster:Kind=redis --Broker:Cluster:KeyPrefix="bench-$$:cluster:")
relay_args=(--Broker:Relay:Kind=rabbitmq --Broker:Relay:RabbitMq:Uri="amqp://guest:guest@127.0.0.1:$RABBIT_AMQP_PORT/")
if wants cross-redis || wants local-redis; then
  say "Redis cluster nodes A :$BASE_PORT, B :$((BASE_PORT + 1))"
  node redis-a "$BASE_PORT" "${cluster_args[@]}"
  node redis-b "$((BASE_PORT + 1))" "${cluster_args[@]}"
fi
if wants cross-relay; then
  say "relay nodes A :$((BASE_PORT + 2)), B :$((BASE_PORT + 3))"
  node relay-a "$((BASE_PORT + 2))" "${relay_args[@]}"
  node relay-b "$((BASE_PORT + 3))" "${relay_args[@]}"
fi
if wants local-off; then
  say "plain node :$((BASE_PORT + 4)) (no cluster)"
  node plain "$((BASE_PORT + 4))"
fi

ws() { echo "ws://127.0.0.1:$1/ws"; }

run() {
  local target=$1 n=$2 status=0 urls
  case $target in
    cross-redis) urls=(--url "$(ws $((BASE_PORT + 1)))" --publish-url "$(ws "$BASE_PORT")") ;;
    cross-relay) urls=(--url "$(ws $((BASE_PORT + 3)))" --publish-url "$(ws $((BASE_PORT + 2)))") ;;
    local-redis) urls=(--url "$(ws "$BASE_PORT")") ;;
    local-off)   urls=(--url "$(ws $((BASE_PORT + 4)))") ;;
    *) echo "compare-cluster.sh: unknown target $target" >&2; exit 2 ;;
  esac
  local args=("${urls[@]}" --destination "/topic/cluster-$target-$n-$$" --subscribers "$SUBSCRIBERS" --size "$SIZE"
              --duration "$DURATION" --window 500 --drain-timeout 30)
  say "$target #$n: load ${args[*]}"
  taskset -c "$CLIENT_CPU" dotnet "$LOAD_DLL" load "${args[@]}" --label "$target" >"$OUT/$target-$n.log" 2>&1 || status=$?
  tail -n 2 "$OUT/$target-$n.log" | sed 's/^/    /' >&2
  grep '^result:' "$OUT/$target-$n.log" | sed "s/\$/ exit=$status/" >>"$OUT/results.txt"
}

: >"$OUT/results.txt"
{
  echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(. /etc/os-release && echo "$PRETTY_NAME"), load average before $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "software: .NET $(dotnet --version), $(redis-server --version | cut -d' ' -f1-3)"
  echo "pinning: servers on CPU $SERVER_CPU, load tool on CPU $CLIENT_CPU; sessions: $STORE; 1 -> $SUBSCRIBERS subscribers, $SIZE B, unpaced, $DURATION s per run, median of $RUNS"
} >"$OUT/machine.txt"
cat "$OUT/machine.txt" >&2

for n in $(seq 1 "$RUNS"); do
  for target in $TARGETS; do
    run "$target" "$n"
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"

/usr/bin/python3 - "$OUT" <<'PY' | tee "$OUT/results.md"
import os, statistics, sys
out = sys.argv[1]
runs = {}
for line in open(os.path.join(out, "results.txt")):
    f = dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
    runs.setdefault(f["label"], []).append(f)

def med(target, key):
    values = [float(f[key]) for f in runs.get(target, []) if f.get(key) not in (None, "")]
    return statistics.median(values) if values else float("nan")

def fmt(v, d=0):
    return "–" if v != v else f"{v:,.{d}f}"

titles = {
    "cross-redis": "publisher on A, subscribers on B: Redis cluster",
    "cross-relay": "publisher on A, subscribers on B: RabbitMQ relay",
    "local-redis": "publisher and subscribers on A: Redis cluster on",
    "local-off": "publisher and subscribers on one node: cluster off",
}
print(open(os.path.join(out, "machine.txt")).read().strip())
print()
print("| shape | deliveries/s | p50 ms | p99 ms | runs ok |")
print("|---|--:|--:|--:|---|")
for target, title in titles.items():
    if target in runs:
        ok = "yes" if all(f.get("exit") == "0" for f in runs[target]) else "NO"
        print(f"| {title} | {fmt(med(target, 'deliveries_per_s'))} | {fmt(med(target, 'p50_ms'), 2)} | {fmt(med(target, 'p99_ms'), 2)} | {ok} |")
cr, rr = med("cross-redis", "deliveries_per_s"), med("cross-relay", "deliveries_per_s")
if cr == cr and rr == rr and rr > 0:
    print(f"\ncross-node: Redis cluster / relay = {cr / rr:.2f}x (goal >= 5x)")
lr, lo = med("local-redis", "deliveries_per_s"), med("local-off", "deliveries_per_s")
if lr == lr and lo == lo and lo > 0:
    print(f"same node: cluster on / off = {lr / lo:.2f}x (goal: within noise)")
PY
echo "(raw logs in $OUT)" >&2
