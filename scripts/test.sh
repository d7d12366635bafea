#!/usr/bin/env bash
# Installs everything and runs the whole test suite (unit, property, integration, chaos, e2e).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
echo "==> lint" >&2
pnpm exec eslint .
echo "==> tests" >&2
pnpm exec vitest run "$@"
