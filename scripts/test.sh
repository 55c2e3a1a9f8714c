#!/usr/bin/env bash
# Everything, as CI runs it (.ci/run, as root): setup, then the unit tier (layer check, type check, test/unit:
# fakes, no root, seconds), then the root and e2e tiers (test/root, and test/e2e with real guests inside a
# network namespace the tests create and delete). Each tier also runs alone: bash scripts/test-unit.sh,
# bash scripts/test-e2e.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --with-test-tools
echo "test: unit tier (layer check, type check, test/unit)" >&2
bash scripts/test-unit.sh
echo "test: root and e2e tiers (test/root, test/e2e)" >&2
bash scripts/test-e2e.sh
