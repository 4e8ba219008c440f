#!/usr/bin/env bash
# cross/stdlib.sh <x86_64|aarch64|armv7>: prepares what an Embedded Swift build
# for ARCH needs from the toolchain, under .cross/stdlib/<arch>/:
#
#   modules/<M>.swiftmodule/<swift-triple>.swiftmodule
#       The toolchain ships the Embedded stdlib modules (Swift, _Volatile,
#       Synchronization, _Builtin_float) for bare-metal triples only. A copy in
#       which the one stored triple string is rewritten with the same length
#       (aarch64-none-none-elf -> aarch64-unknown-linux, armv7-none-none-eabi ->
#       armv7--linux-gnueabi) is accepted for the Linux triple: the compiler
#       checks arch and OS only, and compiles the stdlib (SIL) for the real target.
#       Refused unless the string occurs exactly once. (x86_64: shipped, no copy.)
#   lib/libswiftUnicodeDataTables.a
#       The toolchain's Unicode tables (String comparison, hashing). armv7 only:
#       the prebuilt archive is soft-float, so its one float-returning function,
#       _swift_stdlib_getNumericValue, is renamed (llvm-objcopy --redefine-sym)
#       and reached through a C shim declared __attribute__((pcs("aapcs"))).
#   lib/libgridedge_cross_shims.a
#       _swift_stdlib_strtod_clocale / _strtof_clocale (Double(String),
#       Float(String)) over strtod_l / strtof_l with the C locale: nothing ships
#       them for Embedded. An archive: linked in only when the code needs it.
#   lib/runtime_fixes.o
#       64-bit only: swift_bridgeObjectRetain(_n) returning their argument, as
#       the full runtime does; 6.3.1's Embedded ones return it masked, which
#       corrupts Strings on aarch64 (see the file). Linked as an object, so that
#       its strong definitions replace the modules' weak ones.
#
# Environment: SWIFT_ROOT, CROSS_OUT (see lib.sh); STDLIB_FORCE=1 to redo.
set -euo pipefail
CROSS_SCRIPT=stdlib
# shellcheck source=cross/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STDLIB_FORCE="${STDLIB_FORCE:-0}"
# The Embedded modules copied for an ARM triple; each must exist for BARE_TRIPLE.
STDLIB_MODULES="${STDLIB_MODULES:-Swift _Volatile Synchronization _Builtin_float}"

# patch_triple SRC DST FROM TO: copies SRC to DST with the string FROM rewritten
# to TO (same length); fails unless FROM occurs exactly once in SRC.
patch_triple() {
  local src="$1" dst="$2" from="$3" to="$4" count
  count="$(python3 - "$src" "$dst" "$from" "$to" <<'EOF'
import sys
src, dst, old, new = sys.argv[1], sys.argv[2], sys.argv[3].encode(), sys.argv[4].encode()
assert len(old) == len(new)
data = open(src, "rb").read()
count = data.count(old)
if count == 1:
    with open(dst, "wb") as out:
        out.write(data.replace(old, new))
print(count)
EOF
  )"
  [[ "$count" == 1 ]] ||
    fatal "refusing to patch $src: '$from' occurs $count times (expected exactly once); the toolchain's module format changed, see cross/README.md"
}

# stamp_text: what the prepared files depend on.
stamp_text() {
  local m
  echo "swiftc: $("$SWIFTC" --version 2>&1 | head -n1)"
  echo "script: $(sha256sum "$CROSS_DIR/stdlib.sh" | cut -d' ' -f1)"
  echo "arch: $ARCH $SWIFT_TRIPLE ${ARCH_CFLAGS[*]}"
  for m in $STDLIB_MODULES; do
    [[ -z "$PATCHED_TRIPLE" ]] || stat -c "%n %s %Y" "$EMBEDDED_LIB/$m.swiftmodule/$BARE_TRIPLE.swiftmodule"
  done
  stat -c "%n %s %Y" "$EMBEDDED_LIB/$BARE_TRIPLE/libswiftUnicodeDataTables.a"
}

# cc ARGS...: the toolchain's clang for this architecture.
cc() {
  local sys=()
  [[ -z "$SYSROOT" ]] || sys=(--sysroot="$SYSROOT")
  "$CLANG" --target="$CLANG_TRIPLE" "${sys[@]}" "${ARCH_CFLAGS[@]}" -Os -fPIC -Wall -Werror "$@"
}

main() {
  [[ $# -eq 1 ]] || fatal "usage: cross/stdlib.sh <x86_64|aarch64|armv7>"
  require_toolchain
  require_cmd python3 "install python3"
  cross_arch_setup "$1"
  if [[ -n "$SYSROOT" && ! -f "$SYSROOT.stamp" ]]; then
    fatal "$ARCH: sysroot missing ($SYSROOT): run cross/sysroot.sh $ARCH first"
  fi

  local out stamp
  out="$(stdlib_dir "$ARCH")"
  stamp="$out/.stamp"
  if [[ "$STDLIB_FORCE" != 1 && -f "$stamp" && "$(cat "$stamp")" == "$(stamp_text)" ]]; then
    log "$ARCH: stdlib up to date ($out)"
    return 0
  fi
  local t0
  t0="$(now_s)"
  rm -rf "$out"
  mkdir -p "$out/modules" "$out/lib" "$out/obj"

  # 1. The Embedded stdlib modules for the Linux triple.
  if [[ -n "$PATCHED_TRIPLE" ]]; then
    local m src
    for m in $STDLIB_MODULES; do
      src="$EMBEDDED_LIB/$m.swiftmodule/$BARE_TRIPLE.swiftmodule"
      require_file "$src" "embedded module $m for $BARE_TRIPLE"
      mkdir -p "$out/modules/$m.swiftmodule"
      patch_triple "$src" "$out/modules/$m.swiftmodule/$SWIFT_TRIPLE.swiftmodule" \
        "$BARE_TRIPLE" "$PATCHED_TRIPLE"
      log "$ARCH: $m: '$BARE_TRIPLE' -> '$PATCHED_TRIPLE' (1 occurrence)"
    done
  else
    require_file "$EMBEDDED_LIB/Swift.swiftmodule/$SWIFT_TRIPLE.swiftmodule" \
      "embedded Swift module for $SWIFT_TRIPLE"
    log "$ARCH: the toolchain ships Embedded modules for $SWIFT_TRIPLE (no patch)"
  fi

  # 2. The Unicode data tables.
  local tables="$EMBEDDED_LIB/$BARE_TRIPLE/libswiftUnicodeDataTables.a"
  require_file "$tables" "Unicode data tables archive"
  cp "$tables" "$out/lib/libswiftUnicodeDataTables.a"
  if [[ "$ARCH" == armv7 ]]; then
    fix_armv7_numeric_value "$out"
  fi

  # 3. The strtod_l shims (linked only when referenced).
  cat >"$out/obj/strtod_shim.c" <<'EOF'
/* Double(String) / Float(String) in Embedded Swift call these, as the full
 * runtime's Stubs.cpp provides them: parse with the C locale; return the end
 * of the parsed text, or NULL on overflow. */
#define _GNU_SOURCE
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdlib.h>

static locale_t c_locale(void) {
  static locale_t loc;
  if (!loc) loc = newlocale(LC_ALL_MASK, "C", (locale_t)0);
  return loc;
}

const char *_swift_stdlib_strtod_clocale(const char *nptr, double *out) {
  char *end;
  errno = 0;
  double value = strtod_l(nptr, &end, c_locale());
  *out = value;
  if (errno == ERANGE && (value == 0.0 || value == HUGE_VAL || value == -HUGE_VAL)) return NULL;
  return end;
}

const char *_swift_stdlib_strtof_clocale(const char *nptr, float *out) {
  char *end;
  errno = 0;
  float value = strtof_l(nptr, &end, c_locale());
  *out = value;
  if (errno == ERANGE && (value == 0.0f || value == HUGE_VALF || value == -HUGE_VALF)) return NULL;
  return end;
}
EOF
  cc -c "$out/obj/strtod_shim.c" -o "$out/obj/strtod_shim.o"
  "$LLVM_AR" rcs "$out/lib/libgridedge_cross_shims.a" "$out/obj/strtod_shim.o"

  # 4. Runtime fixes (an object, linked explicitly: its strong definitions
  #    replace the weak ones every Embedded module carries).
  cat >"$out/obj/runtime_fixes.c" <<'EOF'
/* Swift 6.3.1's Embedded runtime (compiled into every module as weak symbols)
 * has swift_bridgeObjectRetain(_n) return the *untagged* object (the argument
 * masked with the BridgeObject mask), while the compiler declares them as
 * returning their argument (LLVM `returned`) and may use the result in its
 * place. On aarch64, where argument and result share x0, that corrupts String
 * values (a small string "cross-aarch64" became "cross-aapch64" with a broken
 * discriminator, then a huge allocation trapped). The full runtime returns the
 * argument; so do these. 32-bit targets have no bridge objects. */
#include <stdint.h>
#include <stdlib.h>
#if UINTPTR_MAX == 0xffffffffffffffffu
#define BRIDGE_OBJECT_TO_PLAIN_OBJECT_MASK UINT64_C(0x8ffffffffffffff8)
extern void *swift_retain_n(void *object, uint32_t n) __attribute__((weak));

void *swift_bridgeObjectRetain_n(void *object, uint32_t n) {
  /* Any module that needed the bridge retain also defines swift_retain_n. */
  if (!swift_retain_n) abort();
  swift_retain_n((void *)((uintptr_t)object & BRIDGE_OBJECT_TO_PLAIN_OBJECT_MASK), n);
  return object;
}

void *swift_bridgeObjectRetain(void *object) { return swift_bridgeObjectRetain_n(object, 1); }
#endif
int gridedge_cross_runtime_fixes;
EOF
  cc -c "$out/obj/runtime_fixes.c" -o "$out/lib/runtime_fixes.o"

  stamp_text >"$stamp"
  log "$ARCH: stdlib ready in $(elapsed "$t0") s: $out"
}

# fix_armv7_numeric_value OUT: see the header.
fix_armv7_numeric_value() {
  local out="$1" archive="$1/lib/libswiftUnicodeDataTables.a"
  local sym=_swift_stdlib_getNumericValue renamed=_swift_stdlib_getNumericValue_aapcs
  local defs
  defs="$("$LLVM_NM" --defined-only "$archive" 2>/dev/null | awk -v s="$sym" '$3 == s' | wc -l)"
  [[ "$defs" == 1 ]] ||
    fatal "armv7: $sym is defined $defs times in $archive (expected once); the soft-float fix needs review"
  "$LLVM_OBJCOPY" --redefine-sym "$sym=$renamed" "$archive"
  cat >"$out/obj/numeric_value_shim.c" <<EOF
/* The prebuilt armv7 Unicode tables are soft-float (base AAPCS): their one
 * float-returning function returns its double in r0:r1, while hard-float code
 * reads d0. Call the renamed original with the base PCS and return in d0. */
#include <stdint.h>
__attribute__((pcs("aapcs"))) double $renamed(uint32_t scalar);
double $sym(uint32_t scalar) { return $renamed(scalar); }
EOF
  cc -c "$out/obj/numeric_value_shim.c" -o "$out/obj/numeric_value_shim.o"
  "$LLVM_AR" rs "$archive" "$out/obj/numeric_value_shim.o"
  log "armv7: Unicode tables: $sym renamed to $renamed, hard-float shim added"
}

main "$@"
