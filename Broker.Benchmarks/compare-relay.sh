#!/usr/bin/env bash
# What the RabbitMQ relay costs: the same load tool, in one run, against (a) Broker with the relay and
# (b) RabbitMQ's own Web-STOMP plugin, both on ONE private RabbitMQ node. Goal (the relay issue): the
# relay's fan-out throughput is at least 0.7x that of direct Web-STOMP.
#
#   Broker.Benchmarks/compare-relay.sh
#   SCENARIOS=fanout-100 RUNS=3 Broker.Benchmarks/compare-relay.sh
#   TARGETS=relay SCENARIOS=fanout-100 Broker.Benchmarks/compare-relay.sh   # only Broker + relay
#
# Pinning (2-core machine): the servers share SERVER_CPU (default 0) and the load tool has CLIENT_CPU
# (default 1). With the relay, RabbitMQ and Broker.Server both run on SERVER_CPU, so the relay's work
# is paid out of the same core RabbitMQ has alone in the direct runs: the ratio is what a user gets
# for the same server hardware.
# Broker runs as a user would run it: its defaults (SQLite durable sessions, in a temp directory), so
# each topic subscription is a durable RabbitMQ queue; STORE=none runs it without durable sessions
# (exclusive server-named queues, like Web-STOMP's own /topic/ subscriptions).
# Scenarios (RUNS times each, alternating relay/direct; the table shows the median run):
#   fanout-100  1 publisher -> 100 subscribers, 128 B, unpaced (window 500), DURATION s
#   paced       RATE msg/s -> 10 subscribers, 128 B, DURATION s (latency)
# Output in OUT (default: a new temp directory): the load-tool logs, results.txt and results.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
DURATION=${DURATION:-10}
RATE=${RATE:-1000}
RUNS=${RUNS:-1}
STORE=${STORE:-sqlite}
SCENARIOS=${SCENARIOS:-"fanout-100 paced"}
TARGETS=${TARGETS:-"relay direct"}
OUT=${OUT:-$(mktemp -d /tmp/broker-compare-relay.XXXXXX)}
BROKER_PORT=${BROKER_PORT:-29080}
RABBIT_AMQP_PORT=${RABBIT_AMQP_PORT:-29672}
RABBIT_WS_PORT=${RABBIT_WS_PORT:-29674}

. "$ROOT/Broker.Benchmarks/bench-lib.sh"
bench_init compare-relay.sh
bench_build

# One RabbitMQ node with Web-STOMP, pinned (its Erlang VM starts one scheduler per CPU it may use).
bench_rabbit "$OUT/rabbit" "$RABBIT_AMQP_PORT" "$RABBIT_WS_PORT"

store_args=(--Broker:Sessions:SqlitePath="$OUT/broker-data/broker.db")
if [ "$STORE" = none ]; then
  store_args=(--Broker:Sessions:Store=none)
fi
rm -rf "$OUT/broker-data"
# The connection rate per address off: the load tool opens its 100 subscribers and the publisher at once from
# 127.0.0.1, past the default burst (100).
bench_server Broker "$OUT/broker-server.log" "$OUT/broker-data" "$BROKER_PORT" "${store_args[@]}" --Broker:Relay:Kind=rabbitmq \
  --Broker:MaxConnectionRatePerAddress=0 \
  --Broker:Relay:RabbitMq:Uri="amqp://guest:guest@127.0.0.1:$RABBIT_AMQP_PORT/"

# run TARGET SCENARIO N: one load-tool run; its log in OUT and its result line in OUT/results.txt.
run() {
  local target=$1 scenario=$2 n=$3 url args
  if [ "$target" = relay ]; then url=ws://127.0.0.1:$BROKER_PORT/ws; else url=ws://127.0.0.1:$RABBIT_WS_PORT/ws; fi
  case $scenario in
    fanout-100) args=(--subscribers 100 --size 128 --duration "$DURATION" --window 500) ;;
    paced)      args=(--subscribers 10 --size 128 --duration "$DURATION" --rate "$RATE") ;;
    *) echo "compare-relay.sh: unknown scenario $scenario" >&2; exit 2 ;;
  esac
  # A topic of its own per run, so a run never sees another's messages.
  bench_load "$target $scenario #$n" "$OUT/$target-$scenario-$n.log" "$target/$scenario" \
    --url "$url" --destination "/topic/relay-$scenario-$n-$$" --drain-timeout 30 "${args[@]}"
}

: >"$OUT/results.txt"
{
  bench_machine "load average"
  echo "software: .NET $(dotnet --version), RabbitMQ $(dpkg-query -W -f='${Version}' rabbitmq-server), Erlang $(dpkg-query -W -f='${Version}' erlang-base)"
  echo "pinning: RabbitMQ and Broker.Server on CPU $SERVER_CPU, load tool on CPU $CLIENT_CPU; Broker sessions: $STORE; $DURATION s per run, median of $RUNS"
} >"$OUT/machine.txt"
cat "$OUT/machine.txt" >&2

for scenario in $SCENARIOS; do
  for n in $(seq 1 "$RUNS"); do
    for target in $TARGETS; do
      run "$target" "$scenario" "$n"
    done
  done
done

RATE=$RATE PYTHONPATH="$ROOT/Broker.Benchmarks" /usr/bin/python3 - "$OUT" <<'PY' | tee "$OUT/results.md"
import os, sys
from bench_results import all_ok, fmt, load, machine, median
out = sys.argv[1]
runs = load(out, key=lambda label: tuple(label.split("/", 1)))

def med(target, scenario, key):
    return median(runs, (target, scenario), key)

def ok(target, scenario):
    return "" if all_ok(runs, (target, scenario)) else " ⚠"

titles = {"fanout-100": "fan-out 1 → 100, 128 B, unpaced", "paced": "paced, 10 subscribers, 128 B"}
print(machine(out))
print()
print("| scenario | measure | Broker + relay | RabbitMQ Web-STOMP | relay ÷ direct | goal |")
print("|---|---|--:|--:|--:|---|")
for scenario in [s for s in titles if any(k[1] == s for k in runs)]:
    title = titles[scenario]
    if scenario == "paced":
        title = f"paced {float(os.environ['RATE']):,.0f} msg/s × 10 subscribers, 128 B"
    r, d = med("relay", scenario, "deliveries_per_s"), med("direct", scenario, "deliveries_per_s")
    ratio = "–" if r != r or d != d or d == 0 else f"{r / d:.2f}×"
    print(f"| {title} | deliveries/s | {fmt(r)}{ok('relay', scenario)} | {fmt(d)}{ok('direct', scenario)} | {ratio} | {'≥ 0.70×' if scenario != 'paced' else ''} |")
    for key, label in (("p50_ms", "latency p50 ms"), ("p99_ms", "latency p99 ms")):
        rv, dv = med("relay", scenario, key), med("direct", scenario, key)
        q = "–" if rv != rv or dv != dv or dv == 0 else f"{rv / dv:.2f}×"
        print(f"| | {label} | {fmt(rv, 2)} | {fmt(dv, 2)} | {q} | |")
PY
echo "(raw logs in $OUT)" >&2
