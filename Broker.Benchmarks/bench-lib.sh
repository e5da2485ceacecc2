# The parts the compare-*.sh benchmark scripts share: build, start and stop the servers (pinned to
# SERVER_CPU), run the load tool (pinned to CLIENT_CPU) and collect its result lines, describe the
# machine. Sourced, not run:
#
#   SERVER_CPU=${SERVER_CPU:-0} CLIENT_CPU=${CLIENT_CPU:-1} OUT=${OUT:-$(mktemp -d ...)}   # the script's knobs
#   . "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
#   bench_init compare-x.sh    # OUT made and absolute, `say`, cleanup of every server started here on EXIT
#   bench_build                # SERVER_DLL, LOAD_DLL
#   bench_server "node a" "$OUT/a.log" "$OUT/a" 29180 --Broker:Cluster:Kind=redis ...
#   bench_load "a #1" "$OUT/a-1.log" a --url ws://127.0.0.1:29180/ws ...   # appends to $OUT/results.txt
#
# A server started with bench_server, bench_redis or bench_rabbit is stopped at exit, and a
# Broker.Server by bench_stop PID before that (BENCH_PID is the last one started). Tables are the
# scripts' own; bench_results.py reads OUT/results.txt for them.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=${ROOT:-$(cd "$BENCH_DIR/.." && pwd)}
BENCH_PIDS=()
BENCH_RABBIT_DIR=""
# Lines of each load-tool log shown after its run.
BENCH_TAIL=${BENCH_TAIL:-2}

say() { printf '==> %s\n' "$*" >&2; }

# bench_init NAME: NAME prefixes the scripts' error messages; OUT is created and made absolute.
bench_init() {
  BENCH_NAME=$1
  export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
  mkdir -p "$OUT"
  OUT=$(cd "$OUT" && pwd)
  trap bench_cleanup EXIT
}

bench_build() {
  say "dotnet build -c Release (Broker.Server, Broker.Benchmarks)"
  dotnet build "$ROOT/Broker.Server" -c Release -v q -nologo >/dev/null
  dotnet build "$ROOT/Broker.Benchmarks" -c Release -v q -nologo >/dev/null
  SERVER_DLL=$ROOT/Broker.Server/bin/Release/net10.0/Broker.Server.dll
  LOAD_DLL=$ROOT/Broker.Benchmarks/bin/Release/net10.0/Broker.Benchmarks.dll
}

bench_cleanup() {
  local pid
  for pid in "${BENCH_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${BENCH_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  bench_stop_rabbit
}

# bench_stop PID: stops one server started here before the script ends (it is no longer tracked).
bench_stop() {
  local pid=$1 kept=() p
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for p in "${BENCH_PIDS[@]}"; do
    [ "$p" = "$pid" ] || kept+=("$p")
  done
  BENCH_PIDS=("${kept[@]}")
}

# bench_wants WORD LIST: true when WORD is one of the words of LIST (e.g. "$TARGETS").
bench_wants() { case " $2 " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# bench_redis PORT: a redis-server without persistence, its log in OUT/redis.log.
bench_redis() {
  local port=$1
  say "redis-server on CPU $SERVER_CPU, port $port (no persistence)"
  taskset -c "$SERVER_CPU" redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no >"$OUT/redis.log" 2>&1 &
  BENCH_PIDS+=($!)
  for _ in $(seq 1 50); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
}

# bench_rabbit DIR AMQP_PORT [WEB_STOMP_PORT]: a private RabbitMQ node (rabbitmq.sh), stopped at exit
# or by bench_stop_rabbit; its Erlang VM's pid is in DIR/rabbitmq.pid.
bench_rabbit() {
  local dir=$1 amqp=$2 ws=${3:-}
  say "RabbitMQ on CPU $SERVER_CPU: amqp $amqp${ws:+, web-stomp $ws}"
  BENCH_RABBIT_DIR=$dir
  # shellcheck disable=SC2086 # no web-stomp port: no third argument
  taskset -c "$SERVER_CPU" "$BENCH_DIR/rabbitmq.sh" start "$dir" "$amqp" $ws >&2
}

bench_stop_rabbit() {
  if [ -n "$BENCH_RABBIT_DIR" ]; then
    "$BENCH_DIR/rabbitmq.sh" stop "$BENCH_RABBIT_DIR" >/dev/null 2>&1 || true
    BENCH_RABBIT_DIR=""
  fi
}

# bench_server WHAT LOG DIR PORT ARGS...: a Broker.Server in DIR on 127.0.0.1:PORT (HTTP only), with
# ARGS, its output in LOG; returns once /health answers (BENCH_PID is its process).
bench_server() {
  local what=$1 log=$2 dir=$3 port=$4
  shift 4
  mkdir -p "$dir"
  (cd "$dir" && exec taskset -c "$SERVER_CPU" dotnet "$SERVER_DLL" \
      --Broker:Server:ListenAddress=127.0.0.1 --Broker:Server:HttpPort="$port" --Broker:Server:TcpPort=-1 \
      "$@" --Logging:LogLevel:Default=Warning) >"$log" 2>&1 &
  BENCH_PID=$!
  BENCH_PIDS+=("$BENCH_PID")
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "$BENCH_NAME: $what did not start; see $log" >&2
  exit 1
}

# bench_load TITLE LOG LABEL ARGS...: one load-tool run (`load ARGS --label LABEL`) on CLIENT_CPU; its
# last BENCH_TAIL lines shown, its result line (with exit=STATUS) appended to OUT/results.txt.
bench_load() {
  local title=$1 log=$2 label=$3
  shift 3
  say "$title: load $*"
  bench_run "$log" load "$@" --label "$label"
}

# bench_run LOG MODE ARGS...: any Broker.Benchmarks mode that prints `result:` lines, as bench_load.
bench_run() {
  local log=$1 status=0
  shift
  taskset -c "$CLIENT_CPU" dotnet "$LOAD_DLL" "$@" >"$log" 2>&1 || status=$?
  tail -n "$BENCH_TAIL" "$log" | sed 's/^/    /' >&2
  grep '^result:' "$log" | sed "s/\$/ exit=$status/" >>"$OUT/results.txt"
}

# bench_machine WORDS: the machine line, ending with WORDS and the load average now.
bench_machine() {
  echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(. /etc/os-release && echo "$PRETTY_NAME"), $1 $(cut -d' ' -f1-3 /proc/loadavg)"
}
