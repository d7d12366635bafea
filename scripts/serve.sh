#!/usr/bin/env bash
# Installs everything and starts the KyroDB server on the embedded default:
# data in ./data, backups to ./backups, HTTP on 127.0.0.1:7070. Extra arguments go to `kyrodb serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec node packages/api/dist/cli.js serve "$@"
