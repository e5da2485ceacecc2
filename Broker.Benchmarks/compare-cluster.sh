#!/usr/bin/env bash
# What the Redis cluster costs and gives, with the load tool, in one run:
#   cross-redis   publisher on node A, subscribers on node B, two Broker.Server nodes with Broker:Cluster:Kind=redis
#   cross-relay   the same with two relay nodes on one RabbitMQ node (TARGETS includes it; skipped without rabbitmq-server)
#   local-redis   publisher and subscribers on node A of the Redis cluster (a same-node fan-out, cluster on)
#   local-off     the same on a node without the cluster (in-process broker), same session store
#   resume-redis  a durable session with RESUME_SUBSCRIPTIONS topic subscriptions drops on node A,
#                 RESUME_MISSED messages are published on node B, it resumes on B ('resume --nodes'):
#                 time to CONNECTED and to the last replayed message, RESUME_ROUNDS rounds, p50/p99
#   resume-relay  the same on the two relay nodes
# Each fan-out: 1 publisher -> SUBSCRIBERS subscribers, SIZE B, unpaced (window 500), DURATION s, RUNS
# times (alternating), median shown. Goals (issue 9): cross-redis >= 5x cross-relay; local-redis within
# the machine's noise of local-off. Resume: every message once, in order, with recovered:true.
#
#   Broker.Benchmarks/compare-cluster.sh
#   RUNS=3 TARGETS="cross-redis local-redis local-off" Broker.Benchmarks/compare-cluster.sh
#
# Pinning (2-core machine): every server (redis-server, RabbitMQ, the Broker.Server nodes) on SERVER_CPU
# (default 0), the load tool on CLIENT_CPU (default 1). Sessions: STORE=redis (default: every node's
# durable sessions in the same redis-server, as a cluster runs) or none. RELAY_ARGS: more arguments for the
# relay nodes, e.g. RELAY_ARGS="--Broker:Relay:RabbitMq:DurableQueueExpiry=00:00:04
# --Logging:LogLevel:Broker.Relay.RabbitMq=Debug" to see the drops-queue renewal rounds in their logs.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
DURATION=${DURATION:-10}
RUNS=${RUNS:-1}
SUBSCRIBERS=${SUBSCRIBERS:-100}
SIZE=${SIZE:-128}
STORE=${STORE:-redis}
RESUME_ROUNDS=${RESUME_ROUNDS:-50}
RESUME_SUBSCRIPTIONS=${RESUME_SUBSCRIPTIONS:-20}
RESUME_MISSED=${RESUME_MISSED:-100}
TARGETS=${TARGETS:-"cross-redis cross-relay local-redis local-off resume-redis resume-relay"}
OUT=${OUT:-$(mktemp -d /tmp/broker-compare-cluster.XXXXXX)}
BASE_PORT=${BASE_PORT:-29180}
REDIS_PORT=${REDIS_PORT:-29379}
RABBIT_AMQP_PORT=${RABBIT_AMQP_PORT:-29772}

. "$ROOT/Broker.Benchmarks/bench-lib.sh"
bench_init compare-cluster.sh
bench_build

bench_redis "$REDIS_PORT"

if bench_wants cross-relay "$TARGETS" || bench_wants resume-relay "$TARGETS"; then
  if command -v rabbitmq-server >/dev/null; then
    bench_rabbit "$OUT/rabbit" "$RABBIT_AMQP_PORT"
  else
    say "no rabbitmq-server: cross-relay and resume-relay skipped"
    TARGETS=${TARGETS//cross-relay/}
    TARGETS=${TARGETS//resume-relay/}
  fi
fi

store_args=(--Broker:Sessions:Store=redis --Broker:Sessions:Redis=127.0.0.1:$REDIS_PORT)
if [ "$STORE" = none ]; then
  store_args=(--Broker:Sessions:Store=none)
fi

# node NAME PORT ARGS...: a Broker.Server on CPU SERVER_CPU, waited for until /health answers. The connection
# rate per address is off: the load tool opens SUBSCRIBERS connections at once from 127.0.0.1, past the default
# burst (100).
node() {
  local name=$1 port=$2
  shift 2
  bench_server "node $name" "$OUT/$name.log" "$OUT/$name" "$port" "${store_args[@]}" --Broker:Sessions:RedisKeyPrefix="bench-$$:" \
      --Broker:MaxConnectionRatePerAddress=0 "$@"
}

# The resume scenarios wait, through node A's HTTP API, until A has let the dropped session go.
API_KEY=bench-api-key-$$-$RANDOM$RANDOM
api_args=()
if bench_wants resume-redis "$TARGETS" || bench_wants resume-relay "$TARGETS"; then
  api_args=(--Broker:Api:Key="$API_KEY")
fi
cluster_args=(--Broker:Cluster:Kind=redis --Broker:Cluster:KeyPrefix="bench-$$:cluster:" "${api_args[@]}")
read -r -a extra_relay_args <<< "${RELAY_ARGS:-}"
relay_args=(--Broker:Relay:Kind=rabbitmq --Broker:Relay:RabbitMq:Uri="amqp://guest:guest@127.0.0.1:$RABBIT_AMQP_PORT/" "${api_args[@]}" "${extra_relay_args[@]}")
if bench_wants cross-redis "$TARGETS" || bench_wants local-redis "$TARGETS" || bench_wants resume-redis "$TARGETS"; then
  say "Redis cluster nodes A :$BASE_PORT, B :$((BASE_PORT + 1))"
  node redis-a "$BASE_PORT" "${cluster_args[@]}"
  node redis-b "$((BASE_PORT + 1))" "${cluster_args[@]}"
fi
if bench_wants cross-relay "$TARGETS" || bench_wants resume-relay "$TARGETS"; then
  say "relay nodes A :$((BASE_PORT + 2)), B :$((BASE_PORT + 3))"
  node relay-a "$((BASE_PORT + 2))" "${relay_args[@]}"
  node relay-b "$((BASE_PORT + 3))" "${relay_args[@]}"
fi
if bench_wants local-off "$TARGETS"; then
  say "plain node :$((BASE_PORT + 4)) (no cluster)"
  node plain "$((BASE_PORT + 4))"
fi

ws() { echo "ws://127.0.0.1:$1/ws"; }

# resume TARGET N A B: one 'resume --nodes' run from node port A to node port B.
resume() {
  local target=$1 n=$2
  say "$target #$n: resume --nodes $(ws "$3"),$(ws "$4") --subscriptions $RESUME_SUBSCRIPTIONS --missed $RESUME_MISSED --rounds $RESUME_ROUNDS"
  bench_run "$OUT/$target-$n.log" resume --nodes "$(ws "$3"),$(ws "$4")" --subscriptions "$RESUME_SUBSCRIPTIONS" --missed "$RESUME_MISSED" \
    --rounds "$RESUME_ROUNDS" --api-key "$API_KEY" --prefix "$target-$n-$$" --label "$target"
}

run() {
  local target=$1 n=$2 urls
  case $target in
    resume-redis) resume "$target" "$n" "$BASE_PORT" $((BASE_PORT + 1)); return ;;
    resume-relay) resume "$target" "$n" $((BASE_PORT + 2)) $((BASE_PORT + 3)); return ;;
    cross-redis) urls=(--url "$(ws $((BASE_PORT + 1)))" --publish-url "$(ws "$BASE_PORT")") ;;
    cross-relay) urls=(--url "$(ws $((BASE_PORT + 3)))" --publish-url "$(ws $((BASE_PORT + 2)))") ;;
    local-redis) urls=(--url "$(ws "$BASE_PORT")") ;;
    local-off)   urls=(--url "$(ws $((BASE_PORT + 4)))") ;;
    *) echo "compare-cluster.sh: unknown target $target" >&2; exit 2 ;;
  esac
  bench_load "$target #$n" "$OUT/$target-$n.log" "$target" "${urls[@]}" --destination "/topic/cluster-$target-$n-$$" \
    --subscribers "$SUBSCRIBERS" --size "$SIZE" --duration "$DURATION" --window 500 --drain-timeout 30
}

: >"$OUT/results.txt"
{
  bench_machine "load average before"
  echo "software: .NET $(dotnet --version), $(redis-server --version | cut -d' ' -f1-3)"
  echo "pinning: servers on CPU $SERVER_CPU, load tool on CPU $CLIENT_CPU; sessions: $STORE; 1 -> $SUBSCRIBERS subscribers, $SIZE B, unpaced, $DURATION s per run, median of $RUNS"
  if [ ${#api_args[@]} -gt 0 ]; then
    echo "resume: $RESUME_SUBSCRIPTIONS subscriptions, $RESUME_MISSED missed messages, $RESUME_ROUNDS rounds per run (after 5 warm-up)"
  fi
} >"$OUT/machine.txt"
cat "$OUT/machine.txt" >&2

for n in $(seq 1 "$RUNS"); do
  for target in $TARGETS; do
    run "$target" "$n"
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"

PYTHONPATH="$ROOT/Broker.Benchmarks" /usr/bin/python3 - "$OUT" <<'PY' | tee "$OUT/results.md"
import sys
from bench_results import all_ok, fmt, load, machine, median
out = sys.argv[1]
runs = load(out)

def med(target, key):
    return median(runs, target, key)

titles = {
    "cross-redis": "publisher on A, subscribers on B: Redis cluster",
    "cross-relay": "publisher on A, subscribers on B: RabbitMQ relay",
    "local-redis": "publisher and subscribers on A: Redis cluster on",
    "local-off": "publisher and subscribers on one node: cluster off",
}
print(machine(out))
print()
fanout = [t for t in titles if t in runs]
if fanout:
    print("| shape | deliveries/s | p50 ms | p99 ms | runs ok |")
    print("|---|--:|--:|--:|---|")
for target, title in titles.items():
    if target in runs:
        ok = "yes" if all_ok(runs, target) else "NO"
        print(f"| {title} | {fmt(med(target, 'deliveries_per_s'))} | {fmt(med(target, 'p50_ms'), 2)} | {fmt(med(target, 'p99_ms'), 2)} | {ok} |")
cr, rr = med("cross-redis", "deliveries_per_s"), med("cross-relay", "deliveries_per_s")
if cr == cr and rr == rr and rr > 0:
    print(f"\ncross-node: Redis cluster / relay = {cr / rr:.2f}x (goal >= 5x)")
lr, lo = med("local-redis", "deliveries_per_s"), med("local-off", "deliveries_per_s")
if lr == lr and lo == lo and lo > 0:
    print(f"same node: cluster on / off = {lr / lo:.2f}x (goal: within noise)")
resumes = {"resume-redis": "Redis cluster", "resume-relay": "RabbitMQ relay"}
if any(t in runs for t in resumes):
    if fanout:
        print()
    print("| resume on node B (dropped on A) | to CONNECTED p50 ms | p99 ms | to last replayed p50 ms | p99 ms | rounds | all once, in order, recovered |")
    print("|---|--:|--:|--:|--:|--:|---|")
    for target, title in resumes.items():
        if target in runs:
            fs = runs[target]
            checks = sum(int(f.get(k, 0)) for f in fs for k in ("not_recovered", "missing", "duplicates", "out_of_order", "errors"))
            ok = "yes" if all_ok(runs, target) and checks == 0 else f"NO ({checks} failed checks)"
            print(f"| {title} | {fmt(med(target, 'connected_p50_ms'), 2)} | {fmt(med(target, 'connected_p99_ms'), 2)} | "
                  f"{fmt(med(target, 'replayed_p50_ms'), 2)} | {fmt(med(target, 'replayed_p99_ms'), 2)} | {sum(int(f.get('rounds', 0)) for f in fs)} | {ok} |")
PY
echo "(raw logs in $OUT)" >&2
