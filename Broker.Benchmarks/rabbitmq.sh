#!/usr/bin/env bash
# A private RabbitMQ node of our own (Debian's rabbitmq-server 3.10), for benchmarks and by hand:
#
#   rabbitmq.sh start <dir> <amqp-port> [web-stomp-port]   # returns once the node accepts AMQP
#   rabbitmq.sh stop <dir>
#   rabbitmq.sh ctl <dir> <rabbitmqctl args...>              # e.g. ctl /tmp/rmq close_all_connections x
#
# Everything the node writes (mnesia, logs, config, its Erlang cookie) stays under <dir>; listeners
# are bound to 127.0.0.1 only; the node name is unique per <dir>, so it runs beside a system
# RabbitMQ (which keeps 5672/15672/61613). With a web-stomp port, the rabbitmq_web_stomp plugin is
# enabled on ws://127.0.0.1:<web-stomp-port>/ws with binary WebSocket frames; RabbitMQ's plain
# STOMP listener stays off. Runs as root without switching to the rabbitmq user.
set -euo pipefail

RABBIT_BIN=${RABBIT_BIN:-/usr/lib/rabbitmq/bin}

usage() {
  echo "usage: $0 start <dir> <amqp-port> [web-stomp-port] | stop <dir> | ctl <dir> <args...>" >&2
  exit 2
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port PORT PID — true once 127.0.0.1:PORT accepts a connection (60 s at most, while PID lives).
wait_port() {
  local i
  for i in $(seq 1 600); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
      return 0
    fi
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# Loads the environment written at start (node name, ports, paths); the same for rabbitmqctl.
load_env() {
  local dir=$1
  if [ ! -f "$dir/node.env" ]; then
    echo "rabbitmq.sh: no node was started in $dir" >&2
    exit 1
  fi
  set -a
  # shellcheck disable=SC1091
  . "$dir/node.env"
  set +a
}

start() {
  local dir amqp_port web_port dist_port node
  [ $# -ge 2 ] || usage
  mkdir -p "$1"
  dir=$(cd "$1" && pwd)
  amqp_port=$2
  web_port=${3:-}
  dist_port=$(free_port)
  node="broker-$(printf '%s' "$dir" | sha256sum | cut -c1-10)-$amqp_port@localhost"

  mkdir -p "$dir/home" "$dir/mnesia" "$dir/log"
  if [ ! -f "$dir/home/.erlang.cookie" ]; then
    head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/home/.erlang.cookie"
    chmod 400 "$dir/home/.erlang.cookie"
  fi

  {
    echo "listeners.tcp.1 = 127.0.0.1:$amqp_port"
    echo "loopback_users = none"
    echo "disk_free_limit.absolute = 1MB"
    echo "log.console = false"
    echo "log.file.level = info"
    if [ -n "$web_port" ]; then
      echo "stomp.listeners.tcp = none"
      echo "web_stomp.tcp.port = $web_port"
      echo "web_stomp.tcp.ip = 127.0.0.1"
      echo "web_stomp.ws_frame = binary"
    fi
  } >"$dir/rabbitmq.conf"
  if [ -n "$web_port" ]; then
    echo '[rabbitmq_web_stomp].' >"$dir/enabled_plugins"
  else
    echo '[].' >"$dir/enabled_plugins"
  fi
  : >"$dir/rabbitmq-env.conf"

  cat >"$dir/node.env" <<EOF
HOME=$dir/home
RABBITMQ_NODENAME=$node
RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
RABBITMQ_NODE_PORT=$amqp_port
RABBITMQ_DIST_PORT=$dist_port
RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf
RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins
RABBITMQ_CONF_ENV_FILE=$dir/rabbitmq-env.conf
RABBITMQ_MNESIA_BASE=$dir/mnesia
RABBITMQ_LOG_BASE=$dir/log
RABBITMQ_PID_FILE=$dir/rabbitmq.pid
RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
ERL_EPMD_ADDRESS=127.0.0.1
ERL_CRASH_DUMP=$dir/log/erl_crash.dump
EOF
  load_env "$dir"

  # From inside $dir: Mnesia writes its MnesiaCore.* dumps to the working directory.
  (cd "$dir" && exec nohup "$RABBIT_BIN/rabbitmq-server" >"$dir/log/stdout.log" 2>&1 </dev/null) &
  echo $! >"$dir/server.pid"
  # Ready when the listeners accept connections: RabbitMQ opens them last in its boot.
  local port
  for port in $amqp_port $web_port; do
    if ! wait_port "$port" "$(cat "$dir/server.pid")"; then
      echo "rabbitmq.sh: node $node did not open port $port; see $dir/log" >&2
      tail -n 20 "$dir/log/stdout.log" >&2 || true
      stop "$dir"
      exit 1
    fi
  done
  echo "rabbitmq.sh: $node up: amqp://guest:guest@127.0.0.1:$amqp_port/${web_port:+ ws://127.0.0.1:$web_port/ws}"
}

stop() {
  local dir pid
  [ $# -ge 1 ] || usage
  dir=$(cd "$1" && pwd)
  load_env "$dir"
  "$RABBIT_BIN/rabbitmqctl" -n "$RABBITMQ_NODENAME" -q stop >/dev/null 2>&1 || true
  pid=$(cat "$dir/server.pid" 2>/dev/null || true)
  if [ -n "$pid" ]; then
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/server.pid"
}

ctl() {
  local dir
  [ $# -ge 1 ] || usage
  dir=$(cd "$1" && pwd)
  shift
  load_env "$dir"
  exec "$RABBIT_BIN/rabbitmqctl" -n "$RABBITMQ_NODENAME" "$@"
}

[ $# -ge 1 ] || usage
command=$1
shift
case "$command" in
  start) start "$@" ;;
  stop) stop "$@" ;;
  ctl) ctl "$@" ;;
  *) usage ;;
esac
