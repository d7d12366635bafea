#!/usr/bin/env bash
# Installs everything and runs the whole test suite (unit, property, integration, chaos, e2e).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
# tests/clockStep.int.test.ts steps the server's wall clock with libfaketime (Debian's faketime);
# without it those tests are skipped, saying so.
have_faketime() {
  for f in /usr/lib/*/faketime/libfaketime.so.1 /usr/lib/faketime/libfaketime.so.1; do [ -e "$f" ] && return 0; done
  return 1
}
if ! have_faketime && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "==> installing faketime (Debian) for the clock-step tests" >&2
  export DEBIAN_FRONTEND=noninteractive
  { timeout 300 apt-get install -y -q faketime >/dev/null 2>&1 || { timeout 300 apt-get update -q >/dev/null 2>&1 && timeout 300 apt-get install -y -q faketime >/dev/null 2>&1; }; } ||
    echo "warning: could not install faketime: the clock-step tests will be skipped" >&2
fi
echo "==> lint" >&2
pnpm exec eslint .
echo "==> tests" >&2
mkdir -p .kyrodb-tmp
summary=.kyrodb-tmp/vitest-summary.json
# Every temp dir the tests (and the servers they start) make goes under one dir for this run,
# removed when the run ends: thousands of data dirs otherwise pile up in /tmp run after run.
# KYRODB_KEEP_TMP=1 keeps it for a look after a failure.
run_tmp="$PWD/.kyrodb-tmp/run-$$"
mkdir -p "$run_tmp"
cleanup() {
  if [ "${KYRODB_KEEP_TMP:-}" = "1" ]; then echo "kept the run's temp dirs in $run_tmp" >&2; return; fi
  rm -rf "$run_tmp" 2>/dev/null || echo "warning: could not remove all of $run_tmp (a mount left behind?)" >&2
}
trap cleanup EXIT
export TMPDIR="$run_tmp"
rm -f "$summary"
status=0
pnpm exec vitest run --reporter=default --reporter=json --outputFile.json="$summary" "$@" || status=$?
# One plain closing line, whatever the reporter printed above it.
if [ -f "$summary" ]; then
  node -e 'const r = require(process.argv[1]); console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);' "$PWD/$summary"
fi
exit "$status"
