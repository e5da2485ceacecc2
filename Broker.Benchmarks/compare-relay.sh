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

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
say() { printf '==> %s\n' "$*" >&2; }

say "dotnet build -c Release (Broker.Server, Broker.Benchmarks)"
dotnet build "$ROOT/Broker.Server" -c Release -v q -nologo >/dev/null
dotnet build "$ROOT/Broker.Benchmarks" -c Release -v q -nologo >/dev/null
SERVER_DLL=$ROOT/Broker.Server/bin/Release/net10.0/Broker.Server.dll
LOAD_DLL=$ROOT/Broker.Benchmarks/bin/Release/net10.0/Broker.Benchmarks.dll

BROKER_PID=""
RABBIT_DIR=$OUT/rabbit
cleanup() {
  if [ -n "$BROKER_PID" ]; then
    kill -TERM "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
  fi
  "$ROOT/Broker.Benchmarks/rabbitmq.sh" stop "$RABBIT_DIR" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# One RabbitMQ node with Web-STOMP, pinned (its Erlang VM starts one scheduler per CPU it may use).
say "RabbitMQ on CPU $SERVER_CPU: amqp $RABBIT_AMQP_PORT, web-stomp $RABBIT_WS_PORT"
taskset -c "$SERVER_CPU" "$ROOT/Broker.Benchmarks/rabbitmq.sh" start "$RABBIT_DIR" "$RABBIT_AMQP_PORT" "$RABBIT_WS_PORT" >&2

store_args=(--Broker:Sessions:SqlitePath="$OUT/broker-data/broker.db")
if [ "$STORE" = none ]; then
  store_args=(--Broker:Sessions:Store=none)
fi
rm -rf "$OUT/broker-data" && mkdir -p "$OUT/broker-data"
(cd "$OUT/broker-data" && exec taskset -c "$SERVER_CPU" dotnet "$SERVER_DLL" \
    --Broker:Server:ListenAddress=127.0.0.1 --Broker:Server:HttpPort="$BROKER_PORT" --Broker:Server:TcpPort=-1 \
    "${store_args[@]}" --Broker:Relay:Kind=rabbitmq \
    --Broker:Relay:RabbitMq:Uri="amqp://guest:guest@127.0.0.1:$RABBIT_AMQP_PORT/" \
    --Logging:LogLevel:Default=Warning) >"$OUT/broker-server.log" 2>&1 &
BROKER_PID=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$BROKER_PORT/health" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$BROKER_PORT/health" >/dev/null || { echo "compare-relay.sh: Broker did not start; see $OUT/broker-server.log" >&2; exit 1; }

# run TARGET SCENARIO N: one load-tool run; its log in OUT and its result line in OUT/results.txt.
run() {
  local target=$1 scenario=$2 n=$3 url args status=0
  if [ "$target" = relay ]; then url=ws://127.0.0.1:$BROKER_PORT/ws; else url=ws://127.0.0.1:$RABBIT_WS_PORT/ws; fi
  case $scenario in
    fanout-100) args=(--subscribers 100 --size 128 --duration "$DURATION" --window 500) ;;
    paced)      args=(--subscribers 10 --size 128 --duration "$DURATION" --rate "$RATE") ;;
    *) echo "compare-relay.sh: unknown scenario $scenario" >&2; exit 2 ;;
  esac
  # A topic of its own per run, so a run never sees another's messages.
  args=(--url "$url" --destination "/topic/relay-$scenario-$n-$$" --drain-timeout 30 "${args[@]}")
  say "$target $scenario #$n: load ${args[*]}"
  taskset -c "$CLIENT_CPU" dotnet "$LOAD_DLL" load "${args[@]}" --label "$target/$scenario" >"$OUT/$target-$scenario-$n.log" 2>&1 || status=$?
  tail -n 2 "$OUT/$target-$scenario-$n.log" | sed 's/^/    /' >&2
  grep '^result:' "$OUT/$target-$scenario-$n.log" | sed "s/\$/ exit=$status/" >>"$OUT/results.txt"
}

: >"$OUT/results.txt"
{
  echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(. /etc/os-release && echo "$PRETTY_NAME"), load average $(cut -d' ' -f1-3 /proc/loadavg)"
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

RATE=$RATE /usr/bin/python3 - "$OUT" <<'PY' | tee "$OUT/results.md"
import os, statistics, sys
out = sys.argv[1]
runs = {}
for line in open(os.path.join(out, "results.txt")):
    f = dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
    runs.setdefault(tuple(f["label"].split("/", 1)), []).append(f)

def med(target, scenario, key):
    values = [float(f[key]) for f in runs.get((target, scenario), []) if f.get(key) not in (None, "")]
    return statistics.median(values) if values else float("nan")

def fmt(v, d=0):
    return "–" if v != v else f"{v:,.{d}f}"

def ok(target, scenario):
    fs = runs.get((target, scenario), [])
    return "" if fs and all(f.get("exit") == "0" for f in fs) else " ⚠"

titles = {"fanout-100": "fan-out 1 → 100, 128 B, unpaced", "paced": "paced, 10 subscribers, 128 B"}
print(open(os.path.join(out, "machine.txt")).read().strip())
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
