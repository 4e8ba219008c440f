#!/usr/bin/env bash
# .ci/bench.sh: the benchmarks of issues 4, 3 and 6 (`make bench` runs it after
# cross/size.sh), in four parts (BENCH_PARTS): drain, acquisition, ingest, balance.
#
# drain (issue 4): drains a backlog of BENCH_READINGS readings through a local
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
# acquisition (issue 3): one reading cycle of BENCH_ACQ_METERS meters served by
# `gridedge-sim serve` on TCP with line pacing at BENCH_ACQ_BAUD (a serial-to-
# Ethernet gateway's line: the simulator books each request's and each reply's wire
# time, 11 bits a byte, on one half-duplex timeline), read by `gridedge run`. The
# cycle is cycle 1 set up as a steady-state cycle: one real-time read (00 01 FF 00)
# per meter, no clock check (acquisition.clock_check = 0) and no daily freeze
# (device.utc_offset puts local time near 01:00, before acquisition.freeze_delay =
# 720 min), so cycle 1 does what every later cycle of the day does. Its duration
# is finished_at - started_at of its acquisition_cycles row. The line-time limit
# counts every byte of the cycle both ways, wake-up bytes included, as the
# simulator read and wrote them on its sockets (/proc/PID/io rchar and wchar, less
# what it wrote to its log): limit = bytes x 11 / baud. The gaps the agent keeps
# between exchanges (bus.gap, default from firmware-config/concentrator.conf) are
# not in that limit; a second ratio adds them, to show the agent's own overhead.
# No MQTT broker (mqtt.port is a closed port; the agent retries with backoff) —
# BENCH_ACQ_BROKER=1 runs it against mosquitto and the ack responder instead.
#
# ingest (issue 3): reading-cache ingest (Readings.store: each reading and its
# outbox record, one transaction per flush of up to 100 readings) in the real
# agent against Tests/Bench/ingest_c.c, plain C inserting the same rows into the
# same tables with the same statements, the same transaction sizes and the same
# transaction start times (so write-back and checkpoints meet both alike). The agent
# reads BENCH_INGEST_METERS meters from an unpaced simulator with
# BENCH_INGEST_DAYS days of daily freezes (backfill: real-time read + every freeze
# record), one bus. Both processes run under Tests/Bench/ingest_probe.so, which
# sums the wall and CPU time from BEGIN to the end of COMMIT of the transactions
# that insert readings: rate = rows / that time, for both alike (the agent's bus
# work between transactions is not in it). The C program replays the agent's
# transaction sizes and its records must equal the agent's, byte for byte. The
# end-to-end rate through the bus (rows / read_at span) is reported apart.
#
# balance (issue 6): the daily energy balance of one transformer area of
# BENCH_BALANCE_METERS meters (the area meter, CT 40, and its customers) on a
# database holding BENCH_BALANCE_DAYS days of 15-minute real-time readings
# (00 01 FF 00 with tariff registers, one row per meter and slot) and the daily
# freezes (05 06 01 01), in the agent's own schema (the database is made by
# `gridedge run`, then filled with sqlite3; one customer bypassed by half and one
# stopped on the day balanced). Timed: `gridedge balance --area A --day D --json`
# (the Embedded build; the same Balance.compute the daily summary to HQ runs) as a
# process, against the sqlite3 CLI running the plain SQL aggregate over the same
# rows in the same run. "The same rows": the balance is computed from daily
# freezes, so both read the freeze rows of the area's meters from the start of
# day D - balance.history_days (7) to the end of day D + 1, through the same
# access path: the agent's partial index of daily freezes (migration 9; without
# it both would walk every 15-minute row of that range, about 85 times as many
# rows: EXPLAIN QUERY PLAN of both is logged), and both turn them into each
# meter's energy per day (first freeze of the next day - first freeze of the day,
# x CT ratio); SQL then sums supplied and sold per day, the agent also computes
# medians, the anomaly rules, the ranking and its JSON. The two results are
# checked equal. A third command only reads those rows (count, sum): the floor
# under both (balance_sql_read_ms), so the agent's own work shows too. The agent
# also reads the area's meter_state rows (clock drift) and its archive grades,
# which the SQL does not need. Wall time is the median of BENCH_BALANCE_RUNS alternating runs
# after one warm-up run each (the page cache warm for both); peak RSS is the
# child's ru_maxrss from wait4 (= VmHWM), by Tests/Bench/run_measured.c.
#
# Output: a table (one row per figure) and one `bench NAME VALUE UNIT` line per
# figure on stdout; progress on stderr. Fails when something is missing or a run
# goes wrong, and when the agent's peak RSS is over BENCH_RSS_BUDGET; the rate
# targets are reported (MISSED) and fail the run only with BENCH_STRICT=1.
#
# Environment:
#   BENCH_PARTS        parts to run              (default "drain acquisition ingest balance")
#   BIN_DIR            gridedge, gridedge-hq, gridedge-sim (default .cross/bin/x86_64)
#   BENCH_READINGS     backlog size              (default 1000000)
#   BENCH_BATCH        readings per message      (default 100)
#   BENCH_WINDOW       batches in flight         (default 16)
#   BENCH_TIMEOUT      seconds per run           (default 150)
#   BENCH_RSS_BUDGET   agent peak RSS, bytes     (default 12582912 = 12 MiB)
#   BENCH_STRICT=1     fail when a rate target is missed
#   BENCH_DRAIN_QUICK=1 drain: only the C baseline and the agent (no paho, no
#                      gridedge-hq run): for quick comparisons while working
#   BENCH_PROFILE=1    also run the agent under Tests/Bench/sqlite_profile.so
#                      and print where its SQLite time goes, per statement
#   BENCH_ACQ_METERS   acquisition: meters       (default 1024)
#   BENCH_ACQ_BAUD     acquisition: line rate    (default 9600)
#   BENCH_ACQ_GAP      acquisition: bus.gap, ms  (default: the documented default)
#   BENCH_ACQ_BROKER=1 acquisition: with mosquitto and the ack responder
#   BENCH_INGEST_METERS ingest: meters           (default 2048)
#   BENCH_INGEST_DAYS  ingest: freeze history, days, 1-62 (default 62)
#   BENCH_INGEST_C_RUNS ingest: C runs (~10 s each), the median counts (default 3)
#   BENCH_BALANCE_METERS balance: meters in the area, area meter included (default 2048)
#   BENCH_BALANCE_DAYS balance: days of 15-minute data, 9-62 (default 30)
#   BENCH_BALANCE_RUNS balance: timed runs of each, the median counts (default 5)
#   BENCH_WORK         working folder            (default: a new temporary one)
#   BENCH_KEEP=1       keep the working folder (databases, logs)
#   CC, PYTHON         compilers/interpreters    (default cc, python3)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO_ROOT=$PWD

BENCH_PARTS=${BENCH_PARTS:-drain acquisition ingest balance}
BIN_DIR=${BIN_DIR:-$REPO_ROOT/.cross/bin/x86_64}
BENCH_READINGS=${BENCH_READINGS:-1000000}
BENCH_BATCH=${BENCH_BATCH:-100}
BENCH_WINDOW=${BENCH_WINDOW:-16}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-150}
BENCH_RSS_BUDGET=${BENCH_RSS_BUDGET:-12582912}
BENCH_STRICT=${BENCH_STRICT:-0}
BENCH_PROFILE=${BENCH_PROFILE:-0}
BENCH_DRAIN_QUICK=${BENCH_DRAIN_QUICK:-0}
BENCH_KEEP=${BENCH_KEEP:-0}
BENCH_ACQ_METERS=${BENCH_ACQ_METERS:-1024}
BENCH_ACQ_BAUD=${BENCH_ACQ_BAUD:-9600}
BENCH_ACQ_GAP=${BENCH_ACQ_GAP:-$(sed -n 's/^# bus\.gap = \([0-9]*\)$/\1/p' "$REPO_ROOT/firmware-config/concentrator.conf")}
BENCH_ACQ_BROKER=${BENCH_ACQ_BROKER:-0}
BENCH_INGEST_METERS=${BENCH_INGEST_METERS:-2048}
BENCH_INGEST_DAYS=${BENCH_INGEST_DAYS:-62}
BENCH_INGEST_C_RUNS=${BENCH_INGEST_C_RUNS:-3}
BENCH_BALANCE_METERS=${BENCH_BALANCE_METERS:-2048}
BENCH_BALANCE_DAYS=${BENCH_BALANCE_DAYS:-30}
BENCH_BALANCE_RUNS=${BENCH_BALANCE_RUNS:-5}
CC=${CC:-cc}
PYTHON=${PYTHON:-python3}
BENCH_SRC=$REPO_ROOT/Tests/Bench
# Targets of issue 4.
TARGET_VS_C=0.7
TARGET_VS_PAHO=2.5
# Targets of issue 3.
TARGET_ACQ_VS_LINE=1.10
TARGET_INGEST_VS_C=0.5
# Target of issue 6.
TARGET_BALANCE_VS_SQL=2

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

# has_part NAME: true when BENCH_PARTS names NAME.
has_part() { [[ " $BENCH_PARTS " == *" $1 "* ]]; }

# needs_broker: true when a part runs mosquitto.
needs_broker() { has_part drain || { has_part acquisition && [[ $BENCH_ACQ_BROKER == 1 ]]; }; }

check_tools() {
  log "step 1/7: checking tools"
  local part
  [[ -n ${BENCH_PARTS// /} ]] || fatal "BENCH_PARTS is empty (drain, acquisition, ingest, balance)"
  for part in $BENCH_PARTS; do
    [[ $part == drain || $part == acquisition || $part == ingest || $part == balance ]] ||
      fatal "BENCH_PARTS: unknown part '$part' (drain, acquisition, ingest, balance)"
  done
  require_cmd "$CC" "install gcc (build-essential)"
  require_cmd sqlite3 "install sqlite3 (.ci/deps.sh does)"
  require_cmd "$PYTHON" "install python3 (.ci/deps.sh does)"
  require_cmd getconf "install libc-bin"
  echo "#include <sqlite3.h>" | "$CC" -E -x c - >/dev/null 2>&1 ||
    fatal "sqlite3.h not found: install libsqlite3-dev (.ci/deps.sh does)"
  [[ -x $BIN_DIR/gridedge ]] || fatal "$BIN_DIR/gridedge not found: build it with 'bash cross/build.sh host' (or set BIN_DIR)"
  if needs_broker; then
    MOSQUITTO=$(command -v mosquitto || true)
    [[ -n $MOSQUITTO ]] || MOSQUITTO=/usr/sbin/mosquitto
    [[ -x $MOSQUITTO ]] || fatal "mosquitto not found: install the mosquitto package (.ci/deps.sh does)"
    echo "#include <mosquitto.h>" | "$CC" -E -x c - >/dev/null 2>&1 ||
      fatal "mosquitto.h not found: install libmosquitto-dev (.ci/deps.sh does)"
  fi
  if has_part drain; then
    [[ -x $BIN_DIR/gridedge-hq ]] ||
      fatal "$BIN_DIR/gridedge-hq not found: build it with 'bash cross/build.sh host' (or set BIN_DIR)"
    ensure_paho
    ((BENCH_READINGS >= BENCH_BATCH && BENCH_BATCH >= 1 && BENCH_WINDOW >= 1)) ||
      fatal "BENCH_READINGS ($BENCH_READINGS) must be >= BENCH_BATCH ($BENCH_BATCH) >= 1, BENCH_WINDOW >= 1"
  fi
  if has_part acquisition || has_part ingest; then
    [[ -x $BIN_DIR/gridedge-sim ]] ||
      fatal "$BIN_DIR/gridedge-sim not found: build it with 'bash cross/build.sh host' (or set BIN_DIR)"
  fi
  if has_part acquisition; then
    [[ $BENCH_ACQ_METERS =~ ^[0-9]+$ ]] && ((BENCH_ACQ_METERS >= 1 && BENCH_ACQ_METERS <= 2048)) ||
      fatal "BENCH_ACQ_METERS ($BENCH_ACQ_METERS) must be 1 to 2048 (gridedge-sim's limit)"
    [[ $BENCH_ACQ_BAUD =~ ^(1200|2400|4800|9600)$ ]] ||
      fatal "BENCH_ACQ_BAUD ($BENCH_ACQ_BAUD) must be 1200, 2400, 4800 or 9600 (what bus.N accepts)"
    [[ $BENCH_ACQ_GAP =~ ^[0-9]+$ ]] ||
      fatal "BENCH_ACQ_GAP ('$BENCH_ACQ_GAP') must be milliseconds (no '# bus.gap = N' in firmware-config/concentrator.conf?)"
  fi
  if has_part ingest; then
    [[ $BENCH_INGEST_METERS =~ ^[0-9]+$ ]] && ((BENCH_INGEST_METERS >= 1 && BENCH_INGEST_METERS <= 2048)) ||
      fatal "BENCH_INGEST_METERS ($BENCH_INGEST_METERS) must be 1 to 2048"
    [[ $BENCH_INGEST_DAYS =~ ^[0-9]+$ ]] && ((BENCH_INGEST_DAYS >= 1 && BENCH_INGEST_DAYS <= 62)) ||
      fatal "BENCH_INGEST_DAYS ($BENCH_INGEST_DAYS) must be 1 to 62 (the meters keep 62 daily freezes)"
    [[ $BENCH_INGEST_C_RUNS =~ ^[0-9]+$ ]] && ((BENCH_INGEST_C_RUNS >= 1)) ||
      fatal "BENCH_INGEST_C_RUNS ($BENCH_INGEST_C_RUNS) must be at least 1"
  fi
  if has_part balance; then
    check_balance_settings
  fi
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
  log "step 2/7: compiling the benchmark's C programs"
  mkdir -p "$WORK/bin"
  local flags=(-O2 -Wall -Wextra -I "$BENCH_SRC")
  if needs_broker; then
    "$CC" "${flags[@]}" -o "$WORK/bin/ack_responder" "$BENCH_SRC/ack_responder.c" -lmosquitto
  fi
  if has_part drain; then
    "$CC" "${flags[@]}" -o "$WORK/bin/drain_c" "$BENCH_SRC/drain_c.c" -lmosquitto -lsqlite3
    "$CC" "${flags[@]}" -shared -fPIC -o "$WORK/bin/sqlite_profile.so" "$BENCH_SRC/sqlite_profile.c" -ldl
  fi
  if has_part ingest; then
    "$CC" "${flags[@]}" -o "$WORK/bin/ingest_c" "$BENCH_SRC/ingest_c.c" -lsqlite3
    "$CC" "${flags[@]}" -shared -fPIC -o "$WORK/bin/ingest_probe.so" "$BENCH_SRC/ingest_probe.c" -ldl
  fi
  if has_part balance; then
    "$CC" "${flags[@]}" -o "$WORK/bin/run_measured" "$BENCH_SRC/run_measured.c"
  fi
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
      # As firmware-config/mosquitto/gridedge-hq.conf: no Nagle delay on small
      # packets (PUBACKs, acks), for the baselines and the agent alike.
      echo "set_tcp_nodelay true"
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
INSERT INTO outbox_readings (billing, record, created_at)
  SELECT 0, record, $(now_ms) FROM ($(readings_select));
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

# --- acquisition and ingest (issue 3) -------------------------------------------

# start_sim NAME OPTIONS...: `gridedge-sim serve --tcp 0` (a free port) with OPTIONS;
# sets SIM_PID, SIM_PORT and SIM_LOG (its stderr; SIM_OUT its stdout).
start_sim() {
  local name=$1
  shift
  SIM_LOG=$WORK/$name.sim.log
  SIM_OUT=$WORK/$name.sim.out
  "$BIN_DIR/gridedge-sim" serve --tcp 0 --host 127.0.0.1 "$@" >"$SIM_OUT" 2>"$SIM_LOG" &
  SIM_PID=$!
  pids+=("$SIM_PID")
  wait_for_line "$SIM_LOG" "listening on tcp" 120 "$SIM_PID" "gridedge-sim serve"
  SIM_PORT=$(grep -o 'listening on tcp 127\.0\.0\.1:[0-9]*' "$SIM_LOG" | tail -n1 | cut -d: -f2)
  [[ -n $SIM_PORT ]] || fatal "no port in gridedge-sim's log:"$'\n'"$(cat "$SIM_LOG")"
}

# stop_sim: stops the simulator; sets SIM_REQUESTS and SIM_REPLIES from its last words.
stop_sim() {
  stop "$SIM_PID"
  ((STOP_STATUS == 0)) || fatal "gridedge-sim exited with $STOP_STATUS on SIGTERM; log:"$'\n'"$(tail -n 5 "$SIM_LOG")"
  local line
  line=$(grep -o 'stopped after [0-9]* requests, [0-9]* replies' "$SIM_LOG" | tail -n1)
  [[ -n $line ]] || fatal "gridedge-sim did not say how many requests it served; log:"$'\n'"$(tail -n 5 "$SIM_LOG")"
  SIM_REQUESTS=$(awk '{ print $3 }' <<<"$line")
  SIM_REPLIES=$(awk '{ print $5 }' <<<"$line")
}

# meter_list FILE COUNT: the simulator's first COUNT addresses as a meter.file, all
# on bus 1.
meter_list() {
  "$BIN_DIR/gridedge-sim" list --meters "$2" | awk '{ print $1, 1 }' >"$1"
  local n
  n=$(wc -l <"$1")
  ((n == $2)) || fatal "gridedge-sim list --meters $2 printed $n addresses"
}

# io_bytes PID: "rchar wchar" of a running process: bytes it got from read(2) and
# gave to write(2), sockets included.
io_bytes() { awk '/^rchar:/ { r = $2 } /^wchar:/ { w = $2 } END { print r, w }' "/proc/$1/io"; }

# sim_output_bytes: what the simulator wrote to its log and stdout so far.
sim_output_bytes() { echo $(($(stat -c %s "$SIM_LOG") + $(stat -c %s "$SIM_OUT"))); }

# utc_offset_for HOUR: a device.utc_offset (minutes east of UTC, -720..840) that
# makes local time now HOUR:mm.
utc_offset_for() {
  local utc_minute=$((EPOCHSECONDS / 60 % 1440)) offset
  offset=$(((($1 * 60 - utc_minute) % 1440 + 1440) % 1440))
  ((offset <= 840)) || offset=$((offset - 1440))
  echo "$offset"
}

# wait_for_cycle LOG PID SECONDS: until the agent's log says its first acquisition
# cycle is over; fails when PID ends first or SECONDS pass. Polls twice a second,
# so that the waiting costs the measured processes next to nothing.
wait_for_cycle() {
  local deadline=$((SECONDS + $3))
  until grep -Eq 'cycle 1 for [^ ]+ (done|ended)' "$1" 2>/dev/null; do
    kill -0 "$2" 2>/dev/null ||
      fatal "gridedge ended before its first cycle was over; log ($1):"$'\n'"$(grep -v mqtt "$1" | tail -n 20)"
    ((SECONDS < deadline)) ||
      fatal "gridedge's first cycle took more than $3 s; log ($1):"$'\n'"$(grep -v mqtt "$1" | tail -n 20)"
    sleep 0.5
  done
}

# first_cycle DB LOG METERS: checks that cycle 1 read every meter, cleanly, to its
# end; sets CYCLE_MS and CYCLE_STORED.
first_cycle() {
  local row started finished meters answered missing errors
  grep -Eq 'cycle 1 for [^ ]+ done:' "$2" ||
    fatal "cycle 1 was cut short: $(grep -E 'cycle 1 for [^ ]+ ended' "$2")"
  row=$(sqlite3 -readonly "$1" "SELECT started_at, finished_at, meters, answered, missing, errors, stored FROM acquisition_cycles WHERE id = 1")
  [[ -n $row ]] || fatal "$1 has no acquisition_cycles row for cycle 1"
  IFS='|' read -r started finished meters answered missing errors CYCLE_STORED <<<"$row"
  ((meters == $3 && answered == $3 && missing == 0 && errors == 0)) ||
    fatal "cycle 1: $answered of $meters meter(s) answered (expected $3), $missing missing, $errors error(s)"
  CYCLE_MS=$((finished - started))
}

# acquisition_part: one steady-state cycle against the line-time limit.
acquisition_part() {
  local n=$BENCH_ACQ_METERS baud=$BENCH_ACQ_BAUD gap=$BENCH_ACQ_GAP db=$WORK/acq.db mqtt_port pid
  local responder_pid="" broker_text="no MQTT broker (mqtt.port closed)"
  log "acquisition 1/3: gridedge-sim with $n meters on TCP, replies paced at $baud Bd"
  start_sim acq --meters "$n" --baud "$baud" --no-area
  meter_list "$WORK/acq.meters" "$n"
  if [[ $BENCH_ACQ_BROKER == 1 ]]; then
    [[ -n ${PORT:-} ]] || start_broker
    mqtt_port=$PORT
    broker_text="mosquitto + ack responder"
    "$WORK/bin/ack_responder" --port "$PORT" --expect 1000000000 >"$WORK/acq.responder.out" 2>"$WORK/acq.responder.err" &
    responder_pid=$!
    pids+=("$responder_pid")
    wait_for_line "$WORK/acq.responder.out" "^ready" 10 "$responder_pid" "ack_responder"
  else
    mqtt_port=$(free_port) # nobody listens there
  fi
  cat >"$WORK/acq.conf" <<CONF
# Written by .ci/bench.sh (acquisition): cycle 1 is a steady-state cycle, one
# real-time read per meter: no clock check, and local time near 01:00 puts the
# daily freeze (due 720 min after local midnight) hours away.
device.id = BENCH-ACQ
device.utc_offset = $(utc_offset_for 1)
store.path = $db
mqtt.port = $mqtt_port
meter.file = $WORK/acq.meters
bus.1 = tcp 127.0.0.1:$SIM_PORT $baud
bus.gap = $gap
acquisition.interval = 1440
acquisition.clock_check = 0
acquisition.freeze_delay = 720
log.level = info
CONF
  # About 60 bytes an exchange (4 + 16 out, 4 + 36 back), 11 bits a byte.
  local expect_s=$((n * (60 * 11 * 1000 / baud + gap) / 1000 + 1))
  local r0 w0 out0 r1 w1 out1 cpu rss
  read -r r0 w0 < <(io_bytes "$SIM_PID")
  out0=$(sim_output_bytes)
  log "acquisition 2/3: gridedge reads them: one cycle, about $expect_s s at the line's limit plus bus.gap $gap ms"
  "$BIN_DIR/gridedge" run --config "$WORK/acq.conf" >"$WORK/acq.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  wait_for_cycle "$WORK/acq.log" "$pid" $((expect_s * 2 + 60))
  read -r r1 w1 < <(io_bytes "$SIM_PID")
  out1=$(sim_output_bytes)
  cpu=$(cpu_seconds_of "$pid")
  rss=$(peak_rss_of "$pid")
  stop "$pid"
  ((STOP_STATUS == 0)) || fatal "gridedge exited with $STOP_STATUS on SIGTERM; log:"$'\n'"$(tail -n 20 "$WORK/acq.log")"
  stop_sim
  [[ -z $responder_pid ]] || stop "$responder_pid"

  log "acquisition 3/3: the cycle against the bytes on the line"
  first_cycle "$db" "$WORK/acq.log" "$n"
  ((CYCLE_STORED == n)) || fatal "cycle 1 stored $CYCLE_STORED reading(s), not $n"
  local exchanges=$SIM_REQUESTS request_bytes=$((r1 - r0)) reply_bytes=$((w1 - w0 - (out1 - out0)))
  ((SIM_REPLIES == exchanges && exchanges >= n)) ||
    fatal "gridedge-sim served $exchanges request(s) and sent $SIM_REPLIES replies for $n meters"
  # A read request is 4 + 16 bytes, its reply 4 + 12 + 4 + the value: anything else
  # means the byte counts are not the line's.
  ((request_bytes >= exchanges * 16 && request_bytes <= exchanges * 40)) ||
    fatal "the simulator read $request_bytes bytes for $exchanges requests: not the line's bytes"
  ((reply_bytes >= exchanges * 20 && reply_bytes <= exchanges * 80)) ||
    fatal "the simulator wrote $reply_bytes bytes for $exchanges replies: not the line's bytes"
  local bytes=$((request_bytes + reply_bytes)) line_ms vs_line vs_gaps overhead
  line_ms=$(awk -v b="$bytes" -v baud="$baud" 'BEGIN { printf "%.0f", b * 11 * 1000 / baud }')
  vs_line=$(ratio "$CYCLE_MS" "$line_ms")
  vs_gaps=$(ratio "$CYCLE_MS" $((line_ms + (exchanges - 1) * gap)))
  overhead=$(awk -v c="$CYCLE_MS" -v l="$line_ms" -v g=$(((exchanges - 1) * gap)) -v e="$exchanges" \
    'BEGIN { printf "%.2f", (c - l - g) / e }')
  log "  cycle $CYCLE_MS ms, line-time limit $line_ms ms ($bytes bytes in $exchanges exchanges): $vs_line"

  section "acquisition: cycle 1 of $n meters on one gateway bus at $baud Bd (gridedge-sim paced), bus.gap $gap ms, $broker_text"
  figure acquisition_cycle_ms "$CYCLE_MS" ms "" \
    "cycle 1, steady state (one 00 01 FF 00 read per meter; clock check off, freeze not due): started -> finished"
  figure acquisition_line_time_ms "$line_ms" ms "" \
    "limit: every byte of the cycle ($request_bytes out + $reply_bytes back, wake-up FE included) x 11 bits / $baud"
  figure acquisition_exchanges "$exchanges" exchanges "" "request/reply pairs in the cycle (at the simulator)"
  verdict "$vs_line" "<=" "$TARGET_ACQ_VS_LINE" acquisition_vs_line_time
  figure acquisition_vs_line_time "$vs_line" ratio "<= $TARGET_ACQ_VS_LINE" "$VERDICT: cycle / line-time limit"
  figure acquisition_vs_line_time_plus_gaps "$vs_gaps" ratio "" \
    "cycle / (limit + $((exchanges - 1)) gaps of bus.gap $gap ms): the agent's own overhead"
  figure acquisition_overhead_ms "$overhead" ms/exchange "" "(cycle - limit - gaps) / exchanges"
  figure acquisition_agent_cpu_s "$cpu" s "" "gridedge CPU (user + system) from launch to the end of the cycle"
  figure acquisition_agent_rss "$rss" bytes "" "gridedge peak RSS (VmHWM), $(mib "$rss")"
}

# probe_field FILE KEY: KEY=VALUE from an ingest_probe.so report.
probe_field() { field "$1" "$2"; }

# median VALUES...: the middle value (the lower middle of an even count).
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# ingest_part: the agent's reading-cache ingest against plain C.
ingest_part() {
  local n=$BENCH_INGEST_METERS days=$BENCH_INGEST_DAYS db=$WORK/ingest.db pid cpu
  log "ingest 1/4: gridedge-sim with $n meters and $days days of daily freezes, no pacing"
  start_sim ingest --meters "$n" --history-days "$days" --no-area
  meter_list "$WORK/ingest.meters" "$n"
  # One bus: with several, Acquisition mixes up meters whose bus tickets are equal
  # (tickets are per bus, its in-flight table is keyed by ticket alone).
  cat >"$WORK/ingest.conf" <<CONF
# Written by .ci/bench.sh (ingest): cycle 1 reads every meter's real-time energy and
# every daily freeze it holds (backfill), as fast as the simulator answers.
device.id = BENCH-INGEST
store.path = $db
store.max_bytes = 4294967296
mqtt.port = $(free_port)
meter.file = $WORK/ingest.meters
bus.1 = tcp 127.0.0.1:$SIM_PORT 9600
bus.gap = 0
acquisition.freeze_delay = 0
acquisition.backfill_days = $days
acquisition.clock_check = 0
log.level = info
CONF
  log "ingest 2/4: gridedge reads and stores them (under ingest_probe.so)"
  LD_PRELOAD=$WORK/bin/ingest_probe.so INGEST_PROBE_OUT=$WORK/ingest.agent.probe \
    INGEST_PROBE_BATCHES=$WORK/ingest.batches "$BIN_DIR/gridedge" run --config "$WORK/ingest.conf" \
    >"$WORK/ingest.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  wait_for_cycle "$WORK/ingest.log" "$pid" "$BENCH_TIMEOUT"
  cpu=$(cpu_seconds_of "$pid")
  stop "$pid"
  ((STOP_STATUS == 0)) || fatal "gridedge exited with $STOP_STATUS on SIGTERM; log:"$'\n'"$(tail -n 20 "$WORK/ingest.log")"
  stop_sim
  first_cycle "$db" "$WORK/ingest.log" "$n"
  local probe=$WORK/ingest.agent.probe nrows txns wall_us cpu_us stored_rows records span_ms
  [[ -s $probe ]] || fatal "ingest_probe.so wrote no report for gridedge ($probe)"
  nrows=$(probe_field "$probe" rows)
  txns=$(probe_field "$probe" txns)
  wall_us=$(probe_field "$probe" wall_us)
  cpu_us=$(probe_field "$probe" cpu_us)
  (($(probe_field "$probe" rollbacks) == 0)) || fatal "gridedge rolled back reading transactions: $(cat "$probe")"
  (($(probe_field "$probe" outbox) == nrows)) || fatal "gridedge enqueued not one outbox record per reading: $(cat "$probe")"
  stored_rows=$(sqlite3 -readonly "$db" "SELECT count(*) FROM readings")
  records=$(sqlite3 -readonly "$db" "SELECT count(*) FROM outbox WHERE class = 'readings'")
  span_ms=$(sqlite3 -readonly "$db" "SELECT max(read_at) - min(read_at) FROM readings")
  ((nrows == CYCLE_STORED && nrows == stored_rows && nrows == records)) ||
    fatal "readings: probe $nrows, cycle $CYCLE_STORED, table $stored_rows, outbox $records: they must agree"
  ((nrows >= n * days && wall_us > 0 && span_ms > 0)) ||
    fatal "gridedge stored $nrows readings for $n meters x $days days (or no time was measured): $(cat "$probe")"
  local agent_rate=$((nrows * 1000000 / wall_us)) mean
  mean=$(awk -v r="$nrows" -v t="$txns" 'BEGIN { printf "%.1f", r / t }')
  log "  $nrows readings in $txns transactions: $agent_rate rows/s in them ($((wall_us / 1000)) ms, $((cpu_us / 1000)) ms CPU)"

  log "ingest 3/4: plain C, the same rows, statements, transaction sizes and start times ($BENCH_INGEST_C_RUNS run(s))"
  local i c_walls=() c_cpus=() c_syncs=() c_probe
  for ((i = 1; i <= BENCH_INGEST_C_RUNS; i++)); do
    c_probe=$WORK/ingest.c$i.probe
    LD_PRELOAD=$WORK/bin/ingest_probe.so INGEST_PROBE_OUT=$c_probe \
      "$WORK/bin/ingest_c" --from "$db" --db "$WORK/ingest-c.db" --batches "$WORK/ingest.batches" --pace \
      >"$WORK/ingest.c$i.out" 2>"$WORK/ingest.c$i.err" ||
      fatal "ingest_c failed:"$'\n'"$(cat "$WORK/ingest.c$i.err")"
    (($(probe_field "$c_probe" rows) == nrows && $(probe_field "$c_probe" txns) == txns)) ||
      fatal "ingest_c stored other rows or transactions than gridedge: $(cat "$c_probe")"
    c_walls+=("$(probe_field "$c_probe" wall_us)")
    c_cpus+=("$(probe_field "$c_probe" cpu_us)")
    c_syncs+=("$(probe_field "$c_probe" sync_in_us)")
    log "  run $i: $((nrows * 1000000 / c_walls[i - 1])) rows/s ($((c_walls[i - 1] / 1000)) ms, $((c_cpus[i - 1] / 1000)) ms CPU)"
  done
  local c_wall c_cpu c_rate c_sync
  c_wall=$(median "${c_walls[@]}")
  c_sync=$(median "${c_syncs[@]}")
  c_cpu=$(median "${c_cpus[@]}")
  c_rate=$((nrows * 1000000 / c_wall))

  log "ingest 4/4: the C program's rows and records against the agent's"
  local differ
  differ=$(sqlite3 -readonly "$db" "ATTACH '$WORK/ingest-c.db' AS c;
    SELECT (SELECT count(*) FROM (SELECT record FROM main.outbox WHERE class = 'readings' EXCEPT SELECT record FROM c.outbox_readings))
         + (SELECT count(*) FROM (SELECT record FROM c.outbox_readings EXCEPT SELECT record FROM main.outbox WHERE class = 'readings'))
         + (SELECT count(*) FROM (SELECT * FROM main.readings EXCEPT SELECT * FROM c.readings))
         + (SELECT count(*) FROM (SELECT * FROM c.readings EXCEPT SELECT * FROM main.readings))")
  [[ $differ == 0 ]] || fatal "ingest_c's readings or outbox records differ from gridedge's ($differ rows)"

  local vs_c cpu_vs_c e2e
  vs_c=$(ratio "$agent_rate" "$c_rate")
  cpu_vs_c=$(ratio "$c_cpu" "$cpu_us")
  e2e=$((nrows * 1000 / span_ms))
  section "ingest: $nrows readings ($n meters: 1 real-time + up to $days freezes each) in $txns transactions, WAL, synchronous=NORMAL"
  figure ingest_agent_rows_per_s "$agent_rate" rows/s "" \
    "gridedge Readings.store (reading + outbox record): rows / wall time BEGIN..COMMIT, ingest_probe.so"
  figure ingest_c_rows_per_s "$c_rate" rows/s "" \
    "plain C: same rows, statements, records, transaction sizes and start times; measured alike (median of $BENCH_INGEST_C_RUNS)"
  verdict "$vs_c" ">=" "$TARGET_INGEST_VS_C" ingest_vs_c
  figure ingest_vs_c "$vs_c" ratio ">= $TARGET_INGEST_VS_C" "$VERDICT: gridedge rate / plain C rate"
  figure ingest_cpu_vs_c "$cpu_vs_c" ratio "" "the same with CPU time in those transactions (load-independent)"
  figure ingest_agent_fsync_ms $(($(probe_field "$probe" sync_in_us) / 1000)) ms "" \
    "gridedge: in those transactions, $(probe_field "$probe" syncs_in) fsync/fdatasync (WAL checkpoints)"
  figure ingest_c_fsync_ms $((c_sync / 1000)) ms "" \
    "plain C: the same, $(probe_field "$WORK/ingest.c1.probe" syncs_in) calls (median; disk latency, not code)"
  figure ingest_rows_per_transaction "$mean" rows "" "gridedge's flush size (Acquisition: at 100 pending, after 1 s, at cycle end)"
  figure ingest_end_to_end_rows_per_s "$e2e" rows/s "" \
    "gridedge reading one unpaced TCP bus: rows / read_at span (bus-bound: 2 exchanges a freeze reading)"
  figure ingest_agent_cpu_s "$cpu" s "" "gridedge CPU (user + system) from launch to the end of the cycle"
}

# --- balance (issue 6) ---------------------------------------------------------

# Local midnight (UTC+8, the default device.utc_offset) of the first day of data.
BALANCE_T0_MS=1767196800000 # 2026-01-01 00:00 +08:00
BALANCE_AREA=TA-BENCH
BALANCE_AREA_METER=000000999999

check_balance_settings() {
  [[ $BENCH_BALANCE_METERS =~ ^[0-9]+$ ]] && ((BENCH_BALANCE_METERS >= 2 && BENCH_BALANCE_METERS <= 100000)) ||
    fatal "BENCH_BALANCE_METERS ($BENCH_BALANCE_METERS) must be 2 to 100000"
  [[ $BENCH_BALANCE_DAYS =~ ^[0-9]+$ ]] && ((BENCH_BALANCE_DAYS >= 9 && BENCH_BALANCE_DAYS <= 62)) ||
    fatal "BENCH_BALANCE_DAYS ($BENCH_BALANCE_DAYS) must be 9 to 62 (7 days of history, the day, the next freeze)"
  [[ $BENCH_BALANCE_RUNS =~ ^[0-9]+$ ]] && ((BENCH_BALANCE_RUNS >= 1)) ||
    fatal "BENCH_BALANCE_RUNS ($BENCH_BALANCE_RUNS) must be at least 1"
}

# balance_database DB CONFIG: the agent makes DB (its migrations), then sqlite3 fills
# it: the archive (customers 1..N-1, CT 1; the area meter, CT 40), a 15-minute
# real-time reading per meter and slot, a daily freeze per meter and local midnight.
# Customer n uses 10 x (4 + 37n mod 13) Wh a slot; on the last day (the day
# balanced) customer 7 registers half (a bypass) and customer 11 nothing (stopped);
# the area meter registers the customers' true use + 4 %, / 40.
balance_database() {
  local db=$1 conf=$2 pid n=$BENCH_BALANCE_METERS days=$BENCH_BALANCE_DAYS
  log "balance 1/4: gridedge run makes the database (its schema), then stops"
  "$BIN_DIR/gridedge" run --config "$conf" >"$WORK/balance.run.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  wait_for_line "$WORK/balance.run.log" "epoch 1" 30 "$pid" "gridedge run"
  stop "$pid"
  ((STOP_STATUS == 0)) || fatal "gridedge exited with $STOP_STATUS on SIGTERM; log:"$'\n'"$(tail -n 20 "$WORK/balance.run.log")"
  log "balance 2/4: sqlite3 writes $n meters x $days days x 96 readings and $((days + 1)) freezes each"
  local started=$SECONDS
  sqlite3 "$db" >/dev/null <<SQL || fatal "sqlite3 could not fill $db"
.bail on
PRAGMA synchronous = OFF;
BEGIN;
INSERT INTO archive_meters (address, customer, area, phase, ct_ratio, category, grade, keep_power,
  outage_sensitive, bus, baud, area_meter, updated_at)
SELECT printf('%012d', value), 'C-' || value, '$BALANCE_AREA', 'A', 1, 'residential', 'A', 0, 0, '1', 2400, 0, 0
FROM generate_series(1, $n - 1);
INSERT INTO archive_meters VALUES ('$BALANCE_AREA_METER', 'AREA', '$BALANCE_AREA', 'ABC', 40, 'area', 'A', 0, 0,
  '1', 2400, 1, 0);
CREATE TEMP TABLE m (n INTEGER, address TEXT, base INTEGER, c INTEGER, c_last INTEGER);
INSERT INTO m SELECT value, printf('%012d', value), 1000000 + value * 1000, 10 * (4 + value * 37 % 13),
  CASE value WHEN 7 THEN 10 * ((4 + 7 * 37 % 13) / 2) WHEN 11 THEN 0 ELSE 10 * (4 + value * 37 % 13) END
FROM generate_series(1, $n - 1);
INSERT INTO m SELECT 0, '$BALANCE_AREA_METER', 500000, sum(c) * 104 / 100 / 40, sum(c) * 104 / 100 / 40 FROM m;
-- reg(meter, slots elapsed s) = base + c x min(s, K) + c_last x max(s - K, 0), K = the last day's first slot.
INSERT INTO readings (ts, meter, di, value, tariffs, quality, read_at)
SELECT ts, address, '0001FF00', v,
  '[' || (v / 10) || ',' || (v * 3 / 10) || ',' || (v * 3 / 10) || ',' || (v - v / 10 - 2 * (v * 3 / 10)) || ']',
  'measured', ts + 20000 + n * 50
FROM (SELECT $BALANCE_T0_MS + s.value * 900000 AS ts, m.address, m.n,
  m.base + m.c * min(s.value, 96 * ($days - 1)) + m.c_last * max(s.value - 96 * ($days - 1), 0) AS v
  FROM generate_series(0, 96 * $days - 1) AS s CROSS JOIN m);
INSERT INTO readings (ts, meter, di, value, tariffs, quality, read_at)
SELECT $BALANCE_T0_MS + d.value * 86400000 + 7000, m.address, '05060101',
  m.base + m.c * min(96 * d.value, 96 * ($days - 1)) + m.c_last * max(96 * d.value - 96 * ($days - 1), 0),
  NULL, 'measured', $BALANCE_T0_MS + d.value * 86400000 + 300000 + m.n * 50
FROM generate_series(0, $days) AS d CROSS JOIN m;
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
SQL
  BALANCE_ROWS=$(sqlite3 -readonly "$db" "SELECT count(*) FROM readings")
  ((BALANCE_ROWS == n * (96 * days + days + 1))) ||
    fatal "$db holds $BALANCE_ROWS readings, expected $((n * (96 * days + days + 1)))"
  log "  $BALANCE_ROWS readings in $((SECONDS - started)) s, database $(mib "$(stat -c %s "$db")")"
}

# balance_sql LO_MS HI_MS: the plain SQL aggregate over the freeze rows the agent
# reads: per meter and local day its first freeze, consecutive days' difference x
# CT ratio, then per day supplied (area meter), sold (customers) and meters with data.
balance_sql() {
  cat <<SQL
WITH f AS MATERIALIZED (
  SELECT meter, (ts / 1000 + 28800) / 86400 AS d, value, min(ts)
  FROM readings
  WHERE ts >= $1 AND ts < $2 AND di = '05060101'
    AND meter IN (SELECT address FROM archive_meters WHERE area = '$BALANCE_AREA')
  GROUP BY meter, d),
e AS (
  SELECT a.d, (b.value - a.value) * m.ct_ratio AS wh, m.area_meter
  FROM f a JOIN f b ON b.meter = a.meter AND b.d = a.d + 1 JOIN archive_meters m ON m.address = a.meter)
SELECT date(d * 86400, 'unixepoch'), sum(CASE WHEN area_meter = 1 THEN wh END),
  sum(CASE WHEN area_meter = 0 THEN wh ELSE 0 END), count(*)
FROM e GROUP BY d ORDER BY d;
SQL
}

# balance_part: gridedge balance against the plain SQL aggregate over the same rows.
balance_part() {
  local db=$WORK/balance.db conf=$WORK/balance.conf days=$BENCH_BALANCE_DAYS n=$BENCH_BALANCE_METERS
  cat >"$conf" <<CONF
# Written by .ci/bench.sh (balance): no meters, no broker (mqtt.port is closed).
device.id = BENCH-BALANCE
store.path = $db
store.max_bytes = 4294967296
mqtt.port = $(free_port)
log.level = info
CONF
  balance_database "$db" "$conf"
  local history day_index=$((days - 1)) day lo hi sql
  history=$(sed -n 's/^# balance\.history_days = \([0-9]*\)$/\1/p' "$REPO_ROOT/firmware-config/concentrator.conf")
  [[ $history =~ ^[0-9]+$ ]] || fatal "no '# balance.history_days = N' in firmware-config/concentrator.conf"
  day=$(date -u -d "@$((BALANCE_T0_MS / 1000 + 28800 + day_index * 86400))" +%F)
  lo=$((BALANCE_T0_MS + (day_index - history) * 86400000))
  hi=$((BALANCE_T0_MS + (day_index + 2) * 86400000))
  sql=$(balance_sql "$lo" "$hi")
  local window_rows freeze_rows
  window_rows=$(sqlite3 -readonly "$db" "SELECT count(*) FROM readings WHERE ts >= $lo AND ts < $hi")
  freeze_rows=$(sqlite3 -readonly "$db" "SELECT count(*) FROM readings WHERE ts >= $lo AND ts < $hi AND di = '05060101'")
  log "  day $day: both read the $freeze_rows freeze rows of ts $lo..$hi (where $window_rows rows are)"
  log "  query plan, SQL:   $(sqlite3 -readonly "$db" "EXPLAIN QUERY PLAN $sql" | grep -m1 'readings' | sed 's/^[|` -]*//')"
  log "  query plan, agent: $(sqlite3 -readonly "$db" "EXPLAIN QUERY PLAN SELECT meter, ts, value FROM readings
    WHERE ts >= $lo AND ts < $hi AND di = '05060101'
      AND meter IN (SELECT address FROM archive_meters WHERE area = '$BALANCE_AREA') ORDER BY ts" |
    grep -m1 'readings' | sed 's/^[|` -]*//')"

  log "balance 3/4: $BENCH_BALANCE_RUNS alternating runs of each after a warm-up (median counts)"
  local agent=("$BIN_DIR/gridedge" balance --config "$conf" --area "$BALANCE_AREA" --day "$day" --json)
  local sqlcmd=(sqlite3 -readonly "$db" "$sql")
  # The floor: only reading those rows (count and sum), no per-day energies.
  local readcmd=(sqlite3 -readonly "$db" "SELECT count(*), sum(value) FROM readings
    WHERE ts >= $lo AND ts < $hi AND di = '05060101'
      AND meter IN (SELECT address FROM archive_meters WHERE area = '$BALANCE_AREA')")
  local i line agent_walls=() sql_walls=() read_walls=() agent_cpus=() sql_cpus=() agent_rss=0 sql_rss=0 v
  "$WORK/bin/run_measured" "$WORK/balance.agent.json" -- "${agent[@]}" >/dev/null ||
    fatal "gridedge balance failed: $(cat "$WORK/balance.agent.json")"
  "$WORK/bin/run_measured" "$WORK/balance.sql.out" -- "${sqlcmd[@]}" >/dev/null || fatal "sqlite3 failed"
  for ((i = 1; i <= BENCH_BALANCE_RUNS; i++)); do
    line=$("$WORK/bin/run_measured" "$WORK/balance.agent.json" -- "${agent[@]}") ||
      fatal "gridedge balance failed ($line): $(cat "$WORK/balance.agent.json")"
    agent_walls+=("$(grep -o 'wall_us=[0-9]*' <<<"$line" | cut -d= -f2)")
    agent_cpus+=("$(awk '{ split($2, u, "="); split($3, s, "="); print u[2] + s[2] }' <<<"$line")")
    v=$(grep -o 'maxrss_bytes=[0-9]*' <<<"$line" | cut -d= -f2)
    ((v > agent_rss)) && agent_rss=$v
    line=$("$WORK/bin/run_measured" "$WORK/balance.sql.out" -- "${sqlcmd[@]}") || fatal "sqlite3 failed ($line)"
    sql_walls+=("$(grep -o 'wall_us=[0-9]*' <<<"$line" | cut -d= -f2)")
    sql_cpus+=("$(awk '{ split($2, u, "="); split($3, s, "="); print u[2] + s[2] }' <<<"$line")")
    v=$(grep -o 'maxrss_bytes=[0-9]*' <<<"$line" | cut -d= -f2)
    ((v > sql_rss)) && sql_rss=$v
    line=$("$WORK/bin/run_measured" "$WORK/balance.read.out" -- "${readcmd[@]}") || fatal "sqlite3 failed ($line)"
    read_walls+=("$(grep -o 'wall_us=[0-9]*' <<<"$line" | cut -d= -f2)")
    log "  run $i: gridedge $((agent_walls[i - 1] / 1000)) ms, SQL $((sql_walls[i - 1] / 1000)) ms, reading alone $((read_walls[i - 1] / 1000)) ms"
  done

  log "balance 4/4: the two results must agree"
  local supplied sold with_data sql_row suspects top
  read -r supplied sold with_data suspects top < <("$PYTHON" -c '
import json, sys
b = json.load(open(sys.argv[1]))
print(b["supplied_wh"], b["sold_wh"], b["meters_with_data"], b["suspects_total"],
      b["suspects"][0]["meter"] if b["suspects"] else "-")' "$WORK/balance.agent.json") ||
    fatal "gridedge balance printed no balance: $(head -c 500 "$WORK/balance.agent.json")"
  sql_row=$(grep "^$day|" "$WORK/balance.sql.out") || fatal "the SQL aggregate has no row for $day"
  [[ $sql_row == "$day|$supplied|$sold|$with_data" ]] ||
    fatal "gridedge balance (supplied $supplied, sold $sold, $with_data meters) differs from SQL ($sql_row)"
  ((with_data == n)) || fatal "gridedge balance found $with_data meters with data, expected $n"
  log "  both: supplied $supplied Wh, sold $sold Wh, $with_data meters; gridedge: $suspects suspect(s), top $top"

  local agent_wall sql_wall vs_sql
  agent_wall=$(median "${agent_walls[@]}")
  sql_wall=$(median "${sql_walls[@]}")
  vs_sql=$(ratio "$agent_wall" "$sql_wall")
  section "balance: area of $n meters, $days days of 15-minute readings ($BALANCE_ROWS rows), day $day, history $history days"
  figure balance_agent_ms "$((agent_wall / 1000))" ms "" \
    "gridedge balance --json (Embedded build): process launch to exit, median of $BENCH_BALANCE_RUNS"
  figure balance_sql_ms "$((sql_wall / 1000))" ms "" \
    "sqlite3 CLI, plain SQL aggregate over the same $freeze_rows freeze rows, same index"
  figure balance_sql_read_ms "$(($(median "${read_walls[@]}") / 1000))" ms "" \
    "sqlite3 CLI reading the same rows only (count, sum): the floor under both"
  verdict "$vs_sql" "<=" "$TARGET_BALANCE_VS_SQL" balance_vs_sql
  figure balance_vs_sql "$vs_sql" ratio "<= $TARGET_BALANCE_VS_SQL" "$VERDICT: gridedge time / plain SQL time"
  figure balance_agent_cpu_ms "$(($(median "${agent_cpus[@]}") / 1000))" ms "" "gridedge CPU (user + system), median"
  figure balance_sql_cpu_ms "$(($(median "${sql_cpus[@]}") / 1000))" ms "" "sqlite3 CPU (user + system), median"
  figure balance_rss "$agent_rss" bytes "" "gridedge balance peak RSS (ru_maxrss = VmHWM), $(mib "$agent_rss")"
  figure balance_sql_rss "$sql_rss" bytes "" "sqlite3 peak RSS, $(mib "$sql_rss")"
}

# --- figures -------------------------------------------------------------------

rows=()
lines=()
missed=()
# section TITLE: a heading row in the table.
section() { rows+=("" "[$1]"); }

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

# drain_part: the sync drain benchmark (issue 4).
drain_part() {
  [[ -n ${PORT:-} ]] || start_broker
  make_backlogs

  log "step 5/7: plain C baseline (libmosquitto + libsqlite3, delivered on PUBACK)"
  run_baseline c "$WORK/bin/drain_c"
  local c_rate=$RATE c_rss=$RSS c_cpu=$CPU c_s=$SECONDS_TAKEN c_written=$WRITTEN
  log "  $c_rate readings/s ($c_s s, $c_cpu CPU s, peak RSS $(mib "$c_rss"))"

  if [[ $BENCH_DRAIN_QUICK == 1 ]]; then
    RATE=0 RSS=0 CPU=0 SECONDS_TAKEN=0 WRITTEN=0
  else
    log "step 5/7: Python paho-mqtt baseline (delivered on PUBACK)"
    run_baseline paho "$PYTHON" "$BENCH_SRC/drain_paho.py"
  fi
  local paho_rate=$RATE paho_rss=$RSS paho_cpu=$CPU paho_s=$SECONDS_TAKEN paho_written=$WRITTEN
  log "  $paho_rate readings/s ($paho_s s, $paho_cpu CPU s, peak RSS $(mib "$paho_rss"))"

  log "step 6/7: gridedge -> ack responder (released on application ack)"
  run_agent agent responder
  local agent_rate=$RATE agent_rss=$RSS agent_cpu=$CPU agent_s=$SECONDS_TAKEN agent_startup=$STARTUP_MS
  local agent_written=$WRITTEN
  log "  $agent_rate readings/s ($agent_s s, $agent_cpu CPU s, peak RSS $(mib "$agent_rss"), start-up $agent_startup ms)"

  log "step 6/7: gridedge -> gridedge-hq serve (stored, deduplicated, acked)"
  HQ_RSS=0
  if [[ $BENCH_DRAIN_QUICK == 1 ]]; then
    RATE=0 RSS=0 CPU=0 SECONDS_TAKEN=0
  else
    run_agent full hq
  fi
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
  section "sync drain: $what, QoS 1, MQTT v5, mosquitto on loopback"
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

}

main() {
  local load cores started part
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
  log "working in $WORK; $cores core(s), load average $load; parts: $BENCH_PARTS"
  if awk -v l="$load" -v c="$cores" 'BEGIN { exit !(l > c / 2) }'; then
    warn "the machine is busy (load $load on $cores cores): wall-clock rates will be low and noisy; compare CPU seconds"
  fi
  build_helpers
  for part in $BENCH_PARTS; do
    "${part}_part"
  done

  echo
  echo "benchmarks ($BENCH_PARTS): $cores core(s), load average at start $load"
  printf '%-34s %14s  %-11s %-8s %s\n' figure value unit target "what / result"
  printf '%-34s %14s  %-11s %-8s %s\n' ------ ----- ---- ------ -------------
  printf '%s\n' "${rows[@]}"
  echo
  printf '%s\n' "${lines[@]}"
  echo

  log "benchmarks took $((SECONDS - started)) s"
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
