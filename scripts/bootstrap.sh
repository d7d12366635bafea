#!/usr/bin/env bash
# Installs what KyroDB needs on a fresh machine with Node.js 20 and npm: pnpm (pinned), the
# workspace dependencies (native addons compiled from source), and a build of every package.
set -euo pipefail
cd "$(dirname "$0")/.."

PNPM_VERSION=12.4.2
if ! command -v pnpm >/dev/null 2>&1 || [ "$(pnpm --version 2>/dev/null)" != "$PNPM_VERSION" ]; then
  echo "==> installing pnpm@$PNPM_VERSION" >&2
  npm install -g "pnpm@$PNPM_VERSION" >&2 || { echo "error: could not install pnpm@$PNPM_VERSION with npm" >&2; exit 1; }
fi

# node-gyp (hnswlib-node, zstd-napi) must build against the headers Node ships with, not download them.
if [ -z "${npm_config_nodedir:-}" ]; then
  nodedir="$(npm config get nodedir 2>/dev/null || true)"
  if [ -z "$nodedir" ] || [ "$nodedir" = "undefined" ] || [ "$nodedir" = "null" ]; then
    nodedir="$(dirname "$(dirname "$(command -v node)")")"
  fi
  [ -f "$nodedir/include/node/node.h" ] && export npm_config_nodedir="$nodedir"
fi

echo "==> installing dependencies" >&2
pnpm install --frozen-lockfile >&2
echo "==> building" >&2
pnpm run --silent build >&2
