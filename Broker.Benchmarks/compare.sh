#!/usr/bin/env bash
# Side-by-side load benchmarks: Broker (Release build) against RabbitMQ's Web-STOMP plugin, driven by
# the same load tool (Broker.Benchmarks 'load') over WebSocket, on this machine, in one run.
#
#   Broker.Benchmarks/compare.sh            # every scenario (about 6 minutes on 2 cores)
#   SCENARIOS="fanout-100 paced" Broker.Benchmarks/compare.sh
#   SCENARIOS="idle idle-hb hold hold-hb" Broker.Benchmarks/compare.sh     # only the idle ones
#   BROKERS=broker BROKER_ENV="DOTNET_GCgen0size=0x1000000" SCENARIOS=paced Broker.Benchmarks/compare.sh
#
# Server and client are pinned to separate cores with taskset (SERVER_CPU, CLIENT_CPU). RabbitMQ
# (the Debian package, installed if missing) runs as a private node on its own ports under a temp
# directory; Broker runs with its defaults (SQLite durable sessions in a temp directory).
# Output: the raw load-tool logs, results.md (the table) and, when gnuplot is installed, compare.png,
# all in OUT (default: a new temp directory); the table is also printed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
DURATION=${DURATION:-10}
# Idle memory is compared at 5,000 connections: with 19,000, RabbitMQ pinned to one core lost the
# connections (none still received a message a minute later), so its figure would mean nothing.
# 'hold' then checks how many Broker keeps (50,000 wanted; capped by the open-file limit).
# The '-hb' variants ask for stomp.js's default heart-beats (10 s both ways) and answer them.
# Each idle scenario also reads the server's CPU over CPU_WINDOW s once the connections have settled,
# less the same server's own use over BASELINE s before the first connection (its idle floor).
IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-5000}
HOLD_CONNECTIONS=${HOLD_CONNECTIONS:-50000}
HEARTBEAT=${HEARTBEAT:-10000,10000}
CPU_WINDOW=${CPU_WINDOW:-30}
BASELINE=${BASELINE:-30}
SCENARIOS=${SCENARIOS:-"fanout-100 fanout-1000 paced size-4k size-64k queue idle idle-hb hold hold-hb"}
BROKERS=${BROKERS:-"broker rabbitmq"}
# Extra environment for the Broker process only (GC settings and the like), e.g. "DOTNET_gcServer=0".
BROKER_ENV=${BROKER_ENV:-}
OUT=${OUT:-$(mktemp -d /tmp/broker-compare.XXXXXX)}
BROKER_PORT=${BROKER_PORT:-28080}
RABBIT_AMQP_PORT=${RABBIT_AMQP_PORT:-28672}
RABBIT_WS_PORT=${RABBIT_WS_PORT:-28674}

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
mkdir -p "$OUT"
say() { printf '==> %s\n' "$*" >&2; }

# RabbitMQ (the Debian package) and gnuplot-nox (for the plot), installed when missing.
missing=()
for pkg in rabbitmq-server gnuplot-nox curl; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "apt-get install ${missing[*]}"
  apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# Idle scenarios hold tens of thousands of sockets in each process: raise the file limit as far as
# we may. Without CAP_SYS_RESOURCE the hard limit cannot be raised (20,000 in our sandbox), and a
# server holds one descriptor per connection plus its own, so the connection counts are capped to fit.
ulimit -Hn 1048576 2>/dev/null || true
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
fd_limit=$(ulimit -n)
cap_connections() {
  local wanted=$1 room=$((fd_limit - 1000))
  if [ "$wanted" -gt "$room" ]; then
    say "open-file limit is $fd_limit (hard); $wanted connections capped to $room"
    echo "$room"
  else
    echo "$wanted"
  fi
}
IDLE_CONNECTIONS=$(cap_connections "$IDLE_CONNECTIONS")
HOLD_CONNECTIONS=$(cap_connections "$HOLD_CONNECTIONS")

say "dotnet build -c Release (Broker.Server, Broker.Benchmarks)"
dotnet build "$ROOT/Broker.Server" -c Release -v q -nologo >/dev/null
dotnet build "$ROOT/Broker.Benchmarks" -c Release -v q -nologo >/dev/null
SERVER_DLL=$ROOT/Broker.Server/bin/Release/net10.0/Broker.Server.dll
LOAD_DLL=$ROOT/Broker.Benchmarks/bin/Release/net10.0/Broker.Benchmarks.dll

# ---- servers ------------------------------------------------------------------------------------

BROKER_PID=""
RABBIT_DIR=""
RABBIT_PID=""

start_broker() {
  local dir=$OUT/broker-data
  rm -rf "$dir" && mkdir -p "$dir"
  # Login throttling is off: every load-tool connection logs in as guest, 64 at a time, and the throttle
  # counts an attempt as a failure until it succeeds, so on a loaded machine ten slow concurrent logins
  # of one user lock it out for five minutes ("too many failed logins") and an idle run loses thousands.
  # The connection rate per address is off too: the idle and hold scenarios open thousands of connections a
  # second from four addresses (127.0.0.1-4), which the default (a burst of 100, then 100/s) would refuse.
  # --contentRoot: the shipped appsettings.json applies (among others, ASP.NET's hosting diagnostics
  # off, which otherwise keep a request Activity and log scopes alive per WebSocket).
  # shellcheck disable=SC2086 # BROKER_ENV is a list of NAME=VALUE words
  (cd "$dir" && exec env $BROKER_ENV taskset -c "$SERVER_CPU" dotnet "$SERVER_DLL" --contentRoot "$(dirname "$SERVER_DLL")" \
      --Broker:Server:ListenAddress=127.0.0.1 --Broker:Server:HttpPort="$BROKER_PORT" --Broker:Server:TcpPort=-1 \
      --Broker:Sessions:SqlitePath="$dir/broker.db" --Broker:LoginThrottling:Enabled=false \
      --Broker:MaxConnectionRatePerAddress=0 --Logging:LogLevel:Default=Warning) >"$OUT/broker-server.log" 2>&1 &
  BROKER_PID=$!
  for _ in $(seq 1 100); do
    if ! kill -0 "$BROKER_PID" 2>/dev/null; then
      break # it exited (the port taken?): a /health answer now would be another process's
    fi
    if curl -fsS "http://127.0.0.1:$BROKER_PORT/health" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.2
  done
  echo "compare.sh: Broker did not start; see $OUT/broker-server.log" >&2
  exit 1
}

stop_broker() {
  if [ -n "$BROKER_PID" ]; then
    kill -TERM "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
    BROKER_PID=""
  fi
}

# A private RabbitMQ node with Web-STOMP (binary frames, 127.0.0.1 only), through rabbitmq.sh;
# started under taskset, so the Erlang VM inherits the server core.
start_rabbit() {
  RABBIT_DIR=$OUT/rabbit
  rm -rf "$RABBIT_DIR"
  if ! taskset -c "$SERVER_CPU" "$ROOT/Broker.Benchmarks/rabbitmq.sh" start "$RABBIT_DIR" "$RABBIT_AMQP_PORT" "$RABBIT_WS_PORT" >"$OUT/rabbit-server.log" 2>&1; then
    echo "compare.sh: RabbitMQ did not start; see $OUT/rabbit-server.log and $RABBIT_DIR/log" >&2
    exit 1
  fi
  RABBIT_PID=$(cat "$RABBIT_DIR/rabbitmq.pid")
}

stop_rabbit() {
  if [ -n "$RABBIT_PID" ]; then
    "$ROOT/Broker.Benchmarks/rabbitmq.sh" stop "$RABBIT_DIR" >/dev/null 2>&1 || kill -KILL "$RABBIT_PID" 2>/dev/null || true
    RABBIT_PID=""
  fi
}

trap 'stop_broker; stop_rabbit' EXIT

# ---- scenarios ----------------------------------------------------------------------------------

# run BROKER SCENARIO: one load-tool run, its log in OUT/BROKER-SCENARIO.log and its result line kept.
run() {
  local broker=$1 scenario=$2 url pid args
  if [ "$broker" = broker ]; then
    url=ws://127.0.0.1:$BROKER_PORT/ws pid=$BROKER_PID
  else
    url=ws://127.0.0.1:$RABBIT_WS_PORT/ws pid=$RABBIT_PID
  fi
  case $scenario in
    fanout-100)  args=(--subscribers 100 --size 128 --duration "$DURATION" --window 500) ;;
    fanout-1000) args=(--subscribers 1000 --size 128 --duration "$DURATION" --window 100) ;;
    paced)       args=(--subscribers 10 --size 128 --duration "$DURATION" --rate 2000) ;;
    size-4k)     args=(--subscribers 10 --size 4096 --duration "$DURATION" --window 200) ;;
    size-64k)    args=(--subscribers 10 --size 65536 --duration "$DURATION" --window 20) ;;
    queue)       args=(--destination "/queue/compare-$$" --publishers 4 --subscribers 4 --ack client-individual --prefetch 100 --size 128 --duration "$DURATION" --window 1000) ;;
    idle)        args=(idle --connections "$IDLE_CONNECTIONS") ;;
    idle-hb)     args=(idle --connections "$IDLE_CONNECTIONS" --heartbeat "$HEARTBEAT") ;;
    hold)        args=(idle --connections "$HOLD_CONNECTIONS") ;;
    hold-hb)     args=(idle --connections "$HOLD_CONNECTIONS" --heartbeat "$HEARTBEAT") ;;
  esac
  if [ "${args[0]}" = idle ]; then
    args+=(--source-addresses 4 --server-pid "$pid" --settle 10 --cpu-window "$CPU_WINDOW" --baseline "$BASELINE")
  fi
  if [ "${args[0]}" = idle ]; then
    args=(idle --url "$url" "${args[@]:1}")
  else
    args=(--url "$url" --drain-timeout 30 "${args[@]}")
  fi
  say "$broker $scenario: load ${args[*]}"
  local status=0
  taskset -c "$CLIENT_CPU" dotnet "$LOAD_DLL" load "${args[@]}" --label "$broker/$scenario" >"$OUT/$broker-$scenario.log" 2>&1 || status=$?
  tail -n 4 "$OUT/$broker-$scenario.log" | sed 's/^/    /' >&2
  grep '^result:' "$OUT/$broker-$scenario.log" | sed "s/\$/ exit=$status/" >>"$OUT/results.txt"
}

: >"$OUT/results.txt"
{
  echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "software: .NET $(dotnet --version), RabbitMQ $(dpkg-query -W -f='${Version}' rabbitmq-server), Erlang $(dpkg-query -W -f='${Version}' erlang-base)"
  echo "pinning: servers on CPU $SERVER_CPU, load tool on CPU $CLIENT_CPU; $DURATION s per throughput scenario; open-file limit $fd_limit"
  echo "idle: CPU over $CPU_WINDOW s less a $BASELINE s idle baseline; heart-beats $HEARTBEAT in the -hb scenarios${BROKER_ENV:+; Broker environment: $BROKER_ENV}"
  echo "load average at the start: $(cat /proc/loadavg)"
} >"$OUT/machine.txt"
cat "$OUT/machine.txt" >&2

# Throughput scenarios share one server process; each idle scenario gets a fresh one (and so does the
# throughput scenario after it), so that its memory and CPU readings start from a clean process and
# its thousands of connections disturb nothing else.
is_idle() { case $1 in idle | idle-hb | hold | hold-hb) return 0 ;; *) return 1 ;; esac; }
for broker in $BROKERS; do
  running=0 previous=""
  for scenario in $SCENARIOS; do
    if [ "${scenario%-hb}" = hold ] && [ "$broker" = rabbitmq ]; then
      continue # the 50,000-connection hold is our target, not a comparison
    fi
    if is_idle "$scenario" || is_idle "$previous" || [ "$running" -eq 0 ]; then
      if [ "$running" -eq 1 ]; then
        if [ "$broker" = broker ]; then stop_broker; else stop_rabbit; fi
      fi
      if [ "$broker" = broker ]; then start_broker; else start_rabbit; fi
      running=1
      if is_idle "$scenario"; then
        sleep 5 # past start-up work, so that the idle baseline is the server's floor
      fi
    fi
    run "$broker" "$scenario"
    previous=$scenario
  done
  if [ "$broker" = broker ]; then stop_broker; else stop_rabbit; fi
done

echo "load average at the end: $(cat /proc/loadavg)" >>"$OUT/machine.txt"
/usr/bin/python3 "$ROOT/Broker.Benchmarks/compare_table.py" "$OUT" | tee "$OUT/results.md"
echo "(raw logs in $OUT)" >&2
