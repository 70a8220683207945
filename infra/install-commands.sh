#!/usr/bin/env bash
# Puts `layertap`, `layertap-worker` and `layertap-dashboard` on PATH as links to this checkout's launchers, so
# that the commands work from any directory as the README shows them (`npx layertap` outside the checkout
# would ask the npm registry for a package of that name instead). Run by infra/bootstrap.sh; safe to run again.
#
#   bash infra/install-commands.sh [DIR]    DIR: default /usr/local/bin when writable, else ~/.local/bin
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-}"
if [ -z "$dir" ]; then
  if [ -w /usr/local/bin ]; then dir=/usr/local/bin; else dir="$HOME/.local/bin"; fi
fi
mkdir -p "$dir"
for command in layertap:producer layertap-worker:worker layertap-dashboard:dashboard; do
  name=${command%%:*}
  launcher="$repo/apps/${command#*:}/bin/$name.js"
  [ -x "$launcher" ] || { echo "missing launcher $launcher" >&2; exit 1; }
  ln -sfn "$launcher" "$dir/$name"
done
echo "linked layertap, layertap-worker and layertap-dashboard into $dir (they run this checkout: $repo)"
case ":$PATH:" in
  *":$dir:"*) ;;
  *) echo "note: $dir is not on PATH; add it: export PATH=\"$dir:\$PATH\"" >&2 ;;
esac
