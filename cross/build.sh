#!/usr/bin/env bash
# cross/build.sh [host|x86_64|aarch64|armv7|all] (default all): builds the
# package's executable products as Embedded Swift.
#
# The target graph and source lists come from the manifest (`swift package
# describe --type json`): every Swift target the executable products depend on
# is compiled, dependencies first, as one Embedded module each
# (-enable-experimental-feature Embedded -wmo -Osize); system-library targets
# are only `-I Sources/<Name>` (their module maps); then each executable is
# linked with the toolchain's clang and lld, naming the libraries of the
# module maps' `link` lines (those lines have no effect in Embedded mode), and
# stripped.
#
# Output:  .cross/bin/<arch>/<product>          stripped
#          .cross/build/<arch>/bin/<product>    unstripped (symbols, for debugging)
#          .cross/build/<arch>/modules, obj     per-target module and object
#
# A target is recompiled only when its sources, its C module headers, the
# flags or a dependency changed (a content hash per target); a product is
# relinked only when one of its objects changed.
#
# Environment:
#   SWIFT_ROOT, CROSS_OUT     see lib.sh
#   SWIFT_OPT                 optimisation flag          (default -Osize)
#   EXTRA_SWIFTFLAGS          more swiftc flags, split on spaces
#   EXTRA_LDFLAGS             more clang link flags, split on spaces
#   BUILD_JOBS                targets compiled at once   (default: number of cores)
#   CROSS_CLEAN=1             forget previous results and build everything
set -euo pipefail
CROSS_SCRIPT=build
# shellcheck source=cross/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SWIFT_OPT="${SWIFT_OPT:--Osize}"
EXTRA_SWIFTFLAGS="${EXTRA_SWIFTFLAGS:-}"
EXTRA_LDFLAGS="${EXTRA_LDFLAGS:-}"
BUILD_JOBS="${BUILD_JOBS:-$(nproc)}"
CROSS_CLEAN="${CROSS_CLEAN:-0}"

# load_graph: reads the manifest and defines, in dependency order:
#   BUILD_TARGETS              Swift targets the executables need
#   TGT_MODULE[t]              module name (c99name: '-' becomes '_')
#   TGT_KIND[t]                library | executable
#   TGT_DIR[t]                 the target's folder (absolute)
#   TGT_SOURCES[t]             its sources, shell-quoted, relative to TGT_DIR
#   TGT_DEPS[t]                the Swift targets it depends on directly
#   TGT_CDIRS[t]               system-library folders it sees (transitively), shell-quoted
#   PRODUCTS                   the executable products
#   PROD_TARGETS[p]            the Swift targets linked into p, dependencies first
#   PROD_LIBS[p]               libraries of the module maps' `link` lines in p's closure
#   SWIFT_LANGUAGE_VERSION     from the manifest (default 5)
load_graph() {
  local json="$CROSS_OUT/build/package.json" graph="$CROSS_OUT/build/graph.sh"
  mkdir -p "$CROSS_OUT/build"
  log "reading the target graph: swift package describe --type json"
  # A scratch path of our own: `swift build`/`swift test` running at the same
  # time hold .build's lock, and describe would wait for them.
  if ! (cd "$REPO_ROOT" && timeout 300 "$SWIFT_ROOT/usr/bin/swift" package \
    --scratch-path "$CROSS_OUT/spm" describe --type json) >"$json.tmp" 2>"$json.err"; then
    cat "$json.err" >&2
    fatal "swift package describe failed or timed out (is Package.swift valid?)"
  fi
  mv "$json.tmp" "$json"
  python3 - "$json" >"$graph" <<'EOF' || fatal "could not derive the build graph from the manifest (see above)"
import json, os, re, shlex, sys

desc = json.load(open(sys.argv[1]))
root = desc["path"]
targets = {t["name"]: t for t in desc["targets"]}

def die(msg):
    print("build graph: " + msg, file=sys.stderr)
    sys.exit(1)

products = [p for p in desc["products"] if "executable" in p["type"]]
if not products:
    die("the manifest has no executable products")

order, state = [], {}
def visit(name, via):
    if name not in targets:
        die(f"target '{name}' (needed by {via}) is not in the manifest")
    if state.get(name) == "done":
        return
    if state.get(name) == "visiting":
        die(f"dependency cycle through '{name}'")
    state[name] = "visiting"
    t = targets[name]
    if t.get("product_dependencies"):
        die(f"target '{name}' depends on other packages' products "
            f"({', '.join(t['product_dependencies'])}); cross/build.sh builds only this package's targets")
    for d in t.get("target_dependencies", []):
        visit(d, name)
    state[name] = "done"
    order.append(name)

closure = {}
for p in products:
    before = len(order)
    for t in p["targets"]:
        visit(t, "product " + p["name"])

def deps_closure(name, acc):
    for d in targets[name].get("target_dependencies", []):
        if d not in acc:
            acc.add(d)
            deps_closure(d, acc)
    return acc

def q(items):
    return " ".join(shlex.quote(i) for i in items)

def link_libs(system_dirs):
    libs = []
    for d in system_dirs:
        mm = os.path.join(d, "module.modulemap")
        if not os.path.isfile(mm):
            die(f"system-library target folder {d} has no module.modulemap")
        for lib in re.findall(r'^\s*link\s+"([^"]+)"', open(mm).read(), re.M):
            if lib not in libs:
                libs.append(lib)
    return libs

out = []
swift_targets = []
for name in order:
    t = targets[name]
    kind = t["module_type"]
    if kind == "SystemLibraryTarget":
        continue
    if kind != "SwiftTarget":
        die(f"target '{name}' is a {kind}; cross/build.sh compiles Swift and system-library targets only")
    swift_targets.append(name)
    deps = deps_closure(name, set())
    cdirs = sorted(os.path.join(root, targets[d]["path"]) for d in deps
                   if targets[d]["module_type"] == "SystemLibraryTarget")
    direct = [d for d in t.get("target_dependencies", []) if targets[d]["module_type"] == "SwiftTarget"]
    if not t.get("sources"):
        die(f"target '{name}' has no sources")
    out.append(f"TGT_MODULE[{shlex.quote(name)}]={shlex.quote(t['c99name'])}")
    out.append(f"TGT_KIND[{shlex.quote(name)}]={'executable' if t['type'] == 'executable' else 'library'}")
    out.append(f"TGT_DIR[{shlex.quote(name)}]={shlex.quote(os.path.join(root, t['path']))}")
    out.append(f"TGT_SOURCES[{shlex.quote(name)}]={shlex.quote(q(t['sources']))}")
    out.append(f"TGT_DEPS[{shlex.quote(name)}]={shlex.quote(q(direct))}")
    out.append(f"TGT_CDIRS[{shlex.quote(name)}]={shlex.quote(q(cdirs))}")

print("BUILD_TARGETS=(" + q(swift_targets) + ")")
print("PRODUCTS=(" + q(p["name"] for p in products) + ")")
print("\n".join(out))
for p in products:
    names = set()
    for t in p["targets"]:
        names.add(t)
        deps_closure(t, names)
    linked = [n for n in swift_targets if n in names]
    sysdirs = [os.path.join(root, targets[n]["path"]) for n in order
               if n in names and targets[n]["module_type"] == "SystemLibraryTarget"]
    print(f"PROD_TARGETS[{shlex.quote(p['name'])}]={shlex.quote(q(linked))}")
    print(f"PROD_LIBS[{shlex.quote(p['name'])}]={shlex.quote(q(link_libs(sysdirs)))}")
versions = desc.get("swift_languages_versions") or ["5"]
print(f"SWIFT_LANGUAGE_VERSION={shlex.quote(sorted(versions)[0])}")
EOF
  declare -gA TGT_MODULE TGT_KIND TGT_DIR TGT_SOURCES TGT_DEPS TGT_CDIRS PROD_TARGETS PROD_LIBS
  # shellcheck disable=SC1090
  source "$graph"
  log "graph: ${#BUILD_TARGETS[@]} Swift targets for ${#PRODUCTS[@]} executables (${PRODUCTS[*]})"
}

# hash_files FILE...: one hash over the names and contents of FILEs.
hash_files() {
  local f
  for f in "$@"; do
    printf '%s ' "$f"
    sha256sum <"$f"
  done | sha256sum | cut -d' ' -f1
}

# compile_target TARGET: compiles one target for the current ARCH, unless its
# key (flags, sources, C headers, dependency keys) is unchanged. Prints
# "built", "skipped" or fails.
compile_target() {
  local t="$1"
  local module="${TGT_MODULE[$t]}" dir="${TGT_DIR[$t]}"
  local srcs=() deps=() cdirs=() s d
  eval "srcs=(${TGT_SOURCES[$t]})"
  eval "deps=(${TGT_DEPS[$t]})"
  eval "cdirs=(${TGT_CDIRS[$t]})"
  local paths=()
  for s in "${srcs[@]}"; do
    [[ -f "$dir/$s" ]] || fatal "$ARCH: $t: source file missing: $dir/$s (manifest and tree disagree?)"
    paths+=("$dir/$s")
  done

  local flags=(-enable-experimental-feature Embedded -wmo "$SWIFT_OPT"
    -swift-version "$SWIFT_LANGUAGE_VERSION" -module-name "$module" -target "$SWIFT_TRIPLE")
  # An executable target with main.swift uses top-level code; otherwise @main.
  local has_main=0
  for s in "${srcs[@]}"; do
    if [[ "$(basename "$s")" == main.swift ]]; then has_main=1; fi
  done
  ((has_main)) || flags+=(-parse-as-library)
  [[ -z "$SYSROOT" ]] || flags+=(-sdk "$SYSROOT")
  [[ -z "$PATCHED_TRIPLE" ]] || flags+=(-I "$STDLIB/modules")
  flags+=(-I "$BUILD/modules")
  for d in "${cdirs[@]}"; do flags+=(-I "$d"); done
  flags+=("${ARCH_SWIFTFLAGS[@]}" -Xfrontend -function-sections)
  # shellcheck disable=SC2206 # split on purpose
  [[ -z "$EXTRA_SWIFTFLAGS" ]] || flags+=($EXTRA_SWIFTFLAGS)

  local key
  key="$({
    printf '%s\n' "${flags[@]}"
    cat "$STDLIB/.stamp"
    [[ -z "$SYSROOT" ]] || cat "$SYSROOT.stamp"
    hash_files "${paths[@]}"
    for d in "${cdirs[@]}"; do
      local headers=()
      mapfile -t headers < <(find "$d" -type f | LC_ALL=C sort)
      hash_files "${headers[@]}"
    done
    for d in "${deps[@]}"; do cat "$BUILD/keys/${TGT_MODULE[$d]}.key"; done
  } | sha256sum | cut -d' ' -f1)"

  local obj="$BUILD/obj/$module.o" mod="$BUILD/modules/$module.swiftmodule"
  if [[ -f "$BUILD/keys/$module.key" && "$(cat "$BUILD/keys/$module.key")" == "$key" && -f "$obj" && -f "$mod" ]]; then
    echo skipped
    return 0
  fi
  rm -f "$BUILD/keys/$module.key"
  local t0 errlog="$BUILD/logs/$module.log"
  t0="$(now_s)"
  if ! "$SWIFTC" "${flags[@]}" -emit-module -emit-module-path "$mod" -c "${paths[@]}" -o "$obj" >"$errlog" 2>&1; then
    cat "$errlog" >&2
    fatal "$ARCH: compiling $t failed (log: $errlog)"
  fi
  [[ ! -s "$errlog" ]] || cat "$errlog" >&2 # warnings
  echo "$key" >"$BUILD/keys/$module.key"
  echo "built $(elapsed "$t0")"
}

# compile_all: compiles BUILD_TARGETS in dependency order, up to BUILD_JOBS at
# once (a target starts when all its dependencies are done).
compile_all() {
  local -A done_=() running=()
  local remaining=("${BUILD_TARGETS[@]}") t d ready pid status status_word seconds
  while ((${#remaining[@]} > 0 || ${#running[@]} > 0)); do
    # Start every target whose dependencies are done, while there is room.
    local still=()
    for t in "${remaining[@]}"; do
      ready=1
      for d in ${TGT_DEPS[$t]}; do [[ -n "${done_[$d]:-}" ]] || ready=0; done
      if ((ready && ${#running[@]} < BUILD_JOBS)); then
        (compile_target "$t" >"$BUILD/logs/${TGT_MODULE[$t]}.status") &
        running[$!]="$t"
      else
        still+=("$t")
      fi
    done
    remaining=("${still[@]+"${still[@]}"}")
    ((${#running[@]} > 0)) || fatal "$ARCH: no target can start (${remaining[*]}): a dependency is missing"
    # Wait for one to finish.
    status=0
    wait -n -p pid "${!running[@]}" || status=$?
    t="${running[$pid]}"
    unset "running[$pid]"
    if ((status != 0)); then
      for pid in "${!running[@]}"; do wait "$pid" || true; done
      fatal "$ARCH: build stopped: $t failed"
    fi
    done_[$t]=1
    read -r status_word seconds <"$BUILD/logs/${TGT_MODULE[$t]}.status" || true
    if [[ "$status_word" == built ]]; then
      log "$ARCH: compiled $t (${TGT_KIND[$t]}) in ${seconds} s"
    else
      log "$ARCH: $t up to date"
    fi
  done
}

# link_product PRODUCT: links, checks and strips one executable.
link_product() {
  local p="$1" t objs=() libs=() l
  for t in ${PROD_TARGETS[$p]}; do objs+=("$BUILD/obj/${TGT_MODULE[$t]}.o"); done
  for l in ${PROD_LIBS[$p]}; do libs+=("-l$l"); done
  local unstripped="$BUILD/bin/$p" out
  out="$(bin_dir "$ARCH")/$p"
  local flags=(--target="$CLANG_TRIPLE" -fuse-ld=lld)
  [[ -z "$SYSROOT" ]] || flags+=(--sysroot="$SYSROOT")
  # shellcheck disable=SC2054 # commas belong to -Wl
  flags+=("${ARCH_LDFLAGS[@]}" -Wl,--gc-sections -Wl,--as-needed)
  # shellcheck disable=SC2206
  [[ -z "$EXTRA_LDFLAGS" ]] || flags+=($EXTRA_LDFLAGS)
  local tail=("$STDLIB/lib/runtime_fixes.o" -L "$STDLIB/lib" -lswiftUnicodeDataTables -lgridedge_cross_shims "${libs[@]}" -lm)

  local key
  key="$({
    printf '%s\n' "${flags[@]}" "${tail[@]}"
    for t in ${PROD_TARGETS[$p]}; do cat "$BUILD/keys/${TGT_MODULE[$t]}.key"; done
  } | sha256sum | cut -d' ' -f1)"
  if [[ -f "$BUILD/keys/$p.link" && "$(cat "$BUILD/keys/$p.link")" == "$key" && -f "$unstripped" && -f "$out" ]]; then
    log "$ARCH: $p up to date"
    return 0
  fi
  rm -f "$BUILD/keys/$p.link"
  local errlog="$BUILD/logs/$p.link.log"
  if ! "$CLANG" "${flags[@]}" "${objs[@]}" "${tail[@]}" -o "$unstripped" >"$errlog" 2>&1; then
    cat "$errlog" >&2
    fatal "$ARCH: linking $p failed (log: $errlog)"
  fi
  "$LLVM_OBJCOPY" --strip-all "$unstripped" "$out"
  echo "$key" >"$BUILD/keys/$p.link"
  log "$ARCH: linked $p ($(stat -c %s "$out") bytes stripped; linked with: ${libs[*]} -lm)"
}

build_arch() {
  cross_arch_setup "$1"
  local t0
  t0="$(now_s)"
  log "=== $ARCH ($SWIFT_TRIPLE) ==="
  if [[ -n "$SYSROOT" ]]; then
    bash "$CROSS_DIR/sysroot.sh" "$ARCH"
  fi
  bash "$CROSS_DIR/stdlib.sh" "$ARCH"
  STDLIB="$(stdlib_dir "$ARCH")"
  BUILD="$(build_dir "$ARCH")"
  if [[ "$CROSS_CLEAN" == 1 ]]; then
    rm -rf "$BUILD" "$(bin_dir "$ARCH")"
  fi
  mkdir -p "$BUILD/modules" "$BUILD/obj" "$BUILD/keys" "$BUILD/logs" "$BUILD/bin" "$(bin_dir "$ARCH")"
  compile_all
  local p
  for p in "${PRODUCTS[@]}"; do link_product "$p"; done
  log "$ARCH: done in $(elapsed "$t0") s -> $(bin_dir "$ARCH")"
}

main() {
  [[ $# -le 1 ]] || fatal "usage: cross/build.sh [host|x86_64|aarch64|armv7|all]"
  local arches a t0
  arches="$(expand_arches "${1:-all}")"
  require_toolchain
  require_cmd python3 "install python3 (used to read the manifest's JSON)"
  t0="$(now_s)"
  # One build at a time in CROSS_OUT (make embedded and make cross may overlap).
  mkdir -p "$CROSS_OUT"
  exec 9>"$CROSS_OUT/.build.lock"
  if ! flock -n 9; then
    log "waiting for another cross/build.sh using $CROSS_OUT"
    flock 9
  fi
  load_graph
  for a in $arches; do build_arch "$a"; done
  log "all done in $(elapsed "$t0") s"
}

main "$@"
