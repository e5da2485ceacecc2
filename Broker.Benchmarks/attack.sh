#!/usr/bin/env bash
# Issue 11's attacks against Broker (Release build) with a set memory budget, each for DURATION seconds
# against a fresh server, then the same run with no attacker (the baseline); one 'attack' tool run each
# (Broker.Benchmarks 'attack', see its --help). Server and tool are pinned to separate cores with taskset,
# as compare.sh does.
#
#   Broker.Benchmarks/attack.sh                          # every attack, 60 s each (about 8 minutes)
#   ATTACKS="receipts none" DURATION=20 Broker.Benchmarks/attack.sh
#
# Output: each run's log and results.txt (the result lines) in OUT (default: a new temp directory).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
DURATION=${DURATION:-60}
MEMORY_LIMIT=${MEMORY_LIMIT:-268435456} # 256 MiB
ATTACKS=${ATTACKS:-"wildcard new-topics queue-flood receipts connect-body none"}
OUT=${OUT:-$(mktemp -d /tmp/broker-attack.XXXXXX)}
BROKER_PORT=${BROKER_PORT:-28090}

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
mkdir -p "$OUT"
say() { printf '==> %s\n' "$*" >&2; }

say "dotnet build -c Release (Broker.Server, Broker.Benchmarks)"
dotnet build "$ROOT/Broker.Server" -c Release -v q -nologo >/dev/null
dotnet build "$ROOT/Broker.Benchmarks" -c Release -v q -nologo >/dev/null
SERVER_DLL=$ROOT/Broker.Server/bin/Release/net10.0/Broker.Server.dll
TOOL_DLL=$ROOT/Broker.Benchmarks/bin/Release/net10.0/Broker.Benchmarks.dll

BROKER_PID=""
start_broker() {
  local dir=$OUT/broker-data
  rm -rf "$dir" && mkdir -p "$dir"
  (cd "$dir" && exec taskset -c "$SERVER_CPU" dotnet "$SERVER_DLL" \
      --Broker:Server:ListenAddress=127.0.0.1 --Broker:Server:HttpPort="$BROKER_PORT" --Broker:Server:TcpPort=-1 \
      --Broker:Sessions:SqlitePath="$dir/broker.db" --Broker:MemoryLimit="$MEMORY_LIMIT" \
      --Logging:LogLevel:Default=Warning) >>"$OUT/broker-server.log" 2>&1 &
  BROKER_PID=$!
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$BROKER_PORT/health" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "attack.sh: Broker did not start; see $OUT/broker-server.log" >&2
  exit 1
}
stop_broker() {
  if [ -n "$BROKER_PID" ]; then
    kill -TERM "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
    BROKER_PID=""
  fi
}
trap stop_broker EXIT

: >"$OUT/results.txt"
echo "machine: $(nproc) cores, .NET $(dotnet --version); MemoryLimit $MEMORY_LIMIT B; $DURATION s per attack" | tee "$OUT/machine.txt" >&2
for attack in $ATTACKS; do
  start_broker # a fresh server per attack: what one attack leaves (queued messages) does not weigh on the next
  echo "loadavg before $attack: $(cat /proc/loadavg)" | tee -a "$OUT/machine.txt" >&2
  say "attack $attack --duration $DURATION --server-pid $BROKER_PID"
  status=0
  taskset -c "$CLIENT_CPU" dotnet "$TOOL_DLL" attack "$attack" --url "ws://127.0.0.1:$BROKER_PORT/ws" \
      --duration "$DURATION" --server-pid "$BROKER_PID" >"$OUT/$attack.log" 2>&1 || status=$?
  grep -v '^result:' "$OUT/$attack.log" | sed 's/^/    /' >&2 || true
  grep '^result:' "$OUT/$attack.log" | sed "s/\$/ exit=$status/" | tee -a "$OUT/results.txt" >&2 || true
  stop_broker
done
echo "loadavg after: $(cat /proc/loadavg)" | tee -a "$OUT/machine.txt" >&2
echo "(logs in $OUT)" >&2
