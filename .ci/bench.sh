#!/usr/bin/env bash
# .ci/bench.sh: the sync benchmarks of issue 4 (`make bench` runs it after
# cross/size.sh). Drains a backlog of BENCH_READINGS readings through a local
# mosquitto and compares the real agent with two baselines doing the same job
# with the same batch size and in-flight window:
#
#   agent    .cross/bin/x86_64/gridedge (the Embedded build) with its outbox
#            pre-filled, against Tests/Bench/ack_responder.c, a minimal HQ that
#            acks every batch on receipt (the agent releases a batch only on an
#            application ack);
#   c        Tests/Bench/drain_c.c: libmosquitto + libsqlite3, rows marked
#            delivered on PUBACK;
#   paho     Tests/Bench/drain_paho.py: paho-mqtt + sqlite3, the same;
#   full     the agent against the real `gridedge-hq serve` (stores every record,
#            deduplicated, then acks), with ack_responder --no-ack as observer.
#
# Rate = readings / (end - start): start is the first batch at the responder
# (or observer); end is when the publisher's queue is empty — the agent's
# outbox and batches tables (polled), a baseline's last PUBACK — and the
# responder has seen every reading, whichever is later. The agent's start-up
# (open, quick_check, connect) is reported on its own, not in the rate.
# Peak RSS is VmHWM from /proc: read from the agent before it is stopped, and by
# the baselines themselves at the end. CPU seconds (user + system) are reported
# too: on a shared machine they say more than wall time.
#
# Output: a table (one row per figure) and one `bench NAME VALUE UNIT` line per
# figure on stdout; progress on stderr. Fails when something is missing or a run
# goes wrong, and when the agent's peak RSS is over BENCH_RSS_BUDGET; the rate
# targets are reported (MISSED) and fail the run only with BENCH_STRICT=1.
#
# Environment:
#   BIN_DIR            gridedge and gridedge-hq  (default .cross/bin/x86_64)
#   BENCH_READINGS     backlog size              (default 1000000)
#   BENCH_BATCH        readings per message      (default 100)
#   BENCH_WINDOW       batches in flight         (default 16)
#   BENCH_TIMEOUT      seconds per run           (default 150)
#   BENCH_RSS_BUDGET   agent peak RSS, bytes     (default 12582912 = 12 MiB)
#   BENCH_STRICT=1     fail when a rate target is missed
#   BENCH_PROFILE=1    also run the agent under Tests/Bench/sqlite_profile.so
#                      and print where its SQLite time goes, per statement
#   BENCH_WORK         working folder            (default: a new temporary one)
#   BENCH_KEEP=1       keep the working folder (databases, logs)
#   CC, PYTHON         compilers/interpreters    (default cc, python3)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO_ROOT=$PWD

BIN_DIR=${BIN_DIR:-$REPO_ROOT/.cross/bin/x86_64}
BENCH_READINGS=${BENCH_READINGS:-1000000}
BENCH_BATCH=${BENCH_BATCH:-100}
BENCH_WINDOW=${BENCH_WINDOW:-16}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-150}
BENCH_RSS_BUDGET=${BENCH_RSS_BUDGET:-12582912}
BENCH_STRICT=${BENCH_STRICT:-0}
BENCH_PROFILE=${BENCH_PROFILE:-0}
BENCH_KEEP=${BENCH_KEEP:-0}
CC=${CC:-cc}
PYTHON=${PYTHON:-python3}
BENCH_SRC=$REPO_ROOT/Tests/Bench
# Targets of issue 4.
TARGET_VS_C=0.7
TARGET_VS_PAHO=2.5

log() { printf '\033[1m[bench]\033[0m %s\n' "$*" >&2; }
warn() { printf '[bench] warning: %s\n' "$*" >&2; }
fatal() {
  printf '[bench] error: %s\n' "$*" >&2
  exit 1
}

# --- processes: every one we start is tracked by pid and stopped on exit -----

pids=()
WORK=""
cleanup() {
  local status=$? pid
  for pid in "${pids[@]+"${pids[@]}"}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]+"${pids[@]}"}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [[ -n $WORK && -d $WORK ]]; then
    rmdir "$WORK" 2>/dev/null || true # nothing in it yet
    if [[ ! -d $WORK ]]; then
      :
    elif [[ $BENCH_KEEP == 1 || $status != 0 ]]; then
      log "working folder kept: $WORK"
    else
      rm -rf "$WORK"
    fi
  fi
}
trap cleanup EXIT

# forget PID: it ended (or we stopped it); no need to stop it on exit.
forget() {
  local keep=() p
  for p in "${pids[@]+"${pids[@]}"}"; do [[ $p == "$1" ]] || keep+=("$p"); done
  pids=("${keep[@]+"${keep[@]}"}")
}

# stop PID [SECONDS]: SIGTERM, wait up to SECONDS (default 10), then SIGKILL;
# sets STOP_STATUS to its exit status. (Not in a $(...) subshell: only this
# shell can wait for its children.)
stop() {
  local pid=$1 deadline=$((SECONDS + ${2:-10})) status=0
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      warn "pid $pid did not stop within ${2:-10} s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.05
  done
  wait "$pid" 2>/dev/null || status=$?
  forget "$pid"
  STOP_STATUS=$status
}

# now_ms: wall-clock milliseconds (the same clock the C and Python programs read).
now_ms() {
  local t=${EPOCHREALTIME//[.,]/}
  echo $((t / 1000))
}

# field FILE KEY: the value of KEY=VALUE in the last line of FILE that has it.
field() {
  local v
  v=$(grep -o "$2=[0-9-]*" "$1" | tail -n1 | cut -d= -f2)
  [[ -n $v ]] || fatal "no $2= in $1: $(tail -n3 "$1" 2>/dev/null)"
  echo "$v"
}

# wait_for_line FILE PATTERN SECONDS PID WHAT: until PATTERN is in FILE; fails
# when PID ends first or SECONDS pass.
wait_for_line() {
  local file=$1 pattern=$2 deadline=$((SECONDS + $3)) pid=$4 what=$5
  until grep -q -- "$pattern" "$file" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      fatal "$what ended before '$pattern' appeared; its output ($file):"$'\n'"$(tail -n 20 "$file" 2>/dev/null)"
    fi
    ((SECONDS < deadline)) || fatal "$what: no '$pattern' within $3 s; last output ($file):"$'\n'"$(tail -n 20 "$file")"
    sleep 0.02
  done
}

# cpu_seconds_of PID: user + system CPU seconds of a running process (3 decimals).
cpu_seconds_of() {
  local ticks
  ticks=$(awk '{ print $14 + $15 }' "/proc/$1/stat")
  awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.3f", t / hz }'
}

# peak_rss_of PID: VmHWM of a running process in bytes.
peak_rss_of() { awk '/^VmHWM:/ { print $2 * 1024 }' "/proc/$1/status"; }

# written_by PID: bytes a running process caused to be written to storage
# (write_bytes - cancelled_write_bytes of /proc/PID/io).
written_by() {
  awk '/^write_bytes:/ { w = $2 } /^cancelled_write_bytes:/ { c = $2 } END { print w - c }' "/proc/$1/io"
}

# --- checks ------------------------------------------------------------------

require_cmd() { command -v "$1" >/dev/null 2>&1 || fatal "'$1' not found on PATH: $2"; }

check_tools() {
  log "step 1/7: checking tools"
  require_cmd "$CC" "install gcc (build-essential)"
  require_cmd sqlite3 "install sqlite3 (.ci/deps.sh does)"
  require_cmd "$PYTHON" "install python3 (.ci/deps.sh does)"
  require_cmd getconf "install libc-bin"
  MOSQUITTO=$(command -v mosquitto || true)
  [[ -n $MOSQUITTO ]] || MOSQUITTO=/usr/sbin/mosquitto
  [[ -x $MOSQUITTO ]] || fatal "mosquitto not found: install the mosquitto package (.ci/deps.sh does)"
  for header in mosquitto.h sqlite3.h; do
    echo "#include <$header>" | "$CC" -E -x c - >/dev/null 2>&1 ||
      fatal "$header not found: install libmosquitto-dev and libsqlite3-dev (.ci/deps.sh does)"
  done
  for bin in gridedge gridedge-hq; do
    [[ -x $BIN_DIR/$bin ]] || fatal "$BIN_DIR/$bin not found: build it with 'bash cross/build.sh host' (or set BIN_DIR)"
  done
  ensure_paho
  ((BENCH_READINGS >= BENCH_BATCH && BENCH_BATCH >= 1 && BENCH_WINDOW >= 1)) ||
    fatal "BENCH_READINGS ($BENCH_READINGS) must be >= BENCH_BATCH ($BENCH_BATCH) >= 1, BENCH_WINDOW >= 1"
}

# ensure_paho: paho-mqtt >= 2.0 for $PYTHON; installs it with pip when missing, or
# into a virtual environment in $WORK when pip may not touch $PYTHON (PEP 668).
ensure_paho() {
  local probe='import paho.mqtt.enums'
  "$PYTHON" -c "$probe" 2>/dev/null && return
  log "paho-mqtt (>= 2.0) missing for $PYTHON: $PYTHON -m pip install paho-mqtt"
  if "$PYTHON" -m pip install --quiet paho-mqtt >&2 && "$PYTHON" -c "$probe" 2>/dev/null; then
    return
  fi
  log "pip could not install into $PYTHON; trying a virtual environment in $WORK/venv"
  "$PYTHON" -m venv "$WORK/venv" >&2 || fatal "no paho-mqtt and no venv: install python3-venv or paho-mqtt >= 2.0"
  "$WORK/venv/bin/python" -m pip install --quiet paho-mqtt >&2 || fatal "could not install paho-mqtt with pip"
  PYTHON=$WORK/venv/bin/python
  "$PYTHON" -c "$probe" || fatal "paho-mqtt still not importable after pip install"
}

build_helpers() {
  log "step 2/7: compiling the C baseline, the ack responder and the SQLite profiler"
  mkdir -p "$WORK/bin"
  local flags=(-O2 -Wall -Wextra -I "$BENCH_SRC")
  "$CC" "${flags[@]}" -o "$WORK/bin/ack_responder" "$BENCH_SRC/ack_responder.c" -lmosquitto
  "$CC" "${flags[@]}" -o "$WORK/bin/drain_c" "$BENCH_SRC/drain_c.c" -lmosquitto -lsqlite3
  "$CC" "${flags[@]}" -shared -fPIC -o "$WORK/bin/sqlite_profile.so" "$BENCH_SRC/sqlite_profile.c" -ldl
}

# --- the broker ----------------------------------------------------------------

free_port() {
  "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

port_accepts() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_broker() {
  log "step 3/7: starting mosquitto on a free loopback port"
  local attempt
  for attempt in 1 2 3; do
    PORT=$(free_port)
    # As root mosquitto would switch to the `mosquitto` user, which cannot write
    # into our folder; `user root` keeps it as is (no effect for other users).
    {
      [[ $(id -u) == 0 ]] && echo "user root"
      echo "listener $PORT 127.0.0.1"
      echo "allow_anonymous true"
      echo "persistence false"
      # The baselines stop at PUBACK: the broker may hold many messages for a
      # slower subscriber, and must not drop them.
      echo "max_queued_messages 0"
      echo "log_dest file $WORK/mosquitto.log"
      echo "log_type error"
      echo "log_type warning"
      echo "log_type notice"
    } >"$WORK/mosquitto.conf"
    "$MOSQUITTO" -c "$WORK/mosquitto.conf" >"$WORK/mosquitto.out" 2>&1 &
    BROKER_PID=$!
    pids+=("$BROKER_PID")
    local deadline=$((SECONDS + 10))
    while kill -0 "$BROKER_PID" 2>/dev/null && ! port_accepts "$PORT" && ((SECONDS < deadline)); do
      sleep 0.05
    done
    if kill -0 "$BROKER_PID" 2>/dev/null && port_accepts "$PORT"; then
      log "mosquitto $("$MOSQUITTO" -h 2>/dev/null | head -n1 | awk '{ print $3 }') on 127.0.0.1:$PORT (pid $BROKER_PID)"
      return
    fi
    stop "$BROKER_PID" 2
    grep -q "Address already in use" "$WORK/mosquitto.out" "$WORK/mosquitto.log" 2>/dev/null ||
      fatal "mosquitto did not start:"$'\n'"$(cat "$WORK/mosquitto.out" "$WORK/mosquitto.log" 2>/dev/null)"
    warn "port $PORT was taken (attempt $attempt); trying another"
  done
  fatal "mosquitto could not get a free port in 3 attempts"
}

# --- the backlogs -----------------------------------------------------------------

# readings_select: SQL selecting BENCH_READINGS reading records (minified JSON, 2048
# meters, 15-minute steps) as column `record`, in id order.
readings_select() {
  cat <<SQL
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < $((BENCH_READINGS - 1)))
SELECT printf('{"meter":"%012d","di":"00010000","ts":%d,"v":%d,"q":"measured"}',
              1 + i % 2048, 1700000000000 + (i / 2048) * 900000, i) AS record FROM n
SQL
}

agent_config() { # agent_config FILE DB PORT
  cat >"$1" <<CONF
# Written by .ci/bench.sh
device.id = BENCH-AGENT
store.path = $2
store.max_bytes = 4294967296
mqtt.port = $3
mqtt.reconnect_min = 100
mqtt.reconnect_max = 1000
sync.batch_records = $BENCH_BATCH
sync.window = $BENCH_WINDOW
sync.backlog_rate = 0
log.level = info
CONF
}

make_backlogs() {
  log "step 4/7: making the backlogs ($BENCH_READINGS readings each)"
  local t0 db=$WORK/agent-template.db pid
  t0=$(now_ms)
  # The agent makes its own database (schema, device, store id): start it once
  # against a port nobody listens on, and stop it when it says it will retry.
  agent_config "$WORK/prepare.conf" "$db" "$(free_port)"
  "$BIN_DIR/gridedge" run --config "$WORK/prepare.conf" >"$WORK/prepare.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  wait_for_line "$WORK/prepare.log" "retry in" 15 "$pid" "gridedge (making its database)"
  stop "$pid"
  ((STOP_STATUS == 0)) || fatal "gridedge exited with $STOP_STATUS after making its database; log:"$'\n'"$(cat "$WORK/prepare.log")"
  sqlite3 "$db" >/dev/null <<SQL || fatal "filling the agent's outbox failed"
.bail on
BEGIN;
INSERT INTO outbox (class, billing, record, created_at)
  SELECT 'readings', 0, record, $(now_ms) FROM ($(readings_select));
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
SQL
  local pending
  pending=$(sqlite3 "$db" "SELECT count(*) FROM outbox")
  [[ $pending == "$BENCH_READINGS" ]] || fatal "agent outbox holds $pending records, not $BENCH_READINGS"

  sqlite3 "$WORK/baseline-template.db" >/dev/null <<SQL || fatal "filling the baselines' outbox failed"
.bail on
PRAGMA journal_mode=WAL;
CREATE TABLE outbox (id INTEGER PRIMARY KEY, record TEXT NOT NULL, delivered INTEGER NOT NULL DEFAULT 0);
INSERT INTO outbox (record) SELECT record FROM ($(readings_select));
PRAGMA wal_checkpoint(TRUNCATE);
SQL
  log "backlogs ready in $(($(now_ms) - t0)) ms ($(du -m "$db" | cut -f1) MB agent, $(du -m "$WORK/baseline-template.db" | cut -f1) MB baseline)"
}

# fresh_copy TEMPLATE NAME: a copy of TEMPLATE for one run; prints its path.
fresh_copy() {
  local copy=$WORK/$2.db
  rm -f "$copy" "$copy-wal" "$copy-shm"
  cp "$1" "$copy"
  echo "$copy"
}

# --- the runs ----------------------------------------------------------------

# start_responder NAME [--no-ack]: sets RESPONDER_PID and RESPONDER_OUT.
start_responder() {
  RESPONDER_OUT=$WORK/$1.responder.out
  "$WORK/bin/ack_responder" --port "$PORT" --expect "$BENCH_READINGS" "${@:2}" >"$RESPONDER_OUT" 2>"$WORK/$1.responder.err" &
  RESPONDER_PID=$!
  pids+=("$RESPONDER_PID")
  wait_for_line "$RESPONDER_OUT" "^ready" 10 "$RESPONDER_PID" "ack_responder"
}

# finish_responder: stops it and checks it saw every reading exactly once;
# sets FIRST_MS, ALL_MS, DUPLICATES.
finish_responder() {
  stop "$RESPONDER_PID"
  FIRST_MS=$(field "$RESPONDER_OUT" first_ms)
  ALL_MS=$(field "$RESPONDER_OUT" all_ms)
  DUPLICATES=$(field "$RESPONDER_OUT" duplicates)
  local records
  records=$(field "$RESPONDER_OUT" records)
  [[ $records == "$BENCH_READINGS" ]] || fatal "the responder counted $records readings, not $BENCH_READINGS"
  ((DUPLICATES == 0)) || warn "the responder saw $DUPLICATES resent batch(es)"
}

# run_baseline NAME COMMAND...: a baseline drain; sets RATE, RSS, CPU, WRITTEN,
# SECONDS_TAKEN.
run_baseline() {
  local name=$1 db pid status deadline done_ms cpu_ms
  shift
  db=$(fresh_copy "$WORK/baseline-template.db" "$name")
  start_responder "$name"
  "$@" --db "$db" --port "$PORT" --batch "$BENCH_BATCH" --window "$BENCH_WINDOW" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  pid=$!
  pids+=("$pid")
  deadline=$((SECONDS + BENCH_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null; do
    ((SECONDS < deadline)) || fatal "$name did not finish within $BENCH_TIMEOUT s"
    sleep 0.02
  done
  status=0
  wait "$pid" || status=$?
  forget "$pid"
  ((status == 0)) || fatal "$name failed (exit $status):"$'\n'"$(tail -n 20 "$WORK/$name.err")"
  wait_for_line "$RESPONDER_OUT" "^all " 30 "$RESPONDER_PID" "ack_responder"
  finish_responder
  local left
  left=$(sqlite3 "$db" "SELECT count(*) FROM outbox WHERE delivered = 0")
  [[ $left == 0 ]] || fatal "$name left $left rows undelivered"
  done_ms=$(field "$WORK/$name.out" done_ms)
  set_rate $((done_ms > ALL_MS ? done_ms : ALL_MS))
  RSS=$(field "$WORK/$name.out" rss_hwm)
  cpu_ms=$(field "$WORK/$name.out" cpu_ms)
  WRITTEN=$(field "$WORK/$name.out" written)
  CPU=$(awk -v ms="$cpu_ms" 'BEGIN { printf "%.3f", ms / 1000 }')
  rm -f "$db" "$db-wal" "$db-shm"
}

# set_rate END_MS: RATE (readings/s) and SECONDS_TAKEN from FIRST_MS to END_MS.
set_rate() {
  local ms=$(($1 - FIRST_MS))
  ((ms > 0)) || ms=1
  RATE=$((BENCH_READINGS * 1000 / ms))
  SECONDS_TAKEN=$(awk -v ms="$ms" 'BEGIN { printf "%.2f", ms / 1000 }')
}

# agent_backlog DB: pending records + unacked batches (or "?" when unreadable).
agent_backlog() {
  sqlite3 -readonly -cmd ".timeout 2000" "$1" \
    "SELECT (SELECT count(*) FROM outbox) + (SELECT count(*) FROM batches)" 2>/dev/null || echo "?"
}

# run_agent NAME RECEIVER [PRELOAD]: the agent draining its backlog to RECEIVER
# (responder | hq); sets RATE, RSS, CPU, WRITTEN, STARTUP_MS, SECONDS_TAKEN (and
# HQ_RSS). PRELOAD: a library to preload (the SQLite profiler).
run_agent() {
  local name=$1 receiver=$2 preload=${3:-} db pid hq_pid="" launched deadline left empty_ms
  db=$(fresh_copy "$WORK/agent-template.db" "$name")
  agent_config "$WORK/$name.conf" "$db" "$PORT"
  if [[ $receiver == hq ]]; then
    start_responder "$name" --no-ack
    rm -f "$WORK/hq.db" "$WORK/hq.db-wal" "$WORK/hq.db-shm"
    "$BIN_DIR/gridedge-hq" serve --port "$PORT" --db "$WORK/hq.db" --client-id bench-hq --log-level info \
      >"$WORK/hq.log" 2>&1 &
    hq_pid=$!
    pids+=("$hq_pid")
    wait_for_line "$WORK/hq.log" "connected to" 15 "$hq_pid" "gridedge-hq"
  else
    start_responder "$name"
  fi
  launched=$(now_ms)
  if [[ -n $preload ]]; then
    LD_PRELOAD=$preload SQLITE_PROFILE_OUT=$WORK/$name.sqlite-profile.txt \
      "$BIN_DIR/gridedge" run --config "$WORK/$name.conf" >"$WORK/$name.log" 2>&1 &
  else
    "$BIN_DIR/gridedge" run --config "$WORK/$name.conf" >"$WORK/$name.log" 2>&1 &
  fi
  pid=$!
  pids+=("$pid")
  wait_for_line "$RESPONDER_OUT" "^all " "$BENCH_TIMEOUT" "$pid" "gridedge (log $WORK/$name.log)"
  deadline=$((SECONDS + 30))
  while left=$(agent_backlog "$db") && [[ $left != 0 ]]; do
    kill -0 "$pid" 2>/dev/null || fatal "gridedge ended with $left records/batches left; log:"$'\n'"$(tail -n 20 "$WORK/$name.log")"
    ((SECONDS < deadline)) || fatal "gridedge still holds $left records/batches 30 s after the last reading arrived"
    sleep 0.02
  done
  empty_ms=$(now_ms)
  RSS=$(peak_rss_of "$pid")
  CPU=$(cpu_seconds_of "$pid")
  WRITTEN=$(written_by "$pid")
  [[ -z $hq_pid ]] || HQ_RSS=$(peak_rss_of "$hq_pid")
  stop "$pid"
  ((STOP_STATUS == 0)) || fatal "gridedge exited with $STOP_STATUS on SIGTERM; log:"$'\n'"$(tail -n 20 "$WORK/$name.log")"
  finish_responder
  STARTUP_MS=$((FIRST_MS - launched))
  set_rate $((empty_ms > ALL_MS ? empty_ms : ALL_MS))
  if [[ -n $hq_pid ]]; then
    stop "$hq_pid"
    local held
    held=$(sqlite3 "$WORK/hq.db" "SELECT count(*) FROM records WHERE device_id = 'BENCH-AGENT' AND class = 'readings'")
    [[ $held == "$BENCH_READINGS" ]] || fatal "gridedge-hq holds $held readings, not $BENCH_READINGS"
  fi
  rm -f "$db" "$db-wal" "$db-shm"
}

# --- figures -------------------------------------------------------------------

rows=()
lines=()
missed=()
# figure NAME VALUE UNIT TARGET WHAT: one table row and one bench line.
figure() {
  rows+=("$(printf '%-34s %14s  %-11s %-8s %s' "$1" "$2" "$3" "$4" "$5")")
  lines+=("bench $1 $2 $3")
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

# verdict VALUE OP TARGET NAME: sets VERDICT to "ok" or "MISSED" (and records the miss).
verdict() {
  if awk -v v="$1" -v t="$3" -v op="$2" 'BEGIN { exit !(op == ">=" ? v >= t : v <= t) }'; then
    VERDICT=ok
  else
    missed+=("$4 = $1, target $2 $3")
    VERDICT=MISSED
  fi
}

main() {
  local load cores started
  started=$SECONDS
  if [[ -n ${BENCH_WORK:-} ]]; then
    WORK=$BENCH_WORK
    mkdir -p "$WORK"
  else
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/gridedge-bench.XXXXXX")
  fi
  check_tools
  load=$(cut -d' ' -f1 /proc/loadavg)
  cores=$(nproc)
  log "working in $WORK; $cores core(s), load average $load"
  if awk -v l="$load" -v c="$cores" 'BEGIN { exit !(l > c / 2) }'; then
    warn "the machine is busy (load $load on $cores cores): wall-clock rates will be low and noisy; compare CPU seconds"
  fi
  build_helpers
  start_broker
  make_backlogs

  log "step 5/7: plain C baseline (libmosquitto + libsqlite3, delivered on PUBACK)"
  run_baseline c "$WORK/bin/drain_c"
  local c_rate=$RATE c_rss=$RSS c_cpu=$CPU c_s=$SECONDS_TAKEN c_written=$WRITTEN
  log "  $c_rate readings/s ($c_s s, $c_cpu CPU s, peak RSS $(mib "$c_rss"))"

  log "step 5/7: Python paho-mqtt baseline (delivered on PUBACK)"
  run_baseline paho "$PYTHON" "$BENCH_SRC/drain_paho.py"
  local paho_rate=$RATE paho_rss=$RSS paho_cpu=$CPU paho_s=$SECONDS_TAKEN paho_written=$WRITTEN
  log "  $paho_rate readings/s ($paho_s s, $paho_cpu CPU s, peak RSS $(mib "$paho_rss"))"

  log "step 6/7: gridedge -> ack responder (released on application ack)"
  run_agent agent responder
  local agent_rate=$RATE agent_rss=$RSS agent_cpu=$CPU agent_s=$SECONDS_TAKEN agent_startup=$STARTUP_MS
  local agent_written=$WRITTEN
  log "  $agent_rate readings/s ($agent_s s, $agent_cpu CPU s, peak RSS $(mib "$agent_rss"), start-up $agent_startup ms)"

  log "step 6/7: gridedge -> gridedge-hq serve (stored, deduplicated, acked)"
  HQ_RSS=0
  run_agent full hq
  local full_rate=$RATE full_rss=$RSS full_cpu=$CPU full_s=$SECONDS_TAKEN hq_rss=$HQ_RSS
  log "  $full_rate readings/s ($full_s s, agent $full_cpu CPU s, peak RSS $(mib "$full_rss"); gridedge-hq $(mib "$hq_rss"))"

  if [[ $BENCH_PROFILE == 1 ]]; then
    log "step 7/7: gridedge -> ack responder again, under sqlite_profile.so"
    run_agent profile responder "$WORK/bin/sqlite_profile.so"
    log "  $RATE readings/s under the profiler ($CPU CPU s); SQLite time per statement, most first:"
    head -n 20 "$WORK/profile.sqlite-profile.txt" | cut -c1-220 >&2
  else
    log "step 7/7: (BENCH_PROFILE=1 adds a run under the SQLite statement profiler)"
  fi

  local vs_c vs_paho cpu_vs_c
  vs_c=$(ratio "$agent_rate" "$c_rate")
  vs_paho=$(ratio "$agent_rate" "$paho_rate")
  cpu_vs_c=$(ratio "$agent_cpu" "$c_cpu")
  local what="$BENCH_READINGS readings, $BENCH_BATCH/message, window $BENCH_WINDOW"
  figure drain_agent_readings_per_s "$agent_rate" readings/s "" "gridedge -> ack responder ($what)"
  figure drain_c_readings_per_s "$c_rate" readings/s "" "plain C, libmosquitto + libsqlite3, PUBACK"
  figure drain_paho_readings_per_s "$paho_rate" readings/s "" "Python paho-mqtt + sqlite3, PUBACK"
  figure drain_full_hq_readings_per_s "$full_rate" readings/s "" "gridedge -> gridedge-hq serve (stored, acked)"
  verdict "$vs_c" ">=" "$TARGET_VS_C" drain_vs_c
  figure drain_vs_c "$vs_c" ratio ">= $TARGET_VS_C" "$VERDICT: gridedge rate / plain C rate"
  verdict "$vs_paho" ">=" "$TARGET_VS_PAHO" drain_vs_paho
  figure drain_vs_paho "$vs_paho" ratio ">= $TARGET_VS_PAHO" "$VERDICT: gridedge rate / paho rate"
  verdict "$agent_rss" "<=" "$BENCH_RSS_BUDGET" drain_rss
  figure drain_rss "$agent_rss" bytes "<= $(mib "$BENCH_RSS_BUDGET" | cut -d' ' -f1)M" \
    "$VERDICT: gridedge peak RSS (VmHWM) while draining, $(mib "$agent_rss")"
  figure drain_c_rss "$c_rss" bytes "" "plain C peak RSS, $(mib "$c_rss")"
  figure drain_paho_rss "$paho_rss" bytes "" "paho peak RSS, $(mib "$paho_rss")"
  figure drain_full_hq_agent_rss "$full_rss" bytes "" "gridedge peak RSS with gridedge-hq, $(mib "$full_rss")"
  figure drain_full_hq_receiver_rss "$hq_rss" bytes "" "gridedge-hq serve peak RSS, $(mib "$hq_rss")"
  figure drain_agent_cpu_s "$agent_cpu" s "" "gridedge CPU (user + system) from launch, start-up included"
  figure drain_c_cpu_s "$c_cpu" s "" "plain C CPU"
  figure drain_paho_cpu_s "$paho_cpu" s "" "paho CPU"
  figure drain_agent_cpu_vs_c "$cpu_vs_c" ratio "" "gridedge CPU / plain C CPU (load-independent)"
  figure drain_agent_written_bytes "$agent_written" bytes "" "gridedge: bytes written to storage (/proc/PID/io)"
  figure drain_c_written_bytes "$c_written" bytes "" "plain C: bytes written to storage"
  figure drain_paho_written_bytes "$paho_written" bytes "" "paho: bytes written to storage"
  figure drain_agent_startup_ms "$agent_startup" ms "" "gridedge launch -> first batch at the responder"

  echo
  echo "sync drain benchmark: $what, QoS 1, MQTT v5, mosquitto on loopback; load average at start $load"
  printf '%-34s %14s  %-11s %-8s %s\n' figure value unit target "what / result"
  printf '%-34s %14s  %-11s %-8s %s\n' ------ ----- ---- ------ -------------
  printf '%s\n' "${rows[@]}"
  echo
  printf '%s\n' "${lines[@]}"
  echo

  log "sync benchmarks took $((SECONDS - started)) s"
  local m rss_over=0
  for m in "${missed[@]+"${missed[@]}"}"; do
    warn "target missed: $m"
    [[ $m != drain_rss* ]] || rss_over=1
  done
  ((rss_over == 0)) || fatal "gridedge's peak RSS while draining is over the budget of $BENCH_RSS_BUDGET bytes"
  if ((${#missed[@]} > 0)) && [[ $BENCH_STRICT == 1 ]]; then
    fatal "${#missed[@]} target(s) missed (BENCH_STRICT=1)"
  fi
}

main "$@"
