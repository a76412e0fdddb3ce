#!/usr/bin/env bash
# The test command (README): the documentation site (built with warnings as errors), then the core tests,
# every plugin's tests and the tutorial plugin's tests (examples/plugin-template), in the .venv made by setup.
set -euo pipefail
cd "$(dirname "$0")/.."
export SBCORE_DATA_DIR="${SBCORE_DATA_DIR:-$(cd .. && pwd)/shared/data}"
DISABLE_MKDOCS_2_WARNING=true .venv/bin/mkdocs build --strict --quiet
plugin_tests=$(ls -d plugins/sb-*/tests 2>/dev/null || true)
# the tutorial plugin is imported from its folder (tests/test_plugins.py builds and installs its wheel)
export PYTHONPATH="examples/plugin-template${PYTHONPATH:+:$PYTHONPATH}"
exec .venv/bin/python -m pytest -q tests $plugin_tests examples/plugin-template/tests "$@"
