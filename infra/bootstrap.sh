#!/usr/bin/env bash
# Sets up a fresh clone: pnpm, redis-server (Debian package) when missing, dependencies, build.
# With --test it also installs what only the tests need (Debian's chromium for the browser test).
# Safe to run again; it only does what is missing. Used by the README's Quick start and by CI.
set -euo pipefail
cd "$(dirname "$0")/.."
for_tests=false
[ "${1:-}" = "--test" ] && for_tests=true

PNPM_VERSION=10.34.8
say() { printf '\033[1m[layertap setup]\033[0m %s\n' "$*"; }

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
node_minor=$(node -p 'process.versions.node.split(".")[1]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ] || { [ "$node_major" -eq 20 ] && [ "$node_minor" -lt 19 ]; }; then
  echo "layertap needs Node.js 20.19 or newer (found $(node -v 2>/dev/null || echo none))." >&2
  exit 1
fi

if ! command -v pnpm >/dev/null 2>&1 || [ "$(pnpm -v 2>/dev/null)" != "$PNPM_VERSION" ]; then
  say "installing pnpm $PNPM_VERSION with npm"
  npm install -g "pnpm@$PNPM_VERSION" >/dev/null
fi

# Debian packages layertap needs here: redis-server always (the demo and tests start their own servers on
# free ports), chromium for the browser test.
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
if $for_tests && ! command -v chromium >/dev/null 2>&1; then missing+=(chromium); fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing ${missing[*]} (Debian packages)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "missing: ${missing[*]}. Install them (Debian/Ubuntu: sudo apt-get install ${missing[*]};" \
      "macOS: brew install redis), or point REDIS_URL at a running Redis." >&2
    exit 1
  fi
fi

export TURBO_TELEMETRY_DISABLED=1
say "installing dependencies"
pnpm install --frozen-lockfile --reporter=append-only
say "building"
pnpm run build --output-logs=errors-only

# The commands on PATH (links to this checkout), so that `layertap ...` works from any directory.
say "linking the commands"
bash infra/install-commands.sh "${LAYERTAP_BIN_DIR:-}"
say "ready"
