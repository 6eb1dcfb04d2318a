#!/usr/bin/env bash
# Local Apache Kafka (KRaft, one combined broker + controller) for development, tests and CI.
#
#   deploy/local/kafka.sh start|stop|restart|status|logs [-f]|clean
#   deploy/local/kafka.sh run-class <main class> [args...]   # a Kafka tool on the cached classpath
#
# The broker and its tools are resolved from Maven Central once (deploy/local/kafka/pom.xml) and
# cached outside the work tree, so a fresh clone reuses them. Environment:
#   FEDMM_CACHE              cache root              (default ~/.cache/fedmm)
#   FEDMM_LOCAL_DIR          data, logs and pid root (default /tmp/fedmm-local)
#   FEDMM_KAFKA_PORT         broker listener port    (default 9092)
#   FEDMM_KAFKA_CONTROLLER_PORT controller port      (default 9093)
#   FEDMM_KAFKA_HEAP         JVM heap                (default 1g)
#   FEDMM_KAFKA_START_TIMEOUT seconds to wait for a metadata answer (default 90)
#   FEDMM_KAFKA_TOOL_JAVA_OPTS JVM flags for run-class (default: small heap, fast start)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA_VERSION="4.4.0"
cache_root="${FEDMM_CACHE:-$HOME/.cache/fedmm}"
libs="$cache_root/kafka-$KAFKA_VERSION/libs"
port="${FEDMM_KAFKA_PORT:-9092}"
controller_port="${FEDMM_KAFKA_CONTROLLER_PORT:-9093}"
heap="${FEDMM_KAFKA_HEAP:-1g}"
start_timeout="${FEDMM_KAFKA_START_TIMEOUT:-90}"
local_root="${FEDMM_LOCAL_DIR:-/tmp/fedmm-local}"
# A second broker on another port gets its own directory, so the default one is never touched.
if [ "$port" = 9092 ]; then dir="$local_root/kafka"; else dir="$local_root/kafka-$port"; fi
pid_file="$dir/kafka.pid"
log_file="$dir/kafka.log"
bootstrap="127.0.0.1:$port"

say() { printf 'kafka: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

ensure_java() {
  command -v java >/dev/null 2>&1 || die "java not found on PATH: install a Java 17+ runtime (apt-get install -y openjdk-17-jre-headless)"
  local major
  major="$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
  [ "${major%%.*}" -ge 17 ] 2>/dev/null || die "Kafka $KAFKA_VERSION needs Java 17 or newer, found '${major:-unknown}' (set PATH or JAVA_HOME)"
}

ensure_maven() {
  command -v mvn >/dev/null 2>&1 && return 0
  say "mvn not found; installing Debian's maven package"
  apt-get install -y -q maven >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q maven >/dev/null; } \
    || die "could not install maven: install it by hand (apt-get install -y maven)"
}

# Resolves the broker, its tools and logging bindings into $libs (once; concurrent callers wait).
ensure_libs() {
  [ -f "$libs/.complete" ] && return 0
  ensure_maven
  mkdir -p "$cache_root"
  exec 8>"$cache_root/.kafka-$KAFKA_VERSION.lock"
  flock 8
  if [ ! -f "$libs/.complete" ]; then
    say "resolving Kafka $KAFKA_VERSION and its dependencies from Maven Central into $libs"
    local tmp="$libs.tmp.$$"
    rm -rf "$tmp"
    mvn -q -B -Dstyle.color=never -f "$here/kafka/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" >&2 \
      || { rm -rf "$tmp"; die "Maven could not resolve Kafka $KAFKA_VERSION (see the output above)"; }
    [ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ] || { rm -rf "$tmp"; die "kafka_2.13-$KAFKA_VERSION.jar missing after resolution"; }
    touch "$tmp/.complete"
    rm -rf "$libs"
    mv "$tmp" "$libs"
  fi
  flock -u 8
}

write_tool_log_config() {
  mkdir -p "$dir"
  cat >"$dir/tools-log4j2.properties" <<'EOF'
status = warn
appender.stderr.type = Console
appender.stderr.name = STDERR
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stderr.ref = STDERR
EOF
  # The readiness probe reads this too, also when it probes a broker this script did not start.
  cat >"$dir/admin.properties" <<'EOF'
request.timeout.ms=5000
default.api.timeout.ms=10000
EOF
}

# Runs a Kafka main class on the cached classpath with a small heap and quiet logging.
run_class() {
  ensure_java
  ensure_libs
  write_tool_log_config
  # Quick-starting JVM flags suit one-shot admin tools; benchmarks pass their own.
  local opts
  read -r -a opts <<<"${FEDMM_KAFKA_TOOL_JAVA_OPTS:--Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1}"
  java "${opts[@]}" -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$dir/tools-log4j2.properties" \
    -cp "$libs/*" "$@"
}

pid_alive() {
  [ -f "$pid_file" ] || return 1
  local pid
  pid="$(cat "$pid_file" 2>/dev/null)"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A real metadata request: the broker answers only once it has joined the KRaft quorum.
metadata_ok() {
  timeout 30 java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto \
    -Dlog4j2.configurationFile="$dir/tools-log4j2.properties" -cp "$libs/*" \
    org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" --list \
    --command-config "$dir/admin.properties" >/dev/null 2>&1
}

write_configs() {
  mkdir -p "$dir/data"
  cat >"$dir/server.properties" <<EOF
# Generated by deploy/local/kafka.sh: one node acting as broker and KRaft controller.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.network.threads=3
num.io.threads=4
num.partitions=8
default.replication.factor=1
auto.create.topics.enable=true
delete.topic.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# Update chunks are up to 1 MiB of payload plus headers; leave room for batching.
message.max.bytes=8388608
replica.fetch.max.bytes=8388608
socket.request.max.bytes=104857600
log.retention.hours=24
log.segment.bytes=268435456
log.retention.check.interval.ms=60000
EOF
  cat >"$dir/log4j2.properties" <<'EOF'
status = warn
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = WARN
EOF
  write_tool_log_config
}

# KRaft needs its storage formatted with a cluster id once; later starts reuse it.
format_storage() {
  [ -f "$dir/data/meta.properties" ] && return 0
  local id
  while :; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
    [ "${id:0:1}" != "-" ] && break
  done
  say "formatting KRaft storage in $dir/data (cluster id $id)"
  java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile="$dir/tools-log4j2.properties" -cp "$libs/*" \
    kafka.tools.StorageTool format -t "$id" -c "$dir/server.properties" --ignore-formatted >"$dir/format.log" 2>&1 \
    || { cat "$dir/format.log" >&2; die "formatting KRaft storage failed"; }
}

start() {
  mkdir -p "$dir"
  exec 9>"$dir/.lock"
  flock 9
  ensure_java
  ensure_libs
  write_tool_log_config
  if port_open "$port"; then
    if metadata_ok; then
      if pid_alive; then say "already running (pid $(cat "$pid_file")) on $bootstrap"; else say "a broker is already answering on $bootstrap; reusing it"; fi
      return 0
    fi
    pid_alive && die "pid $(cat "$pid_file") holds $bootstrap but does not answer metadata requests: run '$0 restart' or inspect $log_file"
    die "port $port is taken by a process that is not a Kafka broker: free it or set FEDMM_KAFKA_PORT"
  fi
  if pid_alive; then
    say "pid $(cat "$pid_file") exists but is not listening yet; waiting for it"
  else
    port_open "$controller_port" && die "controller port $controller_port is taken: free it or set FEDMM_KAFKA_CONTROLLER_PORT"
    write_configs
    format_storage
    say "starting Kafka $KAFKA_VERSION on $bootstrap (log: $log_file)"
    # setsid: the broker outlives the shell that started it and ignores its terminal's signals.
    setsid nohup java "-Xms256m" "-Xmx$heap" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
      -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
      -Dlog4j2.configurationFile="$dir/log4j2.properties" \
      -Dkafka.logs.dir="$dir" \
      -cp "$libs/*" kafka.Kafka "$dir/server.properties" >>"$log_file" 2>&1 </dev/null 8>&- 9>&- &
    echo $! >"$pid_file"
  fi
  local deadline=$((SECONDS + start_timeout))
  until port_open "$port" && metadata_ok; do
    if ! pid_alive; then
      say "the broker exited during start; last lines of $log_file:"
      tail -n 40 "$log_file" >&2 || true
      rm -f "$pid_file"
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "no metadata answer from $bootstrap within ${start_timeout}s; last lines of $log_file:"
      tail -n 40 "$log_file" >&2 || true
      exit 1
    fi
    sleep 0.5
  done
  say "ready on $bootstrap (pid $(cat "$pid_file"))"
}

stop() {
  if ! pid_alive; then
    rm -f "$pid_file"
    if port_open "$port"; then say "a broker on $bootstrap was not started by this script (no pid file in $dir); leaving it"; else say "not running"; fi
    return 0
  fi
  local pid
  pid="$(cat "$pid_file")"
  say "stopping pid $pid"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 45))
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "pid $pid did not stop within 45s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.3
  done
  rm -f "$pid_file"
  say "stopped"
}

status() {
  if pid_alive; then
    if port_open "$port"; then say "running (pid $(cat "$pid_file")) on $bootstrap"; return 0; fi
    say "pid $(cat "$pid_file") alive but $bootstrap is not listening"; return 1
  fi
  if port_open "$port"; then say "a listener on $bootstrap is not managed by this script"; return 0; fi
  say "not running"
  return 3
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) status ;;
  logs)
    [ -f "$log_file" ] || die "no log yet at $log_file"
    if [ "${1:-}" = "-f" ]; then exec tail -n 100 -F "$log_file"; else tail -n "${LINES_TO_SHOW:-100}" "$log_file"; fi ;;
  clean) stop; rm -rf "$dir"; say "removed $dir" ;;
  run-class)
    [ $# -ge 1 ] || die "usage: $0 run-class <main class> [args...]"
    run_class "$@" ;;
  fetch) ensure_java; ensure_libs; say "cached in $libs" ;;
  libs) printf '%s\n' "$libs" ;;
  *) die "usage: $0 {start|stop|restart|status|logs [-f]|clean|fetch|libs|run-class <class> [args...]}" ;;
esac
