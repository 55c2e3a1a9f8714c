#!/usr/bin/env bash
# Builds the guest agent (agent/, Go, standard library only) into dist-agent/banger-agent: one static x86_64
# binary that runs on any guest userland (glibc, musl or none). It lives outside dist/ because
# scripts/setup.sh deletes dist/ on every build. Quick when nothing changed (Go's build cache).
#   bash scripts/build-agent.sh            build
#   bash scripts/build-agent.sh GOARGS...  run `go GOARGS` in agent/ with the same toolchain and settings
#                                          instead (scripts/test-unit.sh: vet ./..., test ./...)
set -euo pipefail
cd "$(dirname "$0")/.."
go=/usr/lib/go-1.19/bin/go
if [[ ! -x $go ]]; then go=$(command -v go || true); fi
if [[ -z $go ]]; then
  echo "build-agent: Go is missing; install it as root: apt-get install -y --no-install-recommends golang-1.19-go" >&2
  exit 69
fi
# Offline and reproducible: no module downloads (the agent has no dependencies), no toolchain switching.
cache=${XDG_CACHE_HOME:-${HOME:-}/.cache}
if [[ -z ${HOME:-} && -z ${XDG_CACHE_HOME:-} ]] || ! mkdir -p "$cache/banger" 2>/dev/null; then
  cache=$PWD/.cache
fi
export GOCACHE=${GOCACHE:-$cache/banger/go-build} GOPATH=${GOPATH:-$cache/banger/go}
export GOPROXY=off GOFLAGS=-mod=mod GO111MODULE=on GOWORK=off GOOS=linux GOARCH=amd64 CGO_ENABLED=0
unset GOTOOLCHAIN
if (($# > 0)); then
  cd agent
  exec "$go" "$@"
fi
mkdir -p dist-agent
(cd agent && "$go" build -trimpath -ldflags='-s -w' -o ../dist-agent/banger-agent .)
