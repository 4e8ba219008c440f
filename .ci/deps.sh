#!/usr/bin/env bash
# Installs what building, testing and the demo need on a fresh Debian 12 machine,
# and only what is missing. Run as root (apt-get). Swift 6.3.1 must be at
# SWIFT_ROOT (default /opt/swift); it is not a Debian package.
set -euo pipefail

SWIFT_ROOT=${SWIFT_ROOT:-/opt/swift}
PACKAGES=(
  pkg-config libsqlite3-dev libmosquitto-dev libssl-dev # the C libraries, host build
  mosquitto mosquitto-clients                           # a real broker for tests and the demo
  qemu-user-static                                      # running the ARM binaries
  sqlite3 openssl python3 debian-archive-keyring       # tests, cross scripts (sysroots), certificates
  iproute2 ethtool libfaketime faketime                # network namespaces, veth pairs; clock jumps (LD_PRELOAD)
  gcc libc6-dev python3-venv                           # benchmark baselines (C, paho-mqtt)
)

log() { printf '\033[1m[deps]\033[0m %s\n' "$*"; }
fatal() { printf '[deps] error: %s\n' "$*" >&2; exit 1; }

[ -x "$SWIFT_ROOT/usr/bin/swift" ] || fatal "Swift toolchain not found at $SWIFT_ROOT (set SWIFT_ROOT)"

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  log "all Debian packages present"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || fatal "missing packages (${missing[*]}); run as root or install them"
log "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The broker is started by the tests themselves, never as a system service.
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now mosquitto >/dev/null 2>&1 || true; fi
log "installed"
