#!/usr/bin/env bash
# Sets up a fresh clone: pnpm, redis-server (Debian package) when missing, dependencies, build.
# With --test it also installs what only the tests need (Debian's chromium for the browser test, python3-numpy
# for the export test).
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
# free ports), chromium for the browser test, python3-numpy for the export test.
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
if $for_tests && ! command -v chromium >/dev/null 2>&1; then missing+=(chromium); fi
# The export test runs the README's numpy snippet with Debian's Python.
if $for_tests && ! /usr/bin/python3 -c 'import numpy' >/dev/null 2>&1; then missing+=(python3-numpy); fi
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

# The WebGPU engine tests run on Mesa's software Vulkan driver (lavapipe): Dawn needs Mesa >= 24, which bookworm
# has in bookworm-backports (trixie and later in main). Without it the WebGPU engines cannot run, and the tests
# say so instead of skipping.
mesa_version() { dpkg-query -W -f '${Version}' mesa-vulkan-drivers 2>/dev/null | sed -E 's/^[0-9]+://; s/\..*//'; }
mesa_old=false
if $for_tests; then
  mesa=$(mesa_version || true)  # dpkg-query fails when the package is not installed (set -e, pipefail)
  if [ -z "$mesa" ] || [ "$mesa" -lt 24 ]; then mesa_old=true; fi
fi
if $mesa_old; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
    export DEBIAN_FRONTEND=noninteractive
    if [ "$codename" = bookworm ]; then
      if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        say "adding bookworm-backports (Mesa 25's software Vulkan driver for the WebGPU tests)"
        printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
          > /etc/apt/sources.list.d/layertap-backports.sources
      fi
      say "installing mesa-vulkan-drivers from bookworm-backports"
      apt-get update -qq
      apt-get install -y -qq --no-install-recommends -t bookworm-backports mesa-vulkan-drivers >/dev/null
    else
      say "installing mesa-vulkan-drivers"
      apt-get update -qq
      apt-get install -y -qq --no-install-recommends mesa-vulkan-drivers >/dev/null
    fi
  else
    echo "the WebGPU tests need Mesa's software Vulkan driver >= 24: install mesa-vulkan-drivers (bookworm: from bookworm-backports)" >&2
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
