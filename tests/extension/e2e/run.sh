#!/usr/bin/env bash
# End-to-end test of the packaged extension in a real VS Code (code-server 4.139.1 from npm), driven by headless
# Debian Chromium through playwright-core. Installs what it needs (idempotent, into .e2e/), packages the .vsix if
# missing, starts code-server on 127.0.0.1 with no auth / telemetry / gallery, runs the test, and stops everything.
#
#   bash tests/extension/e2e/run.sh            (or: npm run test:e2e)
#
# Env: TORCHSANITY_E2E_PYTHON   interpreter with torch for the probe (default: .venv/bin/python, else python3)
#      TORCHSANITY_E2E_KEEP=1   keep the temporary profile/workspace for debugging
#      TORCHSANITY_E2E_SCREENSHOTS=docs/images   where the README screenshots go (default: .e2e/artifacts)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
cd "$ROOT"
E2E="${TORCHSANITY_E2E_DIR:-$ROOT/.e2e}"

setup_out="$(bash tests/extension/e2e/setup.sh)" || { echo "[e2e] setting up code-server failed (see above)" >&2; exit 1; }
eval "$(printf '%s\n' "$setup_out" | grep -E '^(NODE24|CODE_SERVER)=')"
[ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund
VSIX="$ROOT/dist/torchsanity-linux-x64.vsix"
# (re)package when the .vsix is missing or older than any source that goes into it
if [ ! -f "$VSIX" ] || [ -n "${TORCHSANITY_E2E_REPACKAGE:-}" ] || \
   [ -n "$(find package.json extension server analyzers probes -type f -newer "$VSIX" -not -path 'extension/bundled/*' -not -name '*.pyc' 2>/dev/null | head -n 1)" ]; then
  npm run package
fi

RUN_DIR="$(mktemp -d "${TMPDIR:-/tmp}/torchsanity-e2e.XXXXXX")"
CS_PID=""
cleanup() {
  local rc=$?
  if [ -n "$CS_PID" ] && kill -0 "$CS_PID" 2>/dev/null; then
    # code-server, its extension host and the language servers share one process group (setsid below)
    kill -TERM -- "-$CS_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 -- "-$CS_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$CS_PID" 2>/dev/null || true
  fi
  if [ -z "${TORCHSANITY_E2E_KEEP:-}" ]; then rm -rf "$RUN_DIR"; else echo "kept $RUN_DIR" >&2; fi
  exit $rc
}
trap cleanup EXIT INT TERM

DATA="$RUN_DIR/data"; EXTS="$RUN_DIR/extensions"; WS="$RUN_DIR/workspace"
mkdir -p "$DATA/User" "$DATA/Machine" "$EXTS" "$WS"
cp tests/extension/e2e/workspace/*.py "$WS/"
# a loopback address nothing listens on: no marketplace traffic leaves the machine
export EXTENSIONS_GALLERY='{"serviceUrl":"http://127.0.0.1:9/gallery","itemUrl":"http://127.0.0.1:9/item","resourceUrlTemplate":"http://127.0.0.1:9/r/{publisher}/{name}/{version}/{path}"}'
cat > "$DATA/User/settings.json" <<'JSON'
{
  "telemetry.telemetryLevel": "off",
  "update.mode": "none",
  "extensions.autoUpdate": false,
  "extensions.autoCheckUpdates": false,
  "extensions.ignoreRecommendations": true,
  "workbench.enableExperiments": false,
  "workbench.startupEditor": "none",
  "workbench.tips.enabled": false,
  "workbench.welcomePage.walkthroughs.openOnInstall": false,
  "workbench.secondarySideBar.defaultVisibility": "hidden",
  "chat.disableAIFeatures": true,
  "chat.commandCenter.enabled": false,
  "security.workspace.trust.enabled": true,
  "security.workspace.trust.startupPrompt": "never",
  "security.workspace.trust.banner": "always",
  "editor.minimap.enabled": false,
  "editor.lightbulb.enabled": "on",
  "files.autoSave": "off",
  "window.restoreWindows": "none",
  "torchsanity.probe.timeout": 240,
  "torchsanity.probe.device": "cpu"
}
JSON

echo "[e2e] installing $VSIX into a fresh code-server profile" >&2
"$NODE24" "$CODE_SERVER" --user-data-dir "$DATA" --extensions-dir "$EXTS" --install-extension "$VSIX" >&2

PORT="$("$NODE24" -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
echo "[e2e] starting code-server on 127.0.0.1:$PORT" >&2
# setsid: a new process group we can kill as a whole
setsid "$NODE24" "$CODE_SERVER" \
  --bind-addr "127.0.0.1:$PORT" --auth none --disable-telemetry --disable-update-check \
  --disable-getting-started-override --ignore-last-opened \
  --user-data-dir "$DATA" --extensions-dir "$EXTS" --config "$RUN_DIR/config.yaml" \
  "$WS" > "$RUN_DIR/code-server.log" 2>&1 &
CS_PID=$!
for _ in $(seq 1 120); do
  if "$NODE24" -e "fetch(\"http://127.0.0.1:$PORT/healthz\").then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"; then break; fi
  kill -0 "$CS_PID" 2>/dev/null || { cat "$RUN_DIR/code-server.log" >&2; echo "code-server died" >&2; exit 1; }
  sleep 0.5
done

PY="${TORCHSANITY_E2E_PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY="$(command -v python3)"; fi
fi
export TORCHSANITY_E2E_URL="http://127.0.0.1:$PORT/?folder=$WS"
export TORCHSANITY_E2E_WORKSPACE="$WS" TORCHSANITY_E2E_USER_SETTINGS="$DATA/User/settings.json"
export TORCHSANITY_E2E_PYTHON="$PY" TORCHSANITY_E2E_ARTIFACTS="${TORCHSANITY_E2E_ARTIFACTS:-$ROOT/.e2e/artifacts}"
export TORCHSANITY_E2E_SCREENSHOTS="${TORCHSANITY_E2E_SCREENSHOTS:-$TORCHSANITY_E2E_ARTIFACTS}"
export TORCHSANITY_E2E_CODE_SERVER_LOG="$RUN_DIR/code-server.log" TORCHSANITY_E2E_LOGS="$DATA/logs"
mkdir -p "$TORCHSANITY_E2E_ARTIFACTS"
set +e
node --test --test-concurrency=1 tests/extension/e2e/vscode.e2e.mjs
rc=$?
set -e
if [ $rc -ne 0 ]; then
  echo "[e2e] failed; code-server log tail:" >&2; tail -n 40 "$RUN_DIR/code-server.log" >&2 || true
  find "$DATA/logs" -name "*Torch Sanity*" -exec tail -n 60 {} \; 2>/dev/null >&2 || true
  cp -r "$DATA/logs" "$TORCHSANITY_E2E_ARTIFACTS/logs" 2>/dev/null || true
fi
exit $rc
