# Shared by the scripts that run a local server (deploy/local/kafka.sh, deploy/local/redis.sh,
# scripts/prometheus.sh): messages, the pid file, and stopping a process we started.
# The sourcing script sets `name` (the prefix of its messages) and `pid_file`.

say() { printf '%s: %s\n' "$name" "$*" >&2; }
die() { say "$*"; exit 1; }

pid_alive() {
  [ -f "$pid_file" ] || return 1
  local pid
  pid="$(cat "$pid_file" 2>/dev/null)"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# stop_pid SIGNAL GRACE_SECONDS: signals the process in the pid file, waits for it to exit (SIGKILL
# after the grace period), and removes the pid file. The caller checks pid_alive first.
stop_pid() {
  local signal="$1" grace="$2" pid
  pid="$(cat "$pid_file")"
  if [ "$signal" = TERM ]; then say "stopping pid $pid"; else say "stopping pid $pid with SIG$signal"; fi
  kill "-$signal" "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + grace))
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "pid $pid did not stop within ${grace}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  rm -f "$pid_file"
  say "stopped"
}
