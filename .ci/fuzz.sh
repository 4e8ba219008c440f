#!/usr/bin/env bash
# .ci/fuzz.sh: builds the DL/T 645 libFuzzer target and runs it for a while.
#
# The target (Tests/Fuzz/DLT645/main.swift) is compiled directly with swiftc,
# together with Sources/DLT645/*.swift, under libFuzzer and AddressSanitizer:
#   swiftc -sanitize=fuzzer,address -parse-as-library ...
# (host Swift, not Embedded: the sanitizers need the full runtime; the codec is
# the same source). The corpus is seeded into a temporary folder from the golden
# frames (Tests/Fuzz/DLT645/seeds.txt) and the malformed-input fixtures
# (Tests/Fixtures/dlt645/*.hex), each with a few feed-size prefixes.
#
# Exit status: 0 when the run ends without a finding; non-zero on a crash, a
# sanitizer report, a leak or a timeout, after printing the offending input in hex.
#
# Environment:
#   FUZZ_SECONDS   how long to fuzz                      (default 30)
#   FUZZ_OUT       binary, log and crash artifacts       (default .build-fuzz in the repository)
#   FUZZ_FLAGS     more libFuzzer flags, split on spaces (e.g. "-max_len=600")
#   SWIFT_ROOT     the toolchain                         (default /opt/swift)
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SWIFT_ROOT=${SWIFT_ROOT:-/opt/swift}
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
FUZZ_OUT=${FUZZ_OUT:-$REPO_ROOT/.build-fuzz}
FUZZ_FLAGS=${FUZZ_FLAGS:-}

log() { printf '\033[1m[fuzz]\033[0m %s\n' "$*"; }
fatal() {
  printf '[fuzz] error: %s\n' "$*" >&2
  exit 1
}

[ -x "$SWIFT_ROOT/usr/bin/swiftc" ] || fatal "swiftc not found under $SWIFT_ROOT (set SWIFT_ROOT)"
command -v python3 >/dev/null || fatal "python3 is needed to turn the hex seeds into corpus files"
case "$FUZZ_SECONDS" in '' | *[!0-9]*) fatal "FUZZ_SECONDS must be a whole number of seconds, not '$FUZZ_SECONDS'" ;; esac

mkdir -p "$FUZZ_OUT"
BIN="$FUZZ_OUT/dlt645-fuzz"
CORPUS=$(mktemp -d "${TMPDIR:-/tmp}/dlt645-corpus.XXXXXX")
trap 'rm -rf "$CORPUS"' EXIT

log "step 1/3: building $BIN"
"$SWIFT_ROOT/usr/bin/swiftc" -sanitize=fuzzer,address -parse-as-library -O -g -use-ld=lld \
  -module-name DLT645Fuzz \
  "$REPO_ROOT"/Sources/DLT645/*.swift "$REPO_ROOT/Tests/Fuzz/DLT645/main.swift" \
  -o "$BIN"

log "step 2/3: seeding the corpus in $CORPUS"
python3 - "$CORPUS" "$REPO_ROOT/Tests/Fuzz/DLT645/seeds.txt" "$REPO_ROOT"/Tests/Fixtures/dlt645/*.hex <<'PY'
import sys, os
corpus, sources = sys.argv[1], sys.argv[2:]
count = 0
for path in sources:
    with open(path) as f:
        lines = [l.strip() for l in f if l.strip() and not l.startswith('#')]
    # seeds.txt: one input per line; a fixture: one input over all its lines.
    inputs = lines if path.endswith('.txt') else [' '.join(lines)]
    for text in inputs:
        data = bytes.fromhex(text)
        # The first byte of an input chooses the feed size (low nibble + 1) and the
        # capacity (bit 7): seed whole-buffer, byte-by-byte and 5-byte feeds.
        for prefix in (0x0F, 0x00, 0x84):
            count += 1
            with open(os.path.join(corpus, 'seed-%04d' % count), 'wb') as out:
                out.write(bytes([prefix]) + data)
print('[fuzz] %d corpus files' % count)
PY

log "step 3/3: fuzzing for $FUZZ_SECONDS s (log: $FUZZ_OUT/fuzz.log)"
marker="$FUZZ_OUT/.run-start"
touch "$marker"
set +e
# shellcheck disable=SC2086 # FUZZ_FLAGS is split on spaces on purpose
"$BIN" -max_total_time="$FUZZ_SECONDS" -artifact_prefix="$FUZZ_OUT/" -print_final_stats=1 \
  -timeout=10 $FUZZ_FLAGS "$CORPUS" >"$FUZZ_OUT/fuzz.log" 2>&1
status=$?
set -e
tail -n 12 "$FUZZ_OUT/fuzz.log"

artifacts=$(find "$FUZZ_OUT" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
  -o -name 'oom-*' -o -name 'slow-unit-*' \) -newer "$marker" | sort)
if [ "$status" -ne 0 ] || [ -n "$artifacts" ]; then
  printf '[fuzz] FAILED (libFuzzer exit status %s); see %s\n' "$status" "$FUZZ_OUT/fuzz.log" >&2
  for artifact in $artifacts; do
    printf '[fuzz] input %s (%s bytes), hex:\n' "$artifact" "$(wc -c <"$artifact")" >&2
    od -An -v -tx1 "$artifact" | tr -s ' ' | sed 's/^ //' | tr 'a-f' 'A-F' >&2
  done
  [ -n "$artifacts" ] || printf '[fuzz] no artifact was written; the log above says why\n' >&2
  exit 1
fi
log "no findings in $FUZZ_SECONDS s"

# --- Second target: what arrives from the network (signed commands, batches, acks) ---
# GridEdgeContract needs SQLiteStore and GridEdgeCore and the CSQLite/CCrypto module
# maps, so each module is compiled (with the same sanitizers) into an object file and
# a .swiftmodule, in dependency order, and the fuzzer links them.
CBIN="$FUZZ_OUT/contract-fuzz"
MODS="$FUZZ_OUT/modules"
mkdir -p "$MODS"
log "contract step 1/3: building $CBIN"
INCLUDES=(-I "$MODS" -I "$REPO_ROOT/Sources/CSQLite" -I "$REPO_ROOT/Sources/CCrypto"
  -I "$REPO_ROOT/Sources/CLibc" -I "$REPO_ROOT/Sources/CMosquitto")
module() {
  local name=$1
  shift
  "$SWIFT_ROOT/usr/bin/swiftc" -sanitize=fuzzer,address -parse-as-library -O -g -wmo \
    -module-name "$name" -emit-module -emit-module-path "$MODS/$name.swiftmodule" \
    "${INCLUDES[@]}" -c "$@" -o "$MODS/$name.o"
}
module SQLiteStore "$REPO_ROOT"/Sources/SQLiteStore/*.swift
module GridEdgeCore "$REPO_ROOT"/Sources/GridEdgeCore/*.swift
module GridEdgeContract "$REPO_ROOT"/Sources/GridEdgeContract/*.swift
"$SWIFT_ROOT/usr/bin/swiftc" -sanitize=fuzzer,address -parse-as-library -O -g -use-ld=lld \
  -module-name ContractFuzz -I "$MODS" -I "$REPO_ROOT/Sources/CSQLite" -I "$REPO_ROOT/Sources/CCrypto" \
  "$REPO_ROOT/Tests/Fuzz/Contract/main.swift" "$MODS"/SQLiteStore.o "$MODS"/GridEdgeCore.o \
  "$MODS"/GridEdgeContract.o -lsqlite3 -lcrypto -o "$CBIN"

# Seeds a corpus from a file of hex lines, fuzzes BIN for FUZZ_SECONDS, and fails with
# the crashing inputs in hex: run_target NAME BIN SEEDS MAX_LEN (the contract and config targets).
run_target() {
  local name=$1 bin=$2 seeds=$3 max_len=$4 corpus status artifacts
  corpus=$(mktemp -d "${TMPDIR:-/tmp}/$name-corpus.XXXXXX")
  EXTRA_CORPORA+=("$corpus")
  log "$name step 2/3: seeding the corpus in $corpus"
  python3 - "$corpus" "$seeds" <<'PY'
import sys, os
corpus, seeds = sys.argv[1], sys.argv[2]
with open(seeds) as f:
    lines = [l.strip() for l in f if l.strip() and not l.startswith('#')]
for i, text in enumerate(lines):
    with open(os.path.join(corpus, 'seed-%04d' % i), 'wb') as out:
        out.write(bytes.fromhex(text))
print('[fuzz] %d corpus files' % len(lines))
PY
  log "$name step 3/3: fuzzing for $FUZZ_SECONDS s (log: $FUZZ_OUT/$name-fuzz.log)"
  touch "$marker"
  set +e
  # shellcheck disable=SC2086 # FUZZ_FLAGS is split on spaces on purpose
  "$bin" -max_total_time="$FUZZ_SECONDS" -artifact_prefix="$FUZZ_OUT/$name-" -print_final_stats=1 \
    -timeout=10 -max_len="$max_len" $FUZZ_FLAGS "$corpus" >"$FUZZ_OUT/$name-fuzz.log" 2>&1
  status=$?
  set -e
  tail -n 6 "$FUZZ_OUT/$name-fuzz.log"
  artifacts=$(find "$FUZZ_OUT" -maxdepth 1 -type f -name "$name-*-*" -newer "$marker" | sort)
  if [ "$status" -ne 0 ] || [ -n "$artifacts" ]; then
    printf '[fuzz] %s FAILED (libFuzzer exit status %s); see %s\n' "$name" "$status" "$FUZZ_OUT/$name-fuzz.log" >&2
    for artifact in $artifacts; do
      printf '[fuzz] input %s (%s bytes), hex:\n' "$artifact" "$(wc -c <"$artifact")" >&2
      od -An -v -tx1 "$artifact" | tr -s ' ' | sed 's/^ //' | tr 'a-f' 'A-F' >&2
    done
    exit 1
  fi
  log "$name: no findings in $FUZZ_SECONDS s"
}
EXTRA_CORPORA=()
trap 'rm -rf "$CORPUS" "${EXTRA_CORPORA[@]}"' EXIT

run_target contract "$CBIN" "$REPO_ROOT/Tests/Fuzz/Contract/seeds.txt" 4096


# --- Third target: the configuration-file parser (GridEdgeAgent and its dependencies) ---
FBIN="$FUZZ_OUT/config-fuzz"
log "config step 1/3: building $FBIN"
module Runtime "$REPO_ROOT"/Sources/Runtime/*.swift
module MosquittoClient "$REPO_ROOT"/Sources/MosquittoClient/*.swift
module DLT645 "$REPO_ROOT"/Sources/DLT645/*.swift
module GridEdgeAgent "$REPO_ROOT"/Sources/GridEdgeAgent/*.swift
"$SWIFT_ROOT/usr/bin/swiftc" -sanitize=fuzzer,address -parse-as-library -O -g -use-ld=lld \
  -module-name ConfigFuzz -I "$MODS" -I "$REPO_ROOT/Sources/CSQLite" -I "$REPO_ROOT/Sources/CCrypto" \
  "${INCLUDES[@]}" "$REPO_ROOT/Tests/Fuzz/Config/main.swift" "$MODS"/Runtime.o "$MODS"/SQLiteStore.o \
  "$MODS"/MosquittoClient.o "$MODS"/DLT645.o "$MODS"/GridEdgeCore.o "$MODS"/GridEdgeContract.o \
  "$MODS"/GridEdgeAgent.o -lsqlite3 -lmosquitto -lcrypto -o "$FBIN"

run_target config "$FBIN" "$REPO_ROOT/Tests/Fuzz/Config/seeds.txt" 8192
