#!/usr/bin/env bash
# Issue 11's attacks against Broker (Release build) with a set memory budget, each for DURATION seconds
# against a fresh server, then the same run with no attacker (the baseline); one 'attack' tool run each
# (Broker.Benchmarks 'attack', see its --help). Server and tool are pinned to separate cores with taskset
# (bench-lib.sh, as the compare scripts).
#
#   Broker.Benchmarks/attack.sh                          # every attack, 60 s each (about 8 minutes)
#   ATTACKS="receipts none" DURATION=20 Broker.Benchmarks/attack.sh
#   BROKER_ARGS="--Broker:MaxConnectionRatePerAddress=0" ATTACKS=connect-body Broker.Benchmarks/attack.sh   # server settings
#
# The attackers connect from 127.0.0.2 and the ordinary client from 127.0.0.1 (the tool's --attacker-source),
# so that the per-address limits tell them apart as they would two machines.
#
# Output: each run's log and results.txt (the result lines) in OUT (default: a new temp directory).
set -euo pipefail

SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
DURATION=${DURATION:-60}
MEMORY_LIMIT=${MEMORY_LIMIT:-268435456} # 256 MiB
ATTACKS=${ATTACKS:-"wildcard new-topics queue-flood receipts connect-body none"}
OUT=${OUT:-$(mktemp -d /tmp/broker-attack.XXXXXX)}
BROKER_PORT=${BROKER_PORT:-28090}
BENCH_TAIL=${BENCH_TAIL:-1000} # the attack tool's whole report
BROKER_ARGS=${BROKER_ARGS:-}  # more server arguments, split on spaces

# shellcheck source=bench-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
bench_init attack.sh
bench_build

: >"$OUT/results.txt"
echo "machine: $(nproc) cores, .NET $(dotnet --version); MemoryLimit $MEMORY_LIMIT B; $DURATION s per attack" | tee "$OUT/machine.txt" >&2
for attack in $ATTACKS; do
  # A fresh server per attack: what one attack leaves (queued messages) does not weigh on the next.
  rm -rf "$OUT/broker-data"
  # shellcheck disable=SC2086 # BROKER_ARGS is a list of words
  bench_server Broker "$OUT/broker-server.log" "$OUT/broker-data" "$BROKER_PORT" \
      --Broker:Sessions:SqlitePath="$OUT/broker-data/broker.db" --Broker:MemoryLimit="$MEMORY_LIMIT" $BROKER_ARGS
  echo "loadavg before $attack: $(cat /proc/loadavg)" | tee -a "$OUT/machine.txt" >&2
  say "attack $attack --duration $DURATION --server-pid $BENCH_PID"
  bench_run "$OUT/$attack.log" attack "$attack" --url "ws://127.0.0.1:$BROKER_PORT/ws" \
      --duration "$DURATION" --server-pid "$BENCH_PID"
  bench_stop "$BENCH_PID"
done
echo "loadavg after: $(cat /proc/loadavg)" | tee -a "$OUT/machine.txt" >&2
echo "(logs in $OUT)" >&2
