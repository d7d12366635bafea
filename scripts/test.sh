#!/usr/bin/env bash
# Installs everything and runs the whole test suite (unit, property, integration, chaos, e2e).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
echo "==> lint" >&2
pnpm exec eslint .
echo "==> tests" >&2
mkdir -p .kyrodb-tmp
summary=.kyrodb-tmp/vitest-summary.json
rm -f "$summary"
status=0
pnpm exec vitest run --reporter=default --reporter=json --outputFile.json="$summary" "$@" || status=$?
# One plain closing line, whatever the reporter printed above it.
if [ -f "$summary" ]; then
  node -e 'const r = require(process.argv[1]); console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);' "$PWD/$summary"
fi
exit "$status"
