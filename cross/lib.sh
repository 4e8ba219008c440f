# shellcheck shell=bash disable=SC2034 # the variables set here are used by the scripts
# cross/lib.sh: what every cross/ script shares. Source it; do not run it.
#
# Paths (each can be overridden from the environment):
#   SWIFT_ROOT   the Swift toolchain                       (default /opt/swift)
#   CROSS_OUT    where everything generated goes           (default <repo>/.cross)
#
# Architectures: x86_64 (the host, alias "host"), aarch64, armv7.
# `cross_arch_setup ARCH` sets, for that architecture:
#   ARCH            canonical name (x86_64, aarch64, armv7)
#   SWIFT_TRIPLE    the target handed to swiftc
#   CLANG_TRIPLE    the target handed to clang for linking
#   DEB_ARCH        Debian's name for it (amd64, arm64, armhf)
#   MULTIARCH       Debian's multiarch tuple (library folder name)
#   BARE_TRIPLE     the triple whose embedded stdlib modules we start from
#   PATCHED_TRIPLE  the same-length string BARE_TRIPLE is rewritten to ("" = no patch)
#   SYSROOT         the Debian sysroot ("" = the host's own libraries)
#   QEMU            the qemu-user command line prefix ("" = run natively)
#   ARCH_SWIFTFLAGS / ARCH_CFLAGS  extra code generation flags for swiftc / clang
#   ARCH_LDFLAGS    extra link flags

set -euo pipefail

CROSS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$CROSS_DIR/.." && pwd)"
SWIFT_ROOT="${SWIFT_ROOT:-/opt/swift}"
CROSS_OUT="${CROSS_OUT:-$REPO_ROOT/.cross}"

SWIFTC="$SWIFT_ROOT/usr/bin/swiftc"
CLANG="$SWIFT_ROOT/usr/bin/clang"
LLVM_OBJCOPY="$SWIFT_ROOT/usr/bin/llvm-objcopy"
LLVM_NM="$SWIFT_ROOT/usr/bin/llvm-nm"
LLVM_AR="$SWIFT_ROOT/usr/bin/llvm-ar"
EMBEDDED_LIB="$SWIFT_ROOT/usr/lib/swift/embedded"

# Every script names itself in its log lines.
CROSS_SCRIPT="${CROSS_SCRIPT:-$(basename "${0:-cross}" .sh)}"

log() { printf '[%s] %s\n' "$CROSS_SCRIPT" "$*" >&2; }
warn() { printf '[%s] warning: %s\n' "$CROSS_SCRIPT" "$*" >&2; }
fatal() {
  printf '[%s] error: %s\n' "$CROSS_SCRIPT" "$*" >&2
  exit 1
}

# require_file PATH WHAT: fails, naming both, when PATH is not a file.
require_file() {
  [[ -f "$1" ]] || fatal "$2 not found: $1"
}

# require_cmd CMD HINT: fails when CMD is not on PATH, saying how to get it.
require_cmd() {
  command -v "$1" >/dev/null 2>&1 || fatal "'$1' not found on PATH; $2"
}

# now_s: seconds since the epoch with milliseconds, for timings.
now_s() { date +%s.%N | cut -c1-14; }

# elapsed START: seconds since START (from now_s), one decimal.
elapsed() { awk -v a="$1" -v b="$(now_s)" 'BEGIN { printf "%.1f", b - a }'; }

# The toolchain pieces every script needs.
require_toolchain() {
  local tool
  for tool in "$SWIFTC" "$CLANG" "$LLVM_OBJCOPY" "$LLVM_NM" "$LLVM_AR"; do
    [[ -x "$tool" ]] || fatal "toolchain tool missing: $tool (SWIFT_ROOT=$SWIFT_ROOT)"
  done
  [[ -d "$EMBEDDED_LIB" ]] || fatal "embedded stdlib folder missing: $EMBEDDED_LIB"
}

# cross_arch_setup ARCH: sets the variables described at the top.
cross_arch_setup() {
  ARCH_SWIFTFLAGS=()
  ARCH_CFLAGS=()
  ARCH_LDFLAGS=()
  case "$1" in
    host | x86_64)
      ARCH=x86_64
      SWIFT_TRIPLE=x86_64-unknown-linux-gnu
      CLANG_TRIPLE=x86_64-linux-gnu
      DEB_ARCH=amd64
      MULTIARCH=x86_64-linux-gnu
      BARE_TRIPLE=x86_64-unknown-linux-gnu # shipped for the host: no patch
      PATCHED_TRIPLE=""
      SYSROOT=""
      QEMU=()
      ;;
    aarch64 | arm64)
      ARCH=aarch64
      SWIFT_TRIPLE=aarch64-unknown-linux-gnu
      CLANG_TRIPLE=aarch64-linux-gnu
      DEB_ARCH=arm64
      MULTIARCH=aarch64-linux-gnu
      BARE_TRIPLE=aarch64-none-none-elf
      PATCHED_TRIPLE=aarch64-unknown-linux
      SYSROOT="$CROSS_OUT/sysroot/aarch64"
      QEMU=(qemu-aarch64-static -L "$SYSROOT")
      ;;
    armv7 | armhf)
      ARCH=armv7
      SWIFT_TRIPLE=armv7-unknown-linux-gnueabihf
      CLANG_TRIPLE=armv7-linux-gnueabihf
      DEB_ARCH=armhf
      MULTIARCH=arm-linux-gnueabihf
      BARE_TRIPLE=armv7-none-none-eabi
      PATCHED_TRIPLE=armv7--linux-gnueabi
      SYSROOT="$CROSS_OUT/sysroot/armv7"
      QEMU=(qemu-arm-static -cpu cortex-a7 -L "$SYSROOT")
      # Debian armhf assumes VFPv3-D16 without NEON; Thumb-2 is ~25% smaller.
      ARCH_SWIFTFLAGS=(-Xcc -mfpu=vfpv3-d16 -Xcc -mthumb)
      ARCH_CFLAGS=(-mfpu=vfpv3-d16 -mthumb)
      # Drops the libgcc_s.so.1 dependency (its helpers are linked in).
      ARCH_LDFLAGS=(-static-libgcc)
      ;;
    *) fatal "unknown architecture '$1' (expected host|x86_64, aarch64 or armv7)" ;;
  esac
  if [[ -n "$PATCHED_TRIPLE" && ${#PATCHED_TRIPLE} -ne ${#BARE_TRIPLE} ]]; then
    fatal "internal: '$PATCHED_TRIPLE' and '$BARE_TRIPLE' differ in length"
  fi
}

# expand_arches WORD: the architectures a command line word stands for.
expand_arches() {
  case "${1:-all}" in
    all) echo "x86_64 aarch64 armv7" ;;
    arm) echo "aarch64 armv7" ;;
    host | x86_64) echo "x86_64" ;;
    aarch64 | arm64) echo "aarch64" ;;
    armv7 | armhf) echo "armv7" ;;
    *) fatal "unknown architecture '$1' (expected all, host|x86_64, aarch64 or armv7)" ;;
  esac
}

# Generated paths per architecture.
stdlib_dir() { echo "$CROSS_OUT/stdlib/$1"; }
build_dir() { echo "$CROSS_OUT/build/$1"; }
bin_dir() { echo "$CROSS_OUT/bin/$1"; }
