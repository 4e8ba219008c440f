#!/usr/bin/env bash
# cross/size.sh [host|x86_64|aarch64|armv7|all] (default all): stripped sizes and
# dynamic dependencies of the binaries cross/build.sh made.
#
# Prints a table (architecture, binary, stripped bytes, NEEDED libraries, the
# newest glibc symbol version it needs), then one line per architecture for
# scripts:
#   bench size_<arch> <bytes> bytes        (the stripped `gridedge`)
# Fails (non-zero) when a `gridedge` binary exceeds SIZE_BUDGET, naming it, or
# when a binary is missing.
#
# Environment: SIZE_BUDGET (bytes, default 2097152 = 2 MB); CROSS_OUT, SWIFT_ROOT.
set -euo pipefail
CROSS_SCRIPT=size
# shellcheck source=cross/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SIZE_BUDGET="${SIZE_BUDGET:-2097152}"
OBJDUMP="$SWIFT_ROOT/usr/bin/llvm-objdump"

# needed BINARY: the NEEDED entries of BINARY's dynamic section, space-separated.
needed() {
  "$OBJDUMP" -p "$1" | awk '$1 == "NEEDED" { printf "%s%s", sep, $2; sep = " " }'
}

# glibc_needed BINARY: the newest GLIBC_x.y symbol version BINARY asks for.
glibc_needed() {
  "$OBJDUMP" -p "$1" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -t. -k1,1n -k2,2n -k3,3n | tail -n1
}

main() {
  [[ $# -le 1 ]] || fatal "usage: cross/size.sh [host|x86_64|aarch64|armv7|all]"
  [[ -x "$OBJDUMP" ]] || fatal "llvm-objdump not found: $OBJDUMP (SWIFT_ROOT=$SWIFT_ROOT)"
  local arches a bin name bytes over=() bench=() missing=()
  arches="$(expand_arches "${1:-all}")"

  printf '%-8s %-14s %10s  %-7s %s\n' arch binary bytes glibc "needed libraries"
  printf '%-8s %-14s %10s  %-7s %s\n' ---- ------ ----- ----- ----------------
  for a in $arches; do
    cross_arch_setup "$a"
    local dir
    dir="$(bin_dir "$ARCH")"
    if [[ ! -f "$dir/gridedge" ]]; then
      missing+=("$dir/gridedge")
      continue
    fi
    for bin in "$dir"/*; do
      [[ -f "$bin" && -x "$bin" ]] || continue
      name="$(basename "$bin")"
      bytes="$(stat -c %s "$bin")"
      printf '%-8s %-14s %10d  %-7s %s\n' "$ARCH" "$name" "$bytes" "$(glibc_needed "$bin")" "$(needed "$bin")"
      if [[ "$name" == gridedge ]]; then
        bench+=("bench size_$ARCH $bytes bytes")
        ((bytes <= SIZE_BUDGET)) || over+=("$ARCH/gridedge is $bytes bytes stripped, over the budget of $SIZE_BUDGET")
      fi
    done
  done
  echo
  printf '%s\n' "${bench[@]+"${bench[@]}"}"

  ((${#missing[@]} == 0)) || fatal "not built: ${missing[*]} (run cross/build.sh first)"
  if ((${#over[@]})); then
    local o
    for o in "${over[@]}"; do log "over budget: $o"; done
    fatal "${#over[@]} binary(ies) over the size budget"
  fi
  log "every gridedge binary is within the budget of $SIZE_BUDGET bytes"
}

main "$@"
