#!/usr/bin/env bash
# cross/test.sh [aarch64|armv7|all|x86_64] (default all = aarch64 and armv7):
# runs the cross-built `gridedge` under qemu-user against a real mosquitto.
#
# binfmt_misc is not available, so qemu is called explicitly:
#   qemu-aarch64-static -L <sysroot> .cross/bin/aarch64/gridedge ...
#   qemu-arm-static -cpu cortex-a7 -L <sysroot> .cross/bin/armv7/gridedge ...
# (x86_64, the host Embedded build, runs natively.) qemu-user shares the host's
# network, so the emulated agent reaches the broker on 127.0.0.1.
#
# Per architecture:
#   1. `gridedge --version` and `gridedge --help` exit 0;
#   2. a host mosquitto_sub watches gridedge/v1/<dev>/state;
#   3. `gridedge run --config F` (in the background) must publish a birth with
#      "state":"online"; then SIGTERM: it must exit 0 and the subscriber must
#      see "state":"offline";
#   4. `gridedge status --config F` must exit 0 and print the device id and the
#      store id the birth carried: the ARM binary wrote its database and read it back.
# A PASS/FAIL line per architecture, a summary, and a non-zero exit on any
# failure, with the agent's stderr, the subscriber's output and the broker log.
#
# Environment:
#   CROSS_OUT, SWIFT_ROOT  see lib.sh
#   MOSQUITTO              the broker binary          (default: mosquitto on PATH or /usr/sbin)
#   STATE_TIMEOUT          seconds to wait for the birth (default 30)
#   STOP_TIMEOUT           seconds to wait for exit and the offline message (default 15)
#   KEEP_TMP=1             keep the temporary folder (it is kept anyway on failure)
set -euo pipefail
CROSS_SCRIPT="test"
# shellcheck source=cross/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STATE_TIMEOUT="${STATE_TIMEOUT:-30}"
STOP_TIMEOUT="${STOP_TIMEOUT:-15}"
KEEP_TMP="${KEEP_TMP:-0}"

WORK=""
BROKER_PID=""
BROKER_PORT=""
BROKER_LOG=""
PIDS=() # background processes this script started, stopped on exit

cleanup() {
  local pid
  for pid in "${PIDS[@]+"${PIDS[@]}"}" $BROKER_PID; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]+"${PIDS[@]}"}" $BROKER_PID; do
    wait "$pid" 2>/dev/null || true
  done
  if [[ -n "$WORK" && -d "$WORK" ]]; then
    if [[ "$KEEP_TMP" == 1 || "${TEST_FAILED:-0}" == 1 ]]; then
      log "kept $WORK"
    else
      rm -rf "$WORK"
    fi
  fi
}

# wait_until SECONDS COMMAND...: polls COMMAND every 0.2 s; fails on timeout.
wait_until() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# free_port: a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_broker: starts mosquitto on a free loopback port (a few tries).
start_broker() {
  local mosquitto="${MOSQUITTO:-}" try conf
  if [[ -z "$mosquitto" ]]; then
    mosquitto="$(command -v mosquitto || true)"
    [[ -n "$mosquitto" ]] || { [[ -x /usr/sbin/mosquitto ]] && mosquitto=/usr/sbin/mosquitto; }
  fi
  [[ -n "$mosquitto" && -x "$mosquitto" ]] || fatal "mosquitto not found: install the 'mosquitto' package (or set MOSQUITTO)"
  for try in 1 2 3; do
    BROKER_PORT="$(free_port)"
    conf="$WORK/mosquitto.conf"
    BROKER_LOG="$WORK/mosquitto.log"
    cat >"$conf" <<EOF
listener $BROKER_PORT 127.0.0.1
allow_anonymous true
persistence false
log_dest stderr
log_type error
log_type warning
log_type notice
log_type information
connection_messages true
EOF
    # As root, mosquitto would switch to the 'mosquitto' user: stay who we are.
    [[ "$(id -u)" != 0 ]] || echo "user root" >>"$conf"
    "$mosquitto" -c "$conf" 2>"$BROKER_LOG" &
    BROKER_PID=$!
    if wait_until 5 port_open "$BROKER_PORT"; then
      log "mosquitto (pid $BROKER_PID) listening on 127.0.0.1:$BROKER_PORT"
      return 0
    fi
    kill "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
    BROKER_PID=""
    warn "mosquitto did not start on port $BROKER_PORT (try $try):"
    sed 's/^/    /' "$BROKER_LOG" >&2
  done
  fatal "could not start mosquitto (see above)"
}

# The current architecture's test state, for failure reports.
FAIL_REASON=""
AGENT_LOG=""
SUB_OUT=""
STEP_OUT=""

fail() {
  FAIL_REASON="$*"
  return 1
}

# show FILE TITLE: prints a file for a failure report.
show() {
  [[ -s "$1" ]] || {
    echo "---- $2: (empty)" >&2
    return 0
  }
  echo "---- $2 ($1):" >&2
  tail -n 60 "$1" | sed 's/^/    /' >&2
}

# step NAME ARGS...: runs gridedge ARGS with a time limit; output in STEP_OUT.
step() {
  local name="$1" rc=0
  shift
  STEP_OUT="$ARCH_WORK/$name.out"
  timeout 60 "${QEMU[@]}" "$BIN" "$@" >"$STEP_OUT" 2>&1 || rc=$?
  if ((rc != 0)); then
    show "$STEP_OUT" "output of gridedge $*"
    fail "'gridedge $*' exited $rc"
    return 1
  fi
}

has_state() { grep -q "\"state\":\"$1\"" "$SUB_OUT" 2>/dev/null; }
running() { kill -0 "$1" 2>/dev/null; }
stopped() { ! kill -0 "$1" 2>/dev/null; }
online_or_exited() { has_state online || stopped "$1"; }

# test_arch ARCH: the checks described at the top; returns non-zero on failure
# with FAIL_REASON set.
test_arch() {
  cross_arch_setup "$1"
  BIN="$(bin_dir "$ARCH")/gridedge"
  ARCH_WORK="$WORK/$ARCH"
  AGENT_LOG="$ARCH_WORK/agent.log"
  SUB_OUT="$ARCH_WORK/state.txt"
  mkdir -p "$ARCH_WORK"
  local dev="cross-${ARCH//_/-}" conf="$ARCH_WORK/gridedge.conf" db="$ARCH_WORK/gridedge.db"

  log "$ARCH: gridedge --version / --help${QEMU[0]:+ (under ${QEMU[*]})}"
  step version --version || return 1
  log "$ARCH:   $(head -n1 "$STEP_OUT")"
  step help --help || return 1

  cat >"$conf" <<EOF
# cross/test.sh: $ARCH${QEMU[0]:+ under ${QEMU[0]}}
device.id = $dev
device.profile = concentrator
store.path = $db
mqtt.host = 127.0.0.1
mqtt.port = $BROKER_PORT
log.level = info
EOF

  local topic="gridedge/v1/$dev/state"
  log "$ARCH: subscribing to $topic"
  mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -i "cross-test-sub-$ARCH" -q 1 -t "$topic" -v \
    >"$SUB_OUT" 2>"$ARCH_WORK/sub.err" &
  local sub=$!
  PIDS+=("$sub")
  wait_until 5 grep -q "as cross-test-sub-$ARCH" "$BROKER_LOG" ||
    fail "mosquitto_sub did not connect to the broker" || return 1

  log "$ARCH: gridedge run --config $conf"
  "${QEMU[@]}" "$BIN" run --config "$conf" >"$AGENT_LOG" 2>&1 &
  local agent=$!
  PIDS+=("$agent")
  if ! wait_until "$STATE_TIMEOUT" online_or_exited "$agent" || ! has_state online; then
    if running "$agent"; then
      fail "no \"state\":\"online\" on $topic within $STATE_TIMEOUT s"
    else
      local rc=0
      wait "$agent" || rc=$?
      fail "gridedge run exited ($rc) before publishing \"state\":\"online\""
    fi
    return 1
  fi
  local birth store
  birth="$(grep '"state":"online"' "$SUB_OUT" | tail -n1)"
  log "$ARCH:   birth: $birth"
  store="$(sed -n 's/.*"store":"\([^"]*\)".*/\1/p' <<<"$birth")"

  log "$ARCH: SIGTERM to the agent (pid $agent)"
  kill -TERM "$agent"
  if ! wait_until "$STOP_TIMEOUT" stopped "$agent"; then
    kill -KILL "$agent" 2>/dev/null || true
    fail "gridedge run did not exit within $STOP_TIMEOUT s of SIGTERM"
    return 1
  fi
  local rc=0
  wait "$agent" || rc=$?
  ((rc == 0)) || fail "gridedge run exited $rc after SIGTERM (expected 0)" || return 1
  wait_until "$STOP_TIMEOUT" has_state offline ||
    fail "no \"state\":\"offline\" on $topic within $STOP_TIMEOUT s of the agent's exit" || return 1
  log "$ARCH:   last will/goodbye: $(grep '"state":"offline"' "$SUB_OUT" | tail -n1)"
  kill "$sub" 2>/dev/null || true
  wait "$sub" 2>/dev/null || true

  [[ -s "$db" ]] || fail "the database $db does not exist after the run" || return 1
  log "$ARCH: gridedge status --config $conf"
  step status status --config "$conf" || return 1
  sed 's/^/    /' "$STEP_OUT" >&2
  grep -qF -- "$dev" "$STEP_OUT" ||
    fail "gridedge status does not show the device id '$dev'" || return 1
  if [[ -n "$store" ]]; then
    grep -qF -- "$store" "$STEP_OUT" ||
      fail "gridedge status does not show the store id '$store' of the birth message" || return 1
  else
    grep -qi store "$STEP_OUT" ||
      fail "gridedge status shows no store id (and the birth carried none)" || return 1
  fi
  return 0
}

main() {
  [[ $# -le 1 ]] || fatal "usage: cross/test.sh [aarch64|armv7|all|x86_64]"
  local word="${1:-all}" arches a
  [[ "$word" == all ]] && word=arm
  arches="$(expand_arches "$word")"

  require_cmd mosquitto_sub "install the 'mosquitto-clients' package"
  require_cmd python3 "install python3"
  require_cmd timeout "install coreutils"
  for a in $arches; do
    cross_arch_setup "$a"
    if ((${#QEMU[@]})); then
      require_cmd "${QEMU[0]}" "install the 'qemu-user-static' package (binfmt_misc is not used; qemu is called explicitly)"
      [[ -f "$SYSROOT.stamp" ]] || fatal "$ARCH: sysroot missing ($SYSROOT): run cross/build.sh $ARCH first"
    fi
    [[ -x "$(bin_dir "$ARCH")/gridedge" ]] ||
      fatal "$ARCH: $(bin_dir "$ARCH")/gridedge not built: run cross/build.sh $ARCH first"
  done

  # A trapping binary must not leave qemu core files in the working tree.
  ulimit -c 0
  WORK="$(mktemp -d "${TMPDIR:-/tmp}/gridedge-cross-test.XXXXXX")"
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  start_broker

  local passed=() failed=() t0
  for a in $arches; do
    t0="$(now_s)"
    FAIL_REASON=""
    if test_arch "$a"; then
      log "PASS $ARCH ($(elapsed "$t0") s)"
      passed+=("$ARCH")
    else
      TEST_FAILED=1
      log "FAIL $ARCH: ${FAIL_REASON:-unexpected error}"
      show "$AGENT_LOG" "$ARCH agent stderr/stdout"
      show "$SUB_OUT" "$ARCH state topic as received"
      show "$BROKER_LOG" "broker log"
      failed+=("$ARCH")
    fi
  done
  log "summary: ${#passed[@]} passed (${passed[*]:-none}), ${#failed[@]} failed (${failed[*]:-none})"
  echo "${#passed[@]} passed, ${#failed[@]} failed"
  ((${#failed[@]} == 0))
}

main "$@"
