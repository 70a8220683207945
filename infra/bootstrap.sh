#!/usr/bin/env bash
# Sets up a fresh clone: pnpm, redis-server (Debian package) when missing, dependencies, build.
# Safe to run again; it only does what is missing. Used by the README's Quick start and by CI.
set -euo pipefail
cd "$(dirname "$0")/.."

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

if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing redis-server (Debian package)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # Only the binary is needed: layertap starts its own servers on free ports.
    apt-get install -y -qq --no-install-recommends redis-server >/dev/null
  else
    echo "redis-server is missing: install it (Debian/Ubuntu: sudo apt-get install redis-server;" \
      "macOS: brew install redis), or point REDIS_URL at a running Redis." >&2
    exit 1
  fi
fi

export TURBO_TELEMETRY_DISABLED=1
say "installing dependencies"
pnpm install --frozen-lockfile --reporter=append-only
say "building"
pnpm run build --output-logs=errors-only
say "ready"
