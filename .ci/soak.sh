#!/usr/bin/env bash
# .ci/soak.sh: the long forms of the fault tests (issue 8), one step after another,
# then a table of the figures they printed.
#
# Each step is a `swift test --filter` run (or the fuzzers) with environment variables
# that turn a test's short form (what `make test` runs) into its long form. A test
# prints its figures as lines `soak NAME VALUE UNIT` (TestSupport.soakFigure); this
# script collects them, as .ci/bench.sh collects `bench` lines, and ends with one table:
# every step's result and time, then every figure. The exit status is non-zero when a
# step failed (after the table), so a soak run can gate a release.
#
# Steps are lines `NAME FILTER [VARIABLE=VALUE ...]` (FILTER `fuzz` runs .ci/fuzz.sh).
# Add a test to the soak by adding a line to SOAK_STEPS (or pass the whole list in the
# environment). A filter that matches no test fails its step: a renamed test must not
# silently drop out of the soak.
#
# Environment:
#   SOAK_STEPS      the step list (default below)
#   SOAK_ONLY       run only these step names (space-separated), e.g. "network clock"
#   SOAK_WORK       logs and fuzz artifacts          (default a new folder under /tmp)
#   SOAK_JOBS       build jobs                       (default 2)
#   SOAK_SKIP_BUILD 1: use the existing build        (default 0)
#   SOAK_KILLS_FILTER  the kill -9 with top-ups test (default CrashTests/killNineAtRandomPoints)
#   SOAK_MINUTES    the network and clock soak length in minutes (default 6)
#   SOAK_FUZZ_SECONDS  seconds per fuzz target       (default 600)
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SWIFT=${SWIFT:-swift}
SOAK_JOBS=${SOAK_JOBS:-2}
SOAK_SKIP_BUILD=${SOAK_SKIP_BUILD:-0}
SOAK_ONLY=${SOAK_ONLY:-}
SOAK_MINUTES=${SOAK_MINUTES:-6}
SOAK_FUZZ_SECONDS=${SOAK_FUZZ_SECONDS:-600}
SOAK_KILLS_FILTER=${SOAK_KILLS_FILTER:-CrashTests/killNineAtRandomPoints}
DEFAULT_STEPS="
powerloss   PowerLossTests                                           GRIDEDGE_POWERLOSS_ROUNDS=40
diskfull    DiskFullTests
kill9-sync  SyncEndToEndTests/killNineAtFiftyRandomPoints
broker      SyncEndToEndTests/brokerKilledAndRestartedInALoop        GRIDEDGE_BROKER_FLAPS=100
hq-crash    SyncEndToEndTests/receiverKilledBetweenItsCommitAndItsAck
kills       $SOAK_KILLS_FILTER                                        GRIDEDGE_KILLS=200
relay-kills CrashTests/killNineDuringRelayControl                    GRIDEDGE_RELAY_KILLS=100
diskfault   DiskFaultTests
freetext    FreeTextAbuseTests
security    BrokerSecurityTests
network     NetworkFaultTests                                        GRIDEDGE_NETWORK_SECONDS=$((SOAK_MINUTES * 60))
network-far NetworkFaultTests                                        GRIDEDGE_NETWORK_SECONDS=$((SOAK_MINUTES * 60)) GRIDEDGE_NETWORK_FAR_CUT=1
clock       ClockJumpTests                                           GRIDEDGE_CLOCK_JUMPS=$((SOAK_MINUTES * 4))
fuzz        fuzz                                                     FUZZ_SECONDS=$SOAK_FUZZ_SECONDS
"
SOAK_STEPS=${SOAK_STEPS:-$DEFAULT_STEPS}

log() { printf '\033[1m[soak]\033[0m %s\n' "$*" >&2; }
warn() { printf '[soak] warning: %s\n' "$*" >&2; }
fatal() {
  printf '[soak] error: %s\n' "$*" >&2
  exit 1
}

wanted() {
  [[ -z $SOAK_ONLY ]] && return 0
  local name
  for name in $SOAK_ONLY; do [[ $name == "$1" ]] && return 0; done
  return 1
}

# run_step NAME FILTER [VAR=VALUE...]: runs one step, its output to $WORK/NAME.log;
# appends to results and figures.
results=()
figures=()
failed=()
run_step() {
  local name=$1 filter=$2 started status tests
  shift 2
  local logfile="$WORK/$name.log"
  log "step $name: $filter ${*:-} (log: $logfile)"
  started=$SECONDS
  set +e
  if [[ $filter == fuzz ]]; then
    env "$@" FUZZ_OUT="$WORK/fuzz" bash "$REPO_ROOT/.ci/fuzz.sh" >"$logfile" 2>&1
    status=$?
    local target units
    for target in dlt645:fuzz contract:contract-fuzz config:config-fuzz; do
      units=$(grep -h '^stat::number_of_executed_units:' "$WORK/fuzz/${target#*:}.log" 2>/dev/null |
        awk '{print $2}' | tail -n 1)
      echo "soak fuzz_${target%%:*}_executions ${units:-0} inputs" >>"$logfile"
    done
  else
    env "$@" "$SWIFT" test --skip-build --filter "$filter" >"$logfile" 2>&1
    status=$?
  fi
  set -e
  local seconds=$((SECONDS - started))
  if [[ $filter != fuzz ]]; then
    # Swift Testing closes with "Test run with N tests ... passed/failed"; no test run
    # means the filter matched nothing (a renamed or missing suite): a failure.
    tests=$(grep -Eo 'Test run with [0-9]+ tests?' "$logfile" | tail -n 1 | grep -Eo '[0-9]+' || true)
    if [[ ${tests:-0} == 0 ]]; then
      printf '[soak] the filter %s matched no test\n' "$filter" >>"$logfile"
      status=1
    fi
  fi
  local verdict=passed
  if ((status != 0)); then
    verdict=FAILED
    failed+=("$name")
    warn "step $name FAILED (exit $status); the end of its log:"
    tail -n 40 "$logfile" >&2
  else
    log "step $name passed in $seconds s"
  fi
  results+=("$(printf '%-12s %-7s %6s s  %s %s' "$name" "$verdict" "$seconds" "$filter" "${*:-}")")
  local line
  while IFS= read -r line; do
    figures+=("$(awk -v step="$name" '{ printf "%-12s %-40s %14s  %s", step, $2, $3, $4 }' <<<"$line")")
  done < <(grep -E '^soak [A-Za-z0-9_.-]+ -?[0-9.]+' "$logfile" || true)
}

main() {
  local started=$SECONDS
  if [[ -n ${SOAK_WORK:-} ]]; then
    WORK=$SOAK_WORK
    mkdir -p "$WORK"
  else
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/gridedge-soak.XXXXXX")
  fi
  [[ $(id -u) == 0 ]] || fatal "the soak needs root (network namespaces, tmpfs mounts); run it as root"
  cd "$REPO_ROOT"
  log "working in $WORK; $(nproc) core(s), load average $(cut -d' ' -f1 /proc/loadavg)"
  if [[ $SOAK_SKIP_BUILD != 1 ]]; then
    log "building the products and tests (swift build --build-tests -j $SOAK_JOBS)"
    "$SWIFT" build --build-tests -j "$SOAK_JOBS" >"$WORK/build.log" 2>&1 ||
      { tail -n 40 "$WORK/build.log" >&2; fatal "the build failed (log: $WORK/build.log)"; }
  fi
  local line count=0
  while IFS= read -r line; do
    [[ -n ${line// /} && $line != \#* ]] || continue
    # shellcheck disable=SC2086 # a step line is split on spaces on purpose
    set -- $line
    wanted "$1" || continue
    run_step "$@"
    count=$((count + 1))
  done <<<"$SOAK_STEPS"
  ((count > 0)) || fatal "no step ran (SOAK_ONLY='$SOAK_ONLY' names none of the steps)"

  echo
  echo "soak: $count step(s) in $((SECONDS - started)) s, $(nproc) core(s); logs in $WORK"
  printf '%-12s %-7s %8s  %s\n' step result time "filter and long-form settings"
  printf '%-12s %-7s %8s  %s\n' ---- ------ ---- -----------------------------
  printf '%s\n' "${results[@]}"
  echo
  printf '%-12s %-40s %14s  %s\n' step figure value unit
  printf '%-12s %-40s %14s  %s\n' ---- ------ ----- ----
  printf '%s\n' "${figures[@]+"${figures[@]}"}"
  echo
  if ((${#failed[@]} > 0)); then
    fatal "${#failed[@]} step(s) failed: ${failed[*]}"
  fi
  log "all $count step(s) passed"
}

main "$@"
