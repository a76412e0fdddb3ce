#!/usr/bin/env bash
# The test command (README): core tests and every plugin's tests, in the .venv made by setup.
set -euo pipefail
cd "$(dirname "$0")/.."
export SBCORE_DATA_DIR="${SBCORE_DATA_DIR:-$(cd .. && pwd)/shared/data}"
plugin_tests=$(ls -d plugins/sb-*/tests 2>/dev/null || true)
exec .venv/bin/python -m pytest -q tests $plugin_tests "$@"
