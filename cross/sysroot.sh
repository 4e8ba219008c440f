#!/usr/bin/env bash
# cross/sysroot.sh <aarch64|armv7>: assembles .cross/sysroot/<arch> from Debian's
# arm64 / armhf packages, without touching the host's apt or dpkg state.
#
# How: a private apt configuration (own Dir::State, Dir::Cache, sources and
# APT::Architecture) downloads the packages below and every package they depend
# on (`apt-get install -d` against an empty dpkg status); `dpkg -x` unpacks them;
# then the tree is fixed up: made merged-/usr (qemu-arm's -L does not translate
# statx(), which armhf's loader uses, so /lib must be a symlink), and absolute
# symlinks, which would point into the host, are made relative.
#
# Environment:
#   SYSROOT_PACKAGES  packages to install (default below)
#   DEBIAN_SUITE      Debian release                         (default bookworm)
#   DEBIAN_MIRROR     Debian archive URI    (default: the one this host's apt uses)
#   DEBIAN_SECURITY   security archive URI  (default: the one this host's apt uses)
#   DEBIAN_KEYRING    keyring for Signed-By (default /usr/share/keyrings/debian-archive-keyring.gpg)
#   SYSROOT_FORCE=1   rebuild even when the stamp says it is complete
#
# Idempotent: the sysroot is rebuilt only when its stamp file does not match the
# architecture, suite and package list. The security index may fail to download
# (Debian answers "mirror sync in progress" at times): that one is tolerated.
set -euo pipefail
CROSS_SCRIPT=sysroot
# shellcheck source=cross/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SYSROOT_PACKAGES="${SYSROOT_PACKAGES:-libc6-dev libgcc-12-dev libsqlite3-dev libmosquitto-dev libssl-dev libc6 libgcc-s1 libsqlite3-0 libmosquitto1 libssl3}"
DEBIAN_SUITE="${DEBIAN_SUITE:-bookworm}"
DEBIAN_KEYRING="${DEBIAN_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}"
SYSROOT_FORCE="${SYSROOT_FORCE:-0}"

# host_debian_uris: prints "<uri> <suite>" for every Debian source of this host
# (one-line sources.list format and deb822 .sources files).
host_debian_uris() {
  local files=()
  [[ -f /etc/apt/sources.list ]] && files+=(/etc/apt/sources.list)
  local f
  for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] && files+=("$f")
  done
  ((${#files[@]})) || return 0
  python3 - "${files[@]}" <<'EOF'
import re, sys
for path in sys.argv[1:]:
    text = open(path, encoding="utf-8", errors="replace").read()
    if path.endswith(".sources"):
        for stanza in text.split("\n\n"):
            fields, key = {}, None
            for line in stanza.splitlines():
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                if line[0] in " \t" and key:
                    fields[key] += " " + line.strip()
                    continue
                key, _, value = line.partition(":")
                key = key.strip().lower()
                fields[key] = value.strip()
            if "deb" not in fields.get("types", "").split():
                continue
            if fields.get("enabled", "yes").lower() == "no":
                continue
            for uri in fields.get("uris", "").split():
                for suite in fields.get("suites", "").split():
                    print(uri, suite)
    else:
        for line in text.splitlines():
            line = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0])
            words = line.split()
            if len(words) >= 3 and words[0] == "deb":
                print(words[1], words[2])
EOF
}

# pick_uri SUITE FALLBACK: the host's URI for SUITE, or FALLBACK.
pick_uri() {
  local uri
  uri="$(host_debian_uris | awk -v s="$1" '$2 == s { print $1; exit }')"
  echo "${uri:-$2}"
}

main() {
  [[ $# -eq 1 ]] || fatal "usage: cross/sysroot.sh <aarch64|armv7>"
  cross_arch_setup "$1"
  local packages=()
  read -r -a packages <<<"$SYSROOT_PACKAGES"
  ((${#packages[@]})) || fatal "SYSROOT_PACKAGES is empty"
  [[ -n "$SYSROOT" ]] || fatal "$ARCH needs no sysroot (the host's libraries are used)"
  require_cmd apt-get "this script needs Debian's apt"
  require_cmd dpkg "this script needs Debian's dpkg"
  require_cmd python3 "install python3"
  require_file "$DEBIAN_KEYRING" "Debian archive keyring (package debian-archive-keyring)"

  local stamp="$SYSROOT.stamp"
  local want
  want="arch=$DEB_ARCH suite=$DEBIAN_SUITE packages=$SYSROOT_PACKAGES script=$(sha256sum <"$CROSS_DIR/sysroot.sh" | cut -c1-16)"
  if [[ "$SYSROOT_FORCE" != 1 && -d "$SYSROOT" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    log "$ARCH: sysroot up to date ($SYSROOT)"
    return 0
  fi

  local t0
  t0="$(now_s)"
  local mirror security
  mirror="${DEBIAN_MIRROR:-$(pick_uri "$DEBIAN_SUITE" http://deb.debian.org/debian)}"
  security="${DEBIAN_SECURITY:-$(pick_uri "$DEBIAN_SUITE-security" http://deb.debian.org/debian-security)}"
  log "$ARCH: Debian $DEBIAN_SUITE $DEB_ARCH from $mirror (security: $security)"

  # The private apt world: configuration, sources, state, cache.
  local apt_root="$CROSS_OUT/apt/$ARCH"
  mkdir -p "$apt_root/etc/sources.list.d" "$apt_root/etc/preferences.d" \
    "$apt_root/state/lists/partial" "$apt_root/cache/archives/partial"
  : >"$apt_root/state/status"
  cat >"$apt_root/etc/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $DEBIAN_SUITE $DEBIAN_SUITE-updates
Components: main
Architectures: $DEB_ARCH
Signed-By: $DEBIAN_KEYRING

Types: deb
URIs: $security
Suites: $DEBIAN_SUITE-security
Components: main
Architectures: $DEB_ARCH
Signed-By: $DEBIAN_KEYRING
EOF
  cat >"$apt_root/apt.conf" <<EOF
Dir::State "$apt_root/state";
Dir::State::status "$apt_root/state/status";
Dir::Cache "$apt_root/cache";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Dir::Etc::SourceList "/dev/null";
Dir::Etc::SourceParts "$apt_root/etc/sources.list.d";
Dir::Etc::Preferences "/dev/null";
Dir::Etc::PreferencesParts "$apt_root/etc/preferences.d";
APT::Architecture "$DEB_ARCH";
APT::Architectures { "$DEB_ARCH"; };
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
Debug::NoLocking "true";
EOF
  local apt=(env APT_CONFIG="$apt_root/apt.conf" apt-get -q -y)

  log "$ARCH: apt-get update (private state in $apt_root)"
  local update_log="$apt_root/update.log" update_rc=0
  "${apt[@]}" update >"$update_log" 2>&1 || update_rc=$?
  # apt-get update fails as a whole when one index fails. Only the security
  # index may fail; any other error, or a missing main index, is fatal.
  local errors other
  errors="$(grep -E '^(Err:|E:)' "$update_log" | grep -v '^E: Some index files failed to download' || true)"
  other="$(grep -v -- "$DEBIAN_SUITE-security" <<<"$errors" || true)"
  if [[ -n "$other" ]]; then
    cat "$update_log" >&2
    fatal "$ARCH: apt-get update failed (exit $update_rc): $other"
  fi
  if [[ -n "$errors" ]]; then
    warn "$ARCH: the $DEBIAN_SUITE-security index failed to download; going on with $DEBIAN_SUITE and $DEBIAN_SUITE-updates:"
    # shellcheck disable=SC2001 # indents every line
    sed 's/^/    /' <<<"$errors" >&2
  elif ((update_rc != 0)); then
    cat "$update_log" >&2
    fatal "$ARCH: apt-get update failed (exit $update_rc)"
  fi
  compgen -G "$apt_root/state/lists/*_dists_${DEBIAN_SUITE}_main_binary-${DEB_ARCH}_Packages*" >/dev/null ||
    fatal "$ARCH: the $DEBIAN_SUITE main index for $DEB_ARCH is missing after apt-get update (see $update_log)"

  log "$ARCH: downloading $SYSROOT_PACKAGES and their dependencies"
  if ! "${apt[@]}" install -d "${packages[@]}" >"$apt_root/install.log" 2>&1; then
    cat "$apt_root/install.log" >&2
    fatal "$ARCH: apt-get install -d failed"
  fi
  # What apt chose: every package of the closure, at the version of this index.
  local names=()
  mapfile -t names < <(
    env APT_CONFIG="$apt_root/apt.conf" apt-get -s -q install "${packages[@]}" 2>/dev/null |
      sed -n 's/^Inst \([^ ]*\) (\([^ ]*\) .*/\1 \2/p'
  )
  ((${#names[@]})) || fatal "$ARCH: apt chose no packages (see $apt_root/install.log)"

  log "$ARCH: unpacking ${#names[@]} packages into $SYSROOT"
  rm -rf "$SYSROOT" "$stamp"
  mkdir -p "$SYSROOT"
  local entry name version deb
  for entry in "${names[@]}"; do
    name="${entry%% *}"
    version="${entry#* }"
    # Debian file names encode ':' (epochs) as %3a.
    deb="$apt_root/cache/archives/${name}_${version//:/%3a}_${DEB_ARCH}.deb"
    [[ -f "$deb" ]] || deb="$apt_root/cache/archives/${name}_${version//:/%3a}_all.deb"
    [[ -f "$deb" ]] || fatal "$ARCH: downloaded package missing: ${name}_${version} (looked in $apt_root/cache/archives)"
    dpkg -x "$deb" "$SYSROOT"
  done

  merge_usr "$SYSROOT"
  relative_symlinks "$SYSROOT"
  check_sysroot

  echo "$want" >"$stamp"
  log "$ARCH: sysroot ready in $(elapsed "$t0") s: $SYSROOT ($(du -sh "$SYSROOT" | cut -f1))"
}

# merge_usr ROOT: moves /bin, /sbin, /lib* into /usr and leaves symlinks, as a
# merged-/usr Debian system has. Symlinks are made absolute (ROOT-relative)
# first, so that moving them one level down keeps them right.
merge_usr() {
  local root="$1" d
  absolute_symlinks "$root"
  for d in bin sbin lib lib32 lib64 libx32; do
    if [[ -d "$root/$d" && ! -L "$root/$d" ]]; then
      mkdir -p "$root/usr/$d"
      # Debian forbids the same file in both places; refuse if it happens.
      local clash
      clash="$(cd "$root/$d" && find . ! -type d -print | while read -r f; do
        if [[ -e "$root/usr/$d/$f" || -L "$root/usr/$d/$f" ]]; then echo "$d/${f#./}"; fi
      done)"
      [[ -z "$clash" ]] || fatal "merged-/usr: files both in /$d and /usr/$d: $clash"
      cp -a "$root/$d/." "$root/usr/$d/"
      rm -rf "${root:?}/$d"
    fi
    if [[ -e "$root/usr/$d" && ! -e "$root/$d" ]]; then ln -s "usr/$d" "$root/$d"; fi
  done
}

# absolute_symlinks ROOT: rewrites every relative symlink below ROOT (except
# the top-level merged-/usr links) to the absolute path it means inside ROOT.
absolute_symlinks() {
  local root="$1" link target dir abs
  while IFS= read -r -d '' link; do
    target="$(readlink "$link")"
    [[ "$target" == /* ]] && continue
    dir="$(dirname "${link#"$root"}")"
    abs="$(realpath -ms "/$dir/$target")"
    ln -sfn "$abs" "$link"
  done < <(find "$root" -mindepth 2 -type l -print0)
}

# relative_symlinks ROOT: rewrites every absolute symlink below ROOT so that it
# points inside ROOT, relative to where it is.
relative_symlinks() {
  local root="$1" link target rel count=0
  while IFS= read -r -d '' link; do
    target="$(readlink "$link")"
    [[ "$target" == /* ]] || continue
    rel="$(realpath -ms --relative-to="$(dirname "$link")" "$root$target")"
    ln -sfn "$rel" "$link"
    count=$((count + 1))
  done < <(find "$root" -type l -print0)
  log "$ARCH: $count absolute symlinks made relative"
}

# check_sysroot: the files the build relies on must be there.
check_sysroot() {
  local f
  for f in "usr/include/$MULTIARCH/bits/libc-header-start.h" \
    usr/include/stdio.h usr/include/sqlite3.h usr/include/mosquitto.h \
    usr/include/openssl/evp.h "usr/include/$MULTIARCH/openssl/opensslconf.h" \
    "usr/lib/$MULTIARCH/libc.so" "usr/lib/$MULTIARCH/libc.so.6" \
    "usr/lib/$MULTIARCH/libsqlite3.so" "usr/lib/$MULTIARCH/libmosquitto.so" \
    "usr/lib/$MULTIARCH/libcrypto.so" "usr/lib/$MULTIARCH/crt1.o"; do
    [[ -e "$SYSROOT/$f" ]] || fatal "$ARCH: sysroot incomplete, missing $f (a broken symlink or a package changed)"
  done
  [[ -L "$SYSROOT/lib" ]] || fatal "$ARCH: sysroot is not merged-/usr ($SYSROOT/lib is not a symlink)"
  local gccdir
  gccdir="$(find "$SYSROOT/usr/lib/gcc/$MULTIARCH" -maxdepth 1 -mindepth 1 -type d 2>/dev/null | head -n1)"
  [[ -n "$gccdir" && -f "$gccdir/crtbegin.o" ]] || fatal "$ARCH: sysroot incomplete, missing usr/lib/gcc/$MULTIARCH/<version>/crtbegin.o"
}

main "$@"
